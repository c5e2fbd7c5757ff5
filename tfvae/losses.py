"""Losses for Keras models whose output is a `tfd.Distribution`."""

import re

import keras
import tensorflow as tf

from tfvae.layers import SERIALIZATION_PACKAGE
from tfvae.layers.conversion import is_registered
from tfvae.layers.checks import check_real_dtype

_REDUCTIONS = ("sum_over_batch_size", "sum", "none", None)


def _shape_str(shape):
    shape = tf.TensorShape(shape)
    if shape.rank is None:
        return "<unknown rank>"
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def check_finite(value, argument):
    """Raises ValueError naming `argument` if an eager float `value` holds NaN or infinite numbers.

    Only eager values are looked at (a loss called directly, or under
    `run_eagerly=True`): in a compiled step the values are not known before
    the step runs; a NaN loss there is for `keras.callbacks.TerminateOnNaN` to catch.
    """
    if not tf.executing_eagerly() or not value.dtype.is_floating:
        return
    finite = tf.math.is_finite(value)
    if not bool(tf.reduce_all(finite)):
        example = float(tf.boolean_mask(tf.reshape(value, [-1]), ~tf.reshape(finite, [-1]))[0])
        raise ValueError(f"`{argument}` holds NaN or infinite values, e.g. {example}; a loss needs finite numbers.")


def check_target_shape(y_true, distribution, argument="y_true"):
    """Raises ValueError unless `y_true` has shape `batch_shape + event_shape`.

    Compares the static shapes, dimension by dimension where both are known,
    so that a target that would silently broadcast against the distribution
    (e.g. `[64, 3]` against event shape `[1]`) is refused before any work. A
    distribution with event shape `[]` takes targets `[batch]`.
    """
    expected = distribution.batch_shape.concatenate(distribution.event_shape)
    received = tf.TensorShape(y_true.shape)
    if expected.rank is None or received.rank is None:
        return
    if not expected.is_compatible_with(received):
        raise ValueError(
            f"`{argument}` must have shape [batch, *event_shape] = {_shape_str(expected)} "
            f"(batch shape {_shape_str(distribution.batch_shape)}, event shape "
            f"{_shape_str(distribution.event_shape)}) to match the predicted distribution; "
            f"received shape {_shape_str(received)}."
        )


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DistributionLoss(keras.losses.Loss):
    """A Keras loss `fn(y_true, distribution)` that receives the predicted distribution itself.

    Keras 3 converts `y_pred` to a tensor before a plain loss function sees
    it, so `tfp.layers`' idiom `loss=lambda y, rv_y: -rv_y.log_prob(y)` would
    receive the distribution's conversion, not the distribution. Wrap the
    function instead:

        def negloglik(y, rv_y):
            return -rv_y.log_prob(y)

        model.compile(optimizer="adam", loss=tfvae.losses.DistributionLoss(negloglik))

    `fn` returns one value per example, `[batch]`; the reductions and
    `sample_weight` are those of `NegativeLogLikelihood`. To save a model
    compiled with it, register `fn` with
    `@keras.saving.register_keras_serializable()`.
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None):
        if isinstance(fn, dict):  # from get_config
            fn = keras.saving.deserialize_keras_object(fn)
        if not callable(fn):
            raise TypeError(f"`fn` must be a callable (y_true, distribution) -> [batch] losses; received {fn!r}.")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"`reduction` must be one of {_REDUCTIONS}; received {reduction!r}.")
        function_name = getattr(fn, "__name__", "")
        default_name = function_name if re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.\-]*", function_name) else "distribution_loss"
        super().__init__(name=name or default_name, reduction=reduction, dtype=dtype)
        self.fn = fn

    def call(self, y_true, y_pred):
        """Per-example losses, `[batch]`."""
        return self.fn(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            losses = tf.cast(self.call(y_true, y_pred), self.dtype)
            if sample_weight is not None:
                weights = self._per_example_weights(sample_weight, losses)
                # A weight of 0 leaves an example out, even one whose loss is infinite (0 * inf is NaN).
                losses = tf.where(tf.equal(weights, 0), tf.zeros_like(losses), losses * weights)
            if self.reduction in ("none", None):
                return losses
            total = tf.reduce_sum(losses)
            if self.reduction == "sum":
                return total
            num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
            return tf.math.divide_no_nan(total, tf.cast(tf.size(losses) * num_replicas, losses.dtype))

    @staticmethod
    def _per_example_weights(sample_weight, losses):
        """`sample_weight` as a tensor that multiplies `losses: [batch]`."""
        sample_weight = _as_tensor(sample_weight, "sample_weight")
        check_finite(sample_weight, "sample_weight")
        sample_weight = tf.cast(sample_weight, losses.dtype)
        shape = sample_weight.shape
        if shape.rank is None:
            return tf.reshape(sample_weight, tf.shape(losses))
        if shape.rank == 0:
            return sample_weight
        if shape.rank == 2 and shape[1] == 1:
            sample_weight = sample_weight[:, 0]
        if sample_weight.shape.rank != 1 or not sample_weight.shape.is_compatible_with(losses.shape):
            raise ValueError(
                f"`sample_weight` must be a scalar, [batch] or [batch, 1] with batch "
                f"{losses.shape[0]}; received shape {_shape_str(shape)}."
            )
        return sample_weight

    def get_config(self):
        fn = self.fn
        if not is_registered(fn):
            raise ValueError(
                f"DistributionLoss cannot be saved: its `fn` {fn!r} is not registered; decorate it with "
                "@keras.saving.register_keras_serializable()."
            )
        return {**super().get_config(), "fn": keras.saving.serialize_keras_object(fn)}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class NegativeLogLikelihood(DistributionLoss):
    """-log p(y | x), where the model's prediction is the distribution p(.|x).

    Use it with any Keras model ending in a tfvae distribution layer:

        model.compile(optimizer="adam", loss=tfvae.losses.NegativeLogLikelihood())

    `y_true: [batch, *event_shape]` (exactly: a target that would broadcast is
    refused); `y_pred`: a distribution with batch shape `[batch]`;
    `sample_weight`: None, a scalar, `[batch]` or `[batch, 1]`. With weights
    w_i, the reductions are, like Keras' own losses,

        "sum_over_batch_size":  sum_i w_i * nll_i / batch  (the default)
        "sum":                  sum_i w_i * nll_i
        "none":                 w_i * nll_i, `[batch]`

    in nats. Under `tf.distribute`, "sum_over_batch_size" also divides by the
    number of replicas, as Keras' own losses do, so that the gradients the
    replicas sum are those of the global mean.

    A `DistributionLoss`: Keras' own `Loss.__call__` would first convert the
    distribution to a tensor.
    """

    def __init__(self, reduction="sum_over_batch_size", name="negative_log_likelihood", dtype=None):
        super().__init__(negative_log_likelihood, reduction=reduction, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["fn"]
        return config


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
def negative_log_likelihood(y_true, distribution):
    """Per-example -log p(y_true), `[batch]`, after checking `y_true`'s dtype, values and shape (`check_target_shape`)."""
    y_true = _as_tensor(y_true, "y_true")
    check_finite(y_true, "y_true")
    check_target_shape(y_true, distribution)
    return -distribution.log_prob(tf.cast(y_true, distribution.dtype))


def _as_tensor(value, argument):
    """`value` as a tensor of real numbers, or a TypeError naming `argument`."""
    if not tf.is_tensor(value):
        try:
            value = tf.convert_to_tensor(value)
        except (ValueError, TypeError):
            raise TypeError(f"`{argument}` must be a tensor or array of numbers; received {type(value).__name__}.") from None
    return check_real_dtype(value, argument)
