"""Input pipelines: `tf.data` datasets of images in [0, 1], ready for `VAE.fit`.

    splits = tfvae.data.load("mnist", batch_size=128, binarize="dynamic")
    vae.fit(splits.train, validation_data=splits.validation)

Three sources, one pipeline: a dataset from tensorflow-datasets (`load`), a
NumPy array (`from_array`) or a folder of image files (`from_image_folder`).
Each returns `Splits` whose datasets yield `(images, labels)` when the source
has labels and `images` otherwise, with `images: [batch, height, width,
channels]` float32 in [0, 1] and `labels: [batch]` int64.

The training split is cached, shuffled with a seed (differently each epoch)
and, with `binarize="dynamic"`, binarised afresh each epoch by drawing
x ~ Bernoulli(pixel intensity), the protocol of the IWAE paper (Burda et al.,
2015). Validation and test splits are binarised once with a fixed seed, so
evaluation numbers are comparable between runs. Everything repeats exactly
for the same `seed`.
"""

import dataclasses
import math
import os
import pathlib
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

BINARIZE_CHOICES = (None, "dynamic")
SPLIT_NAMES = ("train", "validation", "test")


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


@dataclasses.dataclass(frozen=True)
class Splits:
    """The train, validation and test pipelines of one data source."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    image_shape: tuple  # (height, width, channels)
    has_labels: bool
    name: str
    num_examples: dict  # split -> examples per epoch
    batch_size: int
    epoch_batches: Callable  # int epoch -> that training epoch's batches (see train_from)

    @property
    def steps_per_epoch(self):
        """Training batches per epoch."""
        return math.ceil(self.num_examples["train"] / self.batch_size)

    def train_from(self, first_epoch, last_epoch, skip_batches=0):
        """Training batches of epochs `first_epoch` .. `last_epoch - 1`, one after another.

        Epoch e's order and binarisation depend only on (seed, e), not on how
        many epochs ran before in this process, so a run resumed at any
        (epoch, batch) sees exactly the batches an uninterrupted run sees.
        Use with `fit(steps_per_epoch=self.steps_per_epoch)`.
        """
        if not 0 <= first_epoch < last_epoch:
            raise ValueError(f"Need 0 <= first_epoch < last_epoch; received {first_epoch} and {last_epoch}.")
        batches = self.epoch_batches(first_epoch)
        for epoch in range(first_epoch + 1, last_epoch):
            batches = batches.concatenate(self.epoch_batches(epoch))
        return batches.skip(skip_batches).prefetch(tf.data.AUTOTUNE)

    def __getitem__(self, split):
        if split not in SPLIT_NAMES:
            raise KeyError(f"Unknown split {split!r}; known: {list(SPLIT_NAMES)}.")
        return getattr(self, split)


def _check_common_arguments(batch_size, binarize, seed):
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an int >= 1; received {batch_size!r}.")
    if binarize not in BINARIZE_CHOICES:
        raise ValueError(f"`binarize` must be one of {BINARIZE_CHOICES}; received {binarize!r}.")
    if not isinstance(seed, int):
        raise ValueError(f"`seed` must be an int; received {seed!r}.")


def _binarize(images, random_ints):
    """x ~ Bernoulli(images), elementwise, from a stateless seed."""
    return _binarize_with_seed(images, tf.stack([random_ints, tf.zeros_like(random_ints)]))


def _binarize_with_seed(images, seed):
    noise = tf.random.stateless_uniform(tf.shape(images), seed=seed)
    return tf.cast(noise < images, tf.float32)


def _map_images(dataset, has_labels, function):
    if has_labels:
        return dataset.map(lambda images, labels: (function(images), labels), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.map(function, num_parallel_calls=tf.data.AUTOTUNE)


def _binarize_each_element(dataset, has_labels, seed, fresh_each_epoch):
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=fresh_each_epoch)
    zipped = tf.data.Dataset.zip(dataset, randoms)
    if has_labels:
        return zipped.map(lambda example, r: (_binarize(example[0], r), example[1]), num_parallel_calls=tf.data.AUTOTUNE)
    return zipped.map(_binarize, num_parallel_calls=tf.data.AUTOTUNE)


def _epoch_batches_function(examples, has_labels, batch_size, binarize, seed, shuffle_buffer):
    """epoch -> the batches of that training epoch, a function of (seed, epoch) alone."""
    cached = examples.cache()

    def epoch_batches(epoch):
        epoch_seed = (seed * 1_000_003 + epoch) % 2**31  # Python ints: tf.data wants them
        shuffled = cached.shuffle(shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False)
        if binarize == "dynamic":
            def draw(index, example):
                images = example[0] if has_labels else example
                binary = _binarize_with_seed(images, tf.stack([tf.constant(epoch_seed, tf.int64), index]))
                return (binary, example[1]) if has_labels else binary

            shuffled = shuffled.enumerate().map(draw, num_parallel_calls=tf.data.AUTOTUNE)
        return shuffled.batch(batch_size)

    return epoch_batches


def _pipeline(examples, split, has_labels, batch_size, binarize, seed, shuffle_buffer):
    """Unbatched `[height, width, channels]` floats in [0, 1] -> a ready pipeline."""
    split_seed = seed + SPLIT_NAMES.index(split)  # distinct streams per split
    if split == "train":
        examples = examples.cache().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if binarize == "dynamic":
            examples = _binarize_each_element(examples, has_labels, split_seed, fresh_each_epoch=True)
    else:
        if binarize == "dynamic":
            examples = _binarize_each_element(examples, has_labels, split_seed, fresh_each_epoch=False)
        examples = examples.cache()
    return examples.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load(
    name,
    batch_size=128,
    binarize=None,
    data_dir=None,
    seed=0,
    shuffle_buffer=10_000,
    download=True,
    max_examples=None,
):
    """Train, validation and test pipelines for a tensorflow-datasets dataset.

    Args:
      name: one of `DATASETS`: "mnist", "fashion_mnist", "binarized_mnist",
        "cifar10". MNIST and Fashion-MNIST use train[:50000] for training and
        train[50000:] for validation; CIFAR-10 train[:45000] / train[45000:].
      batch_size: examples per batch.
      binarize: None (grey levels in [0, 1]) or "dynamic" (see module doc).
        Not for "binarized_mnist", which is binary already.
      data_dir: tensorflow-datasets data directory; None uses `TFDS_DATA_DIR`
        or tensorflow-datasets' default (~/tensorflow_datasets).
      seed: int seeding shuffling and binarisation.
      shuffle_buffer: examples in the training shuffle buffer.
      download: let tensorflow-datasets download and prepare a missing dataset.
      max_examples: if set, keep only the first `max_examples` of each split
        (for quick runs and smoke tests).

    Raises:
      ValueError: an unknown name or a bad argument, before any work.
      DatasetUnavailableError: the dataset is not in `data_dir` and could not
        be downloaded; the message says where it looked and what to do.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; known datasets: {sorted(DATASETS)}.")
    _check_common_arguments(batch_size, binarize, seed)
    if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 1):
        raise ValueError(f"`max_examples` must be None or an int >= 1; received {max_examples!r}.")
    source = DATASETS[name]
    if binarize and source.max_pixel_value == 1:
        raise ValueError(f"`binarize={binarize!r}` does not apply to {name!r}: its pixels are already 0 or 1.")

    def scale(images):
        return tf.cast(images, tf.float32) / source.max_pixel_value

    pipelines, num_examples = {}, {}
    for split in SPLIT_NAMES:
        examples = _tfds_load(name, source.splits[split], data_dir, download, source.has_labels)
        if max_examples is not None:
            examples = examples.take(max_examples)
        num_examples[split] = int(examples.cardinality())  # tfds records split sizes
        examples = _map_images(examples, source.has_labels, scale)
        pipelines[split] = _pipeline(examples, split, source.has_labels, batch_size, binarize, seed, shuffle_buffer)
        if split == "train":
            epoch_batches = _epoch_batches_function(examples, source.has_labels, batch_size, binarize, seed, shuffle_buffer)
    return Splits(
        **pipelines, image_shape=source.image_shape, has_labels=source.has_labels, name=name,
        num_examples=num_examples, batch_size=batch_size, epoch_batches=epoch_batches,
    )


def _tfds_load(name, split, data_dir, download, has_labels):
    try:
        examples = tfds.load(name, split=split, data_dir=data_dir, download=download)
    except Exception as error:  # tfds raises many types; all mean "not available"
        looked_in = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DatasetUnavailableError(
            f"Dataset {name!r} is not prepared in {looked_in!r}"
            f"{' and could not be downloaded' if download else ' (download=False)'}: {reason}. "
            f"Point TFDS_DATA_DIR (or data_dir=) at a tensorflow-datasets directory that holds it, "
            f"or run `tfds build {name} --data_dir DIR` on a machine with internet access and copy DIR."
        ) from error
    if has_labels:
        return examples.map(lambda example: (example["image"], example["label"]))
    return examples.map(lambda example: example["image"])


def from_array(images, labels=None, batch_size=128, binarize=None, validation_fraction=0.1, test_fraction=0.1, seed=0, shuffle_buffer=10_000):
    """Pipelines from in-memory images.

    Args:
      images: `[num_images, height, width, channels]`, uint8 in 0..255 or
        floats in [0, 1].
      labels: optional `[num_images]` integer labels.
      validation_fraction, test_fraction: shares held out, taken from the end
        of the array after one seeded permutation.
      Other arguments as in `load`.
    """
    _check_common_arguments(batch_size, binarize, seed)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"`images` must be [num_images, height, width, 1 or 3]; received shape {images.shape}.")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255
    elif np.issubdtype(images.dtype, np.floating):
        if images.size and (images.min() < 0 or images.max() > 1):
            raise ValueError(
                f"Float `images` must lie in [0, 1]; received values in [{images.min()}, {images.max()}]. "
                "Pass uint8 images or divide by 255."
            )
        images = images.astype(np.float32)
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
    order = np.random.default_rng(seed).permutation(len(images))
    boundaries = np.cumsum([len(images) - sum(num_held_out), num_held_out[0]])
    pipelines, num_examples = {}, {}
    for split, indices in zip(SPLIT_NAMES, np.split(order, boundaries)):
        tensors = images[indices] if labels is None else (images[indices], labels[indices])
        examples = tf.data.Dataset.from_tensor_slices(tensors)
        num_examples[split] = len(indices)
        pipelines[split] = _pipeline(examples, split, labels is not None, batch_size, binarize, seed, shuffle_buffer)
        if split == "train":
            epoch_batches = _epoch_batches_function(examples, labels is not None, batch_size, binarize, seed, shuffle_buffer)
    return Splits(
        **pipelines, image_shape=images.shape[1:], has_labels=labels is not None, name="array",
        num_examples=num_examples, batch_size=batch_size, epoch_batches=epoch_batches,
    )


def from_image_folder(directory, image_size, color_mode="grayscale", batch_size=128, binarize=None, validation_fraction=0.1, test_fraction=0.1, seed=0):
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
