"""The sources of images: tensorflow-datasets (`load`), arrays (`from_array`), image folders."""

import dataclasses
import functools
import numbers
import pathlib
from typing import Optional

import keras
import numpy as np
import tensorflow_datasets as tfds

from tfvae.data.downloads import prepared_builder
from tfvae.data.splits import (
    SPLIT_NAMES,
    Splits,
    _is_int,
    check_common_arguments,
    EvaluationSplit,
    host_tensors,
    read_all,
    TrainingSplit,
    seed_as_int,
)


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """How one tensorflow-datasets dataset maps onto train/validation/test."""

    splits: dict  # our split name -> tfds split string
    max_pixel_value: int  # 255 for 8-bit images, 1 for pre-binarised ones
    has_labels: bool
    image_shape: tuple
    num_classes: Optional[int] = None  # labels lie in 0..num_classes - 1; None without labels


_MNIST_LIKE = dict(
    splits={"train": "train[:50000]", "validation": "train[50000:]", "test": "test"},
    max_pixel_value=255,
    has_labels=True,
    image_shape=(28, 28, 1),
    num_classes=10,
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
        num_classes=10,
    ),
}


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
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; known datasets: {sorted(DATASETS)} (`name` must be one of them).")
    check_common_arguments(batch_size, binarize)
    if max_examples is not None and (not _is_int(max_examples) or max_examples < 1):
        raise ValueError(f"`max_examples` must be None or an int >= 1; received {max_examples!r}.")
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"`download` must be True or False; received {download!r}.")
    source = DATASETS[name]
    if binarize and source.max_pixel_value == 1:
        raise ValueError(f"`binarize={binarize!r}` does not apply to {name!r}: its pixels are already 0 or 1.")
    seed = seed_as_int(seed)

    builder = prepared_builder(name, data_dir, download)
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
        read = functools.partial(read_all, examples)
        if split == "train":
            training = TrainingSplit(read, num_examples[split], **settings)
        else:
            evaluation[split] = EvaluationSplit(read, split, num_examples[split], **settings)
    return Splits(
        image_shape=source.image_shape, has_labels=source.has_labels, name=name, num_examples=num_examples,
        batch_size=batch_size, seed=seed, _training=training, _evaluation=evaluation,
    )


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
    check_common_arguments(batch_size, binarize)
    _check_fraction("validation_fraction", validation_fraction)
    _check_fraction("test_fraction", test_fraction)
    if images is None or isinstance(images, (str, bytes, dict)):
        raise ValueError(f"`images` must be an array [num_images, height, width, 1 or 3]; received {type(images).__name__}.")
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"`images` must be [num_images, height, width, 1 or 3]; received shape {images.shape}.")
    if images.dtype == np.uint8:
        max_pixel_value = 255  # kept as bytes, scaled batch by batch
    elif np.issubdtype(images.dtype, np.floating):
        if images.size and not np.all((images >= 0) & (images <= 1)):  # False for NaN too
            received = "NaN values" if np.isnan(images).any() else f"values in [{images.min()}, {images.max()}]"
            raise ValueError(f"Float `images` must lie in [0, 1]; received {received}. Pass uint8 images or divide by 255.")
        images, max_pixel_value = images.astype(np.float32), 1
    else:
        raise ValueError(f"`images` must be uint8 or float; received dtype {images.dtype}.")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != images.shape[:1]:
            raise ValueError(f"`labels` must have shape {images.shape[:1]}; received {labels.shape}.")
        if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)):
            raise ValueError(f"`labels` must be integers (class indices); received dtype {labels.dtype}.")
        labels = labels.astype(np.int64)
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
        read = functools.partial(host_tensors, images[indices], None if labels is None else labels[indices])
        num_examples[split] = len(indices)
        if split == "train":
            training = TrainingSplit(read, len(indices), **settings)
        else:
            evaluation[split] = EvaluationSplit(read, split, len(indices), **settings)
    return Splits(
        image_shape=images.shape[1:], has_labels=labels is not None, name="array", num_examples=num_examples,
        batch_size=batch_size, seed=seed, _training=training, _evaluation=evaluation,
    )


COLOR_MODES = ("grayscale", "rgb")  # 1 or 3 channels, what `from_array` takes


def _check_fraction(argument, value):
    """Raises ValueError naming `argument` unless `value` is a number in [0, 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"`{argument}` must be a number in [0, 1); received {value!r}.")


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
    if not isinstance(directory, (str, pathlib.PurePath)) or not str(directory).strip():
        raise ValueError(f"`directory` must be a path (str or pathlib.Path) of an existing folder; received {directory!r}.")
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise ValueError(f"`directory` must be an existing folder; received {str(directory)!r}.")
    if (isinstance(image_size, (str, bytes)) or not hasattr(image_size, "__len__") or len(image_size) != 2
            or not all(_is_int(d) and 0 < d <= 2**15 for d in image_size)):
        raise ValueError(f"`image_size` must be (height, width), two ints in [1, 32768]; received {image_size!r}.")
    if not isinstance(color_mode, str) or color_mode not in COLOR_MODES:
        raise ValueError(f"`color_mode` must be one of {COLOR_MODES}; received {color_mode!r}.")
    check_common_arguments(batch_size, binarize)
    _check_fraction("validation_fraction", validation_fraction)
    _check_fraction("test_fraction", test_fraction)
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
