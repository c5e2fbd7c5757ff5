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
