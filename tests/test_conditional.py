"""The conditional VAE (`tfvae.VAE(..., num_classes=N)`): exact bounds, labels, saving, export, XLA, tf.distribute."""

import json
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import tfvae
from tfvae import architectures, export, priors
from tests import fresh_process
from tests.helpers import assert_config_round_trip, run_like_tf_serving, single_and_mirrored_step

IMAGE_SHAPE = (8, 8, 1)
NUM_CLASSES = 3
LATENT_DIM = 2
README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()


def _images(count, seed=0):
    return (np.random.default_rng(seed).uniform(size=(count, *IMAGE_SHAPE)) > 0.5).astype(np.float32)


def _labels(count):
    return np.arange(count) % NUM_CLASSES


def _small(arch):
    """Sizes that keep each architecture's model tiny."""
    return ({"filters": (4,)}, {"filters": (4,)}) if arch == "conv" else ({"hidden_units": (8,)}, {"hidden_units": (8,)})


def _builders(arch):
    if arch == "gated_mlp":
        return architectures.gated_mlp_encoder, architectures.gated_mlp_decoder, {}, {}
    make_encoder, make_decoder = architectures.ARCHITECTURES[arch]
    return (make_encoder, make_decoder, *_small(arch))


def _pair(arch, num_classes, likelihood="bernoulli"):
    make_encoder, make_decoder, encoder_sizes, decoder_sizes = _builders(arch)
    return (make_encoder(IMAGE_SHAPE, LATENT_DIM, num_classes=num_classes, **encoder_sizes),
            make_decoder(LATENT_DIM, IMAGE_SHAPE, likelihood=likelihood, num_classes=num_classes, **decoder_sizes))


def _conditional_vae(arch="mlp", **kwargs):
    return tfvae.VAE(*_pair(arch, NUM_CLASSES), num_classes=NUM_CLASSES, **{"seed": 3, **kwargs})


def _copy_for_class(conditional_model, unconditional_model, label):
    """Gives `unconditional_model` the weights that make it `conditional_model` at class `label`.

    The one dense layer that reads the concatenated one-hot has NUM_CLASSES more kernel rows; for a fixed
    class c its output is the unconditional layer's with the bias moved by kernel row (features + c).
    """
    weights, moved = [], None
    for conditional, unconditional in zip(conditional_model.get_weights(), unconditional_model.get_weights()):
        if conditional.shape == unconditional.shape:
            weights.append(conditional + (moved if moved is not None else 0))
            moved = None
        else:
            features = unconditional.shape[0]
            assert conditional.shape == (features + NUM_CLASSES, *unconditional.shape[1:])
            weights.append(conditional[:features])
            moved = conditional[features + label]  # added to the bias that follows
    unconditional_model.set_weights(weights)


# Exact bounds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["mlp", "gated_mlp", "conv"])
def test_bounds_with_labels_equal_those_of_unconditional_vaes_with_each_class_folded_into_the_bias(arch):
    """With a mixed batch and k = 3 (the labels tiled once per sample), for the ELBO and L_k alike."""
    vae = _conditional_vae(arch)
    x, labels = _images(7), _labels(7)
    conditional_elbo = vae.elbo_terms(x, seed=(1, 2), k=3, labels=labels)
    conditional_bound = vae.log_likelihood(x, k=6, chunk_size=4, seed=(3, 4), labels=labels).numpy()
    for label in range(NUM_CLASSES):
        encoder, decoder = _pair(arch, None)
        _copy_for_class(vae.encoder, encoder, label)
        _copy_for_class(vae.decoder, decoder, label)
        twin = tfvae.VAE(encoder, decoder, seed=3)
        rows = labels == label
        # The latent noise depends on the seed and the batch shape only: the same for the twin on the whole batch.
        twin_elbo = twin.elbo_terms(x, seed=(1, 2), k=3)
        for name in ("elbo", "reconstruction", "kl"):
            np.testing.assert_allclose(getattr(conditional_elbo, name).numpy()[rows], getattr(twin_elbo, name).numpy()[rows],
                                       rtol=1e-5, atol=1e-5, err_msg=f"{arch}, class {label}: {name}")
        np.testing.assert_allclose(conditional_bound[rows], twin.log_likelihood(x, k=6, chunk_size=4, seed=(3, 4)).numpy()[rows],
                                   rtol=1e-5, atol=1e-5, err_msg=f"{arch}, class {label}: L_k")
        np.testing.assert_allclose(vae.sample(4, seed=5, labels=label), twin.sample(4, seed=5), rtol=1e-5, atol=1e-6)


def test_integer_and_one_hot_labels_give_identical_results():
    vae = _conditional_vae()
    vae.compile()
    x, labels = _images(6), _labels(6)
    one_hot = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    for as_int, as_one_hot in [
        (vae.encode(x, labels=labels).mean(), vae.encode(x, labels=one_hot).mean()),
        (vae.decode(np.ones((6, LATENT_DIM), np.float32), labels=labels).mean(),
         vae.decode(np.ones((6, LATENT_DIM), np.float32), labels=one_hot).mean()),
        (vae.reconstruct(x, labels=labels), vae.reconstruct(x, labels=one_hot)),
        (vae.elbo(x, seed=1, k=2, labels=labels), vae.elbo(x, seed=1, k=2, labels=one_hot.astype(np.int64))),
        (vae.log_likelihood(x, k=5, seed=2, labels=labels.astype(np.uint8)), vae.log_likelihood(x, k=5, seed=2, labels=one_hot)),
        (vae.sample(6, seed=3, labels=labels), vae.sample(6, seed=3, labels=one_hot)),
        (vae.sample(3, seed=4, labels=2), vae.sample(3, seed=4, labels=[2, 2, 2])),
        (vae.predict((x, labels), verbose=0), vae.predict((x, one_hot), verbose=0)),
    ]:
        np.testing.assert_array_equal(as_int, as_one_hot)
    np.testing.assert_allclose(vae.predict(tf.data.Dataset.from_tensor_slices((x, labels)).batch(4), verbose=0),
                               vae.reconstruct(x, labels=labels), rtol=1e-6)
    evaluated = [vae.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)["kl"] for y in (labels, one_hot)]
    assert evaluated[0] == evaluated[1]


def test_the_label_changes_the_posterior_and_the_likelihood():
    vae = _conditional_vae()
    x = _images(1)
    means = [vae.encode(x, labels=[label]).mean().numpy() for label in range(NUM_CLASSES)]
    assert not np.allclose(means[0], means[1])
    assert not np.allclose(vae.sample(2, seed=1, labels=0), vae.sample(2, seed=1, labels=1))


# Errors -----------------------------------------------------------------------------------------------


def test_bad_labels_are_refused_by_name_before_any_work():
    vae = _conditional_vae()
    x = _images(4)
    cases = [
        ({}, "`labels` is required"),
        ({"labels": [0, 1, 2, 3]}, r"class indices in \[0, 3\); received 3"),
        ({"labels": [0, -1, 2, 0]}, r"class indices in \[0, 3\); received -1"),
        ({"labels": np.ones((4, 4), np.float32) / 4}, r"one-hot rows \[batch, 3\]; received shape \(4, 4\)"),
        ({"labels": np.ones((4, 3), np.float32)}, r"must be one-hot \(or class probabilities"),
        ({"labels": np.zeros((4, 1), np.int64)}, r"squeeze \[batch, 1\]"),
        ({"labels": np.zeros(4, np.float32)}, "cast float class indices to int"),
        ({"labels": [0, 1]}, "one label per example: 4 examples, received 2 labels"),
        ({"labels": "cats"}, "`labels` is required"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            vae.elbo(x, **kwargs)
    with pytest.raises(ValueError, match="one label per image: num_images=3, received 2"):
        vae.sample(3, labels=[0, 1])
    with pytest.raises(ValueError, match="`labels` must be an int class"):
        vae.sample(3, labels=1.5)
    with pytest.raises(ValueError, match=r"is called on \(x, labels\)"):
        vae(x)


def test_fit_and_evaluate_refuse_missing_or_bad_labels_before_training():
    vae = _conditional_vae()
    vae.compile(optimizer="adam")
    x, labels = _images(8), _labels(8)
    before = [w.copy() for w in vae.get_weights()]
    without_labels = "it trains and evaluates on \\(x, labels\\)"
    for call, message in [
        (lambda: vae.fit(x, epochs=1, verbose=0), without_labels),
        (lambda: vae.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), epochs=1, verbose=0), without_labels),
        (lambda: vae.fit((batch for batch in [x]), epochs=1, verbose=0), without_labels),
        (lambda: vae.fit(x, labels + 1, epochs=1, verbose=0), r"class indices in \[0, 3\); received 3"),
        (lambda: vae.fit(x, labels, validation_data=(x,), epochs=1, verbose=0), without_labels),
        (lambda: vae.fit(x, labels[:5], epochs=1, verbose=0), "8 examples, received 5 labels"),
        (lambda: vae.evaluate(tf.data.Dataset.from_tensor_slices((x, labels + 5)).batch(4), verbose=0), "received 7"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()
    for weight, initial in zip(vae.get_weights(), before):
        np.testing.assert_array_equal(weight, initial)
    generator = ((x[i:i + 4], labels[i:i + 4]) for i in (0, 4))  # a peeked generator still yields its first batch
    assert vae.fit(generator, epochs=1, steps_per_epoch=2, verbose=0).history["loss"]


def test_unconditional_vae_refuses_labels_and_models_must_match_num_classes():
    unconditional = tfvae.VAE(*_pair("mlp", None))
    x = _images(2)
    for call in (lambda: unconditional.encode(x, labels=[0, 1]), lambda: unconditional.elbo(x, labels=[0, 1]),
                 lambda: unconditional.sample(2, labels=[0, 1]), lambda: unconditional.reconstruct(x, labels=[0, 1])):
        with pytest.raises(ValueError, match=r"unconditional \(num_classes=None\): `labels` must be None"):
            call()
    encoder, decoder = _pair("mlp", NUM_CLASSES)
    plain_encoder, plain_decoder = _pair("mlp", None)
    with pytest.raises(ValueError, match="an unconditional VAE's takes one. For a conditional VAE pass num_classes=N"):
        tfvae.VAE(encoder, decoder)
    with pytest.raises(ValueError, match=r"the `encoder` must take two inputs, \[x, one_hot\] with one_hot \[batch, 3\]"):
        tfvae.VAE(plain_encoder, decoder, num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match=r"the `decoder` must take two inputs, \[z, one_hot\].*received inputs \[\(None, 2\), \(None, 3\)\]"):
        tfvae.VAE(*_pair("mlp", 4)[:1], decoder, num_classes=4)
    for bad in (1, True, "10", 2.0):
        with pytest.raises(ValueError, match="`num_classes` must be None .* or an int >= 2"):
            tfvae.VAE(encoder, decoder, num_classes=bad)
        with pytest.raises(ValueError, match="`num_classes` must be None"):
            architectures.mlp_encoder(IMAGE_SHAPE, 2, num_classes=bad)
    vampprior = priors.VampPrior(LATENT_DIM, 2, IMAGE_SHAPE)
    with pytest.raises(ValueError, match="keeps the prior p\\(z\\).*VampPrior"):
        tfvae.VAE(encoder, decoder, prior=vampprior, num_classes=NUM_CLASSES)


# Builders ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(architectures.ARCHITECTURES))
def test_every_architecture_builds_a_conditional_pair_on_input_and_one_hot(arch):
    encoder, decoder = architectures.encoder_and_decoder(arch, (28, 28, 1), 4, num_classes=10)
    assert [tuple(t.shape) for t in encoder.inputs] == [(None, 28, 28, 1), (None, 10)]
    assert [tuple(t.shape) for t in decoder.inputs] == [(None, 4), (None, 10)]
    plain_encoder, plain_decoder = architectures.encoder_and_decoder(arch, (28, 28, 1), 4)
    # Only the first dense layer after the label grows, by its 10 rows.
    added = sum(w.size for w in encoder.get_weights() + decoder.get_weights()) - sum(
        w.size for w in plain_encoder.get_weights() + plain_decoder.get_weights())
    # mlp: 200 units each; gated_mlp: GatedDense(300)'s 600 values and gates; conv: the posterior's 2 x 4 parameters
    # after the convolutions, and the decoder's dense layer to its 7 x 7 x 64 map.
    first_units = {"mlp": (200, 200), "gated_mlp": (600, 600), "conv": (2 * 4, 7 * 7 * 64)}[arch]
    assert added == 10 * sum(first_units)


# Saving and loading --------------------------------------------------------------------------------


def test_config_round_trips_with_num_classes():
    vae = _conditional_vae("conv", beta=0.5)
    restored = assert_config_round_trip(vae)
    assert vae.get_config()["num_classes"] == restored.num_classes == NUM_CLASSES
    assert tfvae.VAE(*_pair("mlp", None)).get_config()["num_classes"] is None


def _trained(arch):
    vae = _conditional_vae(arch)
    vae.compile(optimizer="adam")
    vae.fit(_images(32), _labels(32), batch_size=8, epochs=1, verbose=0)
    return vae


def _save_models_and_exports(directory):
    """A trained mlp and conv conditional VAE, each saved as .keras and exported; what Keras says for each."""
    x, labels = _images(5, seed=1), _labels(5)
    z = np.random.default_rng(2).normal(size=(5, LATENT_DIM)).astype(np.float32)
    np.save(directory / "inputs.npy", {"x": x, "labels": labels, "z": z}, allow_pickle=True)
    expected = {}
    for arch in ("mlp", "conv"):
        vae = _trained(arch)
        vae.save(directory / f"{arch}.keras")
        vae.export(directory / arch / "1", verbose=False)
        posterior, likelihood = vae.encode(x, labels=labels), vae.decode(z, labels=labels)
        terms = vae.elbo_terms(x, seed=(3, 4), labels=labels)
        expected[arch] = {
            "num_classes": NUM_CLASSES, "mean": posterior.mean().numpy(), "stddev": posterior.stddev().numpy(),
            "decoded": likelihood.mean().numpy(), "logits": likelihood.distribution.logits.numpy(),
            "reconstruction": vae.reconstruct(x, labels=labels).numpy(),
            "elbo": terms.elbo.numpy(), "reconstruction_term": terms.reconstruction.numpy(), "kl": terms.kl.numpy(),
            "images": vae.sample(5, seed=(5, 6), labels=labels).numpy(),
        }
    return expected


fresh_process.register("conditional: .keras files", _save_models_and_exports, """
import numpy as np, keras
import tfvae  # registers the classes; no custom_objects needed
inputs = np.load(directory / "inputs.npy", allow_pickle=True).item()
x, labels, z = inputs["x"], inputs["labels"], inputs["z"]
result = {}
for arch in ("mlp", "conv"):
    vae = keras.models.load_model(directory / f"{arch}.keras")
    posterior, likelihood = vae.encode(x, labels=labels), vae.decode(z, labels=labels)
    terms = vae.elbo_terms(x, seed=(3, 4), labels=labels)
    result[arch] = {
        "num_classes": vae.num_classes, "mean": posterior.mean().numpy(), "stddev": posterior.stddev().numpy(),
        "decoded": likelihood.mean().numpy(), "logits": likelihood.distribution.logits.numpy(),
        "reconstruction": vae.reconstruct(x, labels=labels).numpy(),
        "elbo": terms.elbo.numpy(), "reconstruction_term": terms.reconstruction.numpy(), "kl": terms.kl.numpy(),
        "images": vae.sample(5, seed=(5, 6), labels=labels).numpy(),
    }
""")

fresh_process.register("conditional: export without tfvae or TFP", _save_models_and_exports, """
import sys
assert sys.modules["tfvae"] is None and sys.modules["tensorflow_probability"] is None  # importing them fails
import numpy as np, tensorflow as tf
inputs = np.load(directory / "inputs.npy", allow_pickle=True).item()
x, label, z = tf.constant(inputs["x"]), tf.constant(inputs["labels"], tf.int32), tf.constant(inputs["z"])
seed = {"elbo": tf.constant([3, 4]), "sample": tf.constant([5, 6])}
result = {}
for arch in ("mlp", "conv"):
    signatures = tf.saved_model.load(str(directory / arch / "1")).signatures
    served = {
        "serving_default": signatures["serving_default"](x=x, label=label),
        "encode": signatures["encode"](x=x, label=label),
        "decode": signatures["decode"](z=z, label=label),
        "reconstruct": signatures["reconstruct"](x=x, label=label),
        "elbo": signatures["elbo"](x=x, label=label, seed=seed["elbo"]),
        "sample": signatures["sample"](label=label, seed=seed["sample"]),
    }
    result[arch] = {name: {key: value.numpy() for key, value in outputs.items()} for name, outputs in served.items()}
""", without=("tfvae", "tensorflow_probability"))


def test_saved_conditional_vaes_reload_in_a_fresh_process_with_identical_outputs(fresh_process_results):
    expected, loaded = fresh_process_results("conditional: .keras files")
    for arch in ("mlp", "conv"):
        assert loaded[arch]["num_classes"] == NUM_CLASSES
        for key, value in expected[arch].items():
            np.testing.assert_allclose(loaded[arch][key], value, rtol=1e-6, atol=1e-6, err_msg=f"{arch}: {key}")


def test_export_serves_every_signature_with_labels_without_tfvae_or_tfp(fresh_process_results):
    expected, served = fresh_process_results("conditional: export without tfvae or TFP")
    for arch in ("mlp", "conv"):
        keras_outputs, outputs = expected[arch], served[arch]
        for name in ("serving_default", "encode"):
            for key in ("mean", "stddev"):
                np.testing.assert_allclose(outputs[name][key], keras_outputs[key], rtol=1e-5, atol=1e-6, err_msg=f"{arch}: {name}")
        pairs = {("decode", "mean"): "decoded", ("decode", "logits"): "logits",
                 ("reconstruct", "reconstruction"): "reconstruction", ("elbo", "elbo"): "elbo",
                 ("elbo", "reconstruction"): "reconstruction_term", ("elbo", "kl"): "kl", ("sample", "images"): "images"}
        for (name, key), expected_key in pairs.items():
            np.testing.assert_allclose(outputs[name][key], keras_outputs[expected_key], rtol=1e-5, atol=1e-5,
                                       err_msg=f"{arch}: {name}/{key}")


# Export through TF Serving's loader -----------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    vae = _trained("mlp")
    return vae, vae.export(tmp_path_factory.mktemp("conditional_export") / "1", verbose=False)


def _requests(batch):
    rng = np.random.default_rng(batch)
    x = (rng.uniform(size=(batch, *IMAGE_SHAPE)) > 0.5).astype(np.float32)
    label = (np.arange(batch) + 1) % NUM_CLASSES
    return {
        "serving_default": ("serving_default", {"x": x, "label": label}),
        "encode": ("encode", {"x": x, "label": label}),
        "decode": ("decode", {"z": rng.normal(size=(batch, LATENT_DIM)), "label": label}),
        "reconstruct": ("reconstruct", {"x": x, "label": label}),
        "sample": ("sample", {"label": label, "seed": [5, 6]}),
        "elbo": ("elbo", {"x": x, "label": label, "seed": [3, 4]}),
    }


def _keras_outputs(vae, name, arguments):
    """What the Keras model says for a signature's outputs."""
    label = arguments["label"]
    if name in ("encode", "serving_default"):
        posterior = vae.encode(arguments["x"], labels=label)
        return {"mean": posterior.mean(), "stddev": posterior.stddev()}
    if name == "decode":
        likelihood = vae.decode(np.asarray(arguments["z"], np.float32), labels=label)
        return {"mean": likelihood.mean(), "logits": likelihood.distribution.logits}
    if name == "reconstruct":
        return {"reconstruction": vae.reconstruct(arguments["x"], labels=label)}
    if name == "elbo":
        terms = vae.elbo_terms(arguments["x"], seed=tf.constant(arguments["seed"]), labels=label)
        return {"elbo": terms.elbo, "reconstruction": terms.reconstruction, "kl": terms.kl}
    return {"images": vae.sample(len(label), seed=tf.constant(arguments["seed"]), labels=label)}


def test_every_signature_takes_an_int32_label_per_row_and_runs_in_a_tf1_session_as_tf_serving_runs_it(exported):
    vae, path = exported
    for batch in (1, 4):
        signatures, results = run_like_tf_serving(path, _requests(batch))
        assert set(signatures) == set(export.SIGNATURE_NAMES)
        for name, signature in signatures.items():
            assert signature.method_name == "tensorflow/serving/predict"
            label = signature.inputs[export.LABEL_INPUT]
            assert label.dtype == tf.int32.as_datatype_enum and [d.size for d in label.tensor_shape.dim] == [-1], name
        assert set(signatures["sample"].inputs) == {"label", "seed"}
        for name, outputs in results.items():
            expected = _keras_outputs(vae, name, _requests(batch)[name][1])
            assert set(outputs) == set(expected), name
            for key, value in expected.items():
                np.testing.assert_allclose(outputs[key], value, rtol=1e-5, atol=1e-5, err_msg=f"{name}/{key}")
        assert results["sample"]["images"].shape == (batch, *IMAGE_SHAPE)


def test_a_request_with_bad_labels_fails_naming_label(exported):
    _, path = exported
    loaded = tf.saved_model.load(str(path))  # kept: its signatures use its variables
    served = loaded.signatures
    x = tf.zeros([2, *IMAGE_SHAPE])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`label` must be class indices in \[0, 3\)"):
        served["encode"](x=x, label=tf.constant([0, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`label` must be class indices in \[0, 3\)"):
        served["sample"](label=tf.constant([-1]), seed=tf.constant([1, 2]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="`label` must hold one class per row"):
        served["decode"](z=tf.zeros([2, LATENT_DIM]), label=tf.constant([0, 1, 2]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor label \[1,2\] is not compatible"):
        served["reconstruct"](x=x, label=tf.constant([[0, 1]]))
    meta_graph = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes()).meta_graphs[0]
    nodes = [node for function in meta_graph.graph_def.library.function for node in function.node_def]
    checked = {node.name.removeprefix("check_").removesuffix("_shape") for node in nodes if node.op == "EnsureShape"}
    assert checked == {"x", "z", "label", "seed"}


def test_every_signature_compiles_with_xla(exported):
    _, path = exported
    loaded = tf.saved_model.load(str(path))  # kept: its signatures use its variables
    served = loaded.signatures
    for name, (_, arguments) in _requests(3).items():
        tensors = {key: tf.constant(np.asarray(value, tf.dtypes.as_dtype(served[name].structured_input_signature[1][key].dtype)
                                               .as_numpy_dtype)) for key, value in arguments.items()}
        compiled = tf.function(lambda **kw: served[name](**kw), jit_compile=True)(**tensors)
        plain = served[name](**tensors)
        for key in plain:
            assert compiled[key].shape == plain[key].shape and np.all(np.isfinite(compiled[key])), f"{name}/{key}"


def _readme_bodies():
    """`{signature: body}` of the REST bodies sent to `cvae` in the README's "Conditional VAE" section."""
    section = README.split("## Conditional VAE", 1)[1].split("\n## ", 1)[0]
    bodies = {}
    for body in re.findall(r"/models/cvae:predict -d '(\{.*?\})'", section, flags=re.S):
        named = re.search(r'"signature_name": "(\w+)"', body)
        bodies[named.group(1) if named else "serving_default"] = body
    return bodies


def test_readme_rest_bodies_name_each_signatures_inputs_and_the_complete_ones_run(tmp_path):
    """Against an export of the README's model: 28x28 images, 16 latents, 10 classes."""
    vae = tfvae.VAE(architectures.mlp_encoder((28, 28, 1), 16, hidden_units=(8,), num_classes=10),
                    architectures.mlp_decoder(16, (28, 28, 1), hidden_units=(8,), num_classes=10), num_classes=10)
    path = vae.export(tmp_path / "cvae" / "1", verbose=False)
    bodies = _readme_bodies()
    complete = {name: (name, json.loads(body)["inputs"]) for name, body in bodies.items() if "..." not in body}
    signatures, results = run_like_tf_serving(path, complete)
    assert set(bodies) == set(signatures)  # one body per signature
    for name, body in bodies.items():
        inputs = body[body.index('"inputs"') + len('"inputs"'):]
        assert set(re.findall(r'"(\w+)":', inputs)) == set(signatures[name].inputs), name
    assert set(complete) == {"decode", "sample"}
    assert results["sample"]["images"].shape == (3, 28, 28, 1)
    np.testing.assert_allclose(results["sample"]["images"], vae.sample(3, seed=(1, 2), labels=[0, 1, 7]), rtol=1e-5, atol=1e-6)
    assert all(np.all(np.isfinite(value)) for outputs in results.values() for value in outputs.values())


# Training: XLA and tf.distribute --------------------------------------------------------------------


def test_training_under_xla_raises_the_elbo_with_the_iwae_objective():
    """k = 2 samples per example: the labels are tiled once per sample inside the compiled step."""
    x, labels = _images(64), _labels(64)
    vae = _conditional_vae(objective="iwae", k=2)
    vae.compile(optimizer=keras.optimizers.Adam(0.01))
    assert vae.jit_compile is True  # "auto" is XLA on one device
    dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(16)
    before = vae.evaluate(dataset, verbose=0, return_dict=True)["elbo"]
    history = vae.fit(dataset, epochs=5, verbose=0).history
    after = vae.evaluate(dataset, verbose=0, return_dict=True)["elbo"]
    assert np.all(np.isfinite(history["loss"])) and after > before + 1.0, (before, after)


GLOBAL_BATCH = 8


def test_one_mirrored_step_equals_one_single_device_step():
    dataset = tf.data.Dataset.from_tensor_slices((_images(GLOBAL_BATCH), _labels(GLOBAL_BATCH))).batch(GLOBAL_BATCH)
    initial, (single, single_logs), (mirrored, mirrored_logs) = single_and_mirrored_step(_conditional_vae, dataset)
    assert sum(not np.allclose(a, b) for a, b in zip(initial, single.get_weights())) >= 4  # the step moved the weights
    (first_kernel,) = [i for i, w in enumerate(initial) if w.shape[0] == np.prod(IMAGE_SHAPE) + NUM_CLASSES]
    assert not np.allclose(single.get_weights()[first_kernel][-NUM_CLASSES:], initial[first_kernel][-NUM_CLASSES:])  # labels learn
    for single_value, mirrored_value in zip(single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(mirrored_value, single_value, rtol=1e-5, atol=1e-6)
    for name in ("loss", "elbo", "reconstruction", "kl"):
        np.testing.assert_allclose(mirrored_logs[name], single_logs[name], rtol=1e-5)
