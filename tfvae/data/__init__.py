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
`Splits.epoch_batches(e)` is that definition; `Splits.train` yields the next
epoch each time an iterator is opened on it (a peek at its first batch counts);
`Splits.train_from` any run of epochs from any batch, for resuming. Validation
and test splits are binarised once with a fixed seed, so evaluation numbers are
comparable between runs. Nothing depends on TensorFlow's global seed.
"""

from tfvae.data.downloads import REACHABILITY_TIMEOUT, DatasetUnavailableError, unreachable_reason
from tfvae.data.sources import DATASETS, TfdsSource, from_array, from_image_folder, load
from tfvae.data.splits import BINARIZE_CHOICES, SPLIT_NAMES, Splits, seed_as_int

__all__ = ["BINARIZE_CHOICES", "DATASETS", "REACHABILITY_TIMEOUT", "SPLIT_NAMES", "DatasetUnavailableError", "Splits",
           "TfdsSource", "from_array", "from_image_folder", "load", "seed_as_int", "unreachable_reason"]
