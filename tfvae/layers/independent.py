"""Distributions over independent elements, and the full-covariance Gaussian.

Each family is a pure function from parameters to a distribution (testable
without Keras) and a thin layer around it:

    independent_normal       IndependentNormal       mean and scale per element
    multivariate_normal_tril MultivariateNormalTriL  mean and Cholesky factor
    independent_bernoulli    IndependentBernoulli    one logit per element
    independent_logistic     IndependentLogistic     location and scale per element
    independent_poisson      IndependentPoisson      one log-rate per element
    independent_gaussian     IndependentGaussian     mean per element, shared scale

Scales go through `scale_bijector(scale_floor)`: softplus plus a floor
(`tfp.layers` uses softplus alone, and 1e-5 on the Cholesky diagonal).

The layers take `tfp.layers`' arguments in its order, `(event_shape=(),
convert_to_tensor_fn, validate_args, ...)`, and have its static
`params_size(...)` and `new(params, ...)`; tfvae's `scale_floor` comes after.
One difference: `params` is read as `[batch, ...]`, every value after the
first axis a parameter (so a convolution's output feeds a layer directly),
where `tfp.layers` takes the last axis as the parameters and the others as
batch axes.
"""

import functools
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.checks import as_event_shape, check_event_size, check_positive, check_sample_dtype, check_scale_floor
from tfvae.layers.distribution import (
    SERIALIZATION_PACKAGE,
    DistributionLayer,
    MeanConvertibleIndependent,
    MeanConvertibleMultivariateNormalTriL,
    initial_scale_initializer,
    reshape_params,
    scale_bijector,
    with_validation,
)

tfd = tfp.distributions


def independent_normal(params, event_shape, scale_floor=1e-3):
    """Diagonal Gaussian from `params: [batch, 2 * prod(event_shape)]`.

    The first half of the last axis is the mean mu, the second half the raw
    scale r, with sigma = softplus(r) + scale_floor. Returns a distribution
    with batch shape `[batch]` and event shape `event_shape`.
    """
    event_shape = tuple(event_shape)
    loc, raw_scale = tf.split(reshape_params(params, [2, *event_shape]), 2, axis=1)
    loc, raw_scale = tf.squeeze(loc, 1), tf.squeeze(raw_scale, 1)
    scale = scale_bijector(scale_floor, raw_scale.dtype).forward(raw_scale)
    return MeanConvertibleIndependent(
        tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=len(event_shape)
    )


def multivariate_normal_tril(params, event_size, scale_floor=1e-3):
    """Full-covariance Gaussian from `params: [batch, n + n (n + 1) / 2]`.

    The first `n = event_size` parameters are the mean; the rest fill the lower
    triangle of the Cholesky factor L (covariance L L^T), whose diagonal goes
    through softplus plus `scale_floor`. Returns batch shape `[batch]`, event
    shape `[event_size]`.
    """
    params = reshape_params(params, [MultivariateNormalTriL.params_size(event_size)])
    loc, raw_tril = params[..., :event_size], params[..., event_size:]
    # What tfb.FillScaleTriL(diag_bijector=scale_bijector(...), diag_shift=None)
    # computes, with gathers at constant indices: the bijector's gradient (and
    # that of tf.linalg.set_diag) builds tensors of dynamic shape, which XLA
    # refuses ("Reading input as constant from a dynamic tensor"), so a model
    # with this posterior could not train under XLA.
    positions, diagonal_positions = _triangular_positions(event_size)
    padded = tf.concat([tf.zeros_like(raw_tril[..., :1]), raw_tril], axis=-1)  # position 0: the zero above the diagonal
    tril = tf.gather(padded, positions, axis=-1)  # [..., n, n], TFP's fill_triangular order
    diagonal = scale_bijector(scale_floor, raw_tril.dtype).forward(tf.gather(raw_tril, diagonal_positions, axis=-1))
    off_diagonal = 1.0 - tf.eye(event_size, dtype=raw_tril.dtype)
    scale_tril = tril * off_diagonal + tf.linalg.diag(diagonal)
    return MeanConvertibleMultivariateNormalTriL(loc=loc, scale_tril=scale_tril)


@functools.lru_cache(maxsize=None)
def _triangular_positions(n):
    """Where `tfp.math.fill_triangular` puts each of n (n + 1) / 2 values: NumPy `(positions, diagonal_positions)`.

    `positions[i, j]` is 1 + the index of the value at row i, column j of the
    lower triangle, and 0 above the diagonal; `diagonal_positions[i]` is the
    index of the value on the diagonal at row i.
    """
    with tf.init_scope():  # eager, even while a layer is traced
        positions = tfp.math.fill_triangular(tf.range(1, n * (n + 1) // 2 + 1)).numpy()
    return positions, np.diagonal(positions) - 1


def independent_bernoulli(params, event_shape, sample_dtype=None):
    """Bernoulli per element from logits `params: [batch, prod(event_shape)]`.

    Samples have `sample_dtype`, by default the logits' float dtype (zeros and
    ones) so that they feed straight back into a network. Returns batch shape
    `[batch]`, event shape `event_shape`.
    """
    event_shape = tuple(event_shape)
    logits = reshape_params(params, event_shape)
    return MeanConvertibleIndependent(
        tfd.Bernoulli(logits=logits, dtype=sample_dtype or logits.dtype),
        reinterpreted_batch_ndims=len(event_shape),
    )


def independent_logistic(params, event_shape, scale_floor=1e-3):
    """Logistic per element from `params: [batch, 2 * prod(event_shape)]`.

    Like `independent_normal`: the first half is the location mu, the second
    the raw scale r, s = softplus(r) + scale_floor, with density
    p(x) = exp(-(x - mu) / s) / (s (1 + exp(-(x - mu) / s))^2) per element.
    """
    event_shape = tuple(event_shape)
    loc, raw_scale = tf.split(reshape_params(params, [2, *event_shape]), 2, axis=1)
    loc, raw_scale = tf.squeeze(loc, 1), tf.squeeze(raw_scale, 1)
    scale = scale_bijector(scale_floor, raw_scale.dtype).forward(raw_scale)
    return MeanConvertibleIndependent(
        tfd.Logistic(loc=loc, scale=scale), reinterpreted_batch_ndims=len(event_shape)
    )


def independent_poisson(params, event_shape):
    """Poisson per element from log-rates `params: [batch, prod(event_shape)]`.

    p(x) = rate^x exp(-rate) / x!, rate = exp(params), for counts x >= 0.
    """
    event_shape = tuple(event_shape)
    log_rate = reshape_params(params, event_shape)
    return MeanConvertibleIndependent(
        tfd.Poisson(log_rate=log_rate), reinterpreted_batch_ndims=len(event_shape)
    )


def independent_gaussian(params, event_shape, scale):
    """Gaussian per element from means `params: [batch, prod(event_shape)]`.

    `scale` is a positive tensor broadcastable to `event_shape` (a scalar or
    one value per element), shared by all examples. Returns batch shape
    `[batch]`, event shape `event_shape`.
    """
    event_shape = tuple(event_shape)
    loc = reshape_params(params, event_shape)
    scale = tf.broadcast_to(tf.cast(scale, loc.dtype), tf.shape(loc))
    return MeanConvertibleIndependent(
        tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=len(event_shape)
    )




class _ElementwiseLayer(DistributionLayer):
    """Shared by the layers with `event_shape` and `n` parameters per element."""

    params_per_element = 1

    def __init__(self, event_shape=(), convert_to_tensor_fn="mean", validate_args=False, **kwargs):
        super().__init__(convert_to_tensor_fn=convert_to_tensor_fn, validate_args=validate_args, **kwargs)
        self.event_shape = as_event_shape(event_shape, allow_scalar=True)

    @classmethod
    def params_size(cls, event_shape=(), name=None):
        """Parameters per example: `params_per_element * prod(event_shape)`. (`name` is ignored, as a TFP argument.)"""
        return cls.params_per_element * math.prod(as_event_shape(event_shape, allow_scalar=True))

    def get_config(self):
        return {**super().get_config(), "event_shape": list(self.event_shape)}


class _ScaledElementwiseLayer(_ElementwiseLayer):
    """An elementwise layer with a location and a softplus-plus-floor scale per element."""

    params_per_element = 2
    family = None  # the pure function, e.g. independent_normal

    def __init__(self, event_shape=(), convert_to_tensor_fn="mean", validate_args=False, scale_floor=1e-3, **kwargs):
        super().__init__(event_shape, convert_to_tensor_fn, validate_args, **kwargs)
        self.scale_floor = check_scale_floor(scale_floor)

    @classmethod
    def new(cls, params, event_shape=(), validate_args=False, name=None, scale_floor=1e-3):
        """The distribution for `params: [batch, params_size(event_shape)]`, as TFP's `new`."""
        distribution = cls.family(tf.convert_to_tensor(params), as_event_shape(event_shape, allow_scalar=True),
                                  check_scale_floor(scale_floor))
        return with_validation(distribution) if validate_args else distribution

    def make_distribution(self, params):
        return type(self).family(params, self.event_shape, self.scale_floor)

    def get_config(self):
        return {**super().get_config(), "scale_floor": self.scale_floor}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class IndependentNormal(_ScaledElementwiseLayer):
    """Diagonal Gaussian q(z|x) or p(y|x): mean and softplus scale per element.

    Args:
      event_shape: int or tuple, the shape of one sample; () for scalars.
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor (`predict`, a layer stacked on it): "mean" (the default; TFP
        draws a "sample"), "mode", "sample", "stddev", "variance", or a
        callable.
      validate_args: check parameters and values at run time (slower).
      scale_floor: float > 0 added to every scale.

    Input `[batch, 2 * prod(event_shape)]`; output a distribution with batch
    shape `[batch]` and event shape `event_shape`:

        p(y | x) = prod_j N(y_j; mu_j, sigma_j^2),  sigma_j = softplus(r_j) + scale_floor

    Example (heteroscedastic regression):

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(IndependentNormal.params_size(2)),
                                  IndependentNormal(2)])
        model.compile("adam", loss=tfvae.losses.NegativeLogLikelihood())  # then model.fit(x, y), y: [batch, 2]
        normal = model(np.random.normal(size=(64, 3)).astype("float32"))
        assert normal.batch_shape == [64] and normal.event_shape == [2] and np.all(normal.stddev() > 1e-3)
    """

    family = staticmethod(independent_normal)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class IndependentLogistic(_ScaledElementwiseLayer):
    """Logistic per element: location and softplus scale, for heavy-ish tailed real data.

    Args:
      event_shape: int or tuple, the shape of one sample; () for scalars.
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor (`predict`, a layer stacked on it): "mean" (the default; TFP
        draws a "sample"), "mode", "sample", "stddev", "variance", or a
        callable.
      validate_args: check parameters and values at run time (slower).
      scale_floor: float > 0 added to every scale.

    Input `[batch, 2 * prod(event_shape)]`: n = prod(event_shape) locations
    mu, then n raw scales r; output batch shape `[batch]`, event shape
    `event_shape`:

        p(y | x) = prod_j exp(-z_j) / (s_j (1 + exp(-z_j))^2),  z_j = (y_j - mu_j) / s_j,
        s_j = softplus(r_j) + scale_floor

    with mean mu_j and variance s_j^2 pi^2 / 3 per element.

    Example:

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(IndependentLogistic.params_size(2)),
                                  IndependentLogistic(2)])
        logistic = model(np.zeros((4, 3), "float32"))  # Dense gives 0: mu = 0, s = softplus(0) + 1e-3
        assert logistic.batch_shape == [4] and logistic.event_shape == [2]
        assert np.allclose(logistic.variance(), (np.log(2) + 1e-3) ** 2 * np.pi**2 / 3)
    """

    family = staticmethod(independent_logistic)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class IndependentPoisson(_ElementwiseLayer):
    """Poisson per element from log-rates: counts.

    Args:
      event_shape: int or tuple, the shape of one sample; () for scalars.
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor (`predict`, a layer stacked on it): "mean" (the default; TFP
        draws a "sample"), "mode", "sample", "stddev", "variance", or a
        callable.
      validate_args: check parameters and values at run time (slower).

    Input `[batch, prod(event_shape)]` log-rates l; output batch shape
    `[batch]`, event shape `event_shape`:

        p(y | x) = prod_j lambda_j^y_j exp(-lambda_j) / y_j!,  lambda_j = exp(l_j),  y_j in {0, 1, 2, ...}

    with mean and variance lambda_j per element.

    Example (Poisson regression):

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1), IndependentPoisson()])
        model.compile("adam", loss=tfvae.losses.NegativeLogLikelihood())
        x = np.random.normal(size=(64, 3)).astype("float32")
        y = np.random.poisson(np.exp(0.5 * x[:, 0])).astype("float32")  # [64] counts
        model.fit(x, y, epochs=1, verbose=0)
        assert model.predict(x, verbose=0).shape == (64,)  # the rates lambda
    """

    @staticmethod
    def new(params, event_shape=(), validate_args=False, name=None):
        """The distribution for log-rates `params: [batch, prod(event_shape)]`, as TFP's `new`."""
        distribution = independent_poisson(tf.convert_to_tensor(params), as_event_shape(event_shape, allow_scalar=True))
        return with_validation(distribution) if validate_args else distribution

    def make_distribution(self, params):
        return independent_poisson(params, self.event_shape)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MultivariateNormalTriL(DistributionLayer):
    """Full-covariance Gaussian parameterised by a mean and a Cholesky factor.

    Args:
      event_size: int, the dimension n of one sample.
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor (`predict`, a layer stacked on it): "mean" (the default; TFP
        draws a "sample"), "mode", "sample", "stddev", "variance", or a
        callable.
      validate_args: check parameters and values at run time (slower).
      scale_floor: float > 0 added to the Cholesky diagonal (TFP: 1e-5).

    Input `[batch, n + n (n + 1) / 2]`; output batch shape `[batch]`, event
    shape `[n]`: N(mu, L L^T), L lower triangular with diagonal softplus + floor.

    Example (a correlated 2-D target):

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(MultivariateNormalTriL.params_size(2)),
                                  MultivariateNormalTriL(2)])
        x = np.random.normal(size=(4, 3)).astype("float32")
        assert model(x).covariance().shape == (4, 2, 2)  # L L^T per example
    """

    def __init__(self, event_size, convert_to_tensor_fn="mean", validate_args=False, scale_floor=1e-3, **kwargs):
        super().__init__(convert_to_tensor_fn=convert_to_tensor_fn, validate_args=validate_args, **kwargs)
        self.event_size = check_event_size(event_size)
        self.event_shape = (self.event_size,)
        self.scale_floor = check_scale_floor(scale_floor)

    @staticmethod
    def params_size(event_size, name=None):
        """Parameters per example: n means and n (n + 1) / 2 Cholesky entries."""
        n = check_event_size(event_size)
        return n + n * (n + 1) // 2

    @staticmethod
    def new(params, event_size, validate_args=False, name=None, scale_floor=1e-3):
        """The distribution for `params: [batch, params_size(event_size)]`, as TFP's `new`."""
        event_size = check_event_size(event_size)
        distribution = multivariate_normal_tril(tf.convert_to_tensor(params), event_size, check_scale_floor(scale_floor))
        return with_validation(distribution) if validate_args else distribution

    def make_distribution(self, params):
        return multivariate_normal_tril(params, self.event_size, self.scale_floor)

    def get_config(self):
        return {
            **super().get_config(),
            "event_size": self.event_size,
            "scale_floor": self.scale_floor,
        }


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class IndependentBernoulli(_ElementwiseLayer):
    """Bernoulli likelihood p(x|z) for binary data, one logit per element.

    Args:
      event_shape: int or tuple, e.g. `(28, 28, 1)`; () for scalars.
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor (`predict`, a layer stacked on it): "mean" (the default; TFP
        draws a "sample"), "mode", "sample", "stddev", "variance", or a
        callable.
      validate_args: check parameters and values at run time (slower).
      sample_dtype: dtype of samples; None: the logits' float dtype (zeros and
        ones that feed straight back into a network), as in TFP.

    Input `[batch, prod(event_shape)]` logits (any shape with that many values
    per example); output batch shape `[batch]`, event shape `event_shape`:
    p(x) = prod_j sigmoid(l_j)^x_j (1 - sigmoid(l_j))^(1 - x_j).

    Example (a decoder for binary 28x28 images):

        decoder = keras.Sequential([keras.Input((16,)), keras.layers.Dense(784), IndependentBernoulli((28, 28, 1))])
        bernoulli = decoder(np.zeros((2, 16), "float32"))  # Dense gives 0: every logit 0, p = 1/2
        x = (np.random.uniform(size=(2, 28, 28, 1)) < 0.5).astype("float32")
        assert np.allclose(bernoulli.log_prob(x), 784 * np.log(0.5))
    """

    def __init__(self, event_shape=(), convert_to_tensor_fn="mean", sample_dtype=None, validate_args=False, **kwargs):
        super().__init__(event_shape, convert_to_tensor_fn, validate_args, **kwargs)
        self.sample_dtype = check_sample_dtype(sample_dtype, allow_bool=True)

    @staticmethod
    def new(params, event_shape=(), dtype=None, validate_args=False, name=None):
        """The distribution for logits `params: [batch, prod(event_shape)]`, as TFP's `new`."""
        distribution = independent_bernoulli(tf.convert_to_tensor(params), as_event_shape(event_shape, allow_scalar=True),
                                             check_sample_dtype(dtype, allow_bool=True, argument="dtype"))
        return with_validation(distribution) if validate_args else distribution

    def make_distribution(self, params):
        return independent_bernoulli(params, self.event_shape, self.sample_dtype)

    def get_config(self):
        return {**super().get_config(), "sample_dtype": self.sample_dtype}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class IndependentGaussian(DistributionLayer):
    """Gaussian likelihood p(x|z) for real-valued data with a shared scale.

    The network predicts only the mean. The scale is either fixed
    (`scale=0.1`) or learned (`scale=None`): one trainable value per element of
    the event, shared by all examples, as in sigma-VAEs. A learned scale is
    `softplus(raw_scale) + scale_floor` and starts at
    `initial_scale(scale_floor) = max(1, 2 * scale_floor)`.

    Args:
      event_shape: int or tuple, e.g. `(32, 32, 3)`.
      scale: None to learn the scale, or a positive float to fix it.
      scale_floor: float > 0 added to a learned scale.

    Input `[batch, prod(event_shape)]` means; output batch shape `[batch]`,
    event shape `event_shape`: p(x) = prod_j N(x_j; mu_j, sigma_j^2).

    Example (a decoder for real-valued 32x32x3 images, scale learned):

        decoder = keras.Sequential([keras.Input((16,)), keras.layers.Dense(3072), IndependentGaussian((32, 32, 3))])
        gaussian = decoder(np.zeros((2, 16), "float32"))  # Dense gives 0: mu = 0; sigma starts at 1
        assert gaussian.event_shape == [32, 32, 3] and np.allclose(gaussian.stddev(), 1)
    """

    def __init__(self, event_shape, scale=None, scale_floor=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = as_event_shape(event_shape)
        self.scale = None if scale is None else check_positive(scale, "scale", "None (learned) or a finite number > 0")
        self.scale_floor = check_scale_floor(scale_floor)
        if self.scale is None:
            self.raw_scale = self.add_weight(
                shape=self.event_shape, initializer=initial_scale_initializer(self.scale_floor), name="raw_scale"
            )

    @staticmethod
    def params_size(event_shape):
        """Parameters per example: one mean per element."""
        return math.prod(as_event_shape(event_shape))

    def make_distribution(self, params):
        if self.scale is None:
            raw_scale = tf.cast(self.raw_scale, params.dtype)
            scale = scale_bijector(self.scale_floor, params.dtype).forward(raw_scale)
        else:
            scale = tf.constant(self.scale, params.dtype)
        return independent_gaussian(params, self.event_shape, scale)

    def get_config(self):
        return {
            **super().get_config(),
            "event_shape": list(self.event_shape),
            "scale": self.scale,
            "scale_floor": self.scale_floor,
        }
