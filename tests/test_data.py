import os
import socket
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests import mock_data
from tfvae import data
import tfvae.data.downloads  # noqa: F401  (patched below)

REAL_SIZES = (50000, 10000, 10000)  # train, validation, test of the prepared MNIST datasets


def _first_batch(dataset):
    element = next(iter(dataset))
    return element if isinstance(element, tuple) else (element, None)


@pytest.mark.parametrize("name, has_labels", [("mnist", True), ("fashion_mnist", True), ("binarized_mnist", False)])
def test_prepared_datasets_have_expected_splits_shapes_and_ranges(name, has_labels, tfds_data_dir):
    # The fake datasets (tests/mock_data.py) hold NUM_EXAMPLES per split.
    sizes = (mock_data.NUM_EXAMPLES,) * 3 if mock_data.mocking() else REAL_SIZES
    splits = data.load(name, batch_size=1000, data_dir=tfds_data_dir, download=False)
    assert splits.image_shape == (28, 28, 1) and splits.has_labels == has_labels
    assert splits.num_examples == dict(zip(data.SPLIT_NAMES, sizes))
    assert splits.steps_per_epoch == sizes[0] // 1000
    for split, size in zip(data.SPLIT_NAMES[1:], sizes[1:]):
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


def test_test_split_really_holds_all_its_examples(tfds_data_dir):
    splits = data.load("binarized_mnist", batch_size=2500, data_dir=tfds_data_dir, download=False)
    expected = mock_data.NUM_EXAMPLES if mock_data.mocking() else REAL_SIZES[2]
    assert sum(int(batch.shape[0]) for batch in splits.test) == expected


def test_dynamic_binarization_repeats_with_seed_whatever_the_global_seed(tfds_data_dir):
    def first_batches(seed, global_seed):
        keras.utils.set_random_seed(global_seed)  # must not matter
        splits = data.load("mnist", batch_size=64, binarize="dynamic", data_dir=tfds_data_dir, seed=seed, max_examples=256)
        epochs = [next(iter(splits.epoch_batches(epoch)))[0].numpy() for epoch in (0, 1)]
        tests = [next(iter(splits.test))[0].numpy() for _ in range(2)]
        return epochs, tests

    (epoch_0, epoch_1), (test_1, test_2) = first_batches(seed=3, global_seed=1)
    assert set(np.unique(epoch_0)) == {0.0, 1.0} and set(np.unique(test_1)) == {0.0, 1.0}
    assert np.mean(epoch_0 != epoch_1) > 0.01
    np.testing.assert_array_equal(test_1, test_2)  # evaluation binarised once
    (again_0, again_1), (again_test, _) = first_batches(seed=3, global_seed=2)
    np.testing.assert_array_equal(again_0, epoch_0)
    np.testing.assert_array_equal(again_1, epoch_1)
    np.testing.assert_array_equal(again_test, test_1)
    (other_0, _), (other_test, _) = first_batches(seed=4, global_seed=1)
    assert np.any(other_0 != epoch_0) and np.any(other_test != test_1)


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


def _arrays(dataset):
    """Every batch of `dataset` as a tuple of NumPy arrays."""
    return [tuple(t.numpy() for t in (b if isinstance(b, tuple) else (b,))) for b in dataset]


def _assert_same_batches(actual, expected):
    assert len(actual) == len(expected)
    for actual_batch, expected_batch in zip(actual, expected):
        for a, b in zip(actual_batch, expected_batch, strict=True):
            np.testing.assert_array_equal(a, b)


GREY = (np.arange(40 * 4 * 4).reshape(40, 4, 4, 1) % 251).astype(np.uint8)


@pytest.mark.parametrize("labels", [np.arange(40), None], ids=["labelled", "unlabelled"])
def test_each_iteration_of_train_is_the_next_epoch_of_epoch_batches(labels):
    splits = data.from_array(GREY, labels=labels, batch_size=8, binarize="dynamic", seed=3)
    iterations = [_arrays(splits.train) for _ in range(3)]
    for epoch, batches in enumerate(iterations):
        _assert_same_batches(batches, _arrays(splits.epoch_batches(epoch)))
    assert splits.train.cardinality().numpy() == splits.steps_per_epoch == 4
    assert not np.array_equal(iterations[0][0][0], iterations[1][0][0])  # a new epoch each time


def test_fit_trains_on_epochs_zero_one_two_of_epoch_batches():
    class Recorder(keras.Model):
        """Records the images of each training step instead of training."""

        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)
            self.seen = []

        def call(self, images):
            return self.dense(images)

        def train_step(self, batch):
            self.seen.append(keras.ops.convert_to_numpy(batch[0]))
            return {"loss": 0.0}

    splits = data.from_array(GREY, labels=np.arange(40), batch_size=8, binarize="dynamic", seed=3)
    model = Recorder()
    model.compile(optimizer="sgd", run_eagerly=True)
    model.fit(splits.train, epochs=3, shuffle=False, verbose=0)
    expected = [images for epoch in range(3) for images, _ in _arrays(splits.epoch_batches(epoch))]
    _assert_same_batches([(images,) for images in model.seen], [(images,) for images in expected])


def test_dynamic_binarization_draws_each_epoch_afresh_from_the_same_images():
    images = np.tile(np.array([0, 64, 128, 255], np.uint8), 40 * 4).reshape(40, 4, 4, 1)
    splits = data.from_array(images, labels=np.arange(40), batch_size=40, binarize="dynamic", seed=0,
                             validation_fraction=0.1, test_fraction=0.1)
    (epoch_0, labels_0), = _arrays(splits.epoch_batches(0))
    (epoch_1, labels_1), = _arrays(splits.epoch_batches(1))
    assert sorted(labels_0) == sorted(labels_1) and list(labels_0) != list(labels_1)  # reshuffled
    same_order_0, same_order_1 = epoch_0[np.argsort(labels_0)], epoch_1[np.argsort(labels_1)]
    grey = images[np.sort(labels_0)] / 255
    assert set(np.unique(epoch_0)) == {0.0, 1.0}
    np.testing.assert_array_equal(same_order_0[grey == 0], 0.0)  # x ~ Bernoulli(p) is 0 for p = 0
    np.testing.assert_array_equal(same_order_0[grey == 1], 1.0)  # and 1 for p = 1
    middle = (grey > 0) & (grey < 1)
    assert np.any(same_order_0[middle] != same_order_1[middle])  # fresh draws


def test_validation_and_test_are_binarised_once_whatever_the_global_seed():
    def splits(global_seed):
        keras.utils.set_random_seed(global_seed)
        return data.from_array(GREY, batch_size=8, binarize="dynamic", seed=5,
                               validation_fraction=0.2, test_fraction=0.2)

    first, second = splits(1), splits(2)
    for split in ("validation", "test"):
        batches = _arrays(first[split])
        _assert_same_batches(_arrays(first[split]), batches)
        _assert_same_batches(_arrays(second[split]), batches)
    _assert_same_batches(_arrays(second.epoch_batches(4)), _arrays(first.epoch_batches(4)))


def test_train_from_skips_across_epoch_boundaries_and_checks_its_arguments():
    splits = data.from_array(GREY, batch_size=8, binarize="dynamic", seed=3)  # 4 batches per epoch
    every = [batch for epoch in (1, 2, 3) for batch in _arrays(splits.epoch_batches(epoch))]
    resumed = splits.train_from(1, 4, skip_batches=6)
    assert resumed.cardinality().numpy() == 6
    _assert_same_batches(_arrays(resumed), every[6:])
    with pytest.raises(ValueError, match=r"`skip_batches` must be an int in \[0, 4\); received 4"):
        splits.train_from(0, 1, skip_batches=4)
    with pytest.raises(ValueError, match="0 <= first_epoch < last_epoch; received 2 and 2"):
        splits.train_from(2, 2)
    with pytest.raises(ValueError, match="`epoch` must be an int >= 0; received -1"):
        splits.epoch_batches(-1)


def test_seed_as_int_accepts_none_ints_pairs_and_seed_generators():
    keras.utils.set_random_seed(7)
    drawn = data.seed_as_int(None)
    keras.utils.set_random_seed(7)
    assert data.seed_as_int(None) == drawn  # Python's random, seeded by Keras
    assert data.seed_as_int(5) == 5 and data.seed_as_int(np.int64(5)) == 5
    assert data.seed_as_int((1, 2)) == data.seed_as_int([1, 2]) == data.seed_as_int(np.array([1, 2]))
    assert data.seed_as_int((1, 2)) != data.seed_as_int((2, 1))
    generator, twin = keras.random.SeedGenerator(3), keras.random.SeedGenerator(3)
    draws = [data.seed_as_int(generator) for _ in range(2)]
    assert draws[0] != draws[1] and [data.seed_as_int(twin) for _ in range(2)] == draws
    for value in (drawn, *draws, data.seed_as_int((1, 2))):
        assert isinstance(value, int) and 0 <= value < 2**31


@pytest.mark.parametrize("seed", [1.5, "0", True, (1, 2, 3), (0.5, 1.0)])
def test_bad_seeds_are_rejected_naming_the_argument_and_the_value(seed):
    expected = "`seed` must be None, an int, a pair of ints or a keras.random.SeedGenerator; received"
    with pytest.raises(ValueError, match=expected):
        data.seed_as_int(seed)
    with pytest.raises(ValueError, match=expected):
        data.load("mnist", data_dir="/nonexistent", download=False, seed=seed)
    with pytest.raises(ValueError, match=expected):
        data.from_array(GREY, seed=seed)


def test_loaders_turn_every_kind_of_seed_into_the_same_pipelines_as_its_int():
    def first_epoch(seed):
        splits = data.from_array(GREY, batch_size=8, binarize="dynamic", seed=seed)
        return splits.seed, _arrays(splits.epoch_batches(0))

    as_int, batches = first_epoch(data.seed_as_int((1, 2)))
    pair_seed, pair_batches = first_epoch((1, 2))
    assert pair_seed == as_int
    _assert_same_batches(pair_batches, batches)
    keras.utils.set_random_seed(11)
    drawn_seed, drawn_batches = first_epoch(None)
    keras.utils.set_random_seed(11)
    assert first_epoch(None)[0] == drawn_seed
    _assert_same_batches(first_epoch(drawn_seed)[1], drawn_batches)
    generator_seed, _ = first_epoch(keras.random.SeedGenerator(3))
    assert generator_seed == data.seed_as_int(keras.random.SeedGenerator(3))


def test_a_prepared_dataset_is_read_without_the_network(tfds_data_dir, monkeypatch):  # monkeypatch undone first
    def no_network(*args, **kwargs):
        raise AssertionError("a prepared dataset must not touch the network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
    splits = data.load("binarized_mnist", batch_size=16, data_dir=tfds_data_dir, download=True, max_examples=32)
    assert next(iter(splits.train)).shape == (16, 28, 28, 1)


def _folders(root):
    return sorted(path for path, _, _ in os.walk(root))


def test_a_download_whose_server_does_not_answer_fails_at_once_and_leaves_no_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(data.downloads, "unreachable_reason", lambda url, **kwargs: "no network (simulated)")
    data_dir = tmp_path / "not" / "yet"
    started = time.perf_counter()
    with pytest.raises(data.DatasetUnavailableError, match="could not be downloaded: no network \\(simulated\\)"):
        data.load("cifar10", data_dir=str(data_dir))
    assert time.perf_counter() - started < 30  # a hang guard; it takes well under a second
    assert _folders(tmp_path) == [str(tmp_path)]


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"


def test_on_a_machine_without_internet_a_missing_dataset_fails_within_seconds(tmp_path):
    if data.unreachable_reason(CIFAR10_URL) is None:
        pytest.skip("this machine reaches the internet: load would download CIFAR-10")
    started = time.perf_counter()
    with pytest.raises(data.DatasetUnavailableError, match="'cifar10' is not prepared in .* could not be downloaded"):
        data.load("cifar10", data_dir=str(tmp_path))
    assert time.perf_counter() - started < 30  # tensorflow-datasets alone retries for 3.5 minutes
    assert _folders(tmp_path) == [str(tmp_path)]


def test_unreachable_reason_names_the_host_and_ignores_non_http_urls():
    started = time.perf_counter()
    reason = data.unreachable_reason("http://tfvae-test.invalid/file.tar.gz", timeout=5)
    assert reason.startswith("cannot reach tfvae-test.invalid") or reason.startswith("no answer from")
    assert time.perf_counter() - started < 30
    assert data.unreachable_reason("ftp://tfvae-test.invalid/file.tar.gz") is None


def test_downloads_from_servers_that_answer_go_through_tfds_unchanged(monkeypatch):
    calls = []
    def fake_open_url(url, **kwargs):
        calls.append((url, kwargs))
        return "opened"

    monkeypatch.setattr(data.downloads._tfds_downloader, "_open_url", fake_open_url)
    monkeypatch.setattr(data.downloads, "unreachable_reason", lambda url, **kwargs: None if "good" in url else "down")
    with data.downloads._downloads_fail_fast():
        assert data.downloads._tfds_downloader._open_url("https://good/a", verify=False) == "opened"
        with pytest.raises(OSError, match="down"):
            data.downloads._tfds_downloader._open_url("https://bad/b", verify=True)
    assert calls == [("https://good/a", {"verify": False})]
    assert data.downloads._tfds_downloader._open_url("https://bad/c") == "opened"  # restored afterwards


# Regressions from tests/test_properties.py ---------------------------------------------------------


def test_float_images_with_nan_are_refused_by_name():
    # NaN fails both comparisons of the [0, 1] check, so NaN images were accepted.
    images = np.zeros([10, 2, 2, 1], np.float32)
    images[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"Float `images` must lie in \[0, 1\]; received NaN values"):
        data.from_array(images)


@pytest.mark.parametrize("labels", [np.full(10, np.nan), np.linspace(0, 1, 10), np.full(10, "a")], ids=["nan", "floats", "strings"])
def test_labels_that_are_not_integers_are_refused_by_name(labels):
    # NaN labels became garbage int64s; strings were numpy's "invalid literal for int()".
    with pytest.raises(ValueError, match="`labels` must be integers"):
        data.from_array(np.zeros([10, 2, 2, 1], np.uint8), labels=labels)


@pytest.mark.parametrize("fraction", [None, "a", float("nan"), True, -0.1, 1.0])
def test_held_out_fractions_must_be_numbers_in_the_unit_interval(fraction):
    # None and "a" were TypeErrors of `*` and `round`, NaN "cannot convert float NaN to integer".
    with pytest.raises(ValueError, match=r"`validation_fraction` must be a number in \[0, 1\)"):
        data.from_array(np.zeros([10, 2, 2, 1], np.uint8), validation_fraction=fraction)
    with pytest.raises(ValueError, match=r"`test_fraction` must be a number in \[0, 1\)"):
        data.from_array(np.zeros([10, 2, 2, 1], np.uint8), test_fraction=fraction)


def test_batch_sizes_past_2_to_the_31_are_refused_by_name():
    # 2**70 was accepted, then a StagingError (int64 overflow) when the first batch was read.
    with pytest.raises(ValueError, match=r"`batch_size` must be an int <= 2\*\*31 - 1"):
        data.from_array(np.zeros([10, 2, 2, 1], np.uint8), batch_size=2**70)


@pytest.mark.parametrize("arguments, message", [
    (dict(directory=None), "`directory` must be a path"),  # pathlib's TypeError
    (dict(directory=""), "`directory` must be a path"),  # read the working directory
    (dict(image_size=None), "`image_size` must be"),  # "'NoneType' object is not iterable"
    (dict(image_size=28), "`image_size` must be"),
    (dict(image_size=(0, 4)), "`image_size` must be"),
    (dict(color_mode="rgba"), r"`color_mode` must be one of \('grayscale', 'rgb'\)"),  # refused after reading every file
    (dict(color_mode=np.array([1, 2])), "`color_mode` must be one of"),  # "truth value of an array ... is ambiguous"
])
def test_image_folder_arguments_are_refused_by_name_before_any_file_is_read(tmp_path, arguments, message):
    tf.io.write_file(str(tmp_path / "0.png"), tf.io.encode_png(np.zeros([4, 4, 1], np.uint8)))
    with pytest.raises(ValueError, match=message):
        data.from_image_folder(**{"directory": tmp_path, "image_size": (2, 2), **arguments})


@pytest.mark.parametrize("arguments, error, message", [
    (dict(max_examples=True), ValueError, "`max_examples` must be None or an int >= 1; received True"),  # was 1
    (dict(download="no"), TypeError, "`download` must be True or False"),  # was truthy: a download
    (dict(name=["mnist"]), ValueError, r"Unknown dataset \['mnist'\]"),  # was "unhashable type"
    (dict(binarize=np.array(["dynamic"])), ValueError, "`binarize` must be one of"),  # "truth value ... ambiguous"
])
def test_load_refuses_bad_arguments_by_name_before_reading_data(arguments, error, message):
    with pytest.raises(error, match=message):
        data.load(**{"name": "mnist", "data_dir": "/nonexistent/tfvae-data", "download": False, **arguments})
