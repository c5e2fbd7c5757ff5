"""The pipelines of one source: the training epochs, held in memory, and the evaluation splits.

Training epoch e is a function of (seed, e) alone: a stateless random
permutation of the examples, cut into batches, and with `binarize="dynamic"` a
fresh binarisation x ~ Bernoulli(pixel intensity) of each batch (Burda et al.,
2015). Validation and test are binarised once with a fixed seed.
"""

import dataclasses
import functools
import math

import numpy as np
import tensorflow as tf

from tfvae import seeds

BINARIZE_CHOICES = (None, "dynamic")
SPLIT_NAMES = ("train", "validation", "test")


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
    """The number of training epochs started, kept where a tf.data pipeline can read and advance it.

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


def read_all(examples):
    """An unbatched dataset's elements, all at once: `(images, labels or None)` tensors on the host."""
    with tf.init_scope(), tf.device("/cpu:0"):
        parts = list(examples.batch(8192))
        stacked = tf.nest.map_structure(lambda *tensors: tf.concat(tensors, axis=0), *parts)
    return stacked if isinstance(stacked, tuple) else (stacked, None)


def host_tensors(images, labels):
    """`(images, labels or None)` NumPy arrays as tensors on the host."""
    with tf.init_scope(), tf.device("/cpu:0"):
        return tf.constant(images), None if labels is None else tf.constant(labels)


def _batches(num_examples, batch_size, first_batch, make_batch):
    """`make_batch(index)` for batch indices `first_batch` .. of `num_examples` examples, in order."""
    num_batches = math.ceil(num_examples / batch_size)
    return tf.data.Dataset.range(first_batch, num_batches).map(make_batch, num_parallel_calls=tf.data.AUTOTUNE)


class TrainingSplit:
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

        Each new iterator takes the next epoch number when it starts (a
        one-element map that runs once per iterator), so the epoch does not
        depend on how far an iterator is read, nor on when Keras' prefetching
        reads past an epoch's end: a peek at the first batch counts as an epoch.
        """
        self._examples  # read now, not while tf.data traces the function below
        counter = _EpochCounter()
        epoch_of_new_iterator = tf.data.Dataset.range(1).map(lambda _: counter.advance() - 1)
        return epoch_of_new_iterator.flat_map(self.epoch).prefetch(tf.data.AUTOTUNE).apply(
            tf.data.experimental.assert_cardinality(self.num_batches))


class EvaluationSplit:
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
    _training: TrainingSplit = dataclasses.field(repr=False)
    _evaluation: dict = dataclasses.field(repr=False)  # "validation" / "test" -> EvaluationSplit

    @property
    def train(self):
        """The training batches: epoch 0 on the first iteration, epoch 1 on the second, ...

        Each new iterator starts the next epoch, with exactly the batches of
        `epoch_batches(epoch)`. Every iterator counts, a peek at the first
        batch too: `VAE.fit` (which looks at the first batch of its input) and
        Keras' `fit` under a `tf.distribute` strategy open one, so their first
        epoch is epoch 1. `train_from` gives explicit epochs, as resuming needs.
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


def check_common_arguments(batch_size, binarize):
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an int >= 1; received {batch_size!r}.")
    if batch_size > 2**31 - 1:  # tf.data's int64 positions overflow long before; a typo anyway
        raise ValueError(f"`batch_size` must be an int <= 2**31 - 1; received {batch_size!r}.")
    if not (binarize is None or isinstance(binarize, str)) or binarize not in BINARIZE_CHOICES:
        raise ValueError(f"`binarize` must be one of {BINARIZE_CHOICES}; received {binarize!r}.")
