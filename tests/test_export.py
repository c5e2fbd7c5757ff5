"""SavedModel export for TF Serving: signatures, fidelity without tfvae/TFP, XLA, atomicity."""

import json
import pathlib
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow.core.protobuf import saved_model_pb2

import tfvae
from tfvae import architectures, export

IMAGE_SHAPE = (8, 8, 1)
tfd = tfp.distributions
PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
DETERMINISTIC = ("encode", "decode", "reconstruct", "elbo")  # given the seed
DETERMINISTIC_WITHOUT_NOISE = ("encode", "decode", "reconstruct")


def _vae(likelihood):
    x = (np.random.default_rng(0).uniform(size=(64, *IMAGE_SHAPE)) > 0.5).astype(np.float32)
    encoder = architectures.mlp_encoder(IMAGE_SHAPE, 3, hidden_units=(16,))
    decoder = architectures.mlp_decoder(3, IMAGE_SHAPE, hidden_units=(16,), likelihood=likelihood)
    vae = tfvae.VAE(encoder, decoder)
    vae.compile(optimizer="adam")
    vae.fit(x, batch_size=16, epochs=1, verbose=0)
    return vae


@pytest.fixture(scope="module", params=["bernoulli", "gaussian"])
def exported(request, tmp_path_factory):
    vae = _vae(request.param)
    path = vae.export(tmp_path_factory.mktemp("export") / "vae" / "1")
    return vae, path, request.param


def _inputs(batch):
    rng = np.random.default_rng(batch)
    return {
        "encode": {"x": rng.uniform(size=(batch, *IMAGE_SHAPE)).astype(np.float32)},
        "decode": {"z": rng.normal(size=(batch, 3)).astype(np.float32)},
        "reconstruct": {"x": rng.uniform(size=(batch, *IMAGE_SHAPE)).astype(np.float32)},
        "elbo": {"x": (rng.uniform(size=(batch, *IMAGE_SHAPE)) > 0.5).astype(np.float32), "seed": np.array([3, 4], np.int32)},
        "sample": {"num_images": np.int32(batch), "seed": np.array([5, 6], np.int32)},
    }


def _keras_outputs(vae, name, inputs):
    """What the Keras model says for each signature's outputs."""
    if name == "encode":
        posterior = vae.encode(inputs["x"])
        return {"mean": posterior.mean(), "stddev": posterior.stddev()}
    if name == "decode":
        likelihood = vae.decode(inputs["z"])
        base = likelihood.distribution
        names = ("logits",) if isinstance(base, tfd.Bernoulli) else ("loc", "scale")
        return {"mean": likelihood.mean(), **{name: getattr(base, name) for name in names}}
    if name == "reconstruct":
        return {"reconstruction": vae.reconstruct(inputs["x"])}
    if name == "elbo":
        terms = vae.elbo_terms(inputs["x"], seed=tf.constant(inputs["seed"]))
        return {"elbo": terms.elbo, "reconstruction": terms.reconstruction, "kl": terms.kl}
    return {"images": vae.sample(int(inputs["num_images"]), seed=tf.constant(inputs["seed"]))}


def test_signatures_are_predict_signatures_with_named_inputs_and_free_batch(exported):
    _, path, likelihood = exported
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    (meta_graph,) = proto.meta_graphs
    assert list(meta_graph.meta_info_def.tags) == ["serve"]
    signatures = meta_graph.signature_def
    assert set(export.SIGNATURE_NAMES) <= set(signatures)
    for name in export.SIGNATURE_NAMES:
        assert signatures[name].method_name == "tensorflow/serving/predict"
    assert set(signatures["encode"].inputs) == {"x"} and set(signatures["encode"].outputs) == {"mean", "stddev"}
    assert signatures["encode"].inputs["x"].tensor_shape.dim[0].size == -1  # free batch
    assert set(signatures["sample"].inputs) == {"num_images", "seed"}
    assert set(signatures["elbo"].outputs) == {"elbo", "reconstruction", "kl"}
    expected_parameters = {"logits"} if likelihood == "bernoulli" else {"loc", "scale"}
    assert set(signatures["decode"].outputs) == {"mean"} | expected_parameters


def test_export_loads_without_tfvae_or_tfp_and_matches_keras(exported, tmp_path):
    vae, path, _ = exported
    inputs = {batch: _inputs(batch) for batch in (1, 5)}
    np.save(tmp_path / "inputs.npy", inputs, allow_pickle=True)
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("tfvae", "tensorflow_probability"):
            sys.modules[name] = None  # importing them now fails
        import numpy as np, tensorflow as tf
        model = tf.saved_model.load({str(path)!r})
        inputs = np.load({str(tmp_path / "inputs.npy")!r}, allow_pickle=True).item()
        outputs = {{}}
        for batch, by_signature in inputs.items():
            for name, arguments in by_signature.items():
                result = model.signatures[name](**{{k: tf.constant(v) for k, v in arguments.items()}})
                outputs[(batch, name)] = {{k: v.numpy() for k, v in result.items()}}
        np.save({str(tmp_path / "outputs.npy")!r}, outputs, allow_pickle=True)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npy", allow_pickle=True).item()
    for batch in (1, 5):
        for name in (*DETERMINISTIC, "sample"):
            expected = _keras_outputs(vae, name, inputs[batch][name])
            assert set(outputs[(batch, name)]) == set(expected)
            for key, value in expected.items():
                np.testing.assert_allclose(outputs[(batch, name)][key], value, rtol=1e-5, atol=1e-5, err_msg=f"{name}/{key}")
        assert outputs[(batch, "sample")]["images"].shape == (batch, *IMAGE_SHAPE)


def test_grey_level_likelihoods_export_and_serve_their_mean_and_parameters_without_tfvae_or_tfp(tmp_path):
    parameters = {"normal": {"loc", "scale"}, "continuous_bernoulli": {"logits"},
                  "discretized_logistic_mixture": {"mixture_logits", "loc", "scale"}}
    assert set(parameters) == set(architectures.GREY_LEVEL_LIKELIHOODS)
    vaes = {name: tfvae.VAE(architectures.mlp_encoder(IMAGE_SHAPE, 3, hidden_units=(16,)),  # untrained is enough
                            architectures.mlp_decoder(3, IMAGE_SHAPE, hidden_units=(16,), likelihood=name))
            for name in parameters}
    for name, vae in vaes.items():
        vae.export(tmp_path / name, verbose=False)
    inputs = _inputs(3)
    np.save(tmp_path / "inputs.npy", inputs, allow_pickle=True)
    script = textwrap.dedent(f"""
        import sys
        for name in ("tfvae", "tensorflow_probability"):
            sys.modules[name] = None  # importing them now fails
        import numpy as np, tensorflow as tf
        inputs = np.load({str(tmp_path / "inputs.npy")!r}, allow_pickle=True).item()
        outputs = {{}}
        for likelihood in {sorted(parameters)!r}:
            model = tf.saved_model.load({str(tmp_path)!r} + "/" + likelihood)
            for name, arguments in inputs.items():
                result = model.signatures[name](**{{k: tf.constant(v) for k, v in arguments.items()}})
                outputs[(likelihood, name)] = {{k: v.numpy() for k, v in result.items()}}
        np.save({str(tmp_path / "outputs.npy")!r}, outputs, allow_pickle=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npy", allow_pickle=True).item()
    for likelihood, vae in vaes.items():
        decoded = outputs[(likelihood, "decode")]
        assert set(decoded) == {"mean"} | parameters[likelihood], likelihood
        base = vae.decode(inputs["decode"]["z"]).distribution
        expected = {"mean": vae.decode(inputs["decode"]["z"]).mean(), **{key: getattr(base, key) for key in parameters[likelihood]}}
        for name in ("reconstruct", "elbo", "sample"):
            expected.update({f"{name}/{key}": value for key, value in _keras_outputs(vae, name, inputs[name]).items()})
        served = {**decoded, **{f"{name}/{key}": value for name in ("reconstruct", "elbo", "sample")
                                for key, value in outputs[(likelihood, name)].items()}}
        for key, value in expected.items():
            np.testing.assert_allclose(served[key], value, rtol=1e-5, atol=1e-5, err_msg=f"{likelihood}: {key}")
    assert decoded["mixture_logits"].shape == (3, *IMAGE_SHAPE, architectures.DISCRETIZED_COMPONENTS)


def test_graph_has_no_python_ops_and_every_signature_compiles_with_xla(exported):
    _, path, _ = exported
    model = tf.saved_model.load(str(path))
    for name in export.SIGNATURE_NAMES:
        signature = model.signatures[name]
        graph_def = signature.graph.as_graph_def()
        ops = {node.op for node in graph_def.node}
        ops |= {node.op for function in graph_def.library.function for node in function.node_def}
        assert not ops & PYTHON_OPS, f"{name} uses {ops & PYTHON_OPS}"
    for name, arguments in _inputs(4).items():
        tensors = {k: tf.constant(v) for k, v in arguments.items()}
        plain = model.signatures[name](**tensors)
        compiled_signature = tf.function(lambda **kw: model.signatures[name](**kw), jit_compile=True)
        compiled = compiled_signature(**tensors)
        for key in plain:
            assert compiled[key].shape == plain[key].shape and np.all(np.isfinite(compiled[key]))
            if name in DETERMINISTIC_WITHOUT_NOISE:
                np.testing.assert_allclose(compiled[key], plain[key], rtol=1e-4, atol=1e-5, err_msg=f"{name}/{key}")
            else:
                # TF's stateless random ops may pick another algorithm under XLA, so a
                # seed gives other (but repeatable) draws there than on CPU or GPU.
                np.testing.assert_array_equal(compiled_signature(**tensors)[key], compiled[key])


def test_saved_model_cli_lists_signatures_with_dtypes_and_shapes(exported):
    _, path, _ = exported
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run([str(cli), "show", "--all", "--dir", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in export.SIGNATURE_NAMES:
        assert f"signature_def['{name}']" in result.stdout
    assert "dtype: DT_FLOAT" in result.stdout and "shape: (-1, 8, 8, 1)" in result.stdout
    assert "Method name is: tensorflow/serving/predict" in result.stdout


def test_existing_target_is_kept_unless_overwrite(tmp_path):
    vae = _vae("bernoulli")
    target = tmp_path / "1"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite"):
        vae.export(target)
    assert (target / "keep.txt").read_text() == "old"
    vae.export(target, overwrite=True)
    assert (target / "saved_model.pb").is_file() and not (target / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]


def test_failed_export_leaves_no_partial_directory_and_keeps_the_old_one(tmp_path, monkeypatch):
    vae = _vae("bernoulli")

    def failing_save(obj, export_dir, *args, **kwargs):
        pathlib.Path(export_dir).mkdir(parents=True)
        (pathlib.Path(export_dir) / "saved_model.pb").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        vae.export(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        vae.export(tmp_path / "old", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["old"] and (tmp_path / "old" / "keep.txt").read_text() == "old"


def test_model_with_nan_weights_is_never_exported(tmp_path):
    vae = _vae("bernoulli")
    kernel = vae.encoder.layers[2].kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    with pytest.raises(ValueError, match="non-finite weights"):
        vae.export(tmp_path / "1")
    assert list(tmp_path.iterdir()) == []


def test_pretrained_model_has_its_export_beside_it():
    run = pathlib.Path(__file__).resolve().parents[1] / "saved_models" / "pretrained_mnist_mlp"
    served = tf.saved_model.load(str(run / "serving" / "1"))
    vae = keras.models.load_model(run / "model.keras")
    x = (np.random.default_rng(0).uniform(size=(3, 28, 28, 1)) > 0.5).astype(np.float32)
    outputs = served.signatures["encode"](x=tf.constant(x))
    np.testing.assert_allclose(outputs["mean"], vae.encode(x).mean(), rtol=1e-5, atol=1e-6)
    z = np.random.default_rng(1).normal(size=(2, vae.latent_dim)).astype(np.float32)
    np.testing.assert_allclose(served.signatures["decode"](z=tf.constant(z))["mean"], vae.decode(z).mean(), rtol=1e-5, atol=1e-6)
    images = served.signatures["sample"](num_images=tf.constant(2), seed=tf.constant([1, 2]))["images"]
    np.testing.assert_allclose(images, vae.sample(2, seed=(1, 2)), rtol=1e-5, atol=1e-6)  # the export is today's


def test_a_wrong_shaped_request_is_refused_naming_the_input(exported):
    _, path, _ = exported
    served = tf.saved_model.load(str(path))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor x \[2,5,5,1\] is not compatible with expected shape \[\?,8,8,1\]"):
        served.signatures["encode"](x=tf.zeros([2, 5, 5, 1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor z \[2,7\] is not compatible"):
        served.signatures["decode"](z=tf.zeros([2, 7]))
    # TF Serving feeds the graph directly: every signature input goes through a shape check first.
    meta_graph = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes()).meta_graphs[0]
    nodes = [node for function in meta_graph.graph_def.library.function for node in function.node_def]
    checked = {node.name.removeprefix("check_").removesuffix("_shape") for node in nodes if node.op == "EnsureShape"}
    assert checked == {"x", "z", "num_images", "seed"}


def test_export_keeps_keras_signature_and_refuses_other_formats(tmp_path):
    vae = _vae("bernoulli")
    with pytest.raises(ValueError, match="`format` must be 'tf_saved_model' for a VAE.*received 'onnx'"):
        vae.export(tmp_path / "a", format="onnx")
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['is_static'\\]"):
        vae.export(tmp_path / "a", is_static=True)
    with pytest.raises(ValueError, match="`input_signature` must be one tf.TensorSpec of float32 images of shape \\[batch, 8, 8, 1\\]"):
        vae.export(tmp_path / "a", input_signature=[tf.TensorSpec([None, 4, 4, 1], tf.float32)])
    assert not (tmp_path / "a").exists()
    path = vae.export(tmp_path / "b", "tf_saved_model", False, [tf.TensorSpec([4, *IMAGE_SHAPE], tf.float32)])
    encode = tf.saved_model.load(str(path)).signatures["encode"]
    assert encode.structured_input_signature[1]["x"].shape == (4, *IMAGE_SHAPE)  # a fixed batch, as TPUs want


def test_export_prints_its_signatures_by_default_as_keras_does(tmp_path, capsys):
    _vae("bernoulli").export(tmp_path / "1")
    assert "Endpoint 'sample'" in capsys.readouterr().out
    _vae("bernoulli").export(tmp_path / "2", verbose=False)
    assert "Endpoint" not in capsys.readouterr().out


def _run_in_a_session(path, requests):
    """Runs `{name: (signature_name, {input: value})}` as TF Serving's loader does: a TF1 session over the serve MetaGraph.

    Feeds and fetches each SignatureDef's tensor names; returns `(signature_defs, {name: {output: value}})`
    without `__saved_model_init_op`, the entry that names the op the loader runs first (restoring variables).
    """
    results = {}
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        signatures = {name: signature for name, signature in meta_graph.signature_def.items() if not name.startswith("__")}
        for name, (signature_name, arguments) in requests.items():
            signature = signatures[signature_name]
            assert set(arguments) == set(signature.inputs), f"{name}: inputs {sorted(arguments)}"
            feeds = {signature.inputs[key].name: np.asarray(value, tf.dtypes.as_dtype(signature.inputs[key].dtype).as_numpy_dtype)
                     for key, value in arguments.items()}
            fetches = {key: info.name for key, info in signature.outputs.items()}
            results[name] = session.run(fetches, feed_dict=feeds)
    return signatures, results


def test_every_signature_runs_in_a_tf1_session_as_tf_serving_runs_it(exported):
    vae, path, _ = exported
    inputs = _inputs(3)
    requests = {name: (name, inputs["encode" if name == "serving_default" else name])
                for name in (*export.SIGNATURE_NAMES, "serving_default")}
    signatures, results = _run_in_a_session(path, requests)
    assert set(signatures) == set(requests)
    for name, outputs in results.items():
        expected = _keras_outputs(vae, "encode" if name == "serving_default" else name, requests[name][1])
        assert set(outputs) == set(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(outputs[key], value, rtol=1e-5, atol=1e-5, err_msg=f"{name}/{key}")


def test_readme_rest_bodies_name_each_signatures_inputs_and_the_complete_ones_run():
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    bodies = re.findall(r"-d '(\{.*?\})'", readme, flags=re.S)
    served = pathlib.Path(__file__).resolve().parents[1] / "saved_models" / "pretrained_mnist_mlp" / "serving" / "1"
    documented, complete = {}, {}
    for body in bodies:
        named = re.search(r'"signature_name": "(\w+)"', body)
        name = named.group(1) if named else "serving_default"
        inputs = body[body.index('"inputs"'):]
        documented[name] = set(re.findall(r'"(\w+)":', inputs[len('"inputs"'):]))
        if "..." not in body:
            complete[name] = (name, json.loads(body)["inputs"])
    signatures, results = _run_in_a_session(served, complete)
    assert set(documented) == set(signatures)  # one body per signature
    for name, keys in documented.items():
        assert keys == set(signatures[name].inputs), name
    assert complete and all(np.all(np.isfinite(value)) for outputs in results.values() for value in outputs.values())


def test_export_stores_each_weight_once(exported):
    vae, path, _ = exported
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    stored = sum(int(np.prod(shape)) for name, shape in reader.get_variable_to_shape_map().items()
                 if dtypes[name] == tf.float32)
    assert stored == sum(int(np.prod(w.shape)) for w in vae.encoder.weights + vae.decoder.weights + vae.prior.weights)


def _distribution_models():
    """A Sequential model ending in a distribution layer, and a Functional one with two named inputs and three outputs."""
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), tfvae.layers.IndependentNormal(2)])
    features = keras.Input((3,), name="features")
    extra = keras.Input((2,), name="extra")
    hidden = keras.layers.Dense(4)(keras.layers.Concatenate()([features, extra]))
    functional = keras.Model([features, extra], {
        "logistic": tfvae.layers.IndependentLogistic(2, "sample")(hidden),
        "poisson": tfvae.layers.IndependentPoisson(4)(hidden),
        "score": keras.layers.Dense(1)(hidden),
    })
    return sequential, functional


def test_export_model_serves_statistics_of_each_output_without_tfvae_or_tfp(tmp_path):
    sequential, functional = _distribution_models()
    rng = np.random.default_rng(0)
    x, extra = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 2)).astype(np.float32)
    export.export_model(sequential, tmp_path / "sequential", statistics=("mean", "stddev", "variance"))
    export.export_model(functional, tmp_path / "functional")
    expected_sequential = {name: getattr(sequential(x), name)().numpy() for name in ("mean", "stddev", "variance")}
    outputs = functional([x, extra])
    expected_functional = {"score": outputs["score"].numpy()}
    for name in ("logistic", "poisson"):
        expected_functional.update({f"{name}_mean": outputs[name].mean().numpy(), f"{name}_stddev": outputs[name].stddev().numpy()})
    np.save(tmp_path / "inputs.npy", {"x": x, "extra": extra}, allow_pickle=True)
    script = textwrap.dedent(f"""
        import sys
        for name in ("tfvae", "tensorflow_probability"):
            sys.modules[name] = None
        import numpy as np, tensorflow as tf
        inputs = np.load({str(tmp_path / "inputs.npy")!r}, allow_pickle=True).item()
        sequential = tf.saved_model.load({str(tmp_path / "sequential")!r}).signatures["serving_default"]
        functional = tf.saved_model.load({str(tmp_path / "functional")!r}).signatures["serving_default"]
        results = {{"sequential": {{k: v.numpy() for k, v in sequential(x=tf.constant(inputs["x"])).items()}},
                   "functional": {{k: v.numpy() for k, v in functional(features=tf.constant(inputs["x"]),
                                                                        extra=tf.constant(inputs["extra"])).items()}}}}
        np.save({str(tmp_path / "outputs.npy")!r}, results, allow_pickle=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = np.load(tmp_path / "outputs.npy", allow_pickle=True).item()
    for name, expected in [("sequential", expected_sequential), ("functional", expected_functional)]:
        assert set(served[name]) == set(expected), name
        for key, value in expected.items():
            np.testing.assert_allclose(served[name][key], value, rtol=1e-5, atol=1e-6, err_msg=f"{name}/{key}")


def test_export_model_refuses_statistics_it_cannot_serve(tmp_path):
    sequential, _ = _distribution_models()
    with pytest.raises(ValueError, match=r"`statistics` must be a non-empty subset of .*received \('median',\)"):
        export.export_model(sequential, tmp_path / "a", statistics="median")
    bernoulli = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), tfvae.layers.DistributionLambda(
        lambda t: tfd.MixtureSameFamily(tfd.Categorical(logits=t), tfd.Normal(t, 1.0)))])
    with pytest.raises(ValueError, match=r"`statistics` asks for 'mode', which MeanConvertibleMixtureSameFamily|asks for 'mode'"):
        export.export_model(bernoulli, tmp_path / "b", statistics=("mean", "mode"))
    assert not (tmp_path / "b").exists()


def test_every_distribution_layer_exports_and_serves_without_tfvae_or_tfp(tmp_path):
    from tfvae import layers

    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)

    def head(layer, size):
        return layer(keras.layers.Dense(size)(hidden))

    heads = {
        "bernoulli": head(layers.IndependentBernoulli((2, 2)), 4),
        "gaussian": head(layers.IndependentGaussian(2), 2),
        "tril": head(layers.MultivariateNormalTriL(2), 5),
        "one_hot": head(layers.OneHotCategorical(3), 3),
        "one_hot_mixture": head(layers.CategoricalMixtureOfOneHotCategorical(3, 2), 8),
        "mixture_normal": head(layers.MixtureNormal(2, [2]), 10),
        "mixture_logistic": head(layers.MixtureLogistic(2), 6),
        "mixture_tril": head(layers.MixtureSameFamily(2, layers.MultivariateNormalTriL(2)), 12),
        "lambda": head(layers.DistributionLambda(normal_from_two_params), 2),
    }
    model = keras.Model(inputs, heads)
    flow = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), layers.IndependentNormal(2, "sample"),
                             layers.AutoregressiveTransform(layers.AutoregressiveNetwork(2, event_shape=[2], hidden_units=[4]))])
    export.export_model(model, tmp_path / "heads")
    export.export_model(flow, tmp_path / "flow", statistics="sample")
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = {f"{name}_{statistic}": getattr(distribution, statistic)().numpy()
                for name, distribution in model(x).items() for statistic in ("mean", "stddev")}
    script = textwrap.dedent(f"""
        import sys
        for name in ("tfvae", "tensorflow_probability"):
            sys.modules[name] = None
        import numpy as np, tensorflow as tf
        x = tf.constant(np.load({str(tmp_path / "x.npy")!r}))
        heads = tf.saved_model.load({str(tmp_path / "heads")!r}).signatures["serving_default"](x=x)
        flow = tf.saved_model.load({str(tmp_path / "flow")!r}).signatures["serving_default"](x=x)
        np.save({str(tmp_path / "out.npy")!r}, {{"heads": {{k: v.numpy() for k, v in heads.items()}},
                                               "flow": {{k: v.numpy() for k, v in flow.items()}}}}, allow_pickle=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = np.load(tmp_path / "out.npy", allow_pickle=True).item()
    assert set(served["heads"]) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(served["heads"][key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    assert set(served["flow"]) == {"sample"} and served["flow"]["sample"].shape == (5, 2)
    assert np.all(np.isfinite(served["flow"]["sample"]))


@keras.saving.register_keras_serializable(package="tfvae_tests_export")
def normal_from_two_params(t):
    return tfd.Normal(loc=t[..., 0], scale=tf.math.softplus(t[..., 1]) + 1e-3)


# Regressions from tests/test_properties_model.py ---------------------------------------------------


def _snapshot(directory):
    return sorted((str(p.relative_to(directory)), p.stat().st_size) for p in pathlib.Path(directory).rglob("*"))


def test_bad_paths_models_and_statistics_are_refused_by_name_before_anything_is_written(tmp_path):
    vae = tfvae.VAE(architectures.mlp_encoder(IMAGE_SHAPE, 3, hidden_units=(4,)),
                    architectures.mlp_decoder(3, IMAGE_SHAPE, hidden_units=(4,)))
    (tmp_path / "a_file").write_text("not a folder")
    before = _snapshot(tmp_path)
    cases = [  # (call, error, message); each was a raw TypeError or AttributeError, or a FileExistsError from mkdir
        (lambda: export.export(vae, None), TypeError, "`path` must be a str or pathlib.Path"),
        (lambda: export.export(vae, b"serving/1"), TypeError, "`path` must be a str or pathlib.Path"),
        (lambda: export.export(vae, ""), ValueError, "`path` must name the SavedModel folder"),  # was "'.' already exists"
        (lambda: export.export(vae, tmp_path / "a_file" / "1"), NotADirectoryError, "`path` .* lies under .*a_file"),
        (lambda: export.export(vae, tmp_path / "out", overwrite="yes"), TypeError, "`overwrite` must be True or False"),
        (lambda: export.export(vae.encoder, tmp_path / "out"), TypeError, "`vae` must be a tfvae.VAE"),
        (lambda: export.export_model(None, tmp_path / "out"), TypeError, "`model` must be a Functional or Sequential"),
        (lambda: export.export_model(vae, tmp_path / "out"), TypeError, r"vae\.export\(path\)"),
        (lambda: export.export_model(vae.encoder, tmp_path / "out", statistics=None), ValueError, "`statistics` must be"),
        (lambda: export.export_model(vae.encoder, tmp_path / "out", statistics={"mean": 1}), ValueError, "`statistics` must be"),
        (lambda: export.export_model(vae.encoder, tmp_path / "a_file"), FileExistsError, "`path` .* already exists"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    assert _snapshot(tmp_path) == before
