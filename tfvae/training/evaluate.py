"""The ELBO and the importance-weighted NLL of a finished run, on any split."""

import math

import keras
import numpy as np

from tfvae import bounds, data
from tfvae.layers import check_positive_int
from tfvae.training.config import load_data
from tfvae.training.run_dir import load_run


def evaluate(run_dir, dataset=None, split="test", data_dir=None, max_examples=None, k=None, verbose=1):
    """The ELBO and its parts, and optionally the NLL, of a run's model on a split.

    `dataset` defaults to the run's own; its preprocessing (binarisation) is
    the run's. With `k`, also estimates log p(x) by the importance-weighted
    bound L_k (`VAE.log_likelihood`), with a progress bar that ends on the
    returned `nll`. A conditional run's model is evaluated on the split's
    labels (the bounds are then on log p(x|y)), so its dataset must have labels.

    Returns a dict, per example in nats: `elbo`, `reconstruction`, `kl`,
    `loss`, and with `k` also `nll` (-mean L_k) and `bits_per_dim`.
    """
    if split not in data.SPLIT_NAMES:
        raise ValueError(f"Unknown `split` {split!r}; known: {list(data.SPLIT_NAMES)}.")
    if k is not None:
        check_positive_int("k", k)
    vae, config = load_run(run_dir)
    overrides = {"max_examples": max_examples}
    if dataset is not None and dataset != config.dataset:
        binary = data.DATASETS.get(dataset) and data.DATASETS[dataset].max_pixel_value == 1
        overrides.update(dataset=dataset, binarize=None if binary else config.binarize)
    splits = load_data(config, data_dir, **overrides)
    if splits.image_shape != vae.input_shape_per_example:
        raise ValueError(
            f"Dataset {splits.name!r} has images of shape {splits.image_shape}, but the model "
            f"expects {vae.input_shape_per_example}."
        )
    if getattr(vae, "num_classes", None) is not None and not splits.has_labels:
        raise ValueError(f"The run's model is conditional on {vae.num_classes} classes, and dataset {splits.name!r} has no "
                         "labels: evaluate it on a labelled dataset.")
    metrics = vae.evaluate(splits[split], verbose=0, return_dict=True)
    if k is not None:
        estimates = log_likelihoods(vae, splits[split], splits.has_labels, k, config.seed, verbose)
        metrics["nll"] = -float(np.mean(estimates, dtype=np.float64))
        metrics["bits_per_dim"] = bounds.bits_per_dim(metrics["nll"], math.prod(splits.image_shape))
    return metrics


def log_likelihoods(vae, dataset, has_labels, k, seed=0, verbose=1, chunk_size=100):
    """L_k estimates of log p(x) for every example of `dataset`, `[num_examples]`.

    Batch i uses the seed (seed, i), so a run repeats exactly. The progress
    bar shows the NLL averaged over the examples done so far, so it ends on
    the mean that callers report. A conditional VAE reads each batch's
    labels (`has_labels` must be True) and estimates log p(x|y).
    """
    conditional = getattr(vae, "num_classes", None) is not None
    if conditional and not has_labels:
        raise ValueError(f"A conditional VAE's likelihood needs labels: `has_labels` must be True; received {has_labels!r}.")
    num_batches = int(dataset.cardinality())
    progress = keras.utils.Progbar(num_batches if num_batches >= 0 else None, verbose=verbose, unit_name="batch",
                                   stateful_metrics=["nll"])
    estimates, total, count = [], 0.0, 0
    for index, element in enumerate(dataset):
        images = element[0] if has_labels else element
        labels = {"labels": element[1]} if conditional else {}
        estimates.append(vae.log_likelihood(images, k=k, chunk_size=chunk_size, seed=(seed, index), **labels).numpy())
        total, count = total + float(np.sum(estimates[-1], dtype=np.float64)), count + len(estimates[-1])
        progress.update(index + 1, values=[("nll", -total / count)])
    return np.concatenate(estimates)
