"""Input pipelines: `tf.data` datasets of images in [0, 1], ready for `VAE.fit`.

    splits = tfvae.data.load("mnist", batch_size=128, binarize="dynamic")
    vae.fit(splits.train, validation_data=splits.validation, epochs=10)

Three sources, one pipeline: a dataset from tensorflow-datasets (`load`), a
NumPy array (`from_array`) or a folder of image files (`from_image_folder`).
Each returns `Splits` whose datasets yield `(images, labels)` when the source
has labels and `images` otherwise, with `images: [batch, height, width,
channels]` float32 in [0, 1] and `labels: [batch]` int64.

The training split is held in memory, and training epoch e is a function of
(seed, e) alone: a stateless random permutation of the examples, cut into
batches, and with `binarize="dynamic"` a fresh binarisation x ~ Bernoulli(pixel
intensity) of each batch, the protocol of the IWAE paper (Burda et al., 2015).
`Splits.epoch_batches(e)` is that definition; `Splits.train` yields epoch 0 on
its first iteration (a Keras epoch), epoch 1 on its second, and so on;
`Splits.train_from` any run of epochs from any batch, for resuming. Validation
and test splits are binarised once with a fixed seed, so evaluation numbers are
comparable between runs. Nothing depends on TensorFlow's global seed.
"""

import contextlib
import dataclasses
import functools
import math
import os
import pathlib
import shutil
import threading
import urllib.parse

import keras
import numpy as np
import requests
import tensorflow as tf
import tensorflow_datasets as tfds

try:  # the module whose `_open_url` `_downloads_fail_fast` wraps
    from tensorflow_datasets.core.download import downloader as _tfds_downloader
except ImportError:  # another tensorflow-datasets layout: downloads keep tfds' behaviour
    _tfds_downloader = None

from tfvae import seeds

BINARIZE_CHOICES = (None, "dynamic")
SPLIT_NAMES = ("train", "validation", "test")
# Seconds to wait for a dataset's download server before calling it unreachable.
REACHABILITY_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """How one tensorflow-datasets dataset maps onto train/validation/test."""

    splits: dict  # our split name -> tfds split string
    max_pixel_value: int  # 255 for 8-bit images, 1 for pre-binarised ones
    has_labels: bool
    image_shape: tuple


_MNIST_LIKE = dict(
    splits={"train": "train[:50000]", "validation": "train[50000:]", "test": "test"},
    max_pixel_value=255,
    has_labels=True,
    image_shape=(28, 28, 1),
)

DATASETS = {
    "mnist": TfdsSource(**_MNIST_LIKE),
    "fashion_mnist": TfdsSource(**_MNIST_LIKE),
    # The fixed binarisation of Larochelle & Murray (2011); already {0, 1}.
    "binarized_mnist": TfdsSource(
        splits={"train": "train", "validation": "validation", "test": "test"},
        max_pixel_value=1,
        has_labels=False,
        image_shape=(28, 28, 1),
    ),
    "cifar10": TfdsSource(
        splits={"train": "train[:45000]", "validation": "train[45000:]", "test": "test"},
        max_pixel_value=255,
        has_labels=True,
        image_shape=(32, 32, 3),
    ),
}


class DatasetUnavailableError(RuntimeError):
    """A dataset is neither on disk nor downloadable."""


def seed_as_int(seed):
    """The int in [0, 2**31) that the loaders' `seed` argument stands for.

    Args:
      seed: None (draws one from Python's `random`, which
        `keras.utils.set_random_seed` seeds), an int, a pair of ints (combined
        deterministically into one), or a `keras.random.SeedGenerator` (draws
        from it, advancing its state): the convention of `tfvae.seeds`.

    Raises:
      ValueError: `seed` is none of these; the message names `seed`, what it
        must be and what it was.
    """
    return seeds.as_int(seed, argument="seed")


# Stateless seeds: key(seed, stream, ...) folds each part into [seed, stream].
_TRAINING_STREAM, _EVALUATION_STREAM = 0, 1
_SHUFFLE, _BINARIZE = 0, 1


def _key(seed, stream, *parts):
    """An int64 `[2]` stateless seed that depends on `seed`, `stream` and each of `parts` (ints or int tensors)."""
    key = tf.constant([seed, stream], tf.int64)
    for part in parts:
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(part, tf.int64))
    return key


def _binarize(images, key):
    """x ~ Bernoulli(images), elementwise, from the stateless seed `key`; `images: [batch, h, w, c]`."""
    noise = tf.random.stateless_uniform(tf.shape(images), seed=key)
    return tf.cast(noise < images, tf.float32)


def _scale(images, max_pixel_value):
    """Pixel values in 0..max_pixel_value -> float32 in [0, 1]."""
    images = tf.cast(images, tf.float32)
    return images if max_pixel_value == 1 else images / max_pixel_value


class _EpochCounter:
    """The number of training epochs finished, kept where a tf.data pipeline can read and advance it.

    A lookup table rather than a `tf.Variable`: a variable made under a
    `tf.distribute` strategy's scope would be mirrored onto the accelerators,
    where a tf.data pipeline (which runs on the host) cannot update it.
    """

    def __init__(self):
        with tf.init_scope(), tf.device("/cpu:0"):
            self._table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, default_value=0)
        self._key = 0

    def value(self):
        """The count, an int64 scalar tensor."""
        return self._table.lookup(tf.constant(self._key, tf.int64))

    def advance(self):
        """Adds one to the count; returns the new count."""
        count = self.value() + 1
        with tf.control_dependencies([self._table.insert(tf.constant(self._key, tf.int64), count)]):
            return tf.identity(count)


def _read_all(examples):
    """An unbatched dataset's elements, all at once: `(images, labels or None)` tensors on the host."""
    with tf.init_scope(), tf.device("/cpu:0"):
        parts = list(examples.batch(8192))
        stacked = tf.nest.map_structure(lambda *tensors: tf.concat(tensors, axis=0), *parts)
    return stacked if isinstance(stacked, tuple) else (stacked, None)


def _from_arrays(images, labels):
    """`(images, labels or None)` NumPy arrays as tensors on the host."""
    with tf.init_scope(), tf.device("/cpu:0"):
        return tf.constant(images), None if labels is None else tf.constant(labels)


def _batches(num_examples, batch_size, first_batch, make_batch):
    """`make_batch(index)` for batch indices `first_batch` .. of `num_examples` examples, in order."""
    num_batches = math.ceil(num_examples / batch_size)
    return tf.data.Dataset.range(first_batch, num_batches).map(make_batch, num_parallel_calls=tf.data.AUTOTUNE)


class _TrainingSplit:
    """The training examples, read into memory on first use, and the batches of each epoch."""

    def __init__(self, read, num_examples, batch_size, binarize, seed, max_pixel_value):
        self._read = read  # () -> (images: [n, h, w, c] in 0..max_pixel_value, labels: [n] or None)
        self.num_examples = num_examples
        self.num_batches = math.ceil(num_examples / batch_size)
        self._batch_size = int(batch_size)
        self._binarize = binarize
        self._seed = seed
        self._max_pixel_value = max_pixel_value

    @functools.cached_property
    def _examples(self):
        return self._read()

    def epoch(self, epoch, first_batch=0):
        """Batches `first_batch`.. of epoch `epoch` (an int or an int64 scalar tensor).

        Each is `images: [batch, h, w, c]` float32 in [0, 1] (binary with
        `binarize="dynamic"`), with `labels: [batch]` int64 when there are
        labels; the last batch of an epoch may be smaller.
        """
        images, labels = self._examples
        epoch_key = _key(self._seed, _TRAINING_STREAM, epoch)
        shuffle_key = tf.random.experimental.stateless_fold_in(epoch_key, _SHUFFLE)
        order = tf.random.experimental.stateless_shuffle(tf.range(self.num_examples, dtype=tf.int64), seed=shuffle_key)
        binarize_key = tf.random.experimental.stateless_fold_in(epoch_key, _BINARIZE)
        batch_size, binarize, max_pixel_value = self._batch_size, self._binarize, self._max_pixel_value

        def batch(index):
            positions = order[index * batch_size : (index + 1) * batch_size]
            batch_images = _scale(tf.gather(images, positions), max_pixel_value)
            if binarize == "dynamic":
                batch_images = _binarize(batch_images, tf.random.experimental.stateless_fold_in(binarize_key, index))
            return (batch_images, tf.gather(labels, positions)) if labels is not None else batch_images

        return _batches(self.num_examples, batch_size, first_batch, batch)

    @functools.cached_property
    def successive_epochs(self):
        """Epoch 0 on the first iteration, epoch 1 on the second, ...

        The epoch to run is the number of epochs finished, and an epoch counts
        as finished when an iterator reads past its last batch. So an iterator
        that looks at the first batch only (`VAE.fit`'s input check, Keras'
        peek under a strategy) changes nothing, and an epoch cut short is run
        again from its start.
        """
        self._examples  # read now, not while tf.data traces the function below
        counter = _EpochCounter()
        batches = tf.data.Dataset.range(1).map(lambda _: counter.value()).flat_map(self.epoch)
        # Reached only when the consumer asks for a batch after the last one.
        finished = tf.data.Dataset.range(1).map(lambda _: counter.advance()).filter(lambda _: False)
        finished = finished.map(lambda _: tf.nest.map_structure(
            lambda spec: tf.zeros([0, *spec.shape[1:]], spec.dtype), batches.element_spec))
        return batches.prefetch(tf.data.AUTOTUNE).concatenate(finished).apply(
            tf.data.experimental.assert_cardinality(self.num_batches))


class _EvaluationSplit:
    """A validation or test split: read into memory and binarised once, on first use."""

    def __init__(self, read, split, num_examples, batch_size, binarize, seed, max_pixel_value):
        self._read = read
        self._split = split
        self._num_examples = num_examples
        self._batch_size = int(batch_size)
        self._binarize = binarize
        self._seed = seed
        self._max_pixel_value = max_pixel_value

    @functools.cached_property
    def batches(self):
        """Batches of `images: [batch, h, w, c]` float32 in [0, 1] (and `labels: [batch]`), the same every time."""
        raw_images, labels = self._read()
        with tf.init_scope(), tf.device("/cpu:0"):
            images = _scale(raw_images, self._max_pixel_value)
            if self._binarize == "dynamic":
                images = _binarize(images, _key(self._seed, _EVALUATION_STREAM, SPLIT_NAMES.index(self._split)))
        batch_size = self._batch_size

        def batch(index):
            window = slice(index * batch_size, (index + 1) * batch_size)
            return (images[window], labels[window]) if labels is not None else images[window]

        return _batches(self._num_examples, batch_size, 0, batch).prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class Splits:
    """The train, validation and test pipelines of one data source.

    Each split is read into memory when its pipeline is first used.
    """

    image_shape: tuple  # (height, width, channels)
    has_labels: bool
    name: str
    num_examples: dict  # split -> examples per epoch
    batch_size: int
    seed: int  # the int all randomness of these pipelines derives from
    _training: _TrainingSplit = dataclasses.field(repr=False)
    _evaluation: dict = dataclasses.field(repr=False)  # "validation" / "test" -> _EvaluationSplit

    @property
    def train(self):
        """The training batches: epoch 0 on the first iteration, epoch 1 on the second, ...

        Each new iterator (each Keras epoch of `fit(splits.train, epochs=n)`)
        starts the next epoch, with exactly the batches of
        `epoch_batches(epoch)`. An iterator that stops early (a peek at the
        first batch, an interrupted epoch) does not count: the next one runs
        the same epoch again from its start. `train_from` gives explicit epochs.
        """
        return self._training.successive_epochs

    @property
    def validation(self):
        """The validation batches, binarised once (with `binarize="dynamic"`) and the same every time."""
        return self._evaluation["validation"].batches

    @property
    def test(self):
        """The test batches, binarised once (with `binarize="dynamic"`) and the same every time."""
        return self._evaluation["test"].batches

    @property
    def steps_per_epoch(self):
        """Training batches per epoch."""
        return self._training.num_batches

    def epoch_batches(self, epoch):
        """The batches of training epoch `epoch` (int >= 0), a function of (seed, epoch) alone."""
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f"`epoch` must be an int >= 0; received {epoch!r}.")
        return self._training.epoch(int(epoch))

    def train_from(self, first_epoch, last_epoch, skip_batches=0):
        """Training batches of epochs `first_epoch` .. `last_epoch - 1`, one after another.

        Epoch e's order and binarisation depend only on (seed, e), not on how
        many epochs ran before in this process, so a run resumed at any
        (epoch, batch) sees exactly the batches an uninterrupted run sees.
        The first `skip_batches` batches are left out without being computed.
        Use with `fit(steps_per_epoch=self.steps_per_epoch)`.
        """
        if not _is_int(first_epoch) or not _is_int(last_epoch) or not 0 <= first_epoch < last_epoch:
            raise ValueError(
                f"`first_epoch` and `last_epoch` must be ints with 0 <= first_epoch < last_epoch; "
                f"received {first_epoch!r} and {last_epoch!r}."
            )
        first_epoch, last_epoch = int(first_epoch), int(last_epoch)
        steps, total = self.steps_per_epoch, (last_epoch - first_epoch) * self.steps_per_epoch
        if not _is_int(skip_batches) or not 0 <= skip_batches < total:
            raise ValueError(f"`skip_batches` must be an int in [0, {total}); received {skip_batches!r}.")
        start_epoch, start_batch = first_epoch + int(skip_batches) // steps, int(skip_batches) % steps
        batches = self._training.epoch(start_epoch, first_batch=start_batch)
        if start_epoch + 1 < last_epoch:
            later = tf.data.Dataset.range(start_epoch + 1, last_epoch).flat_map(self._training.epoch)
            batches = batches.concatenate(later)
        return batches.apply(tf.data.experimental.assert_cardinality(total - skip_batches)).prefetch(tf.data.AUTOTUNE)

    def __getitem__(self, split):
        if split not in SPLIT_NAMES:
            raise KeyError(f"Unknown split {split!r}; known: {list(SPLIT_NAMES)}.")
        return getattr(self, split)


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_common_arguments(batch_size, binarize):
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an int >= 1; received {batch_size!r}.")
    if binarize not in BINARIZE_CHOICES:
        raise ValueError(f"`binarize` must be one of {BINARIZE_CHOICES}; received {binarize!r}.")


def load(name, batch_size=128, binarize=None, data_dir=None, seed=0, download=True, max_examples=None):
    """Train, validation and test pipelines for a tensorflow-datasets dataset.

    A prepared dataset is read without touching the network. A missing one is
    downloaded and prepared when `download=True`, after checking within
    seconds that its download server answers.

    Args:
      name: one of `DATASETS`: "mnist", "fashion_mnist", "binarized_mnist",
        "cifar10". MNIST and Fashion-MNIST use train[:50000] for training and
        train[50000:] for validation; CIFAR-10 train[:45000] / train[45000:].
      batch_size: examples per batch.
      binarize: None (grey levels in [0, 1]) or "dynamic" (see module doc).
        Not for "binarized_mnist", which is binary already.
      data_dir: tensorflow-datasets data directory; None uses `TFDS_DATA_DIR`
        or tensorflow-datasets' default (~/tensorflow_datasets).
      seed: seeds shuffling and binarisation; see `seed_as_int`.
      download: let tensorflow-datasets download and prepare a missing dataset.
      max_examples: if set, keep only the first `max_examples` of each split
        (for quick runs and smoke tests).

    Raises:
      ValueError: an unknown name or a bad argument, before any work.
      DatasetUnavailableError: the dataset is not in `data_dir` and could not
        be downloaded; the message says where it looked and what to do. A
        failed download leaves no new folders in the data directory.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; known datasets: {sorted(DATASETS)}.")
    _check_common_arguments(batch_size, binarize)
    if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 1):
        raise ValueError(f"`max_examples` must be None or an int >= 1; received {max_examples!r}.")
    source = DATASETS[name]
    if binarize and source.max_pixel_value == 1:
        raise ValueError(f"`binarize={binarize!r}` does not apply to {name!r}: its pixels are already 0 or 1.")
    seed = seed_as_int(seed)

    builder = _prepared_builder(name, data_dir, download)
    settings = dict(batch_size=batch_size, binarize=binarize, seed=seed, max_pixel_value=source.max_pixel_value)
    num_examples, evaluation = {}, {}
    for split in SPLIT_NAMES:
        # Read once into memory here, so no tfds auto-cache (which warns when `take` stops it early).
        examples = builder.as_dataset(split=source.splits[split], read_config=tfds.ReadConfig(try_autocache=False))
        examples = examples.map(
            lambda example: (example["image"], example["label"]) if source.has_labels else example["image"]
        )
        if max_examples is not None:
            examples = examples.take(max_examples)
        num_examples[split] = int(examples.cardinality())  # tfds records split sizes
        read = functools.partial(_read_all, examples)
        if split == "train":
            training = _TrainingSplit(read, num_examples[split], **settings)
        else:
            evaluation[split] = _EvaluationSplit(read, split, num_examples[split], **settings)
    return Splits(
        image_shape=source.image_shape, has_labels=source.has_labels, name=name, num_examples=num_examples,
        batch_size=batch_size, seed=seed, _training=training, _evaluation=evaluation,
    )


def _prepared_builder(name, data_dir, download):
    """The tensorflow-datasets builder of `name`, prepared; downloads only when it is not."""
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises many types; all mean "not available"
        raise _unavailable(name, data_dir, download, error) from error
    if builder.is_prepared():
        return builder
    if not download:
        raise _unavailable(name, builder.data_dir_root, download, "it is not prepared there")
    local = "://" not in str(builder.data_dir_root)  # not gs://...: folders to clean up after a failure
    before = _Folders(pathlib.Path(builder.data_dir_root)) if local else None
    try:
        with _downloads_fail_fast():
            builder.download_and_prepare()
    except Exception as error:
        if before is not None:
            before.remove_new_ones()
        raise _unavailable(name, builder.data_dir_root, download, error) from error
    return builder


def _unavailable(name, looked_in, download, reason):
    looked_in = looked_in or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    if isinstance(reason, BaseException):
        reason = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    return DatasetUnavailableError(
        f"Dataset {name!r} is not prepared in {str(looked_in)!r}"
        f"{' and could not be downloaded' if download else ' (download=False)'}: {reason}. "
        f"Point TFDS_DATA_DIR (or data_dir=) at a tensorflow-datasets directory that holds it, "
        f"or run `tfds build {name} --data_dir DIR` on a machine with internet access and copy DIR."
    )


class _Folders:
    """The folders under `root` now, and those that a failed download should not leave behind."""

    def __init__(self, root):
        self._root = root
        self._existing = {pathlib.Path(path) for path, _, _ in os.walk(root)}
        # `root` and its missing parents, which tensorflow-datasets creates.
        self._missing_chain = [folder for folder in (root, *root.parents) if not folder.exists()]

    def remove_new_ones(self):
        """Deletes each folder created under `root` since, then `root` and its parents if created and empty."""
        new = {pathlib.Path(path) for path, _, _ in os.walk(self._root)} - self._existing
        for folder in sorted(new):
            if folder.parent not in new:  # the topmost new folders; rmtree takes the rest
                shutil.rmtree(folder, ignore_errors=True)
        for folder in self._missing_chain:  # deepest first
            with contextlib.suppress(OSError):  # not empty, or already gone
                folder.rmdir()


class _UnreachableError(OSError):
    """A download server did not answer."""


def unreachable_reason(url, timeout=REACHABILITY_TIMEOUT, verify=True):
    """Why the server of `url` does not answer within `timeout` seconds, or None when it does.

    One HEAD request through `requests` (so proxies configured for
    tensorflow-datasets' downloads apply), without retries; any HTTP answer,
    even an error status, counts as reachable. Non-HTTP URLs are not checked.
    """
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        return None
    outcome = {}

    def probe():
        try:
            requests.head(url, timeout=timeout, allow_redirects=False, verify=verify).close()
        except Exception as error:  # requests' and urllib3's errors: all mean "no answer"
            outcome["error"] = error

    # A thread, because name resolution ignores requests' timeout.
    thread = threading.Thread(target=probe, daemon=True, name="tfvae-reachability")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"no answer from {url} within {timeout:g} s"
    if "error" in outcome:
        # requests wraps urllib3's error, whose `reason` says what failed (name resolution, refusal, ...).
        cause = getattr(outcome["error"].args[0] if outcome["error"].args else None, "reason", None) or outcome["error"]
        return f"cannot reach {urllib.parse.urlparse(url).netloc}: {type(cause).__name__}: {cause}"
    return None


@contextlib.contextmanager
def _downloads_fail_fast():
    """Makes tensorflow-datasets give up at once on a download whose server does not answer.

    tensorflow-datasets fetches each URL with a `requests` session that
    retries failed connections 10 times with exponential back-off
    (urllib3 `Retry(total=10, backoff_factor=0.2)`: 0.4 + 0.8 + ... + 102.4 s),
    about 3.5 minutes per file on a machine without internet. Here each URL's
    server is first asked once, with a timeout; a server that answers is
    downloaded from as before, with all of tensorflow-datasets' retries.
    Files already in the download folder are not fetched, so not checked.
    """
    original = getattr(_tfds_downloader, "_open_url", None) if _tfds_downloader else None
    if original is None:  # another tensorflow-datasets version: keep its behaviour
        yield
        return

    def open_url(url, **kwargs):
        reason = unreachable_reason(url, verify=kwargs.get("verify", True))
        if reason:
            raise _UnreachableError(reason)
        return original(url, **kwargs)

    _tfds_downloader._open_url = open_url
    try:
        yield
    finally:
        _tfds_downloader._open_url = original


def from_array(images, labels=None, batch_size=128, binarize=None, validation_fraction=0.1, test_fraction=0.1, seed=0):
    """Pipelines from in-memory images.

    Args:
      images: `[num_images, height, width, channels]`, uint8 in 0..255 or
        floats in [0, 1].
      labels: optional `[num_images]` integer labels.
      validation_fraction, test_fraction: shares held out, taken from the end
        of the array after one seeded permutation.
      Other arguments as in `load`.
    """
    _check_common_arguments(batch_size, binarize)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"`images` must be [num_images, height, width, 1 or 3]; received shape {images.shape}.")
    if images.dtype == np.uint8:
        max_pixel_value = 255  # kept as bytes, scaled batch by batch
    elif np.issubdtype(images.dtype, np.floating):
        if images.size and (images.min() < 0 or images.max() > 1):
            raise ValueError(
                f"Float `images` must lie in [0, 1]; received values in [{images.min()}, {images.max()}]. "
                "Pass uint8 images or divide by 255."
            )
        images, max_pixel_value = images.astype(np.float32), 1
    else:
        raise ValueError(f"`images` must be uint8 or float; received dtype {images.dtype}.")
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64)
        if labels.shape != images.shape[:1]:
            raise ValueError(f"`labels` must have shape {images.shape[:1]}; received {labels.shape}.")
    num_held_out = [int(round(len(images) * f)) for f in (validation_fraction, test_fraction)]
    if not 0 <= validation_fraction < 1 or not 0 <= test_fraction < 1 or sum(num_held_out) >= len(images):
        raise ValueError(
            f"`validation_fraction` ({validation_fraction}) and `test_fraction` ({test_fraction}) must leave "
            f"training examples out of {len(images)} images."
        )
    seed = seed_as_int(seed)
    order = np.random.default_rng(seed).permutation(len(images))
    boundaries = np.cumsum([len(images) - sum(num_held_out), num_held_out[0]])
    settings = dict(batch_size=batch_size, binarize=binarize, seed=seed, max_pixel_value=max_pixel_value)
    num_examples, evaluation = {}, {}
    for split, indices in zip(SPLIT_NAMES, np.split(order, boundaries)):
        read = functools.partial(_from_arrays, images[indices], None if labels is None else labels[indices])
        num_examples[split] = len(indices)
        if split == "train":
            training = _TrainingSplit(read, len(indices), **settings)
        else:
            evaluation[split] = _EvaluationSplit(read, split, len(indices), **settings)
    return Splits(
        image_shape=images.shape[1:], has_labels=labels is not None, name="array", num_examples=num_examples,
        batch_size=batch_size, seed=seed, _training=training, _evaluation=evaluation,
    )


def from_image_folder(
    directory, image_size, color_mode="grayscale", batch_size=128, binarize=None, validation_fraction=0.1,
    test_fraction=0.1, seed=0,
):
    """Pipelines from a folder of image files (PNG, JPEG, BMP, GIF).

    Images directly in `directory` are unlabelled; images in sub-folders are
    labelled by sub-folder, in alphabetical order. All are resized to
    `image_size = (height, width)` and read into memory.

    Args:
      color_mode: "grayscale" (1 channel) or "rgb" (3 channels).
      Other arguments as in `from_array`.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise ValueError(f"`directory` must be an existing folder; received {str(directory)!r}.")
    _check_common_arguments(batch_size, binarize)
    seed = seed_as_int(seed)
    has_subfolders = any(path.is_dir() for path in directory.iterdir())
    dataset = keras.utils.image_dataset_from_directory(
        directory,
        labels="inferred" if has_subfolders else None,
        label_mode="int" if has_subfolders else None,
        color_mode=color_mode,
        image_size=tuple(image_size),
        shuffle=False,
        batch_size=None,
        verbose=False,
    )
    elements = list(dataset.as_numpy_iterator())
    if not elements:
        raise ValueError(f"No images found in {str(directory)!r}.")
    if has_subfolders:
        images, labels = (np.stack(column) for column in zip(*elements))
    else:
        images, labels = np.stack(elements), None
    images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    return dataclasses.replace(
        from_array(images, labels, batch_size, binarize, validation_fraction, test_fraction, seed),
        name=directory.name,
    )
