"""Shared test set-up: quiet TensorFlow, two logical CPUs, seeded Keras."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices let tests run tf.distribute.MirroredStrategy with two
# replicas on a machine without accelerators. Must happen before TF starts.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)

import keras  # noqa: E402
import pytest  # noqa: E402

import tfvae  # noqa: E402, F401


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same global seeds."""
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()
