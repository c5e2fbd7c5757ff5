"""One seed convention for the whole API.

Every `seed=` argument of tfvae (`VAE(...)`, `VAE.sample`, `VAE.elbo`,
`VAE.log_likelihood`, the `tfvae.data` loaders) accepts:

- None: a fresh draw (from the model's own `keras.random.SeedGenerator`, or
  from Python's `random`, which `keras.utils.set_random_seed` seeds);
- an int `s`: the same as the pair `(s, 0)`;
- a pair of ints `(s0, s1)` (a tuple, list, array or int tensor of shape [2]):
  the stateless seed itself;
- a `keras.random.SeedGenerator`: its next seed.

`stateless(seed, default)` turns any of them into the int32 `[2]` tensor that
TensorFlow's stateless random ops take; `as_int(seed)` into one Python int, for
APIs such as `tf.data` that want one.
"""

import random

import keras
import numpy as np
import tensorflow as tf

from tfvae import _backend  # noqa: F401  (selects the TensorFlow backend)

_EXPECTED = "None, an int, a pair of ints or a keras.random.SeedGenerator"


def _error(seed, argument):
    shape = getattr(seed, "shape", None)
    received = f"{type(seed).__name__} of shape {tuple(shape)}" if shape is not None else repr(seed)
    return ValueError(f"`{argument}` must be {_EXPECTED}; received {received}.")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def stateless(seed, default=None, argument="seed"):
    """The stateless seed for `seed`, an int32 `[2]` tensor.

    Args:
      seed: see the module docstring. None draws from `default`.
      default: the `keras.random.SeedGenerator` that None draws from.
      argument: the argument's name, for errors.

    Raises:
      ValueError: `seed` is of none of the accepted kinds (checked without
        running any op when it is a Python value).
    """
    if seed is None:
        if default is None:
            raise ValueError(f"`{argument}` is None but there is no seed generator to draw from.")
        seed = default
    if isinstance(seed, keras.random.SeedGenerator):
        return tf.cast(seed.next(), tf.int32)
    if _is_int(seed):
        if not -2**31 <= int(seed) < 2**31:  # TensorFlow would wrap it silently (2**40 became seed 0)
            raise ValueError(f"`{argument}` must be an int in [-2**31, 2**31) (a 32-bit seed); received {int(seed)}.")
        return tf.constant([int(seed), 0], tf.int32)
    if tf.is_tensor(seed) or isinstance(seed, (tuple, list, np.ndarray)):
        if not tf.is_tensor(seed):
            array = np.asarray(seed)
            if array.shape != (2,) or not np.issubdtype(array.dtype, np.integer):
                raise _error(seed, argument)
        elif not seed.dtype.is_integer or (seed.shape.rank is not None and seed.shape != (2,) and seed.shape.rank != 0):
            raise _error(seed, argument)
        seed = tf.cast(seed, tf.int32)
        if seed.shape.rank == 0:  # a scalar int tensor, as an int is
            return tf.stack([seed, tf.zeros_like(seed)])
        return seed
    raise _error(seed, argument)


def as_int(seed, argument="seed"):
    """One Python int in [0, 2**31) for `seed` (module docstring), for `tf.data`.

    None draws from Python's `random`; a pair is combined deterministically;
    a `keras.random.SeedGenerator` is drawn from.
    """
    if seed is None:
        return random.randint(0, 2**31 - 1)
    if _is_int(seed):
        return int(seed) % 2**31
    if isinstance(seed, keras.random.SeedGenerator) or tf.is_tensor(seed) or isinstance(seed, (tuple, list, np.ndarray)):
        first, second = (int(value) for value in np.asarray(stateless(seed, argument=argument)))
        return (first + second * 1_000_003) % 2**31  # (s, 0) gives s, as the int s does
    raise _error(seed, argument)
