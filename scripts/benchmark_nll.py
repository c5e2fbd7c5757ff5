"""Test log-likelihoods of standard configurations beside published numbers.

    TFDS_DATA_DIR=../shared/data/tensorflow_datasets \\
        python scripts/benchmark_nll.py --configs vae_static iwae5_static --epochs 10

Each configuration is trained with `tfvae.training.train` for `--epochs`
epochs, then its test NLL is estimated with the importance-weighted bound
L_k, k = `-k` (5000 by default, as in Burda et al., 2015), over
the whole test set. Prints one row per configuration and writes the results to
OUT_DIR/results.json. The papers trained for far longer (the IWAE paper: 3,280
passes over the data); rows say how many epochs were run here.
"""

import argparse
import dataclasses
import json
import pathlib
import resource
import time

from tfvae import training
from tfvae.training import TrainingConfig

# The MLP of the IWAE paper: 784-200-200-50, tanh, Bernoulli likelihood, batch 100.
_MLP = dict(arch="mlp", latent_dim=50, batch_size=100, learning_rate=1e-3)
_STATIC = dict(dataset="binarized_mnist", binarize=None)
_DYNAMIC = dict(dataset="mnist", binarize="dynamic")

CONFIGS = {
    "vae_static": TrainingConfig(**_MLP, **_STATIC),
    "iwae5_static": TrainingConfig(**_MLP, **_STATIC, objective="iwae", k=5),
    "iwae50_static": TrainingConfig(**_MLP, **_STATIC, objective="iwae", k=50),
    "vae_dynamic": TrainingConfig(**_MLP, **_DYNAMIC),
    "iwae5_dynamic": TrainingConfig(**_MLP, **_DYNAMIC, objective="iwae", k=5),
    "iwae50_dynamic": TrainingConfig(**_MLP, **_DYNAMIC, objective="iwae", k=50),
    "conv_dynamic": TrainingConfig(arch="conv", latent_dim=50, batch_size=100, learning_rate=1e-3, **_DYNAMIC),
}

# Published test NLL (nats) for the same kind of model and data; None where we
# know of no directly comparable number. Burda et al. (2015), "Importance
# Weighted Autoencoders", Table 1, MNIST with dynamic binarization, one
# stochastic layer of 50 units, two deterministic layers of 200, k = 5000;
# trained for 3,280 passes over 59,600 images with batch 20 (the schedule in
# the authors' code, github.com/yburda/iwae). The VAE number is the IWAE k = 1
# number: the two objectives are the same at k = 1.
PUBLISHED = {
    "vae_dynamic": (86.76, "Burda et al. 2015, Table 1 (VAE, k=1)"),
    "iwae5_dynamic": (85.54, "Burda et al. 2015, Table 1 (IWAE, k=5)"),
    "iwae50_dynamic": (84.78, "Burda et al. 2015, Table 1 (IWAE, k=50)"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("-k", type=int, default=5000, help="k of the importance-weighted NLL estimate L_k")
    parser.add_argument("--out-dir", default="runs/benchmark_nll")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    out_dir = pathlib.Path(args.out_dir)
    results_path = out_dir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    print(f"{'config':<15} {'epochs':>6} {'test ELBO':>10} {'NLL':>8} {'bits/dim':>8} {'published':>9}  "
          f"{'train s':>8} {'eval s':>7}  source")
    for name in args.configs:
        config = dataclasses.replace(CONFIGS[name], epochs=args.epochs)
        started = time.perf_counter()
        summary = training.train(config, out_dir / name, data_dir=args.data_dir, overwrite=True, verbose=2)
        trained = time.perf_counter()
        metrics = training.evaluate(out_dir / name, data_dir=args.data_dir, k=args.k, verbose=0)
        evaluated = time.perf_counter()
        published, source = PUBLISHED.get(name, (None, ""))
        results[name] = {
            "config": dataclasses.asdict(config),
            "test_elbo": metrics["elbo"],
            "nll": metrics["nll"],
            "bits_per_dim": metrics["bits_per_dim"],
            "k": args.k,
            "published_nll": published,
            "published_source": source,
            "train_seconds": trained - started,
            "train_examples_per_second": summary["examples_per_second"],
            "eval_seconds": evaluated - trained,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        results_path.write_text(json.dumps(results, indent=2))
        print(f"{name:<15} {args.epochs:>6} {metrics['elbo']:>10.2f} {metrics['nll']:>8.2f} "
              f"{metrics['bits_per_dim']:>8.4f} {published if published else '-':>9}  "
              f"{trained - started:>8.0f} {evaluated - trained:>7.0f}  {source}", flush=True)


if __name__ == "__main__":
    main()
