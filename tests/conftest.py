"""Shared test set-up: quiet TensorFlow, two logical CPUs, seeded Keras, MNIST-like data."""

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
from tests import mock_data  # noqa: E402


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same global seeds."""
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


@pytest.fixture
def tfds_data_dir():
    """The prepared tensorflow-datasets directory, or None with fake MNIST-like datasets served in its place.

    Fake data (tests/mock_data.py) where the prepared directory is missing or
    TFVAE_TEST_MOCK_DATA=1; pass the value on as `data_dir`. Commands run in a
    subprocess need tests/run_with_data.py (`helpers.python_with_data`).
    """
    with mock_data.prepared_or_fake_data() as data_dir:
        yield data_dir
