"""PNG figures from NumPy arrays: image grids, reconstructions, latent space, curves.

Only NumPy and matplotlib; figures are drawn on `matplotlib.figure.Figure`
objects, never through `pyplot`, so no global backend state is touched and
everything works without a display. Each function writes one PNG (creating
parent folders) and returns its `pathlib.Path`.
"""

import math
import pathlib

import matplotlib.image
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

GAP = 1  # pixels of white between tiles in image grids
FIGURE_DPI = 100


def _output_path(path):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _check_images(images, argument):
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise ValueError(
            f"`{argument}` must be [num_images, height, width, 1 or 3] with num_images >= 1; "
            f"received shape {images.shape}."
        )
    return np.clip(images, 0.0, 1.0)


def tile(images, num_columns):
    """Tiles `images: [n, h, w, c]` row by row into `[rows * (h + GAP) - GAP, cols * (w + GAP) - GAP, c]`."""
    count, height, width, channels = images.shape
    num_rows = math.ceil(count / num_columns)
    canvas = np.ones(
        (num_rows * (height + GAP) - GAP, num_columns * (width + GAP) - GAP, channels), np.float32
    )
    for index, image in enumerate(images):
        top = (index // num_columns) * (height + GAP)
        left = (index % num_columns) * (width + GAP)
        canvas[top : top + height, left : left + width] = image
    return canvas


def _save_canvas(canvas, path):
    if canvas.shape[-1] == 1:
        matplotlib.image.imsave(path, canvas[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        matplotlib.image.imsave(path, canvas)
    return path


def image_grid(images, path, num_columns=None):
    """Writes `images: [n, h, w, 1 or 3]` in [0, 1] as a grid at native resolution.

    `num_columns` defaults to ceil(sqrt(n)). The PNG is
    `cols * (w + 1) - 1` pixels wide and `rows * (h + 1) - 1` high, with
    one-pixel white gaps.
    """
    images = _check_images(images, "images")
    num_columns = num_columns or math.ceil(math.sqrt(len(images)))
    return _save_canvas(tile(images, num_columns), _output_path(path))


def reconstruction_pairs(inputs, reconstructions, path, num_pairs=8):
    """Writes two rows: the first `num_pairs` inputs, and below them their reconstructions."""
    inputs = _check_images(inputs, "inputs")
    reconstructions = _check_images(reconstructions, "reconstructions")
    if inputs.shape != reconstructions.shape:
        raise ValueError(
            f"`inputs` and `reconstructions` must have the same shape; received {inputs.shape} "
            f"and {reconstructions.shape}."
        )
    count = min(num_pairs, len(inputs))
    canvas = tile(np.concatenate([inputs[:count], reconstructions[:count]]), num_columns=count)
    return _save_canvas(canvas, _output_path(path))


def project_2d(latents):
    """Points to draw for `latents: [n, d]`: `([n, 2], (x label, y label))`.

    d = 1: z[0] against zeros; d = 2: the latents themselves; d > 2: the
    projection onto the two leading principal components (SVD of the
    centred data).
    """
    latents = np.asarray(latents, dtype=np.float64)
    if latents.ndim != 2 or latents.shape[1] < 1 or len(latents) == 0:
        raise ValueError(f"`latents` must be [num_points, latent_dim]; received shape {latents.shape}.")
    if latents.shape[1] == 1:
        return np.stack([latents[:, 0], np.zeros(len(latents))], axis=1), ("z[0]", "")
    if latents.shape[1] == 2:
        return latents, ("z[0]", "z[1]")
    centred = latents - latents.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    return centred @ directions[:2].T, ("PC 1", "PC 2")


def latent_scatter(latents, path, labels=None):
    """Writes a 600x600-pixel scatter plot of the latent codes, coloured by `labels`."""
    points, (x_label, y_label) = project_2d(latents)
    figure = Figure(figsize=(6, 6), dpi=FIGURE_DPI)
    axes = figure.add_subplot()
    if labels is None:
        axes.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5)
    else:
        labels = np.asarray(labels)
        if labels.shape != (len(points),):
            raise ValueError(f"`labels` must have shape ({len(points)},); received {labels.shape}.")
        drawn = axes.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7)
        figure.colorbar(drawn, ax=axes, label="label")
    axes.set(xlabel=x_label, ylabel=y_label, title=f"Posterior means ({np.shape(latents)[1]}-D latent)")
    figure.savefig(_output_path(path), dpi=FIGURE_DPI)
    return pathlib.Path(path)


def loss_curves(history, path):
    """Writes one panel per metric of a Keras `History.history` dict, train and validation.

    The figure is 4 inches (400 px) wide per metric and 3.5 inches (350 px) high.
    """
    metrics = [name for name in history if not name.startswith("val_")]
    if not metrics or not any(len(history[name]) for name in metrics):
        raise ValueError(f"`history` must map metric names to per-epoch values; received keys {sorted(history)}.")
    figure = Figure(figsize=(4 * len(metrics), 3.5), dpi=FIGURE_DPI, layout="constrained")
    for axes, name in zip(figure.subplots(1, len(metrics), squeeze=False)[0], metrics):
        epochs = np.arange(1, len(history[name]) + 1)
        axes.plot(epochs, history[name], marker="o", label="train")
        if f"val_{name}" in history:
            axes.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        axes.set(title=name, xlabel="epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
    figure.savefig(_output_path(path), dpi=FIGURE_DPI)
    return pathlib.Path(path)
