"""Training runs: a config in, a directory of model, history, logs and figures out.

    config = tfvae.training.TrainingConfig(dataset="mnist", latent_dim=16, epochs=5)
    summary = tfvae.training.train(config, "runs/mnist_mlp")

One job per module: `config` (what defines a run), `strategies`
(`tf.distribute` by name), `callbacks` (checkpoints, Ctrl-C, early stopping), `run_dir` (the
files of a run), `figures`, `run` (`train`) and `evaluate`.
"""

from tfvae.models import NonFiniteLossError
from tfvae.training.callbacks import KeepBestValidation
from tfvae.training.config import (
    ARCHITECTURES,
    COMMAND_DEFAULTS,
    LEARNING_RATE_SCHEDULES,
    TWO_LAYER_ARCHITECTURES,
    TrainingConfig,
    iwae_paper_schedule,
    load_data,
)
from tfvae.training.evaluate import evaluate, log_likelihoods
from tfvae.training.figures import reconstruct_images, sample_images, samples_per_class, write_figures
from tfvae.training.run import build_vae, first_training_images, train
from tfvae.training.run_dir import (
    CHECKPOINT_DIR,
    CONDITIONAL_FIGURES,
    CONFIG_FILE,
    FIGURES,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    export_run,
    figures_of,
    load_run,
    prepare_run_directory,
    read_config,
    read_history,
)
from tfvae.training.strategies import STRATEGIES, WorkerLostError, images_for_fit, make_strategy

__all__ = [
    "ARCHITECTURES", "CHECKPOINT_DIR", "CONDITIONAL_FIGURES", "COMMAND_DEFAULTS", "CONFIG_FILE", "FIGURES", "HISTORY_FILE", "LEARNING_RATE_SCHEDULES", "METRICS_FILE", "MODEL_FILE", "STRATEGIES",
    "KeepBestValidation", "NonFiniteLossError", "TWO_LAYER_ARCHITECTURES", "TrainingConfig", "WorkerLostError", "build_vae", "evaluate", "export_run", "figures_of", "first_training_images",
    "images_for_fit", "iwae_paper_schedule", "load_data", "load_run", "log_likelihoods", "make_strategy", "prepare_run_directory",
    "read_config", "read_history", "reconstruct_images", "sample_images", "samples_per_class", "train", "write_figures",
]
