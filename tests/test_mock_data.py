"""tests/mock_data.py and tests/run_with_data.py: the fake MNIST-like datasets that stand in for the prepared ones."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfvae import data
from tests import mock_data
from tests.helpers import python_with_data


@pytest.fixture(autouse=True)
def seeded():
    """Replaces conftest's Keras seeding: nothing here is random, and `clear_session` takes time."""
    yield


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_fake_grey_datasets_are_uint8_images_with_every_label(name):
    examples = mock_data.fake_examples(name, "train[:50000]")
    images, labels = examples["image"], examples["label"]
    assert images.shape == (mock_data.NUM_EXAMPLES, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (mock_data.NUM_EXAMPLES,) and labels.dtype == np.int64
    assert (images.min(), images.max()) == (0, 255) and len(np.unique(images)) > 200  # grey levels
    assert sorted(np.unique(labels)) == list(range(10))


def test_fake_binarized_mnist_is_zeros_and_ones_without_labels():
    examples = mock_data.fake_examples("binarized_mnist", "validation")
    assert list(examples) == ["image"] and examples["image"].shape == (mock_data.NUM_EXAMPLES, 28, 28, 1)
    assert sorted(np.unique(examples["image"])) == [0, 1]


def test_fake_images_of_a_class_resemble_each_other_more_than_other_classes():
    examples = mock_data.fake_examples("mnist", "test")
    images = examples["image"].reshape(mock_data.NUM_EXAMPLES, -1) / 255
    means = np.stack([images[examples["label"] == label].mean(axis=0) for label in range(10)])
    distances = np.linalg.norm(images[:, None] - means[None], axis=-1)  # [examples, classes]
    # Nearest class mean: 0.1 by chance, about 0.82 on real MNIST.
    assert np.mean(np.argmin(distances, axis=1) == examples["label"]) > 0.8


def test_each_split_string_has_its_own_examples_and_each_dataset_its_own_prototypes():
    train, validation = (mock_data.fake_examples("mnist", split)["image"] for split in ("train[:50000]", "train[50000:]"))
    assert not np.array_equal(train, validation)
    assert not np.array_equal(train, mock_data.fake_examples("fashion_mnist", "train[:50000]")["image"])


def test_tfvae_loads_fake_datasets_with_known_split_sizes_from_any_data_dir(tmp_path):
    with mock_data.fake_tfds():
        for name in mock_data.FAKE_DATASETS:
            splits = data.load(name, batch_size=1000, data_dir=str(tmp_path / "empty"), download=False)
            assert splits.num_examples == dict.fromkeys(data.SPLIT_NAMES, mock_data.NUM_EXAMPLES)
            assert splits.test.cardinality().numpy() == mock_data.NUM_EXAMPLES // 1000
            element = next(iter(splits.test))
            images = element[0] if splits.has_labels else element
            scale = 1 if name == "binarized_mnist" else 255
            expected = mock_data.fake_examples(name, "test")["image"][:1000].astype(np.float32) / np.float32(scale)
            np.testing.assert_array_equal(images, expected)
        assert next(iter(data.load("mnist", batch_size=8, data_dir=None).train))[0].shape == (8, 28, 28, 1)
    assert list(tmp_path.iterdir()) == []


def test_after_the_block_tensorflow_datasets_reads_the_disk_again(tmp_path):
    with mock_data.fake_tfds():
        data.load("mnist", batch_size=8, data_dir=str(tmp_path), download=False, max_examples=8)
    with pytest.raises(data.DatasetUnavailableError, match="is not prepared in"):
        data.load("mnist", batch_size=8, data_dir=str(tmp_path), download=False)


CHECKSUM = textwrap.dedent(
    """
    import sys
    import numpy as np
    from tfvae import data
    splits = data.load("mnist", batch_size=64, binarize="dynamic", data_dir=sys.argv[1] or None, seed=3, max_examples=256)
    images, labels = next(iter(splits.epoch_batches(1)))
    print(float(np.sum(images.numpy() * np.arange(784).reshape(28, 28, 1))), labels.numpy().tolist())
    """
)


def test_a_subprocess_through_run_with_data_reads_the_tests_data(tfds_data_dir):
    in_process = subprocess.run([sys.executable, "-c", f"exec({CHECKSUM!r})", tfds_data_dir or ""],
                                capture_output=True, text=True, timeout=120)
    through_wrapper = subprocess.run(python_with_data("-c", CHECKSUM, tfds_data_dir or ""),
                                     capture_output=True, text=True, timeout=120)
    assert through_wrapper.returncode == 0, through_wrapper.stderr[-2000:]
    splits = data.load("mnist", batch_size=64, binarize="dynamic", data_dir=tfds_data_dir, seed=3, max_examples=256)
    images, labels = next(iter(splits.epoch_batches(1)))
    expected = f"{float(np.sum(images.numpy() * np.arange(784).reshape(28, 28, 1)))} {labels.numpy().tolist()}"
    assert through_wrapper.stdout.strip() == expected
    if tfds_data_dir is None:  # a plain subprocess does not see this process's fake data
        assert in_process.returncode != 0 and "DatasetUnavailableError" in in_process.stderr
    else:
        assert in_process.stdout == through_wrapper.stdout


REPORT = "import sys; print(__name__, sys.argv, sys.path[0] == '' or sys.path[0]); sys.exit(3)"


def test_run_with_data_runs_code_scripts_and_modules_as_python_does(tmp_path):
    (tmp_path / "reporter.py").write_text(REPORT)
    for argv in (["-c", REPORT, "a", "b"], [str(tmp_path / "reporter.py")], ["-m", "reporter", "--flag"]):
        plain = subprocess.run([sys.executable, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        wrapped = subprocess.run(python_with_data(*argv), cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert (wrapped.returncode, wrapped.stdout) == (plain.returncode, plain.stdout) == (3, wrapped.stdout)
        assert "__main__" in plain.stdout
