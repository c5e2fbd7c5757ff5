"""`BlockwiseInitializer`: several Keras initializers, each filling a block of the last axis."""

import keras
import numpy as np

from tfvae.layers.checks import get_keras_object
from tfvae.layers.distribution import SERIALIZATION_PACKAGE


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class BlockwiseInitializer(keras.initializers.Initializer):
    """Concatenates initializers along the last axis, as `tfp.layers.BlockwiseInitializer` does.

    For `shape = [*leading, n]` with n = sum(sizes), block i of the last axis,
    `[..., s_i : s_i + sizes[i]]` with s_i = sizes[0] + ... + sizes[i - 1], is
    `initializers[i]([*leading, sizes[i]], dtype)`. Its use: one variable that
    packs several parameters, e.g. a Gaussian's means and raw scales, each
    started its own way.

    Args:
      initializers: a list of Keras initializers (names such as
        "glorot_uniform", objects, or their configs), one per block.
      sizes: a list of ints >= 1, as long as `initializers`: each block's
        length on the last axis.
      validate_args: kept for TFP's signature; shapes are checked whatever it is
        (a Keras 3 initializer sees static shapes only).

    Example:

        initializer = BlockwiseInitializer(["zeros", keras.initializers.Constant(-3.0)], sizes=[2, 2])
        initializer([1, 4])  # [[0, 0, -3, -3]]: two means at 0, two raw scales at -3
    """

    def __init__(self, initializers, sizes, validate_args=False):
        if not isinstance(initializers, (list, tuple)) or not initializers:
            raise ValueError(f"`initializers` must be a non-empty list of Keras initializers; received {initializers!r}.")
        if (not isinstance(sizes, (list, tuple)) or len(sizes) != len(initializers)
                or any(isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 for size in sizes)):
            raise ValueError(f"`sizes` must be a list of {len(initializers)} ints >= 1, one per initializer; "
                             f"received {sizes!r}.")
        self.initializers = [get_keras_object("initializer", "initializers", initializer) for initializer in initializers]
        self.sizes = [int(size) for size in sizes]
        self.validate_args = bool(validate_args)

    def __call__(self, shape, dtype=None):
        """A tensor of `shape` (static, last axis sum(sizes)), each block from its initializer."""
        shape = tuple(shape)
        if not shape or shape[-1] != sum(self.sizes):
            raise ValueError(f"The last axis of `shape` must be sum(sizes) = {sum(self.sizes)}; received shape {shape}.")
        blocks = [initializer((*shape[:-1], size), dtype=dtype) for initializer, size in zip(self.initializers, self.sizes)]
        return keras.ops.concatenate(blocks, axis=-1)

    def get_config(self):
        return {
            "initializers": [keras.saving.serialize_keras_object(initializer) for initializer in self.initializers],
            "sizes": list(self.sizes),
            "validate_args": self.validate_args,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["initializers"] = [keras.saving.deserialize_keras_object(initializer)
                                  for initializer in config["initializers"]]
        return cls(**config)
