"""PNG figures from NumPy arrays: image grids, reconstructions, latent space, loss curves.

Only NumPy and matplotlib: figures are drawn on `matplotlib.figure.Figure`
objects, never through `pyplot`, so no global backend state is touched and
everything works without a display. Each function writes one PNG (creating
missing parent folders) and returns its `pathlib.Path`.

Pixel sizes are exact, whatever the user's matplotlibrc says:
- `image_grid`: `num_columns * (width + 1) - 1` wide and
  `num_rows * (height + 1) - 1` high (native resolution, 1-pixel white gaps).
- `reconstruction_pairs`: `image_grid` with 2 rows and `min(num_pairs, batch)` columns.
- `latent_scatter`: 600 x 600.
- `loss_curves`: `400 * num_metrics` wide and 350 high.
- `compare_curves`: 600 x 400.
"""

import math
import pathlib

import matplotlib
import matplotlib.cm
import matplotlib.image
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

GAP = 1  # pixels of white between the tiles of an image grid
DPI = 100
SCATTER_INCHES = (6, 6)  # -> 600 x 600 pixels at DPI
CURVE_PANEL_INCHES = (4, 3.5)  # -> 400 x 350 pixels per metric at DPI
TRAIN_COLOUR, VALIDATION_COLOUR = "tab:blue", "tab:orange"
MAX_COLOUR_BAR_TICKS = 10
COMPARE_INCHES = (6, 4)  # -> 600 x 400 pixels at DPI


def _output_path(path):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _save_figure(figure, path):
    path = _output_path(path)
    # An explicit bounding box of the whole figure keeps the documented pixel
    # size even where a matplotlibrc sets `savefig.bbox: tight`.
    figure.savefig(path, dpi=DPI, bbox_inches=figure.bbox_inches)
    return path


def _check_images(images, argument):
    """Validated float32 copy of `images: [num_images, height, width, 1 or 3]`, clipped to [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(
            f"`{argument}` must have shape [num_images, height, width, 1 or 3] with num_images >= 1; "
            f"received shape {images.shape}."
        )
    # Integer images (uint8 in [0, 255]) would be clipped to almost all white.
    if not (np.issubdtype(images.dtype, np.floating) or images.dtype == bool):
        raise ValueError(f"`{argument}` must hold floats in [0, 1]; received dtype {images.dtype}.")
    return np.clip(images.astype(np.float32), 0.0, 1.0)


def _check_positive(value, argument):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{argument}` must be a positive integer; received {value!r}.")
    return int(value)


def _tile(images, num_columns):
    """Canvas `[num_rows * (height + GAP) - GAP, num_columns * (width + GAP) - GAP, channels]`.

    `images: [num_images, height, width, channels]` fill it row by row, image
    k at row k // num_columns and column k % num_columns; gaps and unused
    tiles are white.
    """
    num_images, height, width, channels = images.shape
    num_rows = math.ceil(num_images / num_columns)
    canvas = np.ones(
        (num_rows * (height + GAP) - GAP, num_columns * (width + GAP) - GAP, channels), np.float32
    )
    for index, image in enumerate(images):
        top = (index // num_columns) * (height + GAP)
        left = (index % num_columns) * (width + GAP)
        canvas[top : top + height, left : left + width] = image
    return canvas


def _save_canvas(canvas, path):
    """Writes `canvas: [height, width, 1 or 3]` in [0, 1] pixel for pixel; one channel as gray."""
    # Rounding here, rather than matplotlib's truncation, keeps every pixel
    # within half a level (0.5 / 255) of its value.
    pixels = np.round(canvas * 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    path = _output_path(path)
    # origin="upper" explicitly: the default comes from rcParams["image.origin"].
    matplotlib.image.imsave(path, pixels, origin="upper")
    return path


def image_grid(images, path, num_columns=None):
    """Writes images tiled in a grid at native resolution, one PNG pixel per image pixel.

    Args:
        images: [num_images, height, width, channels], floats in [0, 1]
            (clipped), channels 1 (written as gray) or 3 (RGB).
        path: the PNG to write.
        num_columns: tiles per row; defaults to ceil(sqrt(num_images)).

    Image k sits at row k // num_columns, column k % num_columns, with a
    one-pixel white gap between tiles. The PNG is
    `num_columns * (width + 1) - 1` pixels wide and
    `num_rows * (height + 1) - 1` high, `num_rows = ceil(num_images / num_columns)`.

    Returns:
        The `pathlib.Path` written.
    """
    images = _check_images(images, "images")
    if num_columns is None:
        num_columns = math.ceil(math.sqrt(len(images)))
    num_columns = _check_positive(num_columns, "num_columns")
    return _save_canvas(_tile(images, num_columns), path)


def reconstruction_pairs(inputs, reconstructions, path, num_pairs=8):
    """Writes inputs above their reconstructions, to compare them by eye.

    Args:
        inputs: [batch, height, width, channels], floats in [0, 1], channels 1 or 3.
        reconstructions: the same shape as `inputs`.
        path: the PNG to write.
        num_pairs: how many of the first pairs to draw.

    The first row holds the first `min(num_pairs, batch)` inputs, the second
    their reconstructions, tiled as `image_grid` tiles: the PNG is
    `columns * (width + 1) - 1` wide and `2 * (height + 1) - 1` high with
    `columns = min(num_pairs, batch)`.

    Returns:
        The `pathlib.Path` written.
    """
    inputs = _check_images(inputs, "inputs")
    reconstructions = _check_images(reconstructions, "reconstructions")
    if inputs.shape != reconstructions.shape:
        raise ValueError(
            f"`inputs` and `reconstructions` must have the same shape; received {inputs.shape} "
            f"and {reconstructions.shape}."
        )
    num_columns = min(_check_positive(num_pairs, "num_pairs"), len(inputs))
    canvas = _tile(np.concatenate([inputs[:num_columns], reconstructions[:num_columns]]), num_columns)
    return _save_canvas(canvas, path)


def project_2d(latents):
    """Points that draw `latents` on a plane, and the names of the plane's axes.

    Args:
        latents: [num_points, latent_dim], latent_dim >= 1.

    Returns:
        `(points, (x_label, y_label))` with `points: [num_points, 2]`:
        latent_dim 1: z[0] against zeros, labels ("z[0]", "");
        latent_dim 2: the latents unchanged, labels ("z[0]", "z[1]");
        latent_dim > 2: the centred latents projected onto their two leading
        principal directions (SVD of the centred data), labels ("PC 1", "PC 2").
        Projection keeps distances exactly for data on a 2-D affine plane.
    """
    latents = np.asarray(latents, dtype=np.float64)
    if latents.ndim != 2 or latents.shape[0] == 0 or latents.shape[1] == 0:
        raise ValueError(
            "`latents` must have shape [num_points, latent_dim] with num_points >= 1 and "
            f"latent_dim >= 1; received shape {latents.shape}."
        )
    if latents.shape[1] == 1:
        return np.stack([latents[:, 0], np.zeros(len(latents))], axis=1), ("z[0]", "")
    if latents.shape[1] == 2:
        return latents, ("z[0]", "z[1]")
    centred = latents - latents.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    return centred @ directions[:2].T, ("PC 1", "PC 2")


def _label_colours(labels):
    """Class indices `[num_points]`, colour map, norm and class values for integer `labels`."""
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) <= 10:
        colour_map = ListedColormap(matplotlib.colormaps["tab10"].colors[: len(classes)])
    else:
        colour_map = matplotlib.colormaps["viridis"].resampled(len(classes))
    # One colour-bar bin per class, centred on its index.
    norm = BoundaryNorm(np.arange(len(classes) + 1) - 0.5, len(classes))
    return codes.reshape(-1), colour_map, norm, classes


def latent_scatter(latents, path, labels=None):
    """Writes a scatter plot of latent codes, to see how classes spread in latent space.

    Args:
        latents: [num_points, latent_dim], latent_dim >= 1; drawn as `project_2d`
            draws them (1-D codes on the x axis, wider ones on their first two
            principal components).
        path: the PNG to write.
        labels: optional integer [num_points]; points are coloured by class
            and a colour bar names the classes.

    The figure is 6 x 6 inches at 100 dpi: 600 x 600 pixels.

    Returns:
        The `pathlib.Path` written.
    """
    points, (x_label, y_label) = project_2d(latents)
    num_points, latent_dim = np.shape(latents)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (num_points,) or not (
            np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool
        ):
            raise ValueError(
                f"`labels` must be integers of shape ({num_points},); "
                f"received shape {labels.shape} and dtype {labels.dtype}."
            )
    figure = Figure(figsize=SCATTER_INCHES, dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    if labels is None:
        axes.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5, color=TRAIN_COLOUR)
    else:
        codes, colour_map, norm, classes = _label_colours(labels)
        axes.scatter(points[:, 0], points[:, 1], c=codes, cmap=colour_map, norm=norm, s=3, alpha=0.7)
        # A colour bar drawn from the points would copy their translucency
        # (its `alpha=` is overridden by theirs); an opaque twin reads true.
        opaque = matplotlib.cm.ScalarMappable(norm=norm, cmap=colour_map)
        colour_bar = figure.colorbar(opaque, ax=axes, label="label")
        ticks = np.unique(np.linspace(0, len(classes) - 1, min(len(classes), MAX_COLOUR_BAR_TICKS)).round()).astype(int)
        colour_bar.set_ticks(ticks, labels=[str(value) for value in classes[ticks]])
    if latent_dim == 1:
        axes.set_yticks([])  # the y coordinate is a constant zero
    projection = ", first two principal components" if latent_dim > 2 else ""
    axes.set(xlabel=x_label, ylabel=y_label, title=f"{num_points} latent codes ({latent_dim}-D{projection})")
    return _save_figure(figure, path)


def loss_curves(history, path):
    """Writes per-epoch training and validation metrics, one panel per metric.

    Args:
        history: a dict mapping metric names to lists of per-epoch floats, as
            Keras' `History.history`: `loss`, `kl`, ... for training and
            `val_loss`, `val_kl`, ... for validation.
        path: the PNG to write.

    A metric and its `val_` twin share a panel titled with the metric's name
    (training in blue, validation in orange); epochs are numbered from 1.
    Panels stand in one row, each 4 x 3.5 inches at 100 dpi: the PNG is
    `400 * num_metrics` pixels wide and 350 high.

    Returns:
        The `pathlib.Path` written.
    """
    if not history or not any(len(values) for values in history.values()):
        raise ValueError(
            "`history` must map metric names to non-empty lists of per-epoch values; "
            f"received {dict(history)!r}."
        )
    # dict.fromkeys keeps the first-seen order and drops the duplicates.
    metrics = list(dict.fromkeys(name.removeprefix("val_") for name in history))
    figure = Figure(
        figsize=(CURVE_PANEL_INCHES[0] * len(metrics), CURVE_PANEL_INCHES[1]), dpi=DPI, layout="constrained"
    )
    for axes, name in zip(figure.subplots(1, len(metrics), squeeze=False)[0], metrics):
        for key, label, colour in [(name, "train", TRAIN_COLOUR), (f"val_{name}", "validation", VALIDATION_COLOUR)]:
            if key in history:
                values = history[key]
                axes.plot(np.arange(1, len(values) + 1), values, marker="o", label=label, color=colour)
        axes.set(title=name, xlabel="epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
    return _save_figure(figure, path)


def compare_curves(curves, path, ylabel, title=None, first_epoch=1):
    """Writes several runs' per-epoch values of one metric on one set of axes, 600 x 400 pixels.

    Args:
        curves: a dict mapping each run's label to its list of per-epoch
            floats (e.g. the `val_elbo` column of each run's history.csv).
        path: the PNG to write.
        ylabel: what the values are, e.g. "validation ELBO (nats)".
        title: optional.
        first_epoch: the epoch number of each list's first value (1: from
            the start; larger to show only later epochs, at a finer scale).

    Runs of different lengths share the x axis.

    Returns:
        The `pathlib.Path` written.
    """
    if not curves or not all(len(values) for values in curves.values()):
        raise ValueError(f"`curves` must map labels to non-empty lists of per-epoch values; received {dict(curves)!r}.")
    figure = Figure(figsize=COMPARE_INCHES, dpi=DPI, layout="constrained")
    axes = figure.subplots()
    for label, values in curves.items():
        axes.plot(np.arange(first_epoch, first_epoch + len(values)), values, label=label)
    axes.set(xlabel="epoch", ylabel=ylabel, title=title)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    return _save_figure(figure, path)
