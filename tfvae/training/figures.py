"""The figures of a run: samples, reconstructions, latent space and loss curves."""

import pathlib

import numpy as np

from tfvae import plots
from tfvae.training.config import load_data
from tfvae.training.run_dir import FIGURES, load_run


def write_figures(vae, dataset, has_labels, history, out_dir, num_latent_points=5000):
    """Writes the four figures of a run (`FIGURES`) into `out_dir`; returns their paths.

    `dataset` yields the batches whose reconstructions and latent codes are
    drawn (`(images, labels)` when `has_labels`); `history` is
    `{metric: [value per epoch]}`.
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
    samples = vae.sample(64, seed=0).numpy()
    return [
        plots.image_grid(samples, out_dir / FIGURES[0]),
        plots.reconstruction_pairs(images[:16], vae.reconstruct(images[:16]).numpy(), out_dir / FIGURES[1], num_pairs=16),
        plots.latent_scatter(vae.encode(images).mean().numpy(), out_dir / FIGURES[2], labels=labels),
        plots.loss_curves(history, out_dir / FIGURES[3]),
    ]


def sample_images(run_dir, num_images, out_path, seed=None):
    """Writes a grid of `num_images` images drawn from a run's model; returns the path.

    `seed` follows `tfvae.seeds`; None means 0, so that the command repeats.
    """
    vae, _ = load_run(run_dir)
    return plots.image_grid(vae.sample(num_images, seed=0 if seed is None else seed).numpy(), out_path)


def reconstruct_images(run_dir, num_images, out_path, split="test", data_dir=None):
    """Writes the first `num_images` of a split beside their reconstructions; returns the path."""
    vae, config = load_run(run_dir)
    splits = load_data(config, data_dir, batch_size=num_images, max_examples=num_images)
    element = next(iter(splits[split]))
    images = (element[0] if splits.has_labels else element).numpy()
    return plots.reconstruction_pairs(images, vae.reconstruct(images).numpy(), out_path, num_pairs=num_images)
