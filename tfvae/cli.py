"""The `tfvae` command: parses arguments, calls the library, prints results.

    tfvae train --dataset mnist --arch mlp --epochs 10 --out runs/mnist
    tfvae evaluate --model runs/mnist --split test
    tfvae sample --model runs/mnist -n 64 --out samples.png
    tfvae train --dataset mnist --conditional --out runs/cmnist
    tfvae sample --model runs/cmnist --label 3 -n 16 --out threes.png
    tfvae reconstruct --model runs/mnist -n 16 --out reconstructions.png
    tfvae export --model runs/mnist --out serving/vae/1
"""

import argparse
import dataclasses
import logging
import math
import sys

import tensorflow as tf

import tfvae
from tfvae import architectures, bounds, data, priors, training
from tfvae import export as export_lib
from tfvae.training import run_dir as run_files

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143  # 128 + SIGINT, SIGTERM

DATASET_CHOICES = sorted(data.DATASETS)
ARCH_CHOICES = sorted(training.ARCHITECTURES)
LIKELIHOOD_CHOICES = sorted(architectures.LIKELIHOODS)
DEFAULTS = training.COMMAND_DEFAULTS  # the short-budget benchmark's best (BENCHMARKS.md)
SPLIT_CHOICES = data.SPLIT_NAMES


def _int_at_least(minimum, text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, received {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, received {value}")
    if value > 2**31 - 1:  # beyond it TensorFlow's int32 shapes and counts overflow
        raise argparse.ArgumentTypeError(f"expected an integer <= 2**31 - 1, received {value}")
    return value


def _positive_int(text):
    return _int_at_least(1, text)


def _non_negative_int(text):
    return _int_at_least(0, text)


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, received {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, received {text!r}")
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, received {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, received {value}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="tfvae", description="Train, evaluate and sample variational autoencoders.")
    parser.add_argument("--version", action="version", version=f"tfvae {tfvae.__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a VAE and write model, history, logs and figures")
    train.add_argument("--dataset", default="mnist", choices=DATASET_CHOICES)
    train.add_argument("--arch", default=DEFAULTS["arch"], choices=ARCH_CHOICES,
                       help="encoder/decoder architecture; hvae: two stochastic layers z2 -> z1 -> x (Tomczak & Welling's "
                            "HVAE, gated, 300 units), --latent-dim being the size of [z1, z2] and --prior p(z2)")
    train.add_argument("--latent-dim", type=_positive_int, default=DEFAULTS["latent_dim"])
    train.add_argument("--likelihood", default="bernoulli", choices=LIKELIHOOD_CHOICES,
                       help="p(x|z): bernoulli (binary pixels), gaussian (shared learned scale); for grey levels: normal "
                            "(per-pixel mean and scale), continuous_bernoulli, discretized_logistic_mixture (8-bit, bits/dim)")
    train.add_argument("--epochs", type=_positive_int, default=None, help="default: 10, or the resumed run's")
    train.add_argument("--batch-size", type=_positive_int, default=DEFAULTS["batch_size"])
    train.add_argument("--learning-rate", type=_positive_float, default=DEFAULTS["learning_rate"])
    train.add_argument("--lr-schedule", default="constant", choices=training.LEARNING_RATE_SCHEDULES,
                       dest="learning_rate_schedule",
                       help="cosine: decay the learning rate to 0 over all epochs; iwae_paper: Burda et al.'s 3^i epochs "
                            "at --learning-rate * 10^(-i/7), i = 0..7 (both resumable)")
    train.add_argument("--beta", type=_positive_float, default=1.0, help="weight of the KL term (1 = ELBO)")
    train.add_argument("--posterior", default="independent_normal", choices=sorted(architectures.POSTERIORS),
                       help="q(z|x): a diagonal Gaussian, a full-covariance one (mean and Cholesky factor), or a diagonal "
                            "Gaussian moved by two inverse autoregressive flow steps (iaf)")
    train.add_argument("--prior", default="standard_normal", choices=sorted(priors.PRIORS),
                       help="p(z): N(0, I), a learned diagonal Gaussian, a mixture of Gaussians, the VampPrior, "
                            "or a masked autoregressive flow on N(0, I)")
    train.add_argument("--prior-components", type=_positive_int, default=None, metavar="K",
                       help="Gaussians of mixture_of_gaussians (default 10) or pseudo-inputs of vampprior (default 500)")
    train.add_argument("--pseudo-inputs", default="random", choices=["random", "data"],
                       help="start the VampPrior's pseudo-inputs at N(0.05, 0.01^2) pixels or at the first training images")
    train.add_argument("--kl-warmup-epochs", type=_non_negative_int, default=0, metavar="EPOCHS",
                       help="raise the KL weight linearly from 0 to --beta over EPOCHS epochs (default: 0, none)")
    train.add_argument("--free-bits", type=_non_negative_float, default=0.0, metavar="NATS",
                       help="free bits: each latent dimension's KL costs at least NATS in the training loss "
                            "(Kingma et al. 2016; default: 0, none)")
    train.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE", dest="early_stopping_patience",
                       help="stop after PATIENCE epochs without a better validation ELBO and keep the best epoch's model")
    train.add_argument("--conditional", action="store_true",
                       help="train a conditional VAE, q(z|x,y) and p(x|z,y), on the dataset's labels (mnist, fashion_mnist, "
                            "cifar10; not binarized_mnist, which has none); sample it with `tfvae sample --label`")
    train.add_argument("--objective", default=DEFAULTS["objective"], choices=["elbo", "iwae"],
                       help="iwae: the bound L_k of Burda et al.; elbo for --beta and --kl-warmup-epochs")
    train.add_argument("-k", type=_positive_int, default=DEFAULTS["k"], dest="k",
                       help="latent samples per example and step: the k of the IWAE bound L_k (with elbo, averaged)")
    train.add_argument("--binarize", default="auto", choices=["auto", "dynamic", "none"],
                       help="binarize grey images afresh each epoch; auto: dynamic, except none for binarized_mnist "
                            "and the grey-level likelihoods")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--max-examples", type=_positive_int, default=None, help="use only the first N examples of each split")
    train.add_argument("--out", default=None, help="run directory (default: saved_models/DATASET_ARCH)")
    train.add_argument("--data-dir", default=None, help="tensorflow-datasets directory (default: $TFDS_DATA_DIR)")
    train.add_argument("--strategy", default="default", choices=training.STRATEGIES,
                       help="tf.distribute strategy: mirrored (local GPUs), multi_worker (TF_CONFIG), tpu")
    train.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="STEPS",
                       help="also checkpoint every STEPS steps (checkpoints always follow each epoch and Ctrl-C)")
    train.add_argument("--steps-per-execution", type=_positive_int, default=None, metavar="STEPS",
                       help="training steps per compiled call (default: 50, or the largest divisor of --checkpoint-every up to 50)")
    train.add_argument("--no-xla", dest="jit_compile", action="store_const", const=False, default=None,
                       help="do not compile the training step with XLA (default: XLA on one device)")
    train.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    train.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras progress: bar (1), line per epoch (2)")

    evaluate = commands.add_parser("evaluate", help="print the ELBO and its parts on a dataset split")
    evaluate.add_argument("--model", required=True, help="run directory written by `tfvae train`")
    evaluate.add_argument("--dataset", default=None, choices=DATASET_CHOICES, help="default: the run's dataset")
    evaluate.add_argument("--split", default="test", choices=SPLIT_CHOICES)
    evaluate.add_argument("--max-examples", type=_positive_int, default=None)
    evaluate.add_argument("-k", type=_positive_int, default=None, dest="k",
                          help="also estimate the NLL by the importance-weighted bound L_k with k samples (e.g. 5000)")
    evaluate.add_argument("--data-dir", default=None)

    sample = commands.add_parser("sample", help="write a grid of images drawn from the model")
    sample.add_argument("--model", required=True)
    sample.add_argument("-n", "--num-images", type=_positive_int, default=64)
    sample.add_argument("--seed", type=int, default=None)
    sample.add_argument("--label", type=_non_negative_int, nargs="+", default=None, metavar="L", dest="labels",
                        help="a conditional model's classes to draw: one class gives -n images of it; several give a row "
                             "of -n images per class, each column from the same z")
    sample.add_argument("--out", default="samples.png")

    reconstruct = commands.add_parser("reconstruct", help="write inputs beside their reconstructions")
    reconstruct.add_argument("--model", required=True)
    reconstruct.add_argument("-n", "--num-images", type=_positive_int, default=16)
    reconstruct.add_argument("--split", default="test", choices=SPLIT_CHOICES)
    reconstruct.add_argument("--data-dir", default=None)
    reconstruct.add_argument("--out", default="reconstructions.png")

    export = commands.add_parser("export", help="write a TF Serving SavedModel of the model")
    export.add_argument("--model", required=True)
    export.add_argument("--out", required=True, help="SavedModel directory, e.g. serving/vae/1 (TF Serving wants a version folder)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def _train(args):
    if args.resume:
        if not args.out:
            raise ValueError("--resume needs --out, the run directory to continue.")
        config = training.read_config(args.out)
        if args.epochs:
            config = dataclasses.replace(config, epochs=args.epochs)
        summary = training.train(config, args.out, data_dir=args.data_dir, resume=True, verbose=args.verbose,
                                 strategy=training.make_strategy(args.strategy))
        return _report(summary, args.out, config)
    if args.binarize == "auto":
        grey_levels = args.likelihood in architectures.GREY_LEVEL_LIKELIHOODS
        binarize = None if args.dataset == "binarized_mnist" or grey_levels else "dynamic"
    else:
        binarize = None if args.binarize == "none" else args.binarize
    config = training.TrainingConfig(
        dataset=args.dataset,
        binarize=binarize,
        arch=args.arch,
        latent_dim=args.latent_dim,
        likelihood=args.likelihood,
        epochs=args.epochs or 10,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        beta=args.beta,
        objective=args.objective,
        k=args.k,
        seed=args.seed,
        max_examples=args.max_examples,
        checkpoint_every=args.checkpoint_every,
        jit_compile=args.jit_compile,
        steps_per_execution=args.steps_per_execution,
        posterior=args.posterior,
        learning_rate_schedule=args.learning_rate_schedule,
        prior=args.prior,
        prior_components=args.prior_components,
        pseudo_inputs=args.pseudo_inputs,
        kl_warmup_epochs=args.kl_warmup_epochs,
        free_bits=args.free_bits,
        early_stopping_patience=args.early_stopping_patience,
        conditional=args.conditional,
    )
    out = args.out or f"saved_models/{config.dataset}_{config.arch}"
    summary = training.train(config, out, data_dir=args.data_dir, overwrite=args.overwrite, verbose=args.verbose,
                             strategy=training.make_strategy(args.strategy))
    return _report(summary, out, config)


def _report(summary, out, config):
    if summary["interrupted"]:
        print(f"Interrupted at epoch {summary['epochs_done'] + 1}, step {summary['step_in_epoch']}; checkpoint saved. "
              f"Continue with: tfvae train --out {out} --resume")
        return EXIT_TERMINATED if summary.get("signal") == "SIGTERM" else EXIT_INTERRUPTED
    rows = [
        ("test ELBO (nats)", f"{summary['elbo']:.2f}"),
        ("reconstruction (nats)", f"{summary['reconstruction']:.2f}"),
        ("KL (nats)", f"{summary['kl']:.2f}"),
        *([("test -ELBO (bits/dim)", f"{_negative_elbo_bits_per_dim(summary, config):.4f}")]
          if config.likelihood in architectures.DISCRETE_GREY_LEVEL_LIKELIHOODS else []),
        *([("best epoch (kept)", f"{summary['best_epoch']} of {summary['epochs_done']}")] if "best_epoch" in summary else []),
        ("wall time (s)", f"{summary['wall_time_s']:.1f}"),
        ("examples per second", f"{summary['examples_per_second']:.0f}"),
    ]
    if summary["chief"]:
        print(f"\nWrote {out}/ (model.keras, history.csv, logs/, {', '.join(run_files.figures_of(config))})")
    else:
        print(f"\nTrained as a worker; the chief (worker 0) wrote {out}/")
    _print_table(rows)
    return EXIT_OK


def _negative_elbo_bits_per_dim(summary, config):
    """The test -ELBO, an upper bound on the NLL, in bits per dimension (for discrete likelihoods)."""
    return bounds.bits_per_dim(-summary["elbo"], math.prod(data.DATASETS[config.dataset].image_shape))


def _print_table(rows):
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>10}")


def _evaluate(args):
    metrics = training.evaluate(args.model, dataset=args.dataset, split=args.split, data_dir=args.data_dir,
                                max_examples=args.max_examples, k=args.k)
    rows = [(f"{name} (nats)", f"{metrics[name]:.3f}") for name in ("elbo", "reconstruction", "kl")]
    if args.k:
        # Four decimals, as the progress bar shows the same number.
        rows += [(f"NLL, k={args.k} (nats)", f"{metrics['nll']:.4f}"), ("NLL (bits/dim)", f"{metrics['bits_per_dim']:.4f}")]
    _print_table(rows)
    return EXIT_OK


def _sample(args):
    labels = None if args.labels is None else args.labels[0] if len(args.labels) == 1 else args.labels
    path = training.sample_images(args.model, args.num_images, args.out, seed=args.seed, labels=labels)
    print(f"Wrote {path}")
    return EXIT_OK


def _reconstruct(args):
    path = training.reconstruct_images(args.model, args.num_images, args.out, split=args.split, data_dir=args.data_dir)
    print(f"Wrote {path}")
    return EXIT_OK


def _export(args):
    path = training.export_run(args.model, args.out, overwrite=args.overwrite)
    labelled = f"; each takes a `{export_lib.LABEL_INPUT}` input" if training.read_config(args.model).conditional else ""
    print(f"Wrote {path} (signatures: {', '.join(export_lib.SIGNATURE_NAMES)}{labelled})")
    return EXIT_OK


COMMANDS = {"train": _train, "evaluate": _evaluate, "sample": _sample, "reconstruct": _reconstruct, "export": _export}


def main(argv=None):
    """Runs the `tfvae` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    # tfvae's own messages at --log-level; other libraries' (TensorFlow's
    # "Assets written to ...") only when they warn.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tfvae").setLevel(args.log_level)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, OSError, data.DatasetUnavailableError, training.NonFiniteLossError, training.WorkerLostError) as error:
        print(f"tfvae {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, ValueError) else EXIT_FAILURE
    except (MemoryError, tf.errors.ResourceExhaustedError) as error:  # a model or batch too large for this machine
        reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        print(f"tfvae {args.command}: error: out of memory ({reason}); use a smaller model or batch.", file=sys.stderr)
        return EXIT_FAILURE
