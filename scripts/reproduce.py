"""Retrains a shipped published-result model from scratch, with its recorded settings and seed.

    TFDS_DATA_DIR=../shared/data/tensorflow_datasets python scripts/reproduce.py vae_static
    python scripts/reproduce.py vae_static --resume          # after an interruption
    python scripts/reproduce.py --list

Each recipe is a `tfvae.training.TrainingConfig` (what `tfvae train` runs)
and the k of its test NLL. The script trains into `--out` (by default
`saved_models/NAME`), keeps the model without its optimizer state, estimates
the test NLL with the importance-weighted bound L_k over the whole test set
(its mean and standard error go into `metrics.json`), records the check value
that `tests/test_saved_models.py` recomputes (`check_elbo`), writes the
serving export to `serving/1`, and drops the TensorBoard logs to keep the
directory small. BENCHMARKS.md compares the NLLs with the published ones.
"""

import argparse
import dataclasses
import json
import logging
import math
import pathlib
import shutil

import keras
import numpy as np

from tfvae import bounds, training

SAVED_MODELS = pathlib.Path(__file__).resolve().parents[1] / "saved_models"

# What the check in tests/test_saved_models.py recomputes: the ELBO of the
# first CHECK_IMAGES test images, one sample each, drawn with CHECK_SEED.
CHECK_IMAGES = 500
CHECK_SEED = (0, 0)

VAMPPRIOR_STATIC = training.TrainingConfig(
    dataset="binarized_mnist", binarize=None, arch="gated_mlp", latent_dim=40, epochs=2000, batch_size=100,
    learning_rate=5e-4, kl_warmup_epochs=100, early_stopping_patience=50, prior="vampprior", prior_components=500,
    seed=0,
)

RECIPES = {
    # Tomczak & Welling (2018), "VAE with a VampPrior", Table 2, static MNIST, "VAE (L=1)", standard
    # prior: 88.56 nats. Their one-layer MLP (300-300 gated units, 40 latents), Adam 5e-4, batch 100,
    # KL warm-up over 100 epochs, early stopping with patience 50.
    "vae_static": (
        training.TrainingConfig(
            dataset="binarized_mnist", binarize=None, arch="gated_mlp", latent_dim=40, epochs=500, batch_size=100,
            learning_rate=5e-4, kl_warmup_epochs=100, early_stopping_patience=50, seed=0,
        ),
        5000,
    ),
    # Tomczak & Welling (2018), Table 2, static MNIST, "VampPrior (L=1)": 85.57 nats. The same model and
    # recipe as vae_static with the VampPrior: 500 pseudo-inputs, initialised at random as in the paper.
    # The paper trains up to 2000 epochs; early stopping (patience 50) decides where this one ends.
    "vampprior_static": (VAMPPRIOR_STATIC, 5000),
    # Tomczak & Welling (2018), Table 2, static MNIST, "HVAE (L=2) + VampPrior": 83.19 nats. Their two-layer
    # model (tfvae.models.hierarchical: gated units, 300 wide, z1 and z2 of 40 each), the VampPrior over z2
    # with 500 pseudo-inputs at random, and vae_static's recipe.
    "hvae_vampprior_static": (dataclasses.replace(VAMPPRIOR_STATIC, arch="hvae", latent_dim=80), 5000),
    # The short budget: 10 epochs of 50,000 images at batch 100 (5,000 updates), where pythae 0.1.2's
    # IWAE-paper MLP reaches 105.65 nats (k = 1000). The best of a small comparison (BENCHMARKS.md):
    # the gated MLP on the IWAE bound with k = 5; these are `tfvae train`'s defaults.
    "iwae5_short_static": (
        training.TrainingConfig(
            dataset="binarized_mnist", binarize=None, arch="gated_mlp", latent_dim=40, epochs=10, batch_size=100,
            learning_rate=1e-3, objective="iwae", k=5, seed=0,
        ),
        1000,
    ),
    # Burda et al. (2015), Table 1, MNIST with dynamic binarization, one stochastic layer, VAE: 86.76
    # nats. The VampPrior paper's gated MLP (a larger model than the IWAE paper's 200-200-50 tanh MLP)
    # and its training recipe, on MNIST's train[:50000] binarized afresh each epoch.
    "vae_dynamic": (
        training.TrainingConfig(
            dataset="mnist", binarize="dynamic", arch="gated_mlp", latent_dim=40, epochs=600, batch_size=100,
            learning_rate=5e-4, kl_warmup_epochs=100, early_stopping_patience=50, seed=0,
        ),
        5000,
    ),
    # Burda et al. (2015), Table 1, MNIST with dynamic binarization, one stochastic layer, IWAE with k = 5:
    # 85.54 nats. vae_dynamic's gated MLP trained on the IWAE bound (k = 5) for vae_dynamic's 600 epochs,
    # with Adam 1e-3 on a cosine decay to zero (the paper's 3,280-epoch schedule does not fit a session
    # on two cores) and no warm-up (the IWAE bound has no KL term to weigh).
    "iwae5_dynamic": (
        training.TrainingConfig(
            dataset="mnist", binarize="dynamic", arch="gated_mlp", latent_dim=40, epochs=600, batch_size=100,
            learning_rate=1e-3, learning_rate_schedule="cosine", objective="iwae", k=5,
            early_stopping_patience=50, seed=0,
        ),
        5000,
    ),
}


def check_elbo(vae, splits):
    """The mean ELBO of the first `CHECK_IMAGES` test images, one sample each, seeded: a cheap fingerprint."""
    images = np.concatenate([(element[0] if splits.has_labels else element).numpy() for element in splits.test])
    images = images[:CHECK_IMAGES]
    return float(np.mean(vae.elbo(images, seed=CHECK_SEED).numpy(), dtype=np.float64))


def test_nll(vae, splits, k, seed):
    """Mean and standard error over the test set of -L_k, in nats."""
    estimates = training.log_likelihoods(vae, splits.test, splits.has_labels, k, seed)
    return -float(np.mean(estimates, dtype=np.float64)), float(np.std(estimates, dtype=np.float64) / math.sqrt(len(estimates)))


def reproduce(name, out, data_dir=None, resume=False, overwrite=False):
    """Trains recipe `name` into `out` (or resumes it there), then `finish`es it; returns its metrics."""
    config, _ = RECIPES[name]
    out = pathlib.Path(out)
    summary = training.train(None if resume else config, out, data_dir=data_dir, resume=resume, overwrite=overwrite,
                             verbose=2)
    if summary["interrupted"]:
        raise SystemExit(f"Interrupted; continue with: python scripts/reproduce.py {name} --out {out} --resume")
    return finish(name, out, data_dir)


def finish(name, out, data_dir=None):
    """Evaluates, slims and exports the finished run of recipe `name` in `out`; returns its metrics."""
    _, k = RECIPES[name]
    out = pathlib.Path(out)
    if training.read_config(out) != RECIPES[name][0]:
        raise ValueError(f"{str(out)!r} was not trained with recipe {name!r}: its config.json differs.")
    summary = json.loads((out / training.METRICS_FILE).read_text())
    model_path = out / training.MODEL_FILE
    keras.models.load_model(model_path, compile=False).save(model_path)  # without the optimizer: a third of the size
    vae, config = training.load_run(out)
    splits = training.load_data(config, data_dir)
    check = check_elbo(vae, splits)  # first: seconds, where the NLL takes minutes
    nll, standard_error = test_nll(vae, splits, k, config.seed)
    summary.update(
        nll=nll, nll_standard_error=standard_error, k=k, test_images=splits.num_examples["test"],
        bits_per_dim=bounds.bits_per_dim(nll, math.prod(splits.image_shape)),
        check_elbo=check, check_images=CHECK_IMAGES, check_seed=list(CHECK_SEED),
    )
    (out / training.METRICS_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True))
    training.export_run(out, out / "serving" / "1", overwrite=True)
    shutil.rmtree(out / "logs", ignore_errors=True)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", choices=sorted(RECIPES))
    parser.add_argument("--out", default=None, help="run directory (default: saved_models/NAME)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--finish-only", action="store_true",
                        help="only evaluate, slim and export a run already trained with the recipe in --out")
    parser.add_argument("--list", action="store_true", help="print each recipe's config and k")
    args = parser.parse_args()
    if args.list or not args.name:
        for name, (config, k) in RECIPES.items():
            print(f"{name} (k = {k}):\n{config.to_json()}")
        return
    logging.basicConfig(level="INFO")
    out = args.out or SAVED_MODELS / args.name
    if args.finish_only:
        summary = finish(args.name, out, args.data_dir)
    else:
        summary = reproduce(args.name, out, args.data_dir, args.resume, args.overwrite)
    print(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
