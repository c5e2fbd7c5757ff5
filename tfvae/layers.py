"""Keras layers whose output is a `tfd.Distribution`.

Each layer turns a tensor of unconstrained parameters into a distribution:

    params: [batch, ..., params_size]  ->  distribution with batch_shape [batch]
                                           and event_shape `event_shape`

The math lives in a pure function per family (`independent_normal`, ...); the
Keras classes are thin wrappers that validate shapes, declare the output spec
for Functional models and serialize. A layer's symbolic output (what a
Functional model sees while it is being built) is a tensor shaped like one
sample, `[batch, *event_shape]`; its eager or graph output is the distribution.

Scales are `softplus(raw) + scale_floor` so that they stay positive and a
collapsing variance cannot make log-densities infinite.

Where Keras needs a tensor instead of a distribution (`model.predict`, a
built-in loss such as `"mse"`, a metric such as `"mae"`, a layer stacked on top
of a distribution layer, e.g. a classifier on a trained encoder), the distributions
returned here convert to their mean: they are ordinary `tfd.Independent` and
`tfd.MultivariateNormalTriL` instances whose class adds `__tf_tensor__`.
"""

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import _backend  # noqa: F401  (selects the TensorFlow backend)

tfd = tfp.distributions
tfb = tfp.bijectors

SERIALIZATION_PACKAGE = "tfvae"


class _ConvertsToMean:
    """Mixin: `tf.convert_to_tensor(distribution)` gives `distribution.mean()`.

    The method must live on the class, not the instance, because Keras'
    predict loop rebuilds the distribution from its type spec when it leaves
    a `tf.function`.
    """

    def __tf_tensor__(self, dtype=None, name=None):
        return tf.convert_to_tensor(self.mean(), dtype=dtype, name=name)

    def numpy(self):
        """The mean as a NumPy array (eager only), as `model.predict` expects."""
        return self.mean().numpy()

    def __array__(self, dtype=None, copy=None):
        # Keras converts a layer's positional input through `convert_to_tensor`
        # only when it has `__array__`; TF then uses `__tf_tensor__` (graphs
        # included), so a layer stacked on a distribution receives its mean.
        return np.asarray(self.numpy(), dtype=dtype)


class MeanConvertibleIndependent(_ConvertsToMean, tfd.Independent):
    """`tfd.Independent` that converts to its mean where a tensor is needed."""


class MeanConvertibleMultivariateNormalTriL(_ConvertsToMean, tfd.MultivariateNormalTriL):
    """`tfd.MultivariateNormalTriL` that converts to its mean where needed."""


def _as_event_shape(event_shape, argument="event_shape"):
    """Returns `event_shape` as a tuple of positive ints, or raises ValueError."""
    shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(
            f"`{argument}` must be a positive int or a non-empty tuple of positive "
            f"ints; received {event_shape!r}."
        )
    return shape


def check_scale_floor(scale_floor):
    """Returns `scale_floor` as a float, or raises ValueError unless it is > 0."""
    if isinstance(scale_floor, bool) or not isinstance(scale_floor, (int, float)) or not scale_floor > 0:
        raise ValueError(f"`scale_floor` must be a number > 0; received {scale_floor!r}.")
    return float(scale_floor)


def unit_scale_initializer(scale_floor):
    """Initializer for a raw scale so that softplus(raw) + scale_floor == 1."""
    return keras.initializers.Constant(math.log(math.expm1(1.0 - scale_floor)))


def _reshape_params(params, param_shape):
    """Reshapes `params: [batch, ...]` to `[batch, *param_shape]`."""
    batch = tf.shape(params)[:1]
    return tf.reshape(params, tf.concat([batch, param_shape], axis=0))


def _positive_scale(raw_scale, scale_floor):
    return tf.math.softplus(raw_scale) + scale_floor


def independent_normal(params, event_shape, scale_floor=1e-3):
    """Diagonal Gaussian from `params: [batch, 2 * prod(event_shape)]`.

    The first half of the last axis is the mean, the second half the raw scale.
    Returns a distribution with batch shape `[batch]` and event shape
    `event_shape`.
    """
    event_shape = tuple(event_shape)
    loc, raw_scale = tf.split(_reshape_params(params, [2, *event_shape]), 2, axis=1)
    loc, raw_scale = tf.squeeze(loc, 1), tf.squeeze(raw_scale, 1)
    return MeanConvertibleIndependent(
        tfd.Normal(loc=loc, scale=_positive_scale(raw_scale, scale_floor)),
        reinterpreted_batch_ndims=len(event_shape),
    )


def multivariate_normal_tril(params, event_size, scale_floor=1e-3):
    """Full-covariance Gaussian from `params: [batch, n + n (n + 1) / 2]`.

    The first `n = event_size` parameters are the mean; the rest fill the lower
    triangle of the Cholesky factor, whose diagonal goes through softplus plus
    `scale_floor`. Returns batch shape `[batch]`, event shape `[event_size]`.
    """
    params = _reshape_params(params, [MultivariateNormalTriL.params_size(event_size)])
    loc, raw_tril = params[..., :event_size], params[..., event_size:]
    scale_tril = tfb.FillScaleTriL(
        diag_bijector=tfb.Chain([tfb.Shift(scale_floor), tfb.Softplus()]),
        diag_shift=None,
    )(raw_tril)
    return MeanConvertibleMultivariateNormalTriL(loc=loc, scale_tril=scale_tril)


def independent_bernoulli(params, event_shape):
    """Bernoulli per element from logits `params: [batch, prod(event_shape)]`.

    Samples are float32 zeros and ones so that they feed straight back into a
    network. Returns batch shape `[batch]`, event shape `event_shape`.
    """
    event_shape = tuple(event_shape)
    logits = _reshape_params(params, event_shape)
    return MeanConvertibleIndependent(
        tfd.Bernoulli(logits=logits, dtype=logits.dtype),
        reinterpreted_batch_ndims=len(event_shape),
    )


class DistributionLayer(keras.layers.Layer):
    """Base class: a layer mapping parameters to a `tfd.Distribution`.

    Subclasses define `event_shape`, `params_size` and `make_distribution`.
    """

    event_shape: tuple

    @property
    def num_params(self):
        """Number of parameters this layer expects per example."""
        return self.params_size(self.event_shape)

    def build(self, input_shape):
        received = input_shape[1:]
        if all(d is not None for d in received) and math.prod(received) != self.num_params:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} needs {self.num_params} "
                f"parameters per example (event_shape={self.event_shape}); received "
                f"an input of shape {tuple(input_shape)}, i.e. {math.prod(received)} "
                f"per example. Use {type(self).__name__}.params_size(...) for the "
                "size of the layer before it."
            )
        super().build(input_shape)

    def call(self, inputs):
        return self.make_distribution(tf.convert_to_tensor(inputs, self.compute_dtype))

    def make_distribution(self, params):
        raise NotImplementedError

    def compute_output_spec(self, inputs):
        # What a Functional model carries symbolically: one sample's shape.
        return keras.KerasTensor((inputs.shape[0], *self.event_shape), dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class IndependentNormal(DistributionLayer):
    """Diagonal Gaussian q(z|x) or p(y|x): mean and softplus scale per element.

    Args:
      event_shape: int or tuple, the shape of one sample.
      scale_floor: float > 0 added to every scale.

    Input `[batch, 2 * prod(event_shape)]`; output a distribution with batch
    shape `[batch]` and event shape `event_shape`.
    """

    def __init__(self, event_shape, scale_floor=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = _as_event_shape(event_shape)
        self.scale_floor = check_scale_floor(scale_floor)

    @staticmethod
    def params_size(event_shape):
        """Parameters per example: a mean and a raw scale per element."""
        return 2 * math.prod(_as_event_shape(event_shape))

    def make_distribution(self, params):
        return independent_normal(params, self.event_shape, self.scale_floor)

    def get_config(self):
        return {
            **super().get_config(),
            "event_shape": list(self.event_shape),
            "scale_floor": self.scale_floor,
        }


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MultivariateNormalTriL(DistributionLayer):
    """Full-covariance Gaussian parameterised by a mean and a Cholesky factor.

    Args:
      event_size: int, the dimension n of one sample.
      scale_floor: float > 0 added to the Cholesky diagonal.

    Input `[batch, n + n (n + 1) / 2]`; output batch shape `[batch]`, event
    shape `[n]`.
    """

    def __init__(self, event_size, scale_floor=1e-3, **kwargs):
        super().__init__(**kwargs)
        (self.event_size,) = _as_event_shape(event_size, "event_size")
        self.event_shape = (self.event_size,)
        self.scale_floor = check_scale_floor(scale_floor)

    @staticmethod
    def params_size(event_size):
        """Parameters per example: n means and n (n + 1) / 2 Cholesky entries."""
        (n,) = _as_event_shape(event_size, "event_size")
        return n + n * (n + 1) // 2

    def make_distribution(self, params):
        return multivariate_normal_tril(params, self.event_size, self.scale_floor)

    def get_config(self):
        return {
            **super().get_config(),
            "event_size": self.event_size,
            "scale_floor": self.scale_floor,
        }


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class IndependentBernoulli(DistributionLayer):
    """Bernoulli likelihood p(x|z) for binary data, one logit per element.

    Args:
      event_shape: int or tuple, e.g. `(28, 28, 1)`.

    Input `[batch, prod(event_shape)]` logits (any shape with that many values
    per example); output batch shape `[batch]`, event shape `event_shape`.
    """

    def __init__(self, event_shape, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = _as_event_shape(event_shape)

    @staticmethod
    def params_size(event_shape):
        """Parameters per example: one logit per element."""
        return math.prod(_as_event_shape(event_shape))

    def make_distribution(self, params):
        return independent_bernoulli(params, self.event_shape)

    def get_config(self):
        return {**super().get_config(), "event_shape": list(self.event_shape)}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class IndependentGaussian(DistributionLayer):
    """Gaussian likelihood p(x|z) for real-valued data with a shared scale.

    The network predicts only the mean. The scale is either fixed
    (`scale=0.1`) or learned (`scale=None`): one trainable value per element of
    the event, shared by all examples, as in sigma-VAEs.

    Args:
      event_shape: int or tuple, e.g. `(32, 32, 3)`.
      scale: None to learn the scale, or a positive float to fix it.
      scale_floor: float > 0 added to a learned scale.

    Input `[batch, prod(event_shape)]` means; output batch shape `[batch]`,
    event shape `event_shape`.
    """

    def __init__(self, event_shape, scale=None, scale_floor=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = _as_event_shape(event_shape)
        if scale is not None and not scale > 0:
            raise ValueError(f"`scale` must be None (learned) or > 0; received {scale!r}.")
        self.scale = None if scale is None else float(scale)
        self.scale_floor = check_scale_floor(scale_floor)
        if self.scale is None:
            self.raw_scale = self.add_weight(
                shape=self.event_shape, initializer=unit_scale_initializer(self.scale_floor), name="raw_scale"
            )

    @staticmethod
    def params_size(event_shape):
        """Parameters per example: one mean per element."""
        return math.prod(_as_event_shape(event_shape))

    def make_distribution(self, params):
        loc = _reshape_params(params, self.event_shape)
        if self.scale is None:
            scale = _positive_scale(tf.convert_to_tensor(self.raw_scale), self.scale_floor)
        else:
            scale = tf.constant(self.scale, loc.dtype)
        return MeanConvertibleIndependent(
            tfd.Normal(loc=loc, scale=tf.broadcast_to(scale, tf.shape(loc))),
            reinterpreted_batch_ndims=len(self.event_shape),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "event_shape": list(self.event_shape),
            "scale": self.scale,
            "scale_floor": self.scale_floor,
        }
