"""Training runs: a config in, a directory of model, history, logs and figures out.

    config = TrainingConfig(dataset="mnist", arch="mlp", latent_dim=16, epochs=5)
    summary = train(config, "runs/mnist_mlp")

A run directory holds:

    config.json     the TrainingConfig, to rebuild or resume the run
    model.keras     the trained VAE (written when training completes)
    history.csv     per-epoch metrics (Keras CSVLogger)
    logs/           TensorBoard logs
    checkpoints/    model, optimizer, seed state and position while unfinished
    samples.png, reconstructions.png, latent_space.png, loss_curves.png
    metrics.json    test ELBO and its parts, wall time, examples per second

Checkpoints follow every epoch, every `checkpoint_every` steps and Ctrl-C
(SIGINT, which stops training at the end of the current step).
`train(..., resume=True)` restores the latest one and continues from its
exact step: each epoch's batches depend only on the seed and the epoch's
number (`Splits.train_from`), so a run killed right after a checkpoint and
resumed ends with the weights of an uninterrupted run.
"""

import csv
import dataclasses
import itertools
import json
import logging
import math
import os
import pathlib
import shutil
import signal
import tempfile
import threading
import time
from typing import Literal, Optional

import keras
import numpy as np
import tensorflow as tf

from tfvae import architectures, data, plots
from tfvae.model import VAE

logger = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
_MIRRORED_KEY_BASES = itertools.count(start=100_000, step=100_000)

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"
FIGURES = ("samples.png", "reconstructions.png", "latent_space.png", "loss_curves.png")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Everything that defines a training run; validated on construction.

    `max_examples` keeps only the first examples of each split, for smoke runs.
    """

    dataset: str = "mnist"
    binarize: Optional[Literal["dynamic"]] = "dynamic"
    arch: Literal["mlp", "conv"] = "mlp"
    latent_dim: int = 16
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    beta: float = 1.0
    objective: Literal["elbo", "iwae"] = "elbo"
    num_samples: int = 1
    seed: int = 0
    max_examples: Optional[int] = None
    checkpoint_every: Optional[int] = None  # steps; checkpoints also follow each epoch

    def __post_init__(self):
        _check_choice("dataset", self.dataset, data.DATASETS)
        _check_choice("arch", self.arch, architectures.ARCHITECTURES)
        _check_choice("likelihood", self.likelihood, architectures.LIKELIHOODS)
        _check_choice("binarize", self.binarize, data.BINARIZE_CHOICES)
        grey = data.DATASETS[self.dataset].max_pixel_value > 1 and self.binarize is None
        if self.likelihood == "bernoulli" and grey:
            raise ValueError(
                f"A Bernoulli likelihood needs binary pixels, but {self.dataset!r} has grey levels and "
                "binarize is none: use binarize='dynamic' or likelihood='gaussian'."
            )
        if self.binarize and data.DATASETS[self.dataset].max_pixel_value == 1:
            raise ValueError(f"binarize={self.binarize!r} does not apply to {self.dataset!r}: it is binary already.")
        _check_choice("objective", self.objective, {"elbo": None, "iwae": None})
        if self.objective == "iwae" and self.beta != 1:
            raise ValueError(f"`beta` must be 1 with objective='iwae'; received {self.beta!r}.")
        for name in ("latent_dim", "epochs", "batch_size", "num_samples"):
            _check_positive_int(name, getattr(self, name))
        for name in ("max_examples", "checkpoint_every"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        for name in ("learning_rate", "beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be a number > 0; received {value!r}.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"`seed` must be an int; received {self.seed!r}.")

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        fields = json.loads(text)
        unknown = set(fields) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown TrainingConfig fields {sorted(unknown)}.")
        return cls(**fields)


def _check_choice(name, value, choices):
    if value not in choices:
        known = sorted(choice for choice in choices if choice is not None)
        raise ValueError(f"Unknown `{name}` {value!r}; known: {known}.")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1; received {value!r}.")


def make_strategy(name="default", devices=None):
    """The `tf.distribute.Strategy` called `name`.

    "default": the current (single-device) strategy; "mirrored": all local
    GPUs, or the given `devices`; "multi_worker": `MultiWorkerMirroredStrategy`,
    which reads the cluster from `TF_CONFIG`; "tpu": `TPUStrategy` on the TPU
    cluster that `TPUClusterResolver` finds (named by `TPU_NAME`, "local" on
    a Cloud TPU VM).
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown `strategy` {name!r}; known: {list(STRATEGIES)}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return _mirrored_strategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    except ValueError as error:
        raise ValueError(f"Found no TPU for `strategy` 'tpu' ({error}). Set TPU_NAME to the TPU's name, "
                         "or to 'local' on a Cloud TPU VM.") from error
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _mirrored_strategy(devices):
    """A `MirroredStrategy` whose collective ops cannot collide with another's.

    Every `MirroredStrategy` numbers its collective all-reduces from the same
    group and instance keys, and TensorFlow caches a key's tensor shape for the
    life of the process. A second strategy in one process (a notebook's second
    run, a second model) whose gradients have other shapes then fails with
    "Shape mismatch in the collective instance 100" (tensorflow/tensorflow#62790).
    TensorFlow's own tests avoid it by giving each strategy its own key base,
    `MirroredStrategy._collective_key_base`, read once at construction; so do we.
    """
    strategy_class = tf.distribute.MirroredStrategy
    default_base = strategy_class._collective_key_base
    strategy_class._collective_key_base = next(_MIRRORED_KEY_BASES)
    try:
        return strategy_class(devices)
    finally:
        strategy_class._collective_key_base = default_base


def images_for_fit(dataset, has_labels):
    """`dataset`'s images alone, each worker keeping its own share of them.

    Labels are dropped because the VAE does not use them, and because under
    `MultiWorkerMirroredStrategy` Keras 3 averages the first batch across
    workers with `strategy.reduce`, which takes one tensor, not an
    `(images, labels)` pair. Each worker reads every file and keeps every
    N-th batch (`AutoShardPolicy.DATA`).
    """
    if has_labels:
        dataset = dataset.map(lambda images, labels: images, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def load_data(config, data_dir=None):
    """The `tfvae.data.Splits` a config trains on."""
    return data.load(
        config.dataset,
        batch_size=config.batch_size,
        binarize=config.binarize,
        data_dir=data_dir,
        seed=config.seed,
        max_examples=config.max_examples,
    )


def build_vae(config, image_shape):
    """An uncompiled VAE of the config's architecture for `image_shape` images."""
    encoder, decoder = architectures.encoder_and_decoder(
        config.arch, image_shape, config.latent_dim, likelihood=config.likelihood
    )
    return VAE(
        encoder, decoder, beta=config.beta, seed=config.seed, objective=config.objective, num_samples=config.num_samples
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
    """Checkpoints every `every_steps` steps and after each epoch; Ctrl-C stops cleanly.

    On SIGINT, training stops at the end of the current step and a checkpoint
    of that step is saved, so that a resumed run continues exactly there.
    Keras still ends the interrupted epoch (validation, `on_epoch_end`), but
    it is not counted as finished. An epoch whose logs are not finite is not
    saved: the last good checkpoint stays.
    """

    def __init__(self, manager, position, every_steps=None):
        super().__init__()
        self.manager = manager
        self.position = position
        self.every_steps = every_steps
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
        self._steps_done = self.first_step + batch + 1
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
        self.position.set(epoch, step)
        self.manager.save()

    def on_train_end(self, logs=None):
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class WorkerLostError(RuntimeError):
    """Another worker of a multi-worker run stopped; this one cannot go on."""


def _collective_failure_reason(error):
    """The cause in a failed collective's message, without the op's stack."""
    message = error.message
    start = message.find("aborted by:")
    reason = message[start + len("aborted by:"):] if start >= 0 else message.strip().splitlines()[-1]
    reason = reason.split("The error could be from a previous operation")[0]
    return " ".join(reason.split())


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first step whose loss is NaN or infinite.

    Remembers the step (epoch, batch and global step) and the last finite
    logs, for the error that `train` raises afterwards.
    """

    def __init__(self):
        super().__init__()
        self.failure = None
        self._last_finite = {}
        self._epoch = 0
        self._global_step = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._global_step += 1
        logs = {name: float(value) for name, value in (logs or {}).items()}
        if all(math.isfinite(value) for value in logs.values()):
            self._last_finite = logs
            return
        self.failure = (
            f"Non-finite loss at epoch {self._epoch + 1}, batch {batch + 1} (step {self._global_step} of this run): "
            f"{_format_logs(logs)}. Last finite values: {_format_logs(self._last_finite) or 'none'}."
        )
        self.model.stop_training = True


def _format_logs(logs):
    return ", ".join(f"{name}={value:.4g}" for name, value in sorted(logs.items()))


def prepare_run_directory(out_dir, resume=False, overwrite=False):
    """Checks `out_dir` before any work; returns it as a Path.

    Raises:
      FileExistsError: `out_dir` holds files and neither `resume` nor
        `overwrite` was given.
      FileNotFoundError: `resume` was given but `out_dir` holds no run.
    """
    out_dir = pathlib.Path(out_dir)
    if resume:
        if not (out_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"Cannot resume: {str(out_dir)!r} holds no {CONFIG_FILE} of an earlier run.")
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{str(out_dir)!r} already exists and is not empty; pass overwrite=True (--overwrite) to replace it.")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def train(config, out_dir, data_dir=None, resume=False, overwrite=False, verbose=1, callbacks=(), strategy=None):
    """Trains a VAE as `config` says and writes a run directory (module doc).

    Args:
      config: TrainingConfig. With `resume=True`, None means the config saved
        in `out_dir`; a given config may differ from it only in `epochs`.
      out_dir: the run directory.
      data_dir: tensorflow-datasets data directory (None: TFDS_DATA_DIR).
      resume: continue the unfinished run in `out_dir` from its checkpoint.
      overwrite: replace a non-empty `out_dir`.
      verbose: Keras progress bar (1), one line per epoch (2) or silent (0).
      callbacks: more Keras callbacks for `fit`, run after tfvae's own.
      strategy: a `tf.distribute.Strategy` (see `make_strategy`) to build and
        train the model under; None is the default strategy. Batches are
        global: each of N replicas sees batch_size / N examples per step.

    Under `MultiWorkerMirroredStrategy` every worker calls `train` with the
    same `out_dir`, on a file system they share; the chief (worker 0) alone
    writes the run directory.

    Raises:
      NonFiniteLossError: a step's loss was NaN or infinite; training stops
        there and the last epoch's checkpoint (if any) is kept for `resume`.
      WorkerLostError: under multi-worker training, another worker stopped
        (TensorFlow notices a missing worker within seconds). The last
        checkpoint is kept: restart every worker with `resume=True`.

    Returns:
      A dict: `interrupted` (bool), `epochs_done`, and, when training
      finished, `chief` (whether this process wrote `out_dir`), the test
      `elbo`, `reconstruction`, `kl`, `wall_time_s` and `examples_per_second`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    # Under multi-worker training the workers share `out_dir` and only the
    # chief writes it. Whatever every worker must write (checkpoints and the
    # model, whose saving may need all workers) others write to scratch.
    is_chief = strategy.extended.should_checkpoint
    if is_chief:
        out_dir = prepare_run_directory(out_dir, resume=resume, overwrite=overwrite)
        scratch_dir = out_dir
    else:
        out_dir = pathlib.Path(out_dir)
        scratch_dir = pathlib.Path(tempfile.mkdtemp(prefix="tfvae-worker-"))
    try:
        return _train(config, out_dir, scratch_dir, is_chief, data_dir, resume, verbose, callbacks, strategy)
    finally:
        if not is_chief:
            shutil.rmtree(scratch_dir, ignore_errors=True)


def _train(config, out_dir, scratch_dir, is_chief, data_dir, resume, verbose, callbacks, strategy):
    """`train` once the directories are settled.

    Every worker reads `out_dir` (the saved config, the chief's checkpoint);
    only the chief writes it. `scratch_dir` takes what every worker writes:
    checkpoints and the saved model (`out_dir` itself on the chief).
    """
    if resume:
        saved = read_config(out_dir)
        if config is None:
            config = saved
        differing = [f.name for f in dataclasses.fields(config) if f.name != "epochs" and getattr(config, f.name) != getattr(saved, f.name)]
        if differing:
            raise ValueError(f"Cannot resume {str(out_dir)!r} with a different {', '.join(differing)}; only `epochs` may change.")
    splits = load_data(config, data_dir)
    if is_chief:
        (out_dir / CONFIG_FILE).write_text(config.to_json())

    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        vae = build_vae(config, splits.image_shape)
        vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
        vae.optimizer.build(vae.trainable_variables)
    # Bookkeeping read on the host, so created outside the strategy's scope.
    position = TrainingPosition()
    checkpoint = tf.train.Checkpoint(
        model=vae, optimizer=vae.optimizer, seed_state=vae.seed_generator.state,
        epoch=position.epoch, step_in_epoch=position.step,
    )
    manager = tf.train.CheckpointManager(checkpoint, scratch_dir / CHECKPOINT_DIR, max_to_keep=1)
    latest = tf.train.latest_checkpoint(out_dir / CHECKPOINT_DIR) if resume else None  # the chief's
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    start_epoch, start_step = position
    if resume:
        logger.info("Resuming at epoch %d, step %d.", start_epoch + 1, start_step)
        if is_chief:
            _keep_history_rows(out_dir, start_epoch)  # drop a row of an interrupted epoch
    checkpointing = CheckpointAndInterrupt(manager, position, every_steps=config.checkpoint_every)
    non_finite = StopOnNonFiniteLoss()
    steps_per_epoch = splits.steps_per_epoch

    def chief_callbacks(append_history):
        return (keras.callbacks.CSVLogger(str(out_dir / HISTORY_FILE), append=append_history),
                keras.callbacks.TensorBoard(log_dir=str(out_dir / "logs")))

    def fit(first_epoch, first_step, last_epoch, append_history):
        checkpointing.first_step = first_step
        return vae.fit(
            images_for_fit(splits.train_from(first_epoch, last_epoch, skip_batches=first_step), splits.has_labels),
            steps_per_epoch=steps_per_epoch - first_step if first_step else steps_per_epoch,
            validation_data=images_for_fit(splits.validation, splits.has_labels),
            epochs=last_epoch,
            initial_epoch=first_epoch,
            callbacks=[
                non_finite,  # first, so that later callbacks see stop_training set
                *(chief_callbacks(append_history) if is_chief else ()),
                checkpointing,
                *callbacks,
            ],
            verbose=verbose,
        )

    started = time.perf_counter()
    try:
        if start_step:  # finish the interrupted epoch, then run the others
            fit(start_epoch, start_step, start_epoch + 1, append_history=True)
        if not (non_finite.failure or checkpointing.interrupted) and int(position.epoch) < config.epochs:
            fit(int(position.epoch), 0, config.epochs, append_history=resume or bool(start_step))
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        raise WorkerLostError(
            f"A worker stopped: {_collective_failure_reason(error)} Restart every worker with resume=True (--resume) "
            f"to continue from the last checkpoint in {str(out_dir / CHECKPOINT_DIR)!r}."
        ) from error
    wall_time = time.perf_counter() - started
    if non_finite.failure:
        epoch, step = position
        kept = f"the checkpoint at epoch {epoch + 1}, step {step} is kept" if manager.latest_checkpoint else "no checkpoint was saved"
        raise NonFiniteLossError(f"{non_finite.failure} Training stopped; {kept} in {str(out_dir / CHECKPOINT_DIR)!r}.")
    if checkpointing.interrupted:
        epoch, step = position
        return {"interrupted": True, "epochs_done": epoch, "step_in_epoch": step}

    _save_model_atomically(vae, scratch_dir / MODEL_FILE)
    test_metrics = vae.evaluate(images_for_fit(splits.test, splits.has_labels), verbose=0, return_dict=True)
    examples_seen = splits.num_examples["train"] * (config.epochs - start_epoch) - start_step * config.batch_size
    summary = {
        "interrupted": False,
        "chief": is_chief,
        "epochs_done": config.epochs,
        "elbo": test_metrics["elbo"],
        "reconstruction": test_metrics["reconstruction"],
        "kl": test_metrics["kl"],
        "wall_time_s": wall_time,
        "examples_per_second": examples_seen / wall_time,
    }
    if not is_chief:
        return summary
    write_figures(vae, splits.test, splits.has_labels, read_history(out_dir), out_dir)
    (out_dir / METRICS_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True))
    shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)
    return summary


def _save_model_atomically(vae, path):
    """Writes the `.keras` file beside `path` and renames, so no half-written file remains."""
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}.keras")
    try:
        vae.save(temporary)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def _keep_history_rows(run_dir, num_epochs):
    path = pathlib.Path(run_dir) / HISTORY_FILE
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[: 1 + num_epochs]))


def read_history(run_dir):
    """history.csv as `{metric: [value per epoch]}`."""
    with open(pathlib.Path(run_dir) / HISTORY_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {}) if key != "epoch"}


def read_config(run_dir):
    """The TrainingConfig saved in a run directory."""
    path = pathlib.Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} holds no {CONFIG_FILE}: not a tfvae run directory.")
    return TrainingConfig.from_json(path.read_text())


def load_run(run_dir):
    """The trained VAE and the TrainingConfig of a finished run directory."""
    run_dir = pathlib.Path(run_dir)
    model_path = run_dir / MODEL_FILE
    if not model_path.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} holds no {MODEL_FILE}: not a finished tfvae run.")
    try:
        vae = keras.models.load_model(model_path)
    except Exception as error:  # zipfile, h5py and JSON errors all mean "unreadable"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{str(model_path)!r} is not a readable .keras model ({type(error).__name__}: {reason}).") from error
    if not vae.compiled:
        # Saved without optimizer state (as the shipped models are): Keras needs
        # a compiled model to `evaluate`, which uses no optimizer.
        vae.compile()
    return vae, read_config(run_dir)


def evaluate(run_dir, dataset=None, split="test", data_dir=None, max_examples=None, num_samples=None, verbose=1):
    """The ELBO and its parts, and optionally the NLL, of a run's model on a split.

    `dataset` defaults to the run's own; its preprocessing (binarisation) is
    the run's. With `num_samples=k`, also estimates log p(x) by the
    importance-weighted bound L_k (`VAE.log_likelihood`), with a progress bar.

    Returns a dict, per example in nats: `elbo`, `reconstruction`, `kl`,
    `loss`, and with `num_samples` also `nll` (-mean L_k) and
    `bits_per_dim` (nll / (dimensions * ln 2)).
    """
    if split not in data.SPLIT_NAMES:
        raise ValueError(f"Unknown `split` {split!r}; known: {list(data.SPLIT_NAMES)}.")
    if num_samples is not None:
        _check_positive_int("num_samples", num_samples)
    vae, config = load_run(run_dir)
    overrides = {"max_examples": max_examples}
    if dataset is not None and dataset != config.dataset:
        binary = data.DATASETS.get(dataset) and data.DATASETS[dataset].max_pixel_value == 1
        overrides.update(dataset=dataset, binarize=None if binary else config.binarize)
    splits = load_data(dataclasses.replace(config, **overrides), data_dir)
    if splits.image_shape != tuple(vae.encoder.inputs[0].shape[1:]):
        raise ValueError(
            f"Dataset {splits.name!r} has images of shape {splits.image_shape}, but the model "
            f"expects {tuple(vae.encoder.inputs[0].shape[1:])}."
        )
    metrics = vae.evaluate(splits[split], verbose=0, return_dict=True)
    if num_samples is not None:
        metrics["nll"] = -float(np.mean(log_likelihoods(vae, splits[split], splits.has_labels, num_samples, config.seed, verbose)))
        metrics["bits_per_dim"] = metrics["nll"] / (math.prod(splits.image_shape) * math.log(2))
    return metrics


def log_likelihoods(vae, dataset, has_labels, num_samples, seed=0, verbose=1, chunk_size=100):
    """L_k estimates of log p(x) for every example of `dataset`, `[num_examples]`.

    Batch i uses the seed (seed, i), so a run repeats exactly.
    """
    num_batches = int(dataset.cardinality())
    progress = keras.utils.Progbar(num_batches if num_batches >= 0 else None, verbose=verbose, unit_name="batch")
    estimates = []
    for index, element in enumerate(dataset):
        images = element[0] if has_labels else element
        estimates.append(vae.log_likelihood(images, num_samples=num_samples, chunk_size=chunk_size, seed=(seed, index)).numpy())
        progress.update(index + 1, values=[("nll", -float(np.mean(estimates[-1])))])
    return np.concatenate(estimates)


def write_figures(vae, dataset, has_labels, history, out_dir, num_latent_points=5000):
    """Writes the four figures of a run (FIGURES) into `out_dir`; returns their paths.

    `dataset` yields the batches whose reconstructions and latent codes are
    drawn (`(images, labels)` when `has_labels`).
    """
    out_dir = pathlib.Path(out_dir)
    images, labels = [], []
    for element in dataset:
        batch_images, batch_labels = element if has_labels else (element, None)
        images.append(batch_images.numpy())
        if has_labels:
            labels.append(batch_labels.numpy())
        if sum(len(batch) for batch in images) >= num_latent_points:
            break
    images = np.concatenate(images)[:num_latent_points]
    labels = np.concatenate(labels)[:num_latent_points] if has_labels else None
    samples = vae.sample(64, seed=tf.constant([0, 0])).numpy()
    paths = [
        plots.image_grid(samples, out_dir / FIGURES[0]),
        plots.reconstruction_pairs(images[:16], vae.reconstruct(images[:16]).numpy(), out_dir / FIGURES[1], num_pairs=16),
        plots.latent_scatter(vae.encode(images).mean().numpy(), out_dir / FIGURES[2], labels=labels),
        plots.loss_curves(history, out_dir / FIGURES[3]),
    ]
    return paths


def sample_images(run_dir, num_samples, out_path, seed=None):
    """Writes a grid of `num_samples` images drawn from a run's model; returns the path."""
    vae, _ = load_run(run_dir)
    seed = tf.constant([0, 0] if seed is None else [seed, 0])
    return plots.image_grid(vae.sample(num_samples, seed=seed).numpy(), out_path)


def reconstruct_images(run_dir, num_images, out_path, split="test", data_dir=None):
    """Writes the first `num_images` of a split beside their reconstructions; returns the path."""
    vae, config = load_run(run_dir)
    splits = load_data(dataclasses.replace(config, batch_size=num_images, max_examples=num_images), data_dir)
    element = next(iter(splits[split]))
    images = (element[0] if splits.has_labels else element).numpy()
    return plots.reconstruction_pairs(images, vae.reconstruct(images).numpy(), out_path, num_pairs=num_images)


def export_run(run_dir, out_path, overwrite=False):
    """Exports a run's model as a TF Serving SavedModel (see `tfvae.export`); returns the path."""
    vae, _ = load_run(run_dir)
    return vae.export(out_path, overwrite=overwrite)
