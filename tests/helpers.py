"""Helpers shared by the tests."""

import json

import keras


def assert_config_round_trip(obj):
    """get_config -> from_config -> get_config gives identical JSON."""
    config = obj.get_config()
    restored = type(obj).from_config(config)
    assert json.dumps(restored.get_config(), sort_keys=True, indent=0).splitlines() == json.dumps(config, sort_keys=True, indent=0).splitlines()
    return restored


def serialized_round_trip(obj):
    """Serializes through Keras' registry, as `.keras` files do."""
    return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
