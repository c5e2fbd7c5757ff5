"""Losses for Keras models whose output is a `tfd.Distribution`."""

import keras
import tensorflow as tf

from tfvae.layers import SERIALIZATION_PACKAGE

_REDUCTIONS = ("sum_over_batch_size", "sum", "none", None)


def _shape_str(shape):
    shape = tf.TensorShape(shape)
    if shape.rank is None:
        return "<unknown rank>"
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


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
class NegativeLogLikelihood(keras.losses.Loss):
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

    It overrides `__call__` because `keras.losses.Loss.__call__` would first
    convert the distribution to a tensor.
    """

    def __init__(self, reduction="sum_over_batch_size", name="negative_log_likelihood", dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"`reduction` must be one of {_REDUCTIONS}; received {reduction!r}.")
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        """Per-example negative log-likelihood, `[batch]`."""
        y_true = tf.convert_to_tensor(y_true)
        check_target_shape(y_true, y_pred)
        return -y_pred.log_prob(tf.cast(y_true, y_pred.dtype))

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            losses = tf.cast(self.call(y_true, y_pred), self.dtype)
            if sample_weight is not None:
                losses = losses * self._per_example_weights(sample_weight, losses)
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
