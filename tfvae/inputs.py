"""Checks that data can train or evaluate a VAE, before any step runs.

`peek(data)` returns the first batch of anything `keras.Model.fit` accepts (an
array or tensor, a `tf.data.Dataset`, a `keras.utils.PyDataset`, a Python
generator) without consuming it: a generator is replaced by one that yields the
peeked batch first. `check_batch(x, ...)` then refuses, with a one-line
`ValueError` naming `x`, a batch that is empty, not numeric, of the wrong shape,
or (optionally) outside the likelihood's support, e.g. grey values for a
Bernoulli likelihood.
"""

import types

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import _backend  # noqa: F401  (selects the TensorFlow backend)
from tfvae.layers.likelihoods import DiscretizedLogisticMixtureDistribution

tfd = tfp.distributions


def _binary(x, elementwise=False):
    values = tf.logical_or(tf.equal(x, 0), tf.equal(x, 1))
    return values if elementwise else tf.reduce_all(values)


def _finite(x, elementwise=False):
    values = tf.math.is_finite(x)
    return values if elementwise else tf.reduce_all(values)


def _unit_interval(x, elementwise=False):
    values = tf.logical_and(x >= 0, x <= 1)
    return values if elementwise else tf.reduce_all(values)


# What data each likelihood family accepts, and how to get there.
SUPPORT_CHECKS = {
    tfd.Bernoulli: (_binary, "0 or 1", "Binarize the data"),
    tfd.Normal: (_finite, "finite numbers", "Remove or replace the NaN and infinite values"),
    tfd.ContinuousBernoulli: (_unit_interval, "numbers in [0, 1]", "Scale the data to [0, 1]"),
    DiscretizedLogisticMixtureDistribution: (_unit_interval, "grey levels in [0, 1]", "Scale the data to [0, 1]"),
}


def _prepend(first, rest):
    yield first
    yield from rest


def peek(data):
    """`(first_x, data)`: the first batch's inputs, and `data` to use instead.

    `first_x` is None when `data` is None; `data` comes back unchanged except
    for a generator, which comes back as a generator that yields the peeked
    batch first. An empty source raises ValueError naming `x`.
    """
    if data is None:
        return None, data
    if isinstance(data, tf.data.Dataset):
        first = next(iter(data.take(1)), None)
        if first is None:
            raise ValueError("The dataset `x` is empty: it yields no batch.")
    elif isinstance(data, keras.utils.PyDataset):
        if data.num_batches == 0:
            raise ValueError("The PyDataset `x` is empty: it has no batch.")
        first = data[0]
    elif isinstance(data, types.GeneratorType):
        first = next(data, None)
        if first is None:
            raise ValueError("The generator `x` is empty: it yields no batch.")
        data = _prepend(first, data)
    else:
        return (data[0] if isinstance(data, tuple) else data), data
    x, _, _ = keras.utils.unpack_x_y_sample_weight(first)
    return x, data


def check_batch(x, input_shape, likelihood=None):
    """Raises ValueError unless `x: [batch, *input_shape]` can train the model.

    Args:
      x: a batch of inputs (array or tensor).
      input_shape: the encoder's input shape after the batch axis, or None
        when it is not known (then only emptiness and dtype are checked).
      likelihood: p(x|z) for some z; when given, `x` must lie in its support
        (`SUPPORT_CHECKS`).
    """
    if isinstance(x, dict) or not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(f"`x` must be a tensor or array of images; received {type(x).__name__}.")
    received = tuple(x.shape[1:])
    if input_shape is not None and received != tuple(input_shape):
        raise ValueError(f"`x` must have shape [batch, {', '.join(map(str, input_shape))}]; received {tuple(x.shape)}.")
    if x.shape[0] == 0:
        raise ValueError("`x` is empty: it holds no example.")
    dtype = tf.as_dtype(x.dtype)
    if not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
        raise ValueError(f"`x` must hold numbers; received dtype {dtype.name}.")
    if likelihood is not None:
        check_support(tf.cast(x, likelihood.dtype), likelihood)


def check_support(x, likelihood):
    """Raises ValueError if `x` holds values outside `likelihood`'s support."""
    family = type(getattr(likelihood, "distribution", likelihood))
    for base, (in_support, description, remedy) in SUPPORT_CHECKS.items():
        if issubclass(family, base) and not bool(in_support(x)):
            outside = tf.boolean_mask(tf.reshape(x, [-1]), ~tf.reshape(in_support(x, elementwise=True), [-1]))
            raise ValueError(
                f"`x` holds values outside the {base.__name__} likelihood's support ({description}), e.g. "
                f"{float(outside[0])}. {remedy}, or pass check_support=False to train on them anyway."
            )


def check_finite(x):
    """Raises ValueError naming `x` if a float `x` holds NaN or infinite values (no ELBO exists for them).

    `x` is an array or tensor that `check_batch` accepted; traced
    tensors (in a tf.function) are left alone: their values are not known yet.
    """
    if not tf.executing_eagerly() or not tf.as_dtype(x.dtype).is_floating:
        return
    # Checked as the model sees them: float64 values past float32's range become infinite there.
    finite = tf.math.is_finite(tf.cast(x, tf.float32) if tf.as_dtype(x.dtype) == tf.float64 else x)
    if not bool(tf.reduce_all(finite)):
        example = float(tf.boolean_mask(tf.reshape(x, [-1]), ~tf.reshape(finite, [-1]))[0])
        raise ValueError(f"`x` holds NaN or infinite values (in float32), e.g. {example}; every pixel must be a "
                         "finite number.")
