r"""Likelihoods p(x|z) for images with grey levels in [0, 1].

    independent_continuous_bernoulli  IndependentContinuousBernoulli  one logit per element
    discretized_logistic_mixture      DiscretizedLogisticMixture      K logistics per element, on 2^b levels

(The per-pixel Gaussian, a mean and a scale per element, is `IndependentNormal`.)

**Continuous Bernoulli** (Loaiza-Ganem & Cunningham, 2019). A Bernoulli
likelihood on grey values in [0, 1] is not a density: it lacks the
normalising constant

    p(x | lambda) = C(lambda) lambda^x (1 - lambda)^(1 - x),   x in [0, 1],
    C(lambda) = 2 atanh(1 - 2 lambda) / (1 - 2 lambda),  C(1/2) = 2,

with lambda = sigmoid(logit). TFP's `tfd.ContinuousBernoulli` computes log C
in logit space, log C = log(l (e^l + 1) / (e^l - 1)), with a Taylor series
near l = 0 (lambda = 1/2), where the closed form is 0/0. The mean
lambda / (2 lambda - 1) + 1 / (2 atanh(1 - 2 lambda)) is not lambda.

**Discretized logistic mixture** (Salimans et al., 2017, PixelCNN++), per
sub-pixel (each channel on its own, without PixelCNN++'s coupling of colour
channels). With L = 2^b - 1 (255 for 8-bit images) the levels are
x_j = j / L, j = 0..L, and a continuous Y ~ sum_k pi_k Logistic(mu_k, s_k)
is rounded to the nearest level, the tails going to the end levels:

    P(x_j) = sum_k pi_k P_k(j),
    P_k(0) = sigma(a),   P_k(L) = 1 - sigma(b) = sigma(-b),
    P_k(j) = sigma(a) - sigma(b)                       otherwise,
    a = ((j + 1/2) / L - mu_k) / s_k,   b = ((j - 1/2) / L - mu_k) / s_k.

`log_prob(x)` is log P(level nearest to x), a true discrete log-probability:
the NLL of a VAE with this likelihood is an NLL in nats, and
NLL / (D ln 2) is bits per dimension (`tfvae.bounds.bits_per_dim`). Values
more than half a level outside [0, 1] have log-probability -inf.

Numerics. sigma(a) - sigma(b) cancels in float32 where both are close to 0
or 1 (far from mu) and where s is large; PixelCNN++'s code falls back there
to the density at the bin's middle times the bin width. Here the difference
is computed without cancellation from the exact identity

    sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - e^-(a - b)),   a - b = 1 / (L s),

    log P_k(j) = log_sigmoid(a) + log_sigmoid(-b) + log(-expm1(-1 / (L s))),

every term finite and accurate for any mu and s > 0, so no fallback (and no
approximation) is needed; the end levels are the first or second term alone.
Every branch is finite, so gradients are finite at the edges too.

Mean. `mean()` is E[clip(Y, 0, 1)], the mean of the mixture censored to
[0, 1], in closed form:

    E[clip(Y, 0, 1)] = int_0^1 P(Y > t) dt = sum_k pi_k s_k (softplus(mu_k / s_k) - softplus((mu_k - 1) / s_k)),

the difference taken as log1p(sigmoid((mu_k - 1) / s_k) expm1(1 / s_k)) for
s_k > 1, where the two softplus values nearly cancel.

The discrete distribution's own mean, (1 / L) sum_{j=1..L} P(Y > (j - 1/2) / L),
is the midpoint rule for that integral of a decreasing function, so the two
differ by at most 1 / (2 L) (half a level); the exact one would cost L terms
per sub-pixel. Unlike the clipped mixture mean clip(sum_k pi_k mu_k, 0, 1), it
stays right where components sit outside [0, 1] to put mass on the end
levels. `sample()` draws a component, then a logistic, and rounds it to a
level. There is no mode, variance or standard deviation.

Parameters. Every layer here, like `IndependentNormal`, reads its parameters
parameter-major, `[batch, P, *event_shape]` flattened: P = 1 for the
continuous Bernoulli (logits), P = 3K for the mixture, in the order K mixture
logits, K locations mu, K raw scales r, with s = softplus(r) + scale_floor.
`tfvae.architectures.conv_decoder` lays a convolution's channels out so.
"""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.conversion import CONVERSIONS
from tfvae.layers.checks import as_event_shape, check_positive_int, check_scale_floor
from tfvae.layers.distribution import (
    SERIALIZATION_PACKAGE,
    DistributionLayer,
    MeanConvertibleIndependent,
    reshape_params,
    scale_bijector,
    with_validation,
)
from tfvae.layers.independent import _ElementwiseLayer

tfd = tfp.distributions

# float32 x = j / (2^b - 1) rounds back to its level j up to about 22 bits; 16 covers every image format.
MAX_NUM_BITS = 16


def independent_continuous_bernoulli(params, event_shape):
    """Continuous Bernoulli per element from logits `params: [batch, prod(event_shape)]`.

    Returns batch shape `[batch]`, event shape `event_shape`; see the module
    docstring for the density.
    """
    event_shape = tuple(event_shape)
    logits = reshape_params(params, event_shape)
    return MeanConvertibleIndependent(tfd.ContinuousBernoulli(logits=logits), reinterpreted_batch_ndims=len(event_shape))


def discretized_logistic_mixture(params, event_shape, num_components=5, num_bits=8, scale_floor=1e-4):
    """Discretized logistic mixture per element from `params: [batch, 3 K prod(event_shape)]`.

    The parameters are read as `[batch, 3, K, *event_shape]`: mixture
    logits, locations, raw scales. Returns batch shape `[batch]`, event shape
    `event_shape`, over the levels j / (2^num_bits - 1).
    """
    event_shape = tuple(event_shape)
    parts = reshape_params(params, [3, num_components, *event_shape])
    # [batch, K, *event_shape] -> [batch, *event_shape, K]: the components last, as TFP's mixtures have them.
    components_last = [0, *range(2, 2 + len(event_shape)), 1]
    mixture_logits, loc, raw_scale = (tf.transpose(part, components_last) for part in tf.unstack(parts, 3, axis=1))
    scale = scale_bijector(scale_floor, raw_scale.dtype).forward(raw_scale)
    return MeanConvertibleIndependent(
        DiscretizedLogisticMixtureDistribution(mixture_logits, loc, scale, num_bits=num_bits),
        reinterpreted_batch_ndims=len(event_shape),
    )


class DiscretizedLogisticMixtureDistribution(tfd.AutoCompositeTensorDistribution):
    """A mixture of K logistics rounded to the levels j / (2^num_bits - 1), j = 0..2^num_bits - 1.

    Scalar events; batch shape that of the parameters without their last
    axis. See the module docstring for the probabilities, the mean and the
    numerics.

    Args:
      mixture_logits: `[..., K]` unnormalised log-weights of the components.
      loc: `[..., K]` the components' locations mu_k (any real number).
      scale: `[..., K]` the components' scales s_k > 0.
      num_bits: int b: 2^b levels in [0, 1].
    """

    def __init__(self, mixture_logits, loc, scale, num_bits=8, validate_args=False, allow_nan_stats=True,
                 name="DiscretizedLogisticMixture"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            self._mixture_logits = tf.convert_to_tensor(mixture_logits, dtype_hint=tf.float32, name="mixture_logits")
            dtype = self._mixture_logits.dtype
            self._loc = tf.convert_to_tensor(loc, dtype=dtype, name="loc")
            self._scale = tf.convert_to_tensor(scale, dtype=dtype, name="scale")
            self._num_bits = _check_num_bits(num_bits)
            super().__init__(dtype=dtype, reparameterization_type=tfd.NOT_REPARAMETERIZED, validate_args=validate_args,
                             allow_nan_stats=allow_nan_stats, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            mixture_logits=tfp.util.ParameterProperties(event_ndims=1),
            loc=tfp.util.ParameterProperties(event_ndims=1),
            scale=tfp.util.ParameterProperties(
                event_ndims=1, default_constraining_bijector_fn=lambda: tfp.bijectors.Softplus()),
        )

    @property
    def mixture_logits(self):
        return self._mixture_logits

    @property
    def loc(self):
        return self._loc

    @property
    def scale(self):
        return self._scale

    @property
    def num_bits(self):
        return self._num_bits

    @property
    def num_levels(self):
        """2^num_bits: the number of values a sample can take."""
        return 2**self._num_bits

    def _event_shape_tensor(self):
        return tf.constant([], dtype=tf.int32)

    def _event_shape(self):
        return tf.TensorShape([])

    def _log_prob(self, x):
        last = float(self.num_levels - 1)
        level = tf.round(tf.cast(x, self.dtype) * last)[..., tf.newaxis]  # [..., 1] against [..., K]
        inverse_scale = tf.math.reciprocal(self._scale)
        above = ((level + 0.5) / last - self._loc) * inverse_scale  # a
        below = ((level - 0.5) / last - self._loc) * inverse_scale  # b
        log_below_upper = tf.math.log_sigmoid(above)  # log P(Y < upper edge)
        log_above_lower = tf.math.log_sigmoid(-below)  # log P(Y > lower edge)
        # log(1 - e^-(a - b)), a - b = 1 / (L s): accurate for tiny and huge s alike (see the module docstring).
        log_width_factor = tf.math.log(-tf.math.expm1(-inverse_scale / last))
        component_log_probs = tf.where(
            level <= 0, log_below_upper,
            tf.where(level >= last, log_above_lower, log_below_upper + log_above_lower + log_width_factor))
        log_weights = tf.math.log_softmax(self._mixture_logits, axis=-1)
        log_probs = tf.reduce_logsumexp(log_weights + component_log_probs, axis=-1)
        outside = (level[..., 0] < 0) | (level[..., 0] > last)
        return tf.where(outside, tf.constant(-np.inf, self.dtype), log_probs)

    def _mean(self):
        scale = self._scale
        upper, lower, width = self._loc / scale, (self._loc - 1.0) / scale, tf.math.reciprocal(scale)  # width = upper - lower
        # softplus(upper) - softplus(lower) cancels for wide components (s > 1, width < 1); there it is
        # log(1 + sigmoid(lower) (e^width - 1)) instead, exactly.
        narrow = width > 1.0
        wide_difference = tf.math.log1p(tf.math.sigmoid(lower) * tf.math.expm1(tf.minimum(width, 1.0)))
        censored = scale * tf.where(narrow, tf.math.softplus(upper) - tf.math.softplus(lower), wide_difference)
        weights = tf.math.softmax(self._mixture_logits, axis=-1)
        return tf.clip_by_value(tf.reduce_sum(weights * censored, axis=-1), 0.0, 1.0)

    def _sample_n(self, n, seed=None):
        component_seed, logistic_seed = tfp.random.split_seed(seed, n=2, salt="DiscretizedLogisticMixture")
        params_shape = tf.broadcast_dynamic_shape(
            tf.shape(self._mixture_logits), tf.broadcast_dynamic_shape(tf.shape(self._loc), tf.shape(self._scale)))
        tiny = np.finfo(self.dtype.as_numpy_dtype).tiny
        # Gumbel-max picks component k with probability softmax(logits)_k.
        uniform = tf.random.stateless_uniform(tf.concat([[n], params_shape], axis=0), component_seed, minval=tiny,
                                              maxval=1.0, dtype=self.dtype)  # [n, ..., K]
        chosen = tf.one_hot(tf.argmax(self._mixture_logits - tf.math.log(-tf.math.log(uniform)), axis=-1),
                            params_shape[-1], dtype=self.dtype)
        loc = tf.reduce_sum(chosen * self._loc, axis=-1)
        scale = tf.reduce_sum(chosen * self._scale, axis=-1)
        uniform = tf.random.stateless_uniform(tf.shape(loc), logistic_seed, minval=tiny, maxval=1.0, dtype=self.dtype)
        continuous = loc + scale * (tf.math.log(uniform) - tf.math.log1p(-uniform))
        last = float(self.num_levels - 1)
        return tf.clip_by_value(tf.round(continuous * last), 0.0, last) / last

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args or not is_init:
            return []
        return [tf.debugging.assert_positive(self._scale, message="`scale` must be positive.")]

    def _sample_control_dependencies(self, x):
        if not self.validate_args:
            return []
        half_level = 0.5 / (self.num_levels - 1)
        return [tf.debugging.assert_greater_equal(x, tf.constant(-half_level, self.dtype),
                                                  message="`x` must lie in [0, 1]."),
                tf.debugging.assert_less_equal(x, tf.constant(1 + half_level, self.dtype),
                                               message="`x` must lie in [0, 1].")]


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class IndependentContinuousBernoulli(_ElementwiseLayer):
    """Continuous Bernoulli likelihood p(x|z) for grey values in [0, 1], one logit per element.

    The Bernoulli likelihood with its missing normalising constant restored
    (Loaiza-Ganem & Cunningham, 2019): a proper density on [0, 1], for grey
    images that `IndependentBernoulli` would treat as probabilities.

    Args:
      event_shape: int or tuple, e.g. `(28, 28, 1)`; () for scalars.
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor (`predict`, a layer stacked on it): "mean" (the default),
        "mode", "sample", "stddev", "variance", or a callable.
      validate_args: check parameters and values at run time (slower).

    Input `[batch, prod(event_shape)]` logits l (any shape with that many
    values per example); output batch shape `[batch]`, event shape
    `event_shape`:

        p(x) = prod_j C(lambda_j) lambda_j^x_j (1 - lambda_j)^(1 - x_j),  lambda_j = sigmoid(l_j),
        C(lambda) = 2 atanh(1 - 2 lambda) / (1 - 2 lambda)   (2 at lambda = 1/2).

    Its mean is lambda / (2 lambda - 1) + 1 / (2 atanh(1 - 2 lambda)), not lambda.

    Example (a decoder for grey 28x28 images):

        decoder = keras.Sequential([keras.Input((16,)), keras.layers.Dense(784),
                                    IndependentContinuousBernoulli((28, 28, 1))])
        log_prob = decoder(np.zeros((2, 16), "float32")).log_prob(np.full((2, 28, 28, 1), 0.3, "float32"))
        assert np.allclose(log_prob, 0, atol=1e-3)  # logits 0: lambda = 1/2, p(x) = 2 (1/2) = 1, uniform on [0, 1]
    """

    @staticmethod
    def new(params, event_shape=(), validate_args=False, name=None):
        """The distribution for logits `params: [batch, prod(event_shape)]`, as TFP's `new`."""
        distribution = independent_continuous_bernoulli(tf.convert_to_tensor(params),
                                                        as_event_shape(event_shape, allow_scalar=True))
        return with_validation(distribution) if validate_args else distribution

    def make_distribution(self, params):
        return independent_continuous_bernoulli(params, self.event_shape)


def _check_num_bits(num_bits):
    if isinstance(num_bits, bool) or not isinstance(num_bits, numbers.Integral) or not 1 <= num_bits <= MAX_NUM_BITS:
        raise ValueError(f"`num_bits` must be an int from 1 to {MAX_NUM_BITS}; received {num_bits!r}.")
    return int(num_bits)


# What a discretized logistic mixture has no closed form for.
_UNSUPPORTED_CONVERSIONS = ("mode", "stddev", "variance")


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DiscretizedLogisticMixture(DistributionLayer):
    """Discretized logistic mixture likelihood p(x|z) for images of 2^num_bits grey levels (PixelCNN++).

    Each sub-pixel (each channel of each pixel, independently) is a mixture
    of `num_components` logistics rounded to the levels j / (2^num_bits - 1)
    in [0, 1], all mass below the first level's bin at level 0 and above the
    last one's at the last level, so `log_prob` is a discrete log-probability
    and NLL / (D ln 2) is bits per dimension. Math, numerics and the mean: the
    module docstring (`tfvae.layers.likelihoods`).

    Args:
      event_shape: int or tuple, e.g. `(28, 28, 1)`; () for scalars.
      num_components: int K >= 1, logistics per sub-pixel.
      num_bits: int b from 1 to 16; 8 for 8-bit images (levels k / 255).
      convert_to_tensor_fn: "mean" (the default, E[clip(Y, 0, 1)]),
        "sample" (levels), or a callable; not "mode", "stddev" or
        "variance", which this distribution does not have.
      validate_args: check parameters and values at run time (slower).
      scale_floor: float > 0 added to every scale s = softplus(r) + floor, in
        units of x. 1e-4 is a twentieth of the half-width of an 8-bit level,
        where one component can put all but 1e-8 of its mass on one level;
        PixelCNN++'s floor (log s >= -7 on [-1, 1]) allows 0.97 of it.

    Input `[batch, 3 K prod(event_shape)]`, read as `[batch, 3, K,
    *event_shape]`: mixture logits, locations mu (unconstrained, so
    components can sit beyond 0 or 1) and raw scales r. Output batch shape
    `[batch]`, event shape `event_shape`.

    Example (a decoder for 8-bit grey 28x28 images):

        likelihood = DiscretizedLogisticMixture((28, 28, 1), num_components=5)
        decoder = keras.Sequential([keras.Input((16,)), keras.layers.Dense(likelihood.num_params), likelihood])
        x = np.round(np.random.uniform(size=(2, 28, 28, 1)) * 255) / 255
        log_prob = decoder(np.zeros((2, 16), "float32")).log_prob(x)  # log-probabilities of the levels
        assert log_prob.shape == (2,) and np.all(log_prob < 0)
    """

    def __init__(self, event_shape, num_components=5, num_bits=8, convert_to_tensor_fn="mean", validate_args=False,
                 scale_floor=1e-4, **kwargs):
        super().__init__(convert_to_tensor_fn=convert_to_tensor_fn, validate_args=validate_args, **kwargs)
        unsupported = [name for name in _UNSUPPORTED_CONVERSIONS if self.convert_to_tensor_fn is CONVERSIONS[name]]
        if unsupported:
            raise ValueError(
                f"`convert_to_tensor_fn` of DiscretizedLogisticMixture cannot be {unsupported[0]!r}: the "
                "distribution has no closed-form mode, variance or standard deviation; use 'mean' or 'sample'. "
                f"Received {unsupported[0]!r}."
            )
        self.event_shape = as_event_shape(event_shape, allow_scalar=True)
        self.num_components = check_positive_int("num_components", num_components)
        self.num_bits = _check_num_bits(num_bits)
        self.scale_floor = check_scale_floor(scale_floor)

    @staticmethod
    def params_size(event_shape=(), num_components=5, name=None):
        """Parameters per example: 3 K prod(event_shape) (a logit, a location and a raw scale per component)."""
        num_components = check_positive_int("num_components", num_components)
        return 3 * num_components * math.prod(as_event_shape(event_shape, allow_scalar=True))

    @property
    def num_params(self):
        return self.params_size(self.event_shape, self.num_components)

    @staticmethod
    def new(params, event_shape=(), num_components=5, num_bits=8, validate_args=False, name=None, scale_floor=1e-4):
        """The distribution for `params: [batch, params_size(event_shape, num_components)]`, as TFP's `new`."""
        distribution = discretized_logistic_mixture(
            tf.convert_to_tensor(params), as_event_shape(event_shape, allow_scalar=True),
            check_positive_int("num_components", num_components), _check_num_bits(num_bits), check_scale_floor(scale_floor))
        return with_validation(distribution) if validate_args else distribution

    def make_distribution(self, params):
        return discretized_logistic_mixture(params, self.event_shape, self.num_components, self.num_bits, self.scale_floor)

    def get_config(self):
        return {
            **super().get_config(),
            "event_shape": list(self.event_shape),
            "num_components": self.num_components,
            "num_bits": self.num_bits,
            "scale_floor": self.scale_floor,
        }
