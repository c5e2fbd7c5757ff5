"""The files of a run directory: what is in it, and reading and writing them.

    config.json     the TrainingConfig, to rebuild or resume the run
    model.keras     the trained VAE (written when training completes)
    history.csv     per-epoch metrics (Keras CSVLogger)
    logs/           TensorBoard logs
    checkpoints/    model, optimizer, seed state and position while unfinished, and
                    best.weights.h5, the best epoch's weights, with early stopping
    samples.png, reconstructions.png, latent_space.png, loss_curves.png,
    interpolations.png, traversals.png    the figures (training/figures.py)
    samples_per_class.png                 and, for a conditional VAE, a row of samples per class
    metrics.json    test ELBO and its parts, wall time, examples per second
"""

import csv
import os
import pathlib
import shutil

import keras

from tfvae.training.config import TrainingConfig

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS_FILE = "best.weights.h5"  # in CHECKPOINT_DIR
FIGURES = ("samples.png", "reconstructions.png", "latent_space.png", "loss_curves.png", "interpolations.png", "traversals.png")
CONDITIONAL_FIGURES = ("samples_per_class.png",)  # written beside FIGURES by a conditional run


def figures_of(config):
    """The names of the figures a run of `config` writes: `FIGURES`, and `CONDITIONAL_FIGURES` if conditional."""
    return (*FIGURES, *CONDITIONAL_FIGURES) if config.conditional else FIGURES


def prepare_run_directory(out_dir, resume=False, overwrite=False):
    """Checks `out_dir` before any work and creates it; returns `(path, created)`.

    `created` says whether this call made the folder (so that a run that
    fails before writing anything can remove it again, `remove_if_empty`).

    Raises:
      FileExistsError: `out_dir` holds files and neither `resume` nor
        `overwrite` was given.
      FileNotFoundError: `resume` was given but `out_dir` holds no run.
    """
    out_dir = pathlib.Path(out_dir)
    if resume:
        if not (out_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"Cannot resume: {str(out_dir)!r} holds no {CONFIG_FILE} of an earlier run.")
        return out_dir, False
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{str(out_dir)!r} already exists and is not empty; pass overwrite=True (--overwrite) to replace it.")
        shutil.rmtree(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir, created


def remove_if_empty(out_dir):
    """Removes `out_dir` if it holds nothing (a run that failed before writing)."""
    out_dir = pathlib.Path(out_dir)
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()


def save_model_atomically(vae, path):
    """Writes the `.keras` file beside `path` and renames, so no half-written file remains."""
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}.keras")
    try:
        vae.save(temporary)
        temporary.replace(path)
    except OSError as error:  # a full disk, a lost mount: say so, and what is kept
        kept = "the previous model there is kept" if path.exists() else "nothing was written"
        raise OSError(error.errno, f"Could not write the model to {str(path)!r} ({error.strerror or error}); {kept}.") from error
    finally:
        temporary.unlink(missing_ok=True)


def keep_history_rows(run_dir, num_epochs):
    """Truncates history.csv to its first `num_epochs` rows (drops an interrupted epoch's)."""
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


def export_run(run_dir, out_path, overwrite=False):
    """Exports a run's model as a TF Serving SavedModel (see `tfvae.export`); returns the path."""
    vae, _ = load_run(run_dir)
    return vae.export(out_path, verbose=False, overwrite=overwrite)
