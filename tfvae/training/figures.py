"""The figures of a run: samples, reconstructions, latent space, loss curves, interpolations, traversals,
and for a conditional VAE samples per class."""

import pathlib

import numpy as np

from tfvae import plots
from tfvae.models import latent_paths
from tfvae.training.config import load_data
from tfvae.training.run_dir import CONDITIONAL_FIGURES, FIGURES, load_run

SAMPLES_PER_CLASS = 10  # columns of samples_per_class.png


def write_figures(vae, dataset, has_labels, history, out_dir, num_latent_points=5000):
    """Writes the figures of a run (`FIGURES`, and `CONDITIONAL_FIGURES` for a conditional VAE) into `out_dir`;
    returns their paths.

    `dataset` yields the batches whose reconstructions and latent codes are
    drawn (`(images, labels)` when `has_labels`); `history` is
    `{metric: [value per epoch]}`. interpolations.png: one row per pair of
    images (0 and 1, 2 and 3, ...), from the first image's reconstruction to
    the second's in 10 steps; traversals.png: one row per latent dimension,
    the 10 most active first, each set to -3, ..., 3 around image 0's code.
    A conditional VAE encodes and decodes every image with its own label
    (interpolations move the one-hot label from the first image's class to
    the second's along with z), draws samples.png with the classes in turn
    (0, 1, ..., N-1, 0, ...) and writes samples_per_class.png
    (`samples_per_class`).
    """
    out_dir = pathlib.Path(out_dir)
    conditional = getattr(vae, "num_classes", None) is not None
    if conditional and not has_labels:
        raise ValueError(f"A conditional VAE's figures need labelled images: `has_labels` must be True; received {has_labels!r}.")
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
    if not conditional:
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
    samples = vae.sample(64, seed=0, labels=np.arange(64) % vae.num_classes).numpy()
    return [
        plots.image_grid(samples, out_dir / FIGURES[0]),
        plots.reconstruction_pairs(images[:16], vae.reconstruct(images[:16], labels=labels[:16]).numpy(), out_dir / FIGURES[1],
                                   num_pairs=16),
        plots.latent_scatter(vae.encode(images, labels=labels).mean().numpy(), out_dir / FIGURES[2], labels=labels),
        plots.loss_curves(history, out_dir / FIGURES[3]),
        plots.image_grid(_rows(conditional_interpolations(vae, images[0:16:2], labels[0:16:2], images[1:16:2], labels[1:16:2])),
                         out_dir / FIGURES[4], num_columns=10),
        plots.image_grid(_rows(conditional_traversals(vae, images[0], labels[0], images[:1000], labels[:1000])),
                         out_dir / FIGURES[5], num_columns=9),
        plots.image_grid(samples_per_class(vae, seed=0), out_dir / CONDITIONAL_FIGURES[0], num_columns=SAMPLES_PER_CLASS),
    ]


def samples_per_class(vae, num_per_class=SAMPLES_PER_CLASS, seed=0):
    """`[num_classes * num_per_class, *image_shape]` means of p(x|z, y) from a conditional VAE, class by class.

    Row c (images c * num_per_class, ...) is `vae.sample(num_per_class,
    seed=seed, labels=c)`: every row decodes the same z ~ p(z), so a column
    shows one z (a "style") drawn as each class.
    """
    return np.concatenate([vae.sample(num_per_class, seed=seed, labels=label).numpy() for label in range(vae.num_classes)])


def conditional_interpolations(vae, start_images, start_labels, end_images, end_labels, num_steps=10):
    """`latent_paths.interpolations` for a conditional VAE: `[pairs, num_steps, *image_shape]`.

    z and the one-hot label y both move on straight lines, from
    (E_q[z|x_a, y_a], y_a) to (E_q[z|x_b, y_b], y_b); so column 0 is the
    reconstruction of `start_images[i]` and the last column that of
    `end_images[i]`, and the label in between is a mixture of the two classes.
    """
    start = vae.encode(start_images, labels=start_labels).mean()
    end = vae.encode(end_images, labels=end_labels).mean()
    latents = latent_paths.interpolation_latents(start, end, num_steps)
    one_hot = latent_paths.interpolation_latents(vae.one_hot_labels(start_labels), vae.one_hot_labels(end_labels), num_steps)
    pairs, steps, latent_dim = latents.shape
    images = vae.decode(np.reshape(latents, [pairs * steps, latent_dim]),
                        labels=np.reshape(one_hot, [pairs * steps, vae.num_classes])).mean()
    return np.reshape(images, [pairs, steps, *images.shape[1:]])


def conditional_traversals(vae, image, label, reference_images, reference_labels, values=np.linspace(-3.0, 3.0, 9),
                           max_dims=10):
    """`latent_paths.traversals` for a conditional VAE, every image decoded with `label`:
    `[len(dims), len(values), *image_shape]`, the dimensions ranked by activity on the labelled reference images."""
    dims, _ = latent_paths.active_dimensions(vae.encode(reference_images, labels=reference_labels).mean().numpy(), max_dims)
    center = vae.encode(np.asarray(image)[None], labels=np.asarray(label)[None]).mean().numpy()[0]
    latents = latent_paths.traversal_latents(center, dims, np.asarray(values, np.float32))
    rows, columns, latent_dim = latents.shape
    images = vae.decode(latents.reshape(rows * columns, latent_dim), labels=np.full([rows * columns], label)).mean()
    return np.reshape(images, [rows, columns, *images.shape[1:]])


def _rows(grid):
    """`[rows, columns, *image_shape]` as `[rows * columns, *image_shape]` NumPy, row by row."""
    grid = np.asarray(grid)
    return grid.reshape(-1, *grid.shape[2:])


def _class_list(labels):
    """`labels` (an int or a sequence of ints) as a list of ints; raises ValueError naming `labels` otherwise."""
    values = [labels] if np.ndim(labels) == 0 else list(np.asarray(labels).reshape(-1)) if np.ndim(labels) == 1 else None
    if not values or not all(isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
                             for value in values):
        raise ValueError(f"`labels` must be a class (int) or a non-empty sequence of classes; received {labels!r}.")
    return [int(value) for value in values]


def sample_images(run_dir, num_images, out_path, seed=None, labels=None):
    """Writes a grid of `num_images` images drawn from a run's model; returns the path.

    `seed` follows `tfvae.seeds`; None means 0, so that the command repeats.
    A conditional run's model needs `labels`: one class draws `num_images`
    images of it (the usual square grid); several draw a row of `num_images`
    per class, each row from the same z (as samples_per_class.png). An
    unconditional model refuses `labels`.
    """
    vae, _ = load_run(run_dir)
    seed = 0 if seed is None else seed
    if getattr(vae, "num_classes", None) is None:
        if labels is not None:
            raise ValueError(f"`labels` apply to a conditional model (trained with --conditional); the model in "
                             f"{str(run_dir)!r} is unconditional: received labels={labels!r}.")
        return plots.image_grid(vae.sample(num_images, seed=seed).numpy(), out_path)
    if labels is None:
        raise ValueError(f"The model in {str(run_dir)!r} is conditional on {vae.num_classes} classes: give the classes to "
                         f"draw (0..{vae.num_classes - 1}), e.g. labels=3 (--label 3).")
    classes = _class_list(labels)
    if len(classes) == 1:
        return plots.image_grid(vae.sample(num_images, seed=seed, labels=classes[0]).numpy(), out_path)
    rows = [vae.sample(num_images, seed=seed, labels=label).numpy() for label in classes]
    return plots.image_grid(np.concatenate(rows), out_path, num_columns=num_images)


def reconstruct_images(run_dir, num_images, out_path, split="test", data_dir=None):
    """Writes the first `num_images` of a split beside their reconstructions; returns the path.

    A conditional run's model reconstructs each image with its label.
    """
    vae, config = load_run(run_dir)
    splits = load_data(config, data_dir, batch_size=num_images, max_examples=num_images)
    element = next(iter(splits[split]))
    images = (element[0] if splits.has_labels else element).numpy()
    if getattr(vae, "num_classes", None) is None:
        reconstructions = vae.reconstruct(images)
    else:
        reconstructions = vae.reconstruct(images, labels=element[1].numpy())
    return plots.reconstruction_pairs(images, reconstructions.numpy(), out_path, num_pairs=num_images)
