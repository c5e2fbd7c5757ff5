"""MNIST-like fake datasets behind `tfds.testing.mock_data`, for machines without the prepared data.

    with prepared_or_fake_data() as data_dir:  # the prepared directory, or None under the mock
        splits = tfvae.data.load("mnist", data_dir=data_dir, download=False)

The prepared tensorflow-datasets directory is `$TFDS_DATA_DIR` or, beside this
repository, `../shared/data/tensorflow_datasets` (as in tests/test_data.py).
Where it does not hold the three datasets below, or where the environment sets TFVAE_TEST_MOCK_DATA=1,
tensorflow-datasets is mocked: every split string of "mnist", "fashion_mnist"
and "binarized_mnist" ("train", "test", "train[:50000]", "train[:10%]", ...)
holds NUM_EXAMPLES examples made from a fixed seed and the split string alone,
so every process sees the same data. Any `data_dir` is accepted and ignored,
and the dataset counts as prepared (`builder.is_prepared()` is True).

The images have structure a VAE can learn: each of ten classes has a
prototype of a few strokes, drawn shifted by up to two pixels, with a random
ink intensity and multiplicative noise; the background is exactly 0.
"mnist" and "fashion_mnist" give uint8 grey levels in 0..255 with int64 labels
in 0..9, "binarized_mnist" uint8 pixels in {0, 1} drawn from those grey
levels, without labels, as the real datasets do.

Commands run in a subprocess see no in-process mock: run them through
tests/run_with_data.py, which enters the same mock where needed.
"""

import contextlib
import functools
import os
import pathlib
import zlib
from unittest import mock

import numpy as np

MOCK_ENV = "TFVAE_TEST_MOCK_DATA"
NUM_EXAMPLES = 3000  # per split string
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
MAX_SHIFT = 2  # pixels, each way
FAKE_DATASETS = ("mnist", "fashion_mnist", "binarized_mnist")

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "tensorflow_datasets"


def prepared_data_dir():
    """The tensorflow-datasets directory that holds the prepared datasets, or None.

    `$TFDS_DATA_DIR` when set, else the shared directory beside this
    repository; None unless it holds a folder for each of `FAKE_DATASETS`.
    """
    directory = pathlib.Path(os.environ.get("TFDS_DATA_DIR") or SHARED_DATA)
    return str(directory) if all((directory / name).is_dir() for name in FAKE_DATASETS) else None


def mocking():
    """Whether tests run on fake data: TFVAE_TEST_MOCK_DATA=1, or no prepared directory."""
    return os.environ.get(MOCK_ENV) == "1" or prepared_data_dir() is None


def _stable_hash(text):
    return zlib.crc32(text.encode())


@functools.lru_cache(maxsize=None)
def _prototypes(name):
    """`[NUM_CLASSES, 28, 28]` float32 in [0, 1]: per class, three strokes joining four random points."""
    rng = np.random.default_rng([_stable_hash(name), 0])
    rows, columns = np.mgrid[0 : IMAGE_SHAPE[0], 0 : IMAGE_SHAPE[1]].astype(np.float32)
    pixels = np.stack([rows, columns], axis=-1)  # [28, 28, 2]
    prototypes = np.zeros([NUM_CLASSES, *IMAGE_SHAPE[:2]], np.float32)
    for label in range(NUM_CLASSES):
        points = rng.uniform(6, 22, size=(4, 2)).astype(np.float32)
        for start, end in zip(points[:-1], points[1:]):
            # Distance from each pixel to the segment start..end; ink within ~1.5 px.
            direction = end - start
            along = np.clip(((pixels - start) @ direction) / (direction @ direction), 0.0, 1.0)
            distance = np.linalg.norm(pixels - (start + along[..., None] * direction), axis=-1)
            prototypes[label] = np.maximum(prototypes[label], np.clip(2.0 - distance, 0.0, 1.0))
    return prototypes


@functools.lru_cache(maxsize=None)
def fake_examples(name, split):
    """The fake examples of `name`'s `split` (any split string): a dict of NumPy arrays.

    `image: [NUM_EXAMPLES, 28, 28, 1]` uint8, in 0..255 for "mnist" and
    "fashion_mnist" (with `label: [NUM_EXAMPLES]` int64 in 0..9) or in {0, 1}
    for "binarized_mnist" (no label). A function of (name, split) alone.
    """
    if name not in FAKE_DATASETS:
        raise ValueError(f"No fake data for {name!r}; known: {list(FAKE_DATASETS)}.")
    rng = np.random.default_rng([_stable_hash(name), _stable_hash(str(split)), 1])
    labels = rng.integers(0, NUM_CLASSES, size=NUM_EXAMPLES)
    shifts = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=(NUM_EXAMPLES, 2))
    ink = rng.uniform(0.7, 1.1, size=(NUM_EXAMPLES, 1, 1)).astype(np.float32)
    noise = rng.normal(1.0, 0.15, size=(NUM_EXAMPLES, *IMAGE_SHAPE[:2])).astype(np.float32)
    prototypes = _prototypes(name)
    grey = np.stack([np.roll(prototypes[label], tuple(shift), axis=(0, 1)) for label, shift in zip(labels, shifts)])
    grey = np.clip(grey * ink * noise, 0.0, 1.0)[..., None]  # [NUM_EXAMPLES, 28, 28, 1]
    if name == "binarized_mnist":
        return {"image": (rng.uniform(size=grey.shape) < grey).astype(np.uint8)}
    return {"image": np.round(grey * 255).astype(np.uint8), "label": labels.astype(np.int64)}


def _as_dataset(builder, split, decoders=None, read_config=None, **kwargs):
    """Stands in for `FileReaderBuilder._as_dataset`: the fake examples of `builder.name`'s `split`."""
    import tensorflow as tf

    del decoders, read_config, kwargs
    return tf.data.Dataset.from_tensor_slices(fake_examples(builder.name, str(split)))


@contextlib.contextmanager
def fake_tfds():
    """tensorflow-datasets serves `fake_examples` for every dataset, prepared, whatever `data_dir`."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_dataset_fn=_as_dataset), mock.patch.object(
        tfds.core.DatasetBuilder, "is_prepared", lambda builder: True
    ):
        yield


@contextlib.contextmanager
def prepared_or_fake_data():
    """Yields the prepared data directory, or None with `fake_tfds` active (see `mocking`)."""
    if mocking():
        with fake_tfds():
            yield None
    else:
        yield prepared_data_dir()


def data_dir_args(data_dir):
    """`["--data-dir", data_dir]` for the `tfvae` command, or nothing for the default (the mock's None)."""
    return [] if data_dir is None else ["--data-dir", str(data_dir)]
