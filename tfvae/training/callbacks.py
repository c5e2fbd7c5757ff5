"""Checkpoints every N steps, after each epoch and on Ctrl-C, and where a run is."""

import logging
import math
import signal
import threading

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)


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
    """Checkpoints every `every_steps` steps and after each epoch; Ctrl-C stops cleanly.

    On SIGINT, training stops at the end of the current execution (the
    `steps_per_execution` steps that Keras runs in one call) and a checkpoint
    of the step it stopped at is saved, so that a resumed run continues
    exactly there. `every_steps` must be a multiple of `steps_per_execution`.
    Keras still ends the interrupted epoch (validation, `on_epoch_end`), but
    it is not counted as finished. An epoch whose logs are not finite is not
    saved, nor is a step after which training was stopped for a non-finite
    loss: the last good checkpoint stays.

    The SIGINT handler is installed when training begins and the previous one
    restored when it ends; call `restore_interrupt_handler()` in a `finally`
    too, because Keras skips `on_train_end` when `fit` raises.
    """

    def __init__(self, manager, position, every_steps=None, steps_per_epoch=None):
        super().__init__()
        self.manager = manager
        self.position = position
        self.every_steps = every_steps
        self.steps_per_epoch = steps_per_epoch
        self.interrupted = False
        self.first_step = 0  # the step of its epoch that the current `fit` starts at
        self._epoch = 0
        self._steps_done = 0  # steps of the current epoch done, counting from its start
        self._previous_handler = None

    def on_train_begin(self, logs=None):
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._handle_interrupt)

    def _handle_interrupt(self, signum, frame):
        self.interrupted = True
        logger.warning("Interrupted: stopping at the end of this step and saving a checkpoint.")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._steps_done = self.first_step

    def on_train_batch_end(self, batch, logs=None):
        # Keras names the last step of the execution; the epoch's last one may be shorter.
        self._steps_done = self.first_step + batch + 1
        if self.steps_per_epoch:
            self._steps_done = min(self._steps_done, self.steps_per_epoch)
        if self.interrupted:
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
        self.manager.save()

    def on_train_end(self, logs=None):
        self.restore_interrupt_handler()

    def restore_interrupt_handler(self):
        """Puts back the SIGINT handler that was there before training began."""
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None
