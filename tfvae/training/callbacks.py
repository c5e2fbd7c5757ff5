"""Checkpoints every N steps, after each epoch and on Ctrl-C, where a run is, and its best epoch."""

import logging
import math
import os
import pathlib
import signal
import threading

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)


def checkpoint_write_error(manager, epoch, step, error):
    """An OSError saying that the checkpoint to resume at (`epoch`, `step`) could not be written, and what was kept.

    Removes the failed checkpoint's partial files; `tf.train.CheckpointManager`
    records a checkpoint (in the atomically written `checkpoint` file) only
    after its files are complete, so the previous one stays the latest.
    """
    directory = pathlib.Path(manager.directory)
    kept = {pathlib.Path(prefix).name for prefix in manager.checkpoints}
    for partial in directory.glob("ckpt-*"):
        if partial.name.split(".")[0].split("_temp")[0] not in kept:
            (tf.io.gfile.rmtree if partial.is_dir() else tf.io.gfile.remove)(str(partial))
    reason = getattr(error, "strerror", None) or (str(error).strip().splitlines() or [type(error).__name__])[0]
    previous = (f"the previous checkpoint, {pathlib.Path(manager.latest_checkpoint).name}, is kept"
                if manager.latest_checkpoint else "no earlier checkpoint exists")
    return OSError(
        getattr(error, "errno", None),
        f"Could not write the checkpoint to resume at epoch {epoch + 1}, step {step} in {str(directory)!r} ({reason}); "
        f"{previous}. Free space and continue with resume=True (--resume).",
    )


class TrainingPosition:
    """Where a run is: the epoch and the step within it that run next.

    Held in variables so that `tf.train.Checkpoint` saves it with the model,
    the optimizer and the seed-generator state.
    """

    def __init__(self):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")

    def set(self, epoch, step):
        self.epoch.assign(epoch)
        self.step.assign(step)

    def __iter__(self):
        return iter((int(self.epoch), int(self.step)))


class CheckpointAndInterrupt(keras.callbacks.Callback):
    """Checkpoints every `every_steps` steps and after each epoch; Ctrl-C and SIGTERM stop cleanly.

    On SIGINT (Ctrl-C) or SIGTERM (what a cluster scheduler or `kill`
    sends), training stops at the end of the current execution (the
    `steps_per_execution` steps that Keras runs in one call) and a checkpoint
    of the step it stopped at is saved, so that a resumed run continues
    exactly there; `interrupted_by` names the signal. `every_steps` must be a
    multiple of `steps_per_execution`.

    Under multi-worker training (`cluster_resolver` given) one worker's
    SIGTERM must stop every worker at the same step, or the others would
    wait in a collective for a worker that is gone. TensorFlow's
    `tf.distribute.experimental.PreemptionCheckpointHandler` does that: it
    catches SIGTERM, agrees a step with the other workers through the
    coordination service, and there every worker saves (our checkpoint,
    through its `save_fn`) and stops (its `exit_fn`: here the end of `fit`,
    not of the process). Each then reports SIGTERM as its interruption.
    (On a Google Cloud CPU VM TensorFlow's handler does nothing, and SIGTERM
    ends the process as by default.)

    Keras still ends the interrupted epoch (validation, `on_epoch_end`), but
    it is not counted as finished. An epoch whose logs are not finite is not
    saved, nor is a step after which training was stopped for a non-finite
    loss: the last good checkpoint stays.

    The handlers are installed when training begins and the previous ones
    restored when it ends; call `restore_interrupt_handler()` in a `finally`
    too, because Keras skips `on_train_end` when `fit` raises.
    """

    def __init__(self, manager, position, every_steps=None, steps_per_epoch=None, cluster_resolver=None):
        super().__init__()
        self.signals = (signal.SIGINT,) if cluster_resolver else (signal.SIGINT, signal.SIGTERM)
        self.interrupted_by = None  # the signal that stopped training, a `signal.Signals`
        self.manager = manager
        self.position = position
        self.every_steps = every_steps
        self.steps_per_epoch = steps_per_epoch
        self.cluster_resolver = cluster_resolver
        self.first_step = 0  # the step of its epoch that the current `fit` starts at
        self._epoch = 0
        self._steps_done = 0  # steps of the current epoch done, counting from its start
        self._previous_handlers = {}
        self._preemption = None  # the multi-worker run's PreemptionCheckpointHandler, made once
        self._preemption_sigterm_handler = None
        self._preempted = False

    def on_train_begin(self, logs=None):
        if threading.current_thread() is not threading.main_thread():
            return  # Python lets only the main thread set signal handlers
        self._previous_handlers = {number: signal.signal(number, self._handle_interrupt) for number in self.signals}
        if self.cluster_resolver is not None:
            self._previous_handlers[signal.SIGTERM] = signal.getsignal(signal.SIGTERM)
            if self._preemption is None:
                self._preemption = self._preemption_handler()
                self._preemption_sigterm_handler = signal.getsignal(signal.SIGTERM)  # the one it installed
            signal.signal(signal.SIGTERM, self._preemption_sigterm_handler)

    def _preemption_handler(self):
        """TensorFlow's handler, saving our checkpoint at the agreed step and then stopping `fit`.

        It must be given a checkpoint (manager), which it restores at once and
        to which it adds its own step counter; ours is already restored and
        saved by `save_fn`, so it gets an empty checkpoint in a directory that
        is never written, and its counter starts at 0 in every process alike.
        """
        unused = tf.train.CheckpointManager(tf.train.Checkpoint(), os.path.join(self.manager.directory, "preemption"),
                                            max_to_keep=1)
        return tf.distribute.experimental.PreemptionCheckpointHandler(
            self.cluster_resolver, unused,
            termination_config=tf.distribute.experimental.TerminationConfig(
                exit_fn=self._stop_for_preemption, save_fn=lambda: self._save(self._epoch, self._steps_done)),
        )

    def _stop_for_preemption(self):
        self._preempted = True
        self.interrupted_by = signal.SIGTERM
        self.model.stop_training = True
        logger.warning("A worker received SIGTERM: stopped at epoch %d, step %d, where every worker saved a checkpoint.",
                       self._epoch + 1, self._steps_done)

    @property
    def interrupted(self):
        """Whether a signal asked training to stop."""
        return self.interrupted_by is not None

    def _handle_interrupt(self, signum, frame):
        self.interrupted_by = signal.Signals(signum)
        logger.warning("Interrupted (%s): stopping at the end of this step and saving a checkpoint.", self.interrupted_by.name)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._steps_done = self.first_step

    def on_train_batch_end(self, batch, logs=None):
        # Keras names the last step of the execution; the epoch's last one may be shorter.
        self._steps_done = self.first_step + batch + 1
        if self.steps_per_epoch:
            self._steps_done = min(self._steps_done, self.steps_per_epoch)
        if self._preemption is not None and not self.interrupted:
            self._preemption.save_checkpoint_if_preempted()  # at the agreed step: saves, then `_stop_for_preemption`
        if self.interrupted and not self._preempted:  # a preemption has saved and stopped already
            self.model.stop_training = True
            self._save(self._epoch, self._steps_done)
        elif self.every_steps and self._steps_done % self.every_steps == 0:
            self._save(self._epoch, self._steps_done)

    def on_epoch_end(self, epoch, logs=None):
        self.first_step = 0
        if self.interrupted or not all(math.isfinite(float(value)) for value in (logs or {}).values()):
            return
        self._save(epoch + 1, 0)

    def _save(self, epoch, step):
        if self.model.stop_training and not self.interrupted:
            return  # stopped for a non-finite loss: keep the last good checkpoint
        if self.steps_per_epoch and step >= self.steps_per_epoch:
            epoch, step = epoch + 1, 0  # the epoch's last step: resume at the next epoch
        self.position.set(epoch, step)
        try:
            self.manager.save()
        except (OSError, tf.errors.OpError) as error:
            raise checkpoint_write_error(self.manager, epoch, step, error) from error

    def on_train_end(self, logs=None):
        self.restore_interrupt_handler()

    def restore_interrupt_handler(self):
        """Puts back the SIGINT (and SIGTERM) handlers that were there before training began."""
        for number, handler in self._previous_handlers.items():
            signal.signal(number, handler)
        self._previous_handlers = {}


class KeepBestValidation(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best validation ELBO; stops after `patience` epochs without a better one.

    Early stopping as Tomczak & Welling (2018) train (patience 50), made
    resumable: the best value and its epoch are variables that the run's
    checkpoint saves, and the best weights go to `path` (`*.weights.h5`),
    written to a temporary file and renamed, so that a failure while writing
    leaves the previous best intact. Each process also keeps them in memory,
    for `restore_best` at the end of training. With `write=False` (the
    non-chief workers of a multi-worker run) nothing is written.

    Must come before the checkpointing callback, so that an epoch's
    checkpoint holds that epoch's verdict.
    """

    def __init__(self, path, patience, write=True):
        super().__init__()
        self.path = pathlib.Path(path)
        self.patience = patience
        self.write = write
        self.best_elbo = tf.Variable(-math.inf, dtype=tf.float64, trainable=False, name="best_validation_elbo")
        self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_epoch")
        self.stopped_epoch = None  # the 0-based epoch after which training stopped early
        self._best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        if "val_elbo" not in (logs or {}):
            raise ValueError("Early stopping needs the validation ELBO (`val_elbo`): pass validation data to fit.")
        value = float(logs["val_elbo"])
        if not math.isfinite(value) or self.model.stop_training:
            return  # a non-finite loss stops training on its own
        if value > float(self.best_elbo):
            self.best_elbo.assign(value)
            self.best_epoch.assign(epoch)
            self._best_weights = self.model.get_weights()
            if self.write:
                partial = self.path.with_name(f".partial-{self.path.name}")
                partial.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self.model.save_weights(partial)
                    os.replace(partial, self.path)
                except OSError as error:
                    partial.unlink(missing_ok=True)
                    kept = "the previous best weights are kept" if self.path.exists() else "none were written before"
                    raise OSError(error.errno, f"Could not write the best weights (epoch {epoch + 1}) to {str(self.path)!r} "
                                               f"({error.strerror or error}); {kept}. Free space and continue with "
                                               "resume=True (--resume).") from error
        elif epoch - int(self.best_epoch) >= self.patience:
            logger.info("No better validation ELBO for %d epochs: stopping after epoch %d; keeping epoch %d's weights.",
                        self.patience, epoch + 1, int(self.best_epoch) + 1)
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def restore_best(self):
        """Puts the best epoch's weights back into the model (from memory, or from `path` after a resume)."""
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)
        elif int(self.best_epoch) >= 0:
            self.model.load_weights(self.path)
