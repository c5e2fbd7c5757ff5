"""Plots one per-epoch metric of several run directories on one axes (e.g. to follow a long run).

    python scripts/compare_runs.py runs/vampprior_static saved_models/vae_static \
        --metric val_elbo --from-epoch 20 --out saved_models/vampprior_static_progress.png

Each RUN is a `tfvae train` / `scripts/reproduce.py` run directory with a history.csv; the label is
the directory's name.
"""

import argparse
import pathlib

from tfvae import plots
from tfvae.training import run_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path)
    parser.add_argument("--metric", default="val_elbo", help="a history.csv column (default: val_elbo)")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--title", default=None)
    parser.add_argument("--from-epoch", type=int, default=1, help="the first epoch shown (default: 1)")
    args = parser.parse_args(argv)
    curves = {}
    for run in args.runs:
        history = run_dir.read_history(run)
        if args.metric not in history:
            parser.error(f"{str(run)!r} has no column {args.metric!r}; it has {sorted(history)}")
        curves[run.name] = history[args.metric][args.from_epoch - 1:]
    print(plots.compare_curves(curves, args.out, ylabel=args.metric.replace("_", " "), title=args.title,
                               first_epoch=args.from_epoch))


if __name__ == "__main__":
    main()
