"""Stopping training at the first non-finite loss: the in-graph record, the callback, the error.

`VAE.train_step` records the optimizer step of the first NaN or infinite loss
in `FirstNonFiniteStep` and from then on leaves the weights unchanged;
`StopOnNonFiniteLoss` (which `VAE.fit` puts first among the callbacks) stops
training after that execution, and `VAE.fit` raises `NonFiniteLossError`.
"""

import keras
import tensorflow as tf

from tfvae import _backend  # noqa: F401  (selects the TensorFlow backend)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss and stopped."""


class FirstNonFiniteStep(keras.metrics.Metric):
    """The optimizer step of the first non-finite loss since the last reset, or -1.

    Not logged: `VAE` reads it to skip every update from that step on and to
    name the step in its error.
    """

    def __init__(self, name="first_non_finite_step", dtype="int64"):
        super().__init__(name=name, dtype=dtype)
        self.step = self.add_variable(
            shape=(), initializer=keras.initializers.Constant(-1), dtype=dtype, name="step",
            aggregation="only_first_replica",
        )

    def update_state(self, finite, step):
        """Records `step` if `finite` is False and no step is recorded yet."""
        record = tf.logical_and(self.step < 0, tf.logical_not(finite))
        self.step.assign(tf.where(record, tf.cast(step, self.dtype), self.step))

    @property
    def clean(self):
        """True while no non-finite step has been recorded (a bool tensor)."""
        return self.step < 0

    def reset_state(self):
        self.step.assign(-1)

    def result(self):
        return tf.convert_to_tensor(self.step)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `VAE.fit` after the first step whose loss is NaN or infinite.

    The step itself, and every later step of the same execution, leave the
    weights unchanged (`VAE.train_step`), so they are those of the last finite
    step.
    Remembers where it stopped and the last finite logs for the error that
    `VAE.fit` raises.
    """

    def __init__(self, guard):
        super().__init__()
        self.guard = guard
        self.failure = None
        self._last_finite = {}
        self._epoch = 0
        self._epoch_first_iteration = 0

    def on_train_begin(self, logs=None):
        self.guard.reset_state()
        self.failure = None
        self._last_finite = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_first_iteration = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        if bool(self.guard.clean):
            self._last_finite = dict(logs or {})
            return
        failed_iteration = int(self.guard.step.numpy())
        values = {name: float(value) for name, value in (logs or {}).items()}
        self.failure = (
            f"Non-finite loss at epoch {self._epoch + 1}, step {failed_iteration - self._epoch_first_iteration + 1} "
            f"(optimizer step {failed_iteration + 1}): {_format_logs(values)}. "
            f"Last finite values: {_format_logs(self._last_finite) or 'none'}. "
            "The weights are those of the last finite step."
        )
        self.model.stop_training = True


def record_non_finite_step(model, loss):
    """Records this step in `model.non_finite_guard` if `loss` is not finite; returns whether it may update.

    The returned bool tensor is False from the first non-finite step on. Every
    replica must agree, so the local verdicts are summed across replicas.
    """
    non_finite = tf.cast(tf.logical_not(tf.math.is_finite(loss)), tf.int32)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        non_finite = context.all_reduce(tf.distribute.ReduceOp.SUM, non_finite)
    finite = tf.equal(non_finite, 0)
    model.non_finite_guard.update_state(finite, model.optimizer.iterations)
    return tf.logical_and(finite, model.non_finite_guard.clean)


def apply_gradients_while_finite(model, gradients, apply_now):
    """Applies `gradients` to `model` where `apply_now` (see `record_non_finite_step`), else keeps its weights.

    On one device such a step still runs the optimizer, on zero gradients,
    and then puts the weights back: the weights stay those of the last
    finite step, while the optimizer's step count and moments move on as
    for a zero gradient. Under strategies that synchronise
    `apply_gradients` with a merge call (MirroredStrategy), the branch is
    taken in the cross-replica context, as Keras' LossScaleOptimizer does.
    """
    variables = model.trainable_variables

    def apply():
        model.optimizer.apply_gradients(zip(gradients, variables))

    if not tf.distribute.has_strategy():
        # One device: zero the gradients of a step that must not count (so
        # that the optimizer's moments stay finite), apply, and put the
        # weights back. Under XLA the selections fuse into the backward pass
        # and the update; a tf.cond around the update cost more.
        gradients = [tf.where(apply_now, gradient, tf.zeros_like(gradient)) for gradient in gradients]
        before = [tf.identity(variable.value) for variable in variables]
        apply()
        for variable, value in zip(variables, before):
            variable.assign(tf.where(apply_now, variable.value, value))
        return

    # `tf.__internal__` API, used here only, as Keras' LossScaleOptimizer
    # uses it (tests/test_model.py checks that it exists).
    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(apply_now, apply, lambda: None)
        return

    if model.steps_per_execution > 1:
        # A merge call inside the loop of several steps fails with "You
        # must feed a value for placeholder tensor 'while/cond/...'".
        raise ValueError(
            f"Under {type(tf.distribute.get_strategy()).__name__}, a VAE with stop_on_non_finite=True trains "
            f"one step per execution; compile with steps_per_execution=1 (received {model.steps_per_execution}), "
            "or build the VAE with stop_on_non_finite=False."
        )

    def apply_in_cross_replica_context(strategy, gradients, apply_now):
        def apply_on_each_replica():
            strategy.extended.call_for_each_replica(
                lambda gradients: model.optimizer.apply_gradients(zip(gradients, variables)), args=(gradients,)
            )

        tf.cond(strategy.experimental_local_results(apply_now)[0], apply_on_each_replica, lambda: None)

    tf.distribute.get_replica_context().merge_call(apply_in_cross_replica_context, args=(gradients, apply_now))


def _format_logs(logs):
    return ", ".join(f"{name}={float(value):.4g}" for name, value in sorted(logs.items()))
