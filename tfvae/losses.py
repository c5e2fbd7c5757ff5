"""Losses for Keras models whose output is a `tfd.Distribution`."""

import keras
import tensorflow as tf

from tfvae.layers import SERIALIZATION_PACKAGE

_REDUCTIONS = ("sum_over_batch_size", "sum", "none", None)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class NegativeLogLikelihood(keras.losses.Loss):
    """-log p(y | x), where the model's prediction is the distribution p(.|x).

    Use it with any Keras model ending in a tfvae distribution layer:

        model.compile(optimizer="adam", loss=tfvae.losses.NegativeLogLikelihood())

    `y_true: [batch, *event_shape]`; `y_pred`: a distribution with batch shape
    `[batch]`. Returns the mean over the batch (`"sum_over_batch_size"`), the
    sum (`"sum"`) or the per-example values `[batch]` (`"none"`), in nats.

    It overrides `__call__` because `keras.losses.Loss.__call__` would first
    convert the distribution to a tensor. Keras' trainer divides the result by
    the number of replicas under `tf.distribute`, as for its own losses.
    """

    def __init__(self, reduction="sum_over_batch_size", name="negative_log_likelihood", dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"`reduction` must be one of {_REDUCTIONS}; received {reduction!r}.")
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        """Per-example negative log-likelihood, `[batch]`."""
        event_rank = len(y_pred.event_shape)
        y_true = tf.cast(y_true, y_pred.dtype)
        if y_true.shape.rank is not None and y_true.shape.rank < 1 + event_rank:
            raise ValueError(
                f"`y_true` must have shape [batch, *event_shape] with event_shape "
                f"{y_pred.event_shape}; received shape {y_true.shape}."
            )
        return -y_pred.log_prob(y_true)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            losses = self.call(y_true, y_pred)
            if sample_weight is not None:
                sample_weight = tf.cast(sample_weight, losses.dtype)
                losses = losses * tf.reshape(sample_weight, tf.shape(losses))
            if self.reduction in ("none", None):
                return losses
            total = tf.reduce_sum(losses)
            if self.reduction == "sum":
                return total
            return total / tf.cast(tf.size(losses), losses.dtype)
