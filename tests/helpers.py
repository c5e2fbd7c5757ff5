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
