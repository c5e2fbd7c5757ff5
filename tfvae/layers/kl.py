"""KL-divergence penalties on a layer's distribution: TFP's `KLDivergenceRegularizer` and `KLDivergenceAddLoss`.

Both add to the model's losses the penalty

    penalty(a) = sum_batch weight * KL[a || b]

where `a` is the distribution a layer returns (batch shape `[batch]`) and `b`
is `distribution_b`, the prior (batch shape `[]`, broadcast over the batch).
The KL is exact, `tfd.kl_divergence(a, b)`, with `use_exact_kl=True`, else the
Monte Carlo estimate at test points z ~ a,

    KL[a || b] ~= mean_{test_points_reduce_axis} (log a(z) - log b(z)),   z = test_points_fn(a),

unbiased because E_{z ~ a}[log a(z) - log b(z)] = KL[a || b]. As an
`activity_regularizer` the penalty is divided by the batch size (Keras' rule
for activity regularizers, which tfvae's distribution layers follow), so
`model.fit` minimizes `NLL + weight * mean_batch KL`, the negative ELBO per
example with `weight=1`; `KLDivergenceAddLoss` adds it undivided. Both as in
`tfp.layers`, including TFP's reduction defaults: the regularizer reduces over
no axis of the test points (`()`), the layer over all of them (`None`, the
mean over the samples *and* the batch), so the layer's Monte Carlo penalty is
a batch mean where its exact penalty is a batch sum.

Test points. TFP's default `test_points_fn` is `tf.convert_to_tensor`, the
layer's conversion, which in `tfp.layers` is a sample. A tfvae layer converts
to its *mean* by default, and log a(mean) - log b(mean) is no estimate of the
KL (for a = N(mu, s^2), b = N(0, 1) it lacks the terms in s). So tfvae's
default, `sampled_test_points`, is the layer's conversion when that draws
samples (`convert_to_tensor_fn="sample"`, or a callable of the user's, e.g.
`lambda d: d.sample(100)`, presumed to sample as TFP presumes), so that the
KL is estimated at the very z the next layers see, as in TFP, and a fresh
draw `a.sample()` when the conversion is deterministic ("mean", "mode",
"stddev", "variance") or `a` does not convert.

What `distribution_b` may be, and how it is saved: `tfvae.layers.kl_prior`.
"""

import math
import numbers

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.conversion import CONVERSIONS, TensorCoercible, is_registered
from tfvae.layers.distribution import SERIALIZATION_PACKAGE
from tfvae.layers.kl_prior import check_no_untracked_variables, distribution_of, resolve_distribution_b, serialize_distribution_b

tfd = tfp.distributions

_DETERMINISTIC_CONVERSIONS = {CONVERSIONS[name] for name in ("mean", "mode", "stddev", "variance")}


def sampled_test_points(distribution):
    """Test points z ~ `distribution` for the Monte Carlo KL: `[*sample_shape, batch, *event_shape]`.

    The distribution's conversion `tf.convert_to_tensor(distribution)` when
    its layer converts by sampling ("sample" or a callable of the user's,
    presumed to sample, e.g. `lambda d: d.sample(100)` with
    `test_points_reduce_axis=0`): the same draw the next layers read. Else
    (conversion "mean", "mode", "stddev", "variance", or a distribution that
    does not convert) one fresh draw `distribution.sample()`, seeded by TF's
    global seed (`keras.utils.set_random_seed`).
    """
    conversion = getattr(type(distribution), "convert_to_tensor_fn", None)
    if isinstance(distribution, TensorCoercible) and conversion not in _DETERMINISTIC_CONVERSIONS:
        return tf.convert_to_tensor(distribution)
    return distribution.sample()


# The test-point functions known by name. "convert_to_tensor" is TFP's
# default, right only where the layer converts by sampling.
TEST_POINTS = {
    "sampled": sampled_test_points,
    "sample": tfd.Distribution.sample,
    "convert_to_tensor": tf.convert_to_tensor,
}
_TEST_POINTS_NAMES = {function: name for name, function in TEST_POINTS.items()}

def kl_divergence_penalty(distribution_a, distribution_b, use_exact_kl=False, test_points_reduce_axis=(),
                          test_points_fn=sampled_test_points, weight=None):
    """`sum(weight * KL[a || b])`, a scalar: TFP's `_make_kl_divergence_fn(...)(a)` as a function.

    Args:
      distribution_a: a distribution with batch shape `[batch]`.
      distribution_b: a distribution whose batch shape broadcasts against it
        (usually `[]`).
      use_exact_kl: `tfd.kl_divergence(a, b)` (`[batch]`) if True, else the
        Monte Carlo estimate `reduce_mean(log a(z) - log b(z),
        axis=test_points_reduce_axis)`, z = `test_points_fn(a)`
        (`[*sample_shape, batch, *event_shape]`).
      test_points_reduce_axis: the axes of `log a(z) - log b(z)` to average
        (`[*sample_shape, batch]`): `()` none, None all, an int or a tuple.
      test_points_fn: `distribution -> z`.
      weight: None or a number multiplying the KL.

    Raises:
      ValueError: `use_exact_kl=True` and TFP has no closed-form KL between
        the two families.
    """
    with tf.name_scope("kldivergence_loss"):
        if use_exact_kl:
            try:
                kl = tfd.kl_divergence(distribution_a, distribution_b)
            except NotImplementedError as error:
                raise ValueError(
                    f"`use_exact_kl=True` needs a closed-form KL[{_family_name(distribution_a)} || "
                    f"{_family_name(distribution_b)}], and TFP registers none ({error}); pass use_exact_kl=False "
                    "for the Monte Carlo estimate."
                ) from error
        else:
            test_points = test_points_fn(distribution_a)
            kl = tf.reduce_mean(distribution_a.log_prob(test_points) - distribution_b.log_prob(test_points),
                                axis=test_points_reduce_axis)
        if weight is not None:
            kl = tf.cast(weight, kl.dtype) * kl
        # A scalar, as Keras' added losses are: the sum over the batch (and any axis left).
        return tf.reduce_sum(kl, name="batch_total_kl_divergence")


def _family_name(distribution):
    """The TFP class of `distribution`, without tfvae's conversion subclasses."""
    for cls in type(distribution).__mro__:
        if not issubclass(cls, TensorCoercible):
            return cls.__name__
    return type(distribution).__name__


class _Arguments:
    """TFP's arguments of both classes, checked, resolved and serialized once."""

    def __init__(self, distribution_b, use_exact_kl, test_points_reduce_axis, test_points_fn, weight):
        self.distribution_b = resolve_distribution_b(distribution_b)
        if not isinstance(use_exact_kl, bool):
            raise TypeError(f"`use_exact_kl` must be a bool; received {use_exact_kl!r}.")
        self.use_exact_kl = use_exact_kl
        self.test_points_reduce_axis = _check_reduce_axis(test_points_reduce_axis)
        self.test_points_fn = _resolve_test_points_fn(test_points_fn)
        self.weight = _check_weight(weight)

    def prior(self):
        """`b`, the distribution `distribution_b` stands for."""
        return distribution_of(self.distribution_b)

    def penalty(self, distribution_a):
        if not isinstance(distribution_a, tfd.Distribution):
            raise TypeError(
                f"A KL-divergence penalty needs the distribution a layer returns; received {type(distribution_a).__name__}."
            )
        return kl_divergence_penalty(distribution_a, self.prior(), self.use_exact_kl, self.test_points_reduce_axis,
                                     self.test_points_fn, self.weight)

    def get_config(self):
        axis = self.test_points_reduce_axis
        return {
            "distribution_b": serialize_distribution_b(self.distribution_b),
            "use_exact_kl": self.use_exact_kl,
            "test_points_reduce_axis": list(axis) if isinstance(axis, tuple) else axis,
            "test_points_fn": _serialize_test_points_fn(self.test_points_fn),
            "weight": self.weight,
        }


def _check_reduce_axis(axis):
    """`axis` as None, an int or a tuple of ints, or TypeError."""
    def is_int(value):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if axis is None or is_int(axis):
        return None if axis is None else int(axis)
    if isinstance(axis, (tuple, list)) and all(is_int(a) for a in axis):
        return tuple(int(a) for a in axis)
    raise TypeError(
        f"`test_points_reduce_axis` must be None (all axes), an int or a tuple of ints (() for none); received {axis!r}."
    )


def _check_weight(weight):
    """`weight` as None or a float >= 0, or TypeError / ValueError."""
    if weight is None:
        return None
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        hint = (" (TFP took a tf.Variable; Keras 3 would neither track nor save one held here)"
                if isinstance(weight, (tf.Variable, keras.Variable)) else "")
        raise TypeError(
            f"`weight` must be None or a finite number >= 0; received {weight!r} of type {type(weight).__name__}{hint}."
        )
    if not 0 <= weight < math.inf:
        raise ValueError(f"`weight` must be None or a finite number >= 0; received {weight!r}.")
    return float(weight)


def _resolve_test_points_fn(test_points_fn):
    if isinstance(test_points_fn, str):
        if test_points_fn not in TEST_POINTS:
            raise ValueError(f"`test_points_fn` must be one of {sorted(TEST_POINTS)} or a callable; received {test_points_fn!r}.")
        return TEST_POINTS[test_points_fn]
    if isinstance(test_points_fn, dict):
        test_points_fn = keras.saving.deserialize_keras_object(test_points_fn)
    if not callable(test_points_fn):
        raise TypeError(
            f"`test_points_fn` must be one of {sorted(TEST_POINTS)} or a callable taking a distribution; received {test_points_fn!r}."
        )
    return test_points_fn


def _serialize_test_points_fn(function):
    if function in _TEST_POINTS_NAMES:
        return _TEST_POINTS_NAMES[function]
    if is_registered(function):
        return keras.saving.serialize_keras_object(function)
    raise ValueError(
        f"`test_points_fn`={function!r} cannot be saved: use one of {sorted(TEST_POINTS)}, or a function registered "
        "with @keras.saving.register_keras_serializable()."
    )


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class KLDivergenceRegularizer(keras.regularizers.Regularizer):
    """Activity regularizer of a distribution layer: `weight * KL[a || b]` per example, added to the loss.

    The Keras 3 counterpart of `tfp.layers.KLDivergenceRegularizer`. Given to
    a tfvae distribution layer as `activity_regularizer`, it returns for the
    layer's distribution `a` (batch shape `[batch]`)

        penalty(a) = sum_batch weight * KL[a || b]

    (exact with `use_exact_kl=True`, else the Monte Carlo estimate of the
    module docstring), and the layer adds `penalty / batch` to its losses.
    With an encoder's posterior q(z|x) and `weight=1`, `model.fit` with a
    `NegativeLogLikelihood` then minimizes the negative ELBO per example.

    Example (an encoder whose loss includes KL[q(z|x) || N(0, I)]):

        prior = tfvae.priors.StandardNormal(2)
        encoder = keras.Sequential([
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(tfvae.layers.MultivariateNormalTriL.params_size(2)),
            tfvae.layers.MultivariateNormalTriL(
                2, convert_to_tensor_fn="sample",
                activity_regularizer=tfvae.layers.KLDivergenceRegularizer(prior, weight=1.0)),
        ])
        posterior = encoder(np.random.uniform(size=(8, 28, 28, 1)).astype("float32"))  # q(z|x), batch shape [8]
        (kl,) = encoder.losses  # the Monte Carlo KL, averaged over the 8 examples
        assert kl.shape == () and np.isfinite(kl)

    Args:
      distribution_b: the prior `b`: a tfvae prior layer without variables
        (`StandardNormal`), a Keras layer or model without variables returning
        a distribution (called with a dummy scalar 0., as in TFP), a
        `tfd.Distribution` with constant parameters, or a function of no
        arguments returning one. A prior with variables goes to
        `KLDivergenceAddLoss` (see the module docstring); passing one here
        raises a ValueError.
      use_exact_kl: bool, `tfd.kl_divergence(a, b)` if True (a ValueError when
        TFP has no closed form for the pair), else the Monte Carlo estimate.
      test_points_reduce_axis: axes of `log a(z) - log b(z)`, shape
        `[*sample_shape, batch]`, to average in the Monte Carlo estimate:
        `()` none (the default), None all, an int or a tuple. With
        `convert_to_tensor_fn=lambda d: d.sample(n)`, pass 0.
      test_points_fn: `distribution -> z`, or a name in `TEST_POINTS`;
        default "sampled" (`sampled_test_points`: the layer's conversion when
        it samples, else a fresh sample; TFP's `tf.convert_to_tensor` would
        give the mean under tfvae's default conversion).
      weight: None or a finite number >= 0 multiplying the KL, e.g.
        beta of a beta-VAE. (TFP also took a `tf.Variable`; Keras 3 would not
        track it here.)
    """

    def __init__(self, distribution_b, use_exact_kl=False, test_points_reduce_axis=(), test_points_fn="sampled",
                 weight=None):
        self._arguments = _Arguments(distribution_b, use_exact_kl, test_points_reduce_axis, test_points_fn, weight)
        check_no_untracked_variables(self._arguments.distribution_b, "KLDivergenceRegularizer")

    distribution_b = property(lambda self: self._arguments.distribution_b)
    use_exact_kl = property(lambda self: self._arguments.use_exact_kl)
    test_points_reduce_axis = property(lambda self: self._arguments.test_points_reduce_axis)
    test_points_fn = property(lambda self: self._arguments.test_points_fn)
    weight = property(lambda self: self._arguments.weight)

    def __call__(self, distribution_a):
        """The scalar `sum_batch weight * KL[distribution_a || b]`."""
        return self._arguments.penalty(distribution_a)

    def get_config(self):
        return self._arguments.get_config()


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class KLDivergenceAddLoss(keras.layers.Layer):
    """Pass-through layer adding `weight * KL[a || b]`, summed over the batch, to the model's losses.

    The Keras 3 counterpart of `tfp.layers.KLDivergenceAddLoss`: placed after
    a distribution layer, it receives that layer's distribution `a` (batch
    shape `[batch]`), adds

        penalty(a) = sum(weight * KL[a || b])

    with `add_loss` (not divided by the batch size) and returns `a` unchanged
    (symbolically, the same tensor spec as its input). The Monte Carlo
    default averages over all axes of the test points (TFP's `None`), i.e.
    over the batch too; the exact KL is summed over the batch.

    Unlike the regularizer, it may hold a prior with variables (e.g.
    `tfvae.priors.DiagonalNormal`, or a `VariableLayer` model): the prior is
    its sublayer, so the model trains and saves it.

    Example (a learned diagonal prior, the exact KL):

        prior = tfvae.priors.DiagonalNormal(2)  # trainable
        encoder = keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(tfvae.layers.IndependentNormal.params_size(2)),
            tfvae.layers.IndependentNormal(2, convert_to_tensor_fn="sample"),
            tfvae.layers.KLDivergenceAddLoss(prior, use_exact_kl=True, weight=1 / 32),
        ])
        posterior = encoder(np.random.normal(size=(8, 4)).astype("float32"))  # q(z|x), batch shape [8]
        (penalty,) = encoder.losses  # sum over the batch of KL[q || p] / 32
        assert np.isclose(penalty, tfd.kl_divergence(posterior, prior.distribution()).numpy().sum() / 32)
        assert len(encoder.trainable_weights) == 4  # the Dense kernel and bias, the prior's loc and raw scale

    Args:
      distribution_b: the prior `b`: a tfvae prior layer, a Keras layer or
        model returning a distribution (called with a dummy scalar 0.), a
        `tfd.Distribution` with constant parameters, or a function of no
        arguments returning one.
      use_exact_kl, test_points_fn, weight: as for `KLDivergenceRegularizer`.
      test_points_reduce_axis: as for `KLDivergenceRegularizer`; default
        None (the mean over every axis), as in TFP.
      **kwargs: `keras.layers.Layer`'s, e.g. `name`.
    """

    def __init__(self, distribution_b, use_exact_kl=False, test_points_reduce_axis=None, test_points_fn="sampled",
                 weight=None, **kwargs):
        super().__init__(**kwargs)
        arguments = _Arguments(distribution_b, use_exact_kl, test_points_reduce_axis, test_points_fn, weight)
        check_no_untracked_variables(arguments.distribution_b, "KLDivergenceAddLoss")
        object.__setattr__(self, "_arguments", arguments)  # plain data, not for Keras' tracker
        # The prior as an attribute of the layer: Keras tracks, trains and saves a layer's variables.
        self.distribution_b = arguments.distribution_b
        self._convert_input_args = False  # the input distribution stays a distribution
        self._allow_non_tensor_positional_args = True
        self.built = True

    use_exact_kl = property(lambda self: self._arguments.use_exact_kl)
    test_points_reduce_axis = property(lambda self: self._arguments.test_points_reduce_axis)
    test_points_fn = property(lambda self: self._arguments.test_points_fn)
    weight = property(lambda self: self._arguments.weight)

    def build(self, input_shape):
        pass

    def call(self, distribution_a):
        self.add_loss(self._arguments.penalty(distribution_a))
        return distribution_a

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype=inputs.dtype)

    def get_config(self):
        return {**super().get_config(), **self._arguments.get_config()}
