import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfvae import data

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "tensorflow_datasets"
DATA_DIR = os.environ.get("TFDS_DATA_DIR") or (str(SHARED_DATA) if SHARED_DATA.is_dir() else None)
needs_prepared_data = pytest.mark.skipif(DATA_DIR is None, reason="no prepared tensorflow-datasets directory")


def _first_batch(dataset):
    element = next(iter(dataset))
    return element if isinstance(element, tuple) else (element, None)


@needs_prepared_data
@pytest.mark.parametrize(
    "name, sizes, has_labels",
    [
        ("mnist", (50000, 10000, 10000), True),
        ("fashion_mnist", (50000, 10000, 10000), True),
        ("binarized_mnist", (50000, 10000, 10000), False),
    ],
)
def test_prepared_datasets_have_expected_splits_shapes_and_ranges(name, sizes, has_labels):
    splits = data.load(name, batch_size=1000, data_dir=DATA_DIR, download=False)
    assert splits.image_shape == (28, 28, 1) and splits.has_labels == has_labels
    for split, size in zip(data.SPLIT_NAMES, sizes):
        assert splits[split].cardinality().numpy() == size // 1000
    images, labels = _first_batch(splits.test)
    assert images.shape == (1000, 28, 28, 1) and images.dtype == tf.float32
    assert 0.0 == images.numpy().min() and images.numpy().max() == 1.0
    if name == "binarized_mnist":
        assert set(np.unique(images)) == {0.0, 1.0}
        assert labels is None
    else:
        assert len(np.unique(images)) > 2  # grey levels, scaled by 255
        assert labels.shape == (1000,) and set(np.unique(labels)) == set(range(10))


@needs_prepared_data
def test_test_split_really_holds_ten_thousand_examples():
    splits = data.load("binarized_mnist", batch_size=2500, data_dir=DATA_DIR, download=False)
    assert sum(int(batch.shape[0]) for batch in splits.test) == 10000


@needs_prepared_data
def test_dynamic_binarization_changes_between_epochs_and_repeats_with_seed():
    def first_epochs(seed):
        splits = data.load("mnist", batch_size=64, binarize="dynamic", data_dir=DATA_DIR, seed=seed, shuffle_buffer=1)
        train = splits.train.take(2)
        epochs = [np.concatenate([images for images, _ in train]) for _ in range(2)]
        test = [np.concatenate([images for images, _ in splits.test.take(1)]) for _ in range(2)]
        return epochs, test

    (epoch_1, epoch_2), (test_1, test_2) = first_epochs(seed=3)
    assert set(np.unique(epoch_1)) == {0.0, 1.0}
    assert np.mean(epoch_1 != epoch_2) > 0.01  # fresh draws over the same images (no shuffling)
    np.testing.assert_array_equal(test_1, test_2)  # evaluation binarised once
    (again_1, again_2), _ = first_epochs(seed=3)
    np.testing.assert_array_equal(again_1, epoch_1)
    np.testing.assert_array_equal(again_2, epoch_2)
    (other_1, _), _ = first_epochs(seed=4)
    assert np.any(other_1 != epoch_1)


def test_cifar10_path_through_mocked_tfds():
    with tfds.testing.mock_data(num_examples=20):
        splits = data.load("cifar10", batch_size=8, seed=0)
        images, labels = _first_batch(splits.train)
    assert splits.image_shape == (32, 32, 3)
    assert images.shape == (8, 32, 32, 3) and labels.shape == (8,)
    assert 0.0 <= images.numpy().min() and images.numpy().max() <= 1.0


def test_missing_dataset_names_dataset_directory_and_remedy(tmp_path):
    with pytest.raises(data.DatasetUnavailableError) as raised:
        data.load("mnist", data_dir=str(tmp_path), download=False)
    message = str(raised.value)
    assert "'mnist'" in message and str(tmp_path) in message and "TFDS_DATA_DIR" in message


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="svhn"), r"Unknown dataset 'svhn'; known datasets: \['binarized_mnist', 'cifar10'"),
        (dict(name="mnist", batch_size=0), "`batch_size` must be an int >= 1; received 0"),
        (dict(name="mnist", binarize="static"), "`binarize` must be one of"),
        (dict(name="binarized_mnist", binarize="dynamic"), "already 0 or 1"),
    ],
)
def test_bad_arguments_are_rejected_before_any_work(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load(**kwargs, data_dir="/nonexistent", download=False)


def test_from_array_scales_splits_and_labels():
    images = np.arange(20 * 4 * 4).reshape(20, 4, 4, 1) % 256
    splits = data.from_array(images.astype(np.uint8), labels=np.arange(20), batch_size=100, seed=1)
    train_images, train_labels = _first_batch(splits.train)
    test_images, test_labels = _first_batch(splits.test)
    assert (len(train_labels), len(_first_batch(splits.validation)[1]), len(test_labels)) == (16, 2, 2)
    all_labels = np.concatenate([train_labels, _first_batch(splits.validation)[1], test_labels])
    assert sorted(all_labels) == list(range(20))  # a partition
    np.testing.assert_allclose(test_images.numpy(), images[test_labels.numpy()] / 255, rtol=1e-6)


def test_from_array_rejects_bad_images():
    with pytest.raises(ValueError, match=r"\[num_images, height, width, 1 or 3\]; received shape \(5, 4, 4\)"):
        data.from_array(np.zeros([5, 4, 4], np.uint8))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]; received values in \[0.0, 2.0\]"):
        data.from_array(np.linspace(0, 2, 80, dtype=np.float32).reshape(5, 4, 4, 1))
    with pytest.raises(ValueError, match="`labels` must have shape"):
        data.from_array(np.zeros([5, 4, 4, 1], np.uint8), labels=[1, 2])


def test_from_image_folder_reads_labelled_subfolders(tmp_path):
    for label, value in (("a", 0), ("b", 255)):
        (tmp_path / label).mkdir()
        for index in range(5):
            png = tf.io.encode_png(np.full([6, 6, 1], value, np.uint8)).numpy()
            (tmp_path / label / f"{index}.png").write_bytes(png)
    splits = data.from_image_folder(tmp_path, image_size=(6, 6), batch_size=100, validation_fraction=0.2, test_fraction=0.2)
    images, labels = _first_batch(splits.train)
    assert splits.image_shape == (6, 6, 1) and splits.has_labels
    np.testing.assert_array_equal(images.numpy().max(axis=(1, 2, 3)), labels.numpy().astype(np.float32))
    assert len(labels) == 6


def test_from_image_folder_without_subfolders_is_unlabelled(tmp_path):
    for index in range(10):
        (tmp_path / f"{index}.png").write_bytes(tf.io.encode_png(np.full([4, 4, 3], 25 * index, np.uint8)).numpy())
    splits = data.from_image_folder(tmp_path, image_size=(4, 4), color_mode="rgb", batch_size=100)
    images, labels = _first_batch(splits.train)
    assert labels is None and images.shape == (8, 4, 4, 3)
    with pytest.raises(ValueError, match="must be an existing folder"):
        data.from_image_folder(tmp_path / "missing", image_size=(4, 4))


def test_train_from_gives_each_epoch_the_batches_of_its_seed_and_number_alone():
    images = (np.arange(40 * 4 * 4).reshape(40, 4, 4, 1) % 251).astype(np.uint8)
    splits = data.from_array(images, labels=np.arange(40), batch_size=8, binarize="dynamic", seed=3,
                             validation_fraction=0.1, test_fraction=0.1)
    steps = splits.steps_per_epoch
    assert steps == 4  # 32 training images

    def batches(dataset, count):
        return [(x.numpy(), y.numpy()) for x, y in dataset.take(count)]

    from_zero = batches(splits.train_from(0, 3), 3 * steps)
    assert len(batches(splits.train_from(0, 3), 99)) == 3 * steps
    from_one = batches(splits.train_from(1, 3), steps)
    for (x_a, y_a), (x_b, y_b) in zip(from_zero[steps : 2 * steps], from_one):
        np.testing.assert_array_equal(x_a, x_b)
        np.testing.assert_array_equal(y_a, y_b)
    first, second = (np.concatenate([y for _, y in from_zero[e * steps : (e + 1) * steps]]) for e in (0, 1))
    assert sorted(first) == sorted(second) and list(first) != list(second)  # reshuffled per epoch
    skipped = batches(splits.train_from(1, 2, skip_batches=2), 1)
    np.testing.assert_array_equal(skipped[0][1], from_zero[steps + 2][1])
    assert set(np.unique(from_zero[0][0])) <= {0.0, 1.0}
