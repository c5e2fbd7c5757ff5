"""`train`: a config in, a run directory of model, history, logs and figures out.

    config = TrainingConfig(dataset="mnist", arch="mlp", latent_dim=16, epochs=5)
    summary = train(config, "runs/mnist_mlp")

Training steps are compiled with XLA (`jit_compile`) and run
`steps_per_execution` at a time (by default up to 50, a divisor of the
epoch's steps and of `checkpoint_every`), the fastest path measured
(BENCHMARKS.md).
Checkpoints follow every epoch, every `checkpoint_every` steps and Ctrl-C
or SIGTERM (which stop training at the end of the current execution; under
multi-worker training one worker's SIGTERM stops every worker at one step,
all checkpointed: `CheckpointAndInterrupt`).
`train(..., resume=True)` restores the latest one and continues from its
exact step: each epoch's batches depend only on the seed and the epoch's
number (`Splits.train_from`), so a run killed right after a checkpoint and
resumed ends with the weights of an uninterrupted run.
"""

import dataclasses
import json
import logging
import pathlib
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfvae import architectures, priors
from tfvae.models import VAE, NonFiniteLossError
from tfvae.training import run_dir as run_files
from tfvae.training.callbacks import CheckpointAndInterrupt, KeepBestValidation, TrainingPosition
from tfvae.training.config import TWO_LAYER_ARCHITECTURES, load_data
from tfvae.training.figures import write_figures
from tfvae.training.strategies import WorkerLostError, collective_failure_reason, images_for_fit, report_failure_to_cluster

logger = logging.getLogger(__name__)


def build_vae(config, image_shape, steps_per_epoch=None):
    """An uncompiled VAE of the config's architecture for `image_shape` images.

    `steps_per_epoch` turns `config.kl_warmup_epochs` into the VAE's
    `kl_warmup_steps`; it is needed only when that is not 0.
    """
    if config.kl_warmup_epochs and steps_per_epoch is None:
        raise ValueError("`steps_per_epoch` is needed to warm the KL term up over `kl_warmup_epochs` epochs.")
    prior_arguments = {  # `config.prior`'s arguments: of p(z2) in a two-layer model, whose builder adds the rest
        "mixture_of_gaussians": {"num_components": config.prior_components_for(), "seed": config.seed},
        "vampprior": {"num_pseudo_inputs": config.prior_components_for(), "seed": config.seed},
        "flow": {"seed": config.seed},
    }.get(config.prior, {})
    if config.arch in TWO_LAYER_ARCHITECTURES:  # the prior is p(z2) p(z1|z2)
        encoder, decoder, prior = TWO_LAYER_ARCHITECTURES[config.arch](
            image_shape, config.latent_dim, likelihood=config.likelihood, posterior=config.posterior, prior=config.prior,
            **prior_arguments)
    else:
        encoder, decoder = architectures.encoder_and_decoder(
            config.arch, image_shape, config.latent_dim, likelihood=config.likelihood, posterior=config.posterior,
            num_classes=config.num_classes_for(),
        )
        if config.prior == "vampprior":
            prior_arguments["input_shape"] = image_shape  # its pseudo-inputs are images
        prior = priors.get_prior(config.prior, config.latent_dim, **prior_arguments)
    # The run keeps its last good checkpoint, so the weights after a non-finite
    # step need not be kept in memory: cheaper steps (BENCHMARKS.md).
    return VAE(encoder, decoder, prior=prior, beta=config.beta, seed=config.seed, objective=config.objective, k=config.k,
               keep_finite_weights=False, kl_warmup_steps=config.kl_warmup_epochs * (steps_per_epoch or 0),
               free_bits=config.free_bits, num_classes=config.num_classes_for())


def first_training_images(splits, count):
    """The first `count` images of the training split's first epoch, `[count, *image_shape]`."""
    images = []
    for element in splits.epoch_batches(0):
        images.append((element[0] if splits.has_labels else element).numpy())
        if sum(len(batch) for batch in images) >= count:
            return np.concatenate(images)[:count]
    raise ValueError(f"The training split has {sum(len(batch) for batch in images)} images; {count} pseudo-inputs need as many.")


def train(config, out_dir, data_dir=None, resume=False, overwrite=False, verbose=1, callbacks=(), strategy=None):
    """Trains a VAE as `config` says and writes a run directory (`tfvae.training.run_dir`).

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
    writes the run directory. A run that fails before writing anything
    (missing data, say) leaves no run directory behind.

    Raises:
      NonFiniteLossError: a step's loss was NaN or infinite; training stops
        there and the last good checkpoint (if any) is kept for `resume`.
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
        out_dir, created = run_files.prepare_run_directory(out_dir, resume=resume, overwrite=overwrite)
        scratch_dir = out_dir
    else:
        out_dir, created = pathlib.Path(out_dir), False
        scratch_dir = pathlib.Path(tempfile.mkdtemp(prefix="tfvae-worker-"))
    try:
        return _train(config, out_dir, scratch_dir, is_chief, data_dir, resume, verbose, callbacks, strategy)
    finally:
        if not is_chief:
            shutil.rmtree(scratch_dir, ignore_errors=True)
        elif created:
            run_files.remove_if_empty(out_dir)


def _train(config, out_dir, scratch_dir, is_chief, data_dir, resume, verbose, callbacks, strategy):
    """`train` once the directories are settled.

    Every worker reads `out_dir` (the saved config, the chief's checkpoint);
    only the chief writes it. `scratch_dir` takes what every worker writes:
    checkpoints and the saved model (`out_dir` itself on the chief).
    """
    if resume:
        saved = run_files.read_config(out_dir)
        if config is None:
            config = saved
        differing = [f.name for f in dataclasses.fields(config) if f.name != "epochs" and getattr(config, f.name) != getattr(saved, f.name)]
        if differing:
            raise ValueError(f"Cannot resume {str(out_dir)!r} with a different {', '.join(differing)}; only `epochs` may change.")
    splits = load_data(config, data_dir)
    drop_labels = splits.has_labels and not config.conditional  # a conditional VAE trains on (images, labels)
    if is_chief:
        (out_dir / run_files.CONFIG_FILE).write_text(config.to_json())

    keras.utils.set_random_seed(config.seed)
    # Resolved outside the strategy's scope, where the default strategy is the current one.
    jit_compile, steps_per_execution = config.jit_compile_for(), config.steps_per_execution_for(splits.steps_per_epoch, strategy)
    with strategy.scope():
        vae = build_vae(config, splits.image_shape, splits.steps_per_epoch)
        if config.prior == "vampprior" and config.pseudo_inputs == "data":  # a resumed run restores them below
            vampprior = vae.prior.top if isinstance(vae.prior, priors.HierarchicalPrior) else vae.prior
            vampprior.initialize_from(first_training_images(splits, vampprior.num_pseudo_inputs))
        vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate_for(splits.steps_per_epoch)), jit_compile=jit_compile,
                    steps_per_execution=steps_per_execution)
        vae.optimizer.build(vae.trainable_variables)
    # Bookkeeping read on the host, so created outside the strategy's scope.
    position = TrainingPosition()
    keep_best = None
    if config.early_stopping_patience:
        # The chief writes the best weights; every worker reads them back from there after a resume.
        keep_best = KeepBestValidation(out_dir / run_files.CHECKPOINT_DIR / run_files.BEST_WEIGHTS_FILE,
                                       config.early_stopping_patience, write=is_chief)
    checkpoint = tf.train.Checkpoint(
        model=vae, optimizer=vae.optimizer, seed_state=vae.seed_generator.state,
        evaluation_seed_state=vae.evaluation_seed_generator.state,
        epoch=position.epoch, step_in_epoch=position.step,
        **({"best_validation_elbo": keep_best.best_elbo, "best_epoch": keep_best.best_epoch} if keep_best else {}),
    )
    manager = tf.train.CheckpointManager(checkpoint, scratch_dir / run_files.CHECKPOINT_DIR, max_to_keep=1)
    latest = tf.train.latest_checkpoint(out_dir / run_files.CHECKPOINT_DIR) if resume else None  # the chief's
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    start_epoch, start_step = position
    if resume:
        logger.info("Resuming at epoch %d, step %d.", start_epoch + 1, start_step)
        if is_chief:
            run_files.keep_history_rows(out_dir, start_epoch)  # drop a row of an interrupted epoch
    steps_per_epoch = splits.steps_per_epoch
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    checkpointing = CheckpointAndInterrupt(manager, position, every_steps=config.checkpoint_every,
                                           steps_per_epoch=steps_per_epoch,
                                           cluster_resolver=strategy.cluster_resolver if multi_worker else None)

    def chief_callbacks(append_history):
        return (keras.callbacks.CSVLogger(str(out_dir / run_files.HISTORY_FILE), append=append_history),
                keras.callbacks.TensorBoard(log_dir=str(out_dir / "logs")))

    def fit(first_epoch, first_step, last_epoch, append_history):
        checkpointing.first_step = first_step
        return vae.fit(
            images_for_fit(splits.train_from(first_epoch, last_epoch, skip_batches=first_step), drop_labels),
            steps_per_epoch=steps_per_epoch - first_step if first_step else steps_per_epoch,
            validation_data=images_for_fit(splits.validation, drop_labels),
            epochs=last_epoch,
            initial_epoch=first_epoch,
            callbacks=[*(chief_callbacks(append_history) if is_chief else ()), *([keep_best] if keep_best else ()),
                       checkpointing, *callbacks],
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles; Keras would warn that it ignores shuffle=True
        )

    started = time.perf_counter()
    try:
        if start_step:  # finish the interrupted epoch, then run the others
            fit(start_epoch, start_step, start_epoch + 1, append_history=True)
        stopped_early = keep_best is not None and keep_best.stopped_epoch is not None
        if not checkpointing.interrupted and not stopped_early and int(position.epoch) < config.epochs:
            fit(int(position.epoch), 0, config.epochs, append_history=resume or bool(start_step))
    except NonFiniteLossError as error:
        epoch, step = position
        kept = f"the checkpoint at epoch {epoch + 1}, step {step} is kept" if manager.latest_checkpoint else "no checkpoint was saved"
        raise NonFiniteLossError(f"{error} Training stopped; {kept} in {str(out_dir / run_files.CHECKPOINT_DIR)!r}.") from None
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        raise WorkerLostError(
            f"A worker stopped: {collective_failure_reason(error)} Restart every worker with resume=True (--resume) "
            f"to continue from the last checkpoint in {str(out_dir / run_files.CHECKPOINT_DIR)!r}."
        ) from error
    except Exception as error:
        # Every worker sees the same NaN loss (it is all-reduced), so only other errors are this worker's own.
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and not isinstance(error, NonFiniteLossError):
            report_failure_to_cluster(strategy, error)
        raise
    finally:
        checkpointing.restore_interrupt_handler()  # Keras skips on_train_end when fit raises
    wall_time = time.perf_counter() - started
    if checkpointing.interrupted:
        epoch, step = position
        return {"interrupted": True, "epochs_done": epoch, "step_in_epoch": step,
                "signal": checkpointing.interrupted_by.name}

    epochs_done = config.epochs
    if keep_best:
        keep_best.restore_best()
        if keep_best.stopped_epoch is not None:
            epochs_done = keep_best.stopped_epoch + 1
    run_files.save_model_atomically(vae, scratch_dir / run_files.MODEL_FILE)
    test_metrics = vae.evaluate(images_for_fit(splits.test, drop_labels), verbose=0, return_dict=True)
    examples_seen = splits.num_examples["train"] * (epochs_done - start_epoch) - start_step * config.batch_size
    summary = {
        "interrupted": False,
        "chief": is_chief,
        "epochs_done": epochs_done,
        "elbo": test_metrics["elbo"],
        "reconstruction": test_metrics["reconstruction"],
        "kl": test_metrics["kl"],
        "wall_time_s": wall_time,
        "examples_per_second": examples_seen / wall_time,
    }
    if keep_best:
        summary.update(best_epoch=int(keep_best.best_epoch) + 1, best_validation_elbo=float(keep_best.best_elbo))
    if not is_chief:
        return summary
    write_figures(vae, splits.test, splits.has_labels, run_files.read_history(out_dir), out_dir)
    (out_dir / run_files.METRICS_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True))
    shutil.rmtree(out_dir / run_files.CHECKPOINT_DIR, ignore_errors=True)
    return summary
