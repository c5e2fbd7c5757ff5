"""SavedModel export for TF Serving: signatures, fidelity without tfvae/TFP, XLA, atomicity."""

import json
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow.core.protobuf import saved_model_pb2

import tfvae
from tests import fresh_process
from tests.helpers import run_like_tf_serving
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


_EXPORTED = {}  # likelihood -> (trained VAE, its export): for the `exported` fixture and the fresh process


def _exported(likelihood, directory):
    """A VAE trained with `likelihood` and its export under `directory`; made once per session."""
    if likelihood not in _EXPORTED:
        vae = _vae(likelihood)
        _EXPORTED[likelihood] = (vae, vae.export(pathlib.Path(directory) / likelihood / "1"))
    return _EXPORTED[likelihood]


@pytest.fixture(scope="module", params=["bernoulli", "gaussian"])
def exported(request, tmp_path_factory):
    vae, path = _exported(request.param, tmp_path_factory.mktemp("export"))
    return vae, path, request.param


@pytest.fixture
def trained_vae(tmp_path_factory):
    """The trained Bernoulli VAE of `exported` (trained once): a test may export it again, and restores what it changes."""
    return _exported("bernoulli", tmp_path_factory.getbasetemp() / "exports")[0]


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


# Every script below runs in the tests' one fresh process (tests/fresh_process.py) before anything imports
# tfvae or TFP there, with importing them made to fail: what a TF Serving client has.
WITHOUT_TFVAE_OR_TFP = ("tfvae", "tensorflow_probability")
NOT_IMPORTABLE = """
import sys
assert sys.modules["tfvae"] is None and sys.modules["tensorflow_probability"] is None  # importing them fails
"""


def _save_trained_exports(directory):
    """Both trained VAEs' exports, and the requests for each signature at batch sizes 1 and 5."""
    paths = {likelihood: str(_exported(likelihood, directory)[1]) for likelihood in ("bernoulli", "gaussian")}
    inputs = {batch: _inputs(batch) for batch in (1, 5)}
    np.save(directory / "inputs.npy", {"paths": paths, "inputs": inputs}, allow_pickle=True)
    return inputs


fresh_process.register("export: trained VAEs", _save_trained_exports, NOT_IMPORTABLE + """
import numpy as np, tensorflow as tf
saved = np.load(directory / "inputs.npy", allow_pickle=True).item()
result = {}
for likelihood, path in saved["paths"].items():
    model = tf.saved_model.load(path)
    outputs = result[likelihood] = {}
    for batch, by_signature in saved["inputs"].items():
        for name, arguments in by_signature.items():
            served = model.signatures[name](**{k: tf.constant(v) for k, v in arguments.items()})
            outputs[(batch, name)] = {k: v.numpy() for k, v in served.items()}
""", without=WITHOUT_TFVAE_OR_TFP)


def test_export_loads_without_tfvae_or_tfp_and_matches_keras(exported, fresh_process_results):
    vae, _, likelihood = exported
    inputs, by_likelihood = fresh_process_results("export: trained VAEs")
    outputs = by_likelihood[likelihood]
    for batch in (1, 5):
        for name in (*DETERMINISTIC, "sample"):
            expected = _keras_outputs(vae, name, inputs[batch][name])
            assert set(outputs[(batch, name)]) == set(expected)
            for key, value in expected.items():
                np.testing.assert_allclose(outputs[(batch, name)][key], value, rtol=1e-5, atol=1e-5, err_msg=f"{name}/{key}")
        assert outputs[(batch, "sample")]["images"].shape == (batch, *IMAGE_SHAPE)


GREY_LEVEL_PARAMETERS = {"normal": {"loc", "scale"}, "continuous_bernoulli": {"logits"},
                         "discretized_logistic_mixture": {"mixture_logits", "loc", "scale"}}


def _save_grey_level_exports(directory):
    """An untrained VAE per grey-level likelihood, exported; what Keras says for each served output."""
    vaes = {name: tfvae.VAE(architectures.mlp_encoder(IMAGE_SHAPE, 3, hidden_units=(16,)),  # untrained is enough
                            architectures.mlp_decoder(3, IMAGE_SHAPE, hidden_units=(16,), likelihood=name))
            for name in GREY_LEVEL_PARAMETERS}
    for name, vae in vaes.items():
        vae.export(directory / name, verbose=False)
    inputs = _inputs(3)
    np.save(directory / "inputs.npy", inputs, allow_pickle=True)
    expected = {}
    for likelihood, vae in vaes.items():
        base = vae.decode(inputs["decode"]["z"]).distribution
        expected[likelihood] = {"mean": vae.decode(inputs["decode"]["z"]).mean().numpy(),
                                **{key: np.asarray(getattr(base, key)) for key in GREY_LEVEL_PARAMETERS[likelihood]}}
        for name in ("reconstruct", "elbo", "sample"):
            expected[likelihood].update({f"{name}/{key}": np.asarray(value)
                                         for key, value in _keras_outputs(vae, name, inputs[name]).items()})
    return expected


fresh_process.register("export: grey-level likelihoods", _save_grey_level_exports, NOT_IMPORTABLE + f"""
import numpy as np, tensorflow as tf
inputs = np.load(directory / "inputs.npy", allow_pickle=True).item()
result = {{}}
for likelihood in {sorted(GREY_LEVEL_PARAMETERS)!r}:
    model = tf.saved_model.load(str(directory / likelihood))
    for name, arguments in inputs.items():
        served = model.signatures[name](**{{k: tf.constant(v) for k, v in arguments.items()}})
        result[(likelihood, name)] = {{k: v.numpy() for k, v in served.items()}}
""", without=WITHOUT_TFVAE_OR_TFP)


def test_grey_level_likelihoods_export_and_serve_their_mean_and_parameters_without_tfvae_or_tfp(fresh_process_results):
    parameters = GREY_LEVEL_PARAMETERS
    assert set(parameters) == set(architectures.GREY_LEVEL_LIKELIHOODS)
    by_likelihood, outputs = fresh_process_results("export: grey-level likelihoods")
    for likelihood, expected in by_likelihood.items():
        decoded = outputs[(likelihood, "decode")]
        assert set(decoded) == {"mean"} | parameters[likelihood], likelihood
        served = {**decoded, **{f"{name}/{key}": value for name in ("reconstruct", "elbo", "sample")
                                for key, value in outputs[(likelihood, name)].items()}}
        for key, value in expected.items():
            np.testing.assert_allclose(served[key], value, rtol=1e-5, atol=1e-5, err_msg=f"{likelihood}: {key}")
    assert outputs[("discretized_logistic_mixture", "decode")]["mixture_logits"].shape == (
        3, *IMAGE_SHAPE, architectures.DISCRETIZED_COMPONENTS)


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


# `saved_model_cli show --all --dir PATH` for each trained VAE's export: what the console script runs, its main().
fresh_process.register("export: saved_model_cli", _save_trained_exports, NOT_IMPORTABLE + """
import contextlib, io, numpy as np
from tensorflow.python.tools import saved_model_cli
result, argv = {}, sys.argv
for likelihood, path in np.load(directory / "inputs.npy", allow_pickle=True).item()["paths"].items():
    sys.argv, stdout, exit_code = ["saved_model_cli", "show", "--all", "--dir", path], io.StringIO(), "no exit"
    with contextlib.redirect_stdout(stdout):
        try:
            saved_model_cli.main()
        except SystemExit as stopped:
            exit_code = stopped.code
    result[likelihood] = (exit_code, stdout.getvalue())
sys.argv = argv
""", without=WITHOUT_TFVAE_OR_TFP)


def test_saved_model_cli_lists_signatures_with_dtypes_and_shapes(exported, fresh_process_results):
    _, _, likelihood = exported
    exit_code, stdout = fresh_process_results("export: saved_model_cli")[1][likelihood]
    assert exit_code in (0, None), stdout[-2000:]  # sys.exit(None): exit status 0
    for name in export.SIGNATURE_NAMES:
        assert f"signature_def['{name}']" in stdout
    assert "dtype: DT_FLOAT" in stdout and "shape: (-1, 8, 8, 1)" in stdout
    assert "Method name is: tensorflow/serving/predict" in stdout


def test_existing_target_is_kept_unless_overwrite(trained_vae, tmp_path):
    vae = trained_vae
    target = tmp_path / "1"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite"):
        vae.export(target)
    assert (target / "keep.txt").read_text() == "old"
    vae.export(target, overwrite=True)
    assert (target / "saved_model.pb").is_file() and not (target / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]


def test_failed_export_leaves_no_partial_directory_and_keeps_the_old_one(trained_vae, tmp_path, monkeypatch):
    vae = trained_vae

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


def test_model_with_nan_weights_is_never_exported(trained_vae, tmp_path):
    vae = trained_vae
    kernel = vae.encoder.layers[2].kernel
    trained = kernel.numpy()
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    try:
        with pytest.raises(ValueError, match="non-finite weights"):
            vae.export(tmp_path / "1")
    finally:
        kernel.assign(trained)
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


def test_export_keeps_keras_signature_and_refuses_other_formats(trained_vae, tmp_path):
    vae = trained_vae
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


def test_export_prints_its_signatures_by_default_as_keras_does(trained_vae, tmp_path, capsys):
    trained_vae.export(tmp_path / "1")
    assert "Endpoint 'sample'" in capsys.readouterr().out
    trained_vae.export(tmp_path / "2", verbose=False)
    assert "Endpoint" not in capsys.readouterr().out


def test_every_signature_runs_in_a_tf1_session_as_tf_serving_runs_it(exported):
    vae, path, _ = exported
    inputs = _inputs(3)
    requests = {name: (name, inputs["encode" if name == "serving_default" else name])
                for name in (*export.SIGNATURE_NAMES, "serving_default")}
    signatures, results = run_like_tf_serving(path, requests)
    assert set(signatures) == set(requests)
    for name, outputs in results.items():
        expected = _keras_outputs(vae, "encode" if name == "serving_default" else name, requests[name][1])
        assert set(outputs) == set(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(outputs[key], value, rtol=1e-5, atol=1e-5, err_msg=f"{name}/{key}")


def test_readme_rest_bodies_name_each_signatures_inputs_and_the_complete_ones_run():
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    bodies = re.findall(r"/models/vae:predict -d '(\{.*?\})'", readme, flags=re.S)  # the unconditional model's
    served = pathlib.Path(__file__).resolve().parents[1] / "saved_models" / "pretrained_mnist_mlp" / "serving" / "1"
    documented, complete = {}, {}
    for body in bodies:
        named = re.search(r'"signature_name": "(\w+)"', body)
        name = named.group(1) if named else "serving_default"
        inputs = body[body.index('"inputs"'):]
        documented[name] = set(re.findall(r'"(\w+)":', inputs[len('"inputs"'):]))
        if "..." not in body:
            complete[name] = (name, json.loads(body)["inputs"])
    signatures, results = run_like_tf_serving(served, complete)
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


def _save_distribution_model_exports(directory):
    sequential, functional = _distribution_models()
    rng = np.random.default_rng(0)
    x, extra = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 2)).astype(np.float32)
    export.export_model(sequential, directory / "sequential", statistics=("mean", "stddev", "variance"))
    export.export_model(functional, directory / "functional")
    expected_sequential = {name: getattr(sequential(x), name)().numpy() for name in ("mean", "stddev", "variance")}
    outputs = functional([x, extra])
    expected_functional = {"score": outputs["score"].numpy()}
    for name in ("logistic", "poisson"):
        expected_functional.update({f"{name}_mean": outputs[name].mean().numpy(), f"{name}_stddev": outputs[name].stddev().numpy()})
    np.save(directory / "inputs.npy", {"x": x, "extra": extra}, allow_pickle=True)
    return {"sequential": expected_sequential, "functional": expected_functional}


fresh_process.register("export: distribution models", _save_distribution_model_exports, NOT_IMPORTABLE + """
import numpy as np, tensorflow as tf
inputs = np.load(directory / "inputs.npy", allow_pickle=True).item()
sequential = tf.saved_model.load(str(directory / "sequential")).signatures["serving_default"]
functional = tf.saved_model.load(str(directory / "functional")).signatures["serving_default"]
result = {"sequential": {k: v.numpy() for k, v in sequential(x=tf.constant(inputs["x"])).items()},
          "functional": {k: v.numpy() for k, v in functional(features=tf.constant(inputs["x"]),
                                                             extra=tf.constant(inputs["extra"])).items()}}
""", without=WITHOUT_TFVAE_OR_TFP)


def test_export_model_serves_statistics_of_each_output_without_tfvae_or_tfp(fresh_process_results):
    expected_by_model, served = fresh_process_results("export: distribution models")
    for name, expected in [("sequential", expected_by_model["sequential"]), ("functional", expected_by_model["functional"])]:
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


def _save_every_distribution_layer_export(directory):
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
    export.export_model(model, directory / "heads")
    export.export_model(flow, directory / "flow", statistics="sample")
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.save(directory / "x.npy", x)
    return {f"{name}_{statistic}": getattr(distribution, statistic)().numpy()
            for name, distribution in model(x).items() for statistic in ("mean", "stddev")}


fresh_process.register("export: every distribution layer", _save_every_distribution_layer_export, NOT_IMPORTABLE + """
import numpy as np, tensorflow as tf
x = tf.constant(np.load(directory / "x.npy"))
heads = tf.saved_model.load(str(directory / "heads")).signatures["serving_default"](x=x)
flow = tf.saved_model.load(str(directory / "flow")).signatures["serving_default"](x=x)
result = {"heads": {k: v.numpy() for k, v in heads.items()}, "flow": {k: v.numpy() for k, v in flow.items()}}
""", without=WITHOUT_TFVAE_OR_TFP)


def test_every_distribution_layer_exports_and_serves_without_tfvae_or_tfp(fresh_process_results):
    expected, served = fresh_process_results("export: every distribution layer")
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
