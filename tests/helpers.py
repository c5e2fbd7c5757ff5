"""Helpers shared by the tests."""

import json
import pathlib
import sys

import keras

RUN_WITH_DATA = pathlib.Path(__file__).with_name("run_with_data.py")


def assert_config_round_trip(obj):
    """get_config -> from_config -> get_config gives identical JSON."""
    config = obj.get_config()
    restored = type(obj).from_config(config)
    assert json.dumps(restored.get_config(), sort_keys=True, indent=0).splitlines() == json.dumps(config, sort_keys=True, indent=0).splitlines()
    return restored


def serialized_round_trip(obj):
    """Serializes through Keras' registry, as `.keras` files do."""
    return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))


def python_with_data(*argv):
    """The command line `python ARGV...` run with the tests' data (see tests/run_with_data.py).

    E.g. `python_with_data("-m", "tfvae", "train", ...)`; under the fake data
    of tests/mock_data.py in the subprocess wherever the `tfds_data_dir`
    fixture serves it in the test.
    """
    return [sys.executable, str(RUN_WITH_DATA), *argv]


def run_like_tf_serving(path, requests):
    """Runs `{name: (signature_name, {input: value})}` as TF Serving's C++ loader does: a TF1 session over the serve MetaGraph.

    Feeds and fetches each SignatureDef's tensor names; returns `(signature_defs, {name: {output: value}})`
    without `__saved_model_init_op`, the entry that names the op the loader runs first (restoring variables).
    """
    import numpy as np
    import tensorflow as tf

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


def single_and_mirrored_step(build_vae, dataset, prepare=None):
    """One epoch of `dataset` (one SGD step for one batch) on one device and on two mirrored CPU replicas.

    `build_vae()` returns a new, uncompiled `tfvae.VAE`. The single-device VAE
    is built first, passed to `prepare` (e.g. to move its weights), and its
    weights copied into one built under a MirroredStrategy over /cpu:0 and
    /cpu:1 (tests/conftest.py makes them). Both compile with SGD(0.5) without
    XLA: XLA's Philox draws other noise than the CPU kernel's, and Adam would
    hide a gradient scaled by the number of replicas. Returns
    `(initial_weights, (single_vae, single_history), (mirrored_vae, mirrored_history))`.
    """
    from tfvae import training  # after tests/conftest.py configured the devices

    strategy = training.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])  # distinct collective keys (tensorflow#62790)
    assert strategy.num_replicas_in_sync == 2

    def build(weights=None):
        vae = build_vae()
        if weights is not None:
            vae.set_weights(weights)
        vae.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), jit_compile=False)
        return vae

    single = build()
    if prepare is not None:
        prepare(single)
    initial = single.get_weights()
    with strategy.scope():
        mirrored = build(initial)
    return initial, *((vae, vae.fit(dataset, epochs=1, verbose=0).history) for vae in (single, mirrored))
