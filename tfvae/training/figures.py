"""The figures of a run: samples, reconstructions, latent space, loss curves, interpolations, traversals."""

import pathlib

import numpy as np

from tfvae import plots
from tfvae.models import latent_paths
from tfvae.training.config import load_data
from tfvae.training.run_dir import FIGURES, load_run


def write_figures(vae, dataset, has_labels, history, out_dir, num_latent_points=5000):
    """Writes the figures of a run (`FIGURES`) into `out_dir`; returns their paths.

    `dataset` yields the batches whose reconstructions and latent codes are
    drawn (`(images, labels)` when `has_labels`); `history` is
    `{metric: [value per epoch]}`. interpolations.png: one row per pair of
    images (0 and 1, 2 and 3, ...), from the first image's reconstruction to
    the second's in 10 steps; traversals.png: one row per latent dimension,
    the 10 most active first, each set to -3, ..., 3 around image 0's code.
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
        plots.image_grid(_rows(latent_paths.interpolations(vae, images[0:16:2], images[1:16:2])), out_dir / FIGURES[4],
                         num_columns=10),
        plots.image_grid(_rows(latent_paths.traversals(vae, images[0], images[:1000])[0]), out_dir / FIGURES[5],
                         num_columns=9),
    ]


def _rows(grid):
    """`[rows, columns, *image_shape]` as `[rows * columns, *image_shape]` NumPy, row by row."""
    grid = np.asarray(grid)
    return grid.reshape(-1, *grid.shape[2:])


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
