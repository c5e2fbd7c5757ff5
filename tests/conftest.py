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

try:
    import hypothesis  # noqa: E402
except ImportError:  # the property tests (tests/test_properties*.py) skip themselves
    hypothesis = None
else:
    # The property tests: the same examples on every run (derandomized, no
    # example database), no per-example deadline (TensorFlow's first calls
    # trace), and fixtures shared by a test's examples are fine.
    hypothesis.settings.register_profile(
        "tfvae",
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture, hypothesis.HealthCheck.too_slow,
                               hypothesis.HealthCheck.data_too_large, hypothesis.HealthCheck.filter_too_much],
    )
    # A longer, random search for local runs: `pytest --hypothesis-profile=tfvae-search` with
    # TFVAE_PROPERTY_EXAMPLES=10 (ten times each property's examples; see tests/test_properties.py).
    hypothesis.settings.register_profile("tfvae-search", parent=hypothesis.settings.get_profile("tfvae"),
                                         derandomize=False)
    hypothesis.settings.load_profile("tfvae")


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


@pytest.fixture(scope="session")
def fresh_process_results(tmp_path_factory):
    """Every check registered in tests/fresh_process.py (`.keras` files, SavedModels), run in one new process.

    `expected, result = fresh_process_results(name)`; TensorFlow starts once for all the test modules.
    """
    from tests import fresh_process

    results = fresh_process.start(tmp_path_factory.mktemp("fresh_process"))
    yield results
    results.stop()


@pytest.fixture(scope="session", autouse=True)
def _fresh_process_started_before_the_first_test(request):
    """Starts `fresh_process_results` with the first test where any collected test asks for it: it runs beside them."""
    if any("fresh_process_results" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("fresh_process_results")
