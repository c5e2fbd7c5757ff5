"""tfvae.plots: decoded PNGs have the documented pixel sizes and show what they should."""

import pathlib
import re

import matplotlib
import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest

from tfvae import plots

LEVEL = 1 / 255  # one 8-bit PNG level


@pytest.fixture(autouse=True)
def seeded():
    """Replaces conftest's Keras seeding: these tests touch no Keras, and its
    per-test `clear_session` would take most of this file's run time."""
    yield


def _read_png(path):
    """`[height, width, 4]` RGBA floats of a PNG; fails unless the file decodes as PNG."""
    path = pathlib.Path(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[-1] == 4
    return pixels


def _constant_images(values, height, width, channels=1):
    """`[len(values), height, width, channels]`, image k filled with values[k]."""
    values = np.asarray(values, np.float32).reshape(len(values), 1, 1, -1)
    return np.broadcast_to(values, (len(values), height, width, channels)).copy()


def _tile_centre(index, num_columns, height, width):
    row, column = divmod(index, num_columns)
    return row * (height + 1) + height // 2, column * (width + 1) + width // 2


def _escaped(shape):
    """`shape` as the error message prints it, escaped for `pytest.raises(match=...)`."""
    return re.escape(str(tuple(shape)))


def _contains_colour(pixels, colour):
    """Whether some pixel of `pixels: [height, width, 4]` has the RGB `colour`, within two levels."""
    return bool(np.any(np.all(np.abs(pixels[..., :3] - colour) <= 2 * LEVEL, axis=-1)))


def test_image_grid_is_columns_times_width_plus_gaps_wide_and_creates_folders(tmp_path):
    path = tmp_path / "new" / "folder" / "grid.png"
    written = plots.image_grid(np.zeros([7, 5, 4, 1]), path, num_columns=3)
    assert written == path and isinstance(written, pathlib.Path)
    # 7 images in 3 columns -> 3 rows; width 3 * (4 + 1) - 1, height 3 * (5 + 1) - 1.
    assert _read_png(path).shape[:2] == (3 * 6 - 1, 3 * 5 - 1)


def test_image_grid_defaults_to_ceil_sqrt_columns(tmp_path):
    pixels = _read_png(plots.image_grid(np.zeros([5, 2, 3, 1]), tmp_path / "grid.png"))
    assert pixels.shape[:2] == (2 * 3 - 1, 3 * 4 - 1)  # ceil(sqrt(5)) = 3 columns, 2 rows


def test_image_grid_places_image_k_at_row_k_div_columns_column_k_mod_columns(tmp_path):
    values = np.linspace(0.05, 0.95, 7)
    pixels = _read_png(plots.image_grid(_constant_images(values, 5, 4), tmp_path / "grid.png", num_columns=3))
    for index, value in enumerate(values):
        np.testing.assert_allclose(pixels[_tile_centre(index, 3, 5, 4)][:3], [value] * 3, atol=LEVEL / 2 + 1e-6)
    np.testing.assert_array_equal(pixels[5, :, :3], 1.0)  # the first horizontal gap is white
    np.testing.assert_array_equal(pixels[:, 4, :3], 1.0)  # the first vertical gap is white
    np.testing.assert_array_equal(pixels[-1, -1, :3], 1.0)  # the unused ninth tile is white


def test_image_grid_writes_one_channel_images_as_gray(tmp_path):
    pixels = _read_png(plots.image_grid(_constant_images([0.2, 0.6], 3, 3), tmp_path / "gray.png"))
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 1])
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])
    np.testing.assert_allclose(pixels[1, 1, 0], 0.2, atol=LEVEL / 2 + 1e-6)


def test_image_grid_keeps_the_colours_of_rgb_images(tmp_path):
    colours = [[1.0, 0.0, 0.0], [0.0, 0.6, 0.0], [0.1, 0.2, 0.9], [0.5, 0.5, 0.0]]
    images = _constant_images(colours, 3, 3, channels=3)
    pixels = _read_png(plots.image_grid(images, tmp_path / "rgb.png"))
    for index, colour in enumerate(colours):
        np.testing.assert_allclose(pixels[_tile_centre(index, 2, 3, 3)][:3], colour, atol=LEVEL / 2 + 1e-6)


def test_image_grid_clips_values_to_the_unit_interval(tmp_path):
    pixels = _read_png(plots.image_grid(_constant_images([-0.5, 1.7], 3, 3), tmp_path / "clipped.png"))
    np.testing.assert_array_equal(pixels[1, 1, :3], 0.0)
    np.testing.assert_array_equal(pixels[1, 5, :3], 1.0)


@pytest.mark.parametrize(
    "shape", [(4, 4, 1), (1, 2, 4, 4, 1), (2, 4, 4, 2), (2, 4, 4, 4), (0, 4, 4, 1)], ids=str
)
def test_image_grid_rejects_bad_shapes_naming_the_argument_and_shape(shape, tmp_path):
    expected = rf"`images` must have shape \[num_images, height, width, 1 or 3\].*received shape {_escaped(shape)}"
    with pytest.raises(ValueError, match=expected):
        plots.image_grid(np.zeros(shape, np.float32), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_image_grid_rejects_integer_images_and_non_positive_columns(tmp_path):
    with pytest.raises(ValueError, match="`images` must hold floats in \\[0, 1\\]; received dtype uint8"):
        plots.image_grid(np.zeros([2, 3, 3, 1], np.uint8), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="`num_columns` must be a positive integer; received 0"):
        plots.image_grid(np.zeros([2, 3, 3, 1]), tmp_path / "bad.png", num_columns=0)


def test_reconstruction_pairs_puts_the_first_inputs_above_their_reconstructions(tmp_path):
    inputs = _constant_images(np.linspace(0.0, 0.45, 10), 3, 2)
    reconstructions = _constant_images(np.linspace(0.5, 0.95, 10), 3, 2)
    pixels = _read_png(plots.reconstruction_pairs(inputs, reconstructions, tmp_path / "pairs.png", num_pairs=4))
    assert pixels.shape[:2] == (2 * 4 - 1, 4 * 3 - 1)  # 2 rows of 3-high, 4 columns of 2-wide
    for column in range(4):
        np.testing.assert_allclose(pixels[_tile_centre(column, 4, 3, 2)][0], inputs[column, 0, 0, 0], atol=LEVEL)
        np.testing.assert_allclose(
            pixels[_tile_centre(4 + column, 4, 3, 2)][0], reconstructions[column, 0, 0, 0], atol=LEVEL
        )


def test_reconstruction_pairs_draws_every_pair_when_fewer_than_num_pairs(tmp_path):
    images = np.zeros([3, 4, 4, 3], np.float32)
    pixels = _read_png(plots.reconstruction_pairs(images, images, tmp_path / "pairs.png", num_pairs=8))
    assert pixels.shape[:2] == (2 * 5 - 1, 3 * 5 - 1)


def test_reconstruction_pairs_rejects_mismatched_shapes_naming_both(tmp_path):
    inputs = np.zeros([10, 3, 3, 1], np.float32)
    with pytest.raises(ValueError, match=r"same shape; received \(10, 3, 3, 1\) and \(10, 3, 3, 3\)"):
        plots.reconstruction_pairs(inputs, np.zeros([10, 3, 3, 3]), tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"`reconstructions` must have shape .* received shape \(10, 3, 3\)"):
        plots.reconstruction_pairs(inputs, np.zeros([10, 3, 3]), tmp_path / "bad.png")


def test_project_2d_returns_2d_latents_unchanged():
    latents = np.random.default_rng(0).normal(size=(20, 2))
    points, axis_labels = plots.project_2d(latents)
    np.testing.assert_array_equal(points, latents)
    assert axis_labels == ("z[0]", "z[1]")


def test_project_2d_keeps_distances_of_data_on_a_plane_in_r5():
    rng = np.random.default_rng(0)
    plane = np.linalg.qr(rng.normal(size=(5, 5)))[0][:, :2]  # orthonormal basis of a plane in R^5
    latents = rng.normal(size=(30, 2)) @ plane.T + rng.normal(size=5)  # an affine plane
    points, axis_labels = plots.project_2d(latents)
    assert points.shape == (30, 2) and axis_labels == ("PC 1", "PC 2")

    def distances(x):
        return np.linalg.norm(x[:, None] - x[None], axis=-1)

    np.testing.assert_allclose(distances(points), distances(latents), atol=1e-5)


def test_project_2d_keeps_the_leading_principal_direction_on_the_x_axis():
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(200, 4)) * [0.1, 5.0, 0.2, 1.0]  # most variance along z[1], then z[3]
    points, _ = plots.project_2d(latents)
    assert points[:, 0].var() > points[:, 1].var()
    centred = latents - latents.mean(axis=0)
    np.testing.assert_allclose(np.abs(points[:, 0]), np.abs(centred[:, 1]), rtol=0.05, atol=0.05)


def test_project_2d_puts_1d_latents_on_the_x_axis():
    points, axis_labels = plots.project_2d([[1.0], [-2.0]])
    np.testing.assert_array_equal(points, [[1.0, 0.0], [-2.0, 0.0]])
    assert axis_labels == ("z[0]", "")


@pytest.mark.parametrize("shape", [(5,), (0, 3), (4, 0)], ids=str)
def test_project_2d_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=rf"`latents` must have shape .* received shape {_escaped(shape)}"):
        plots.project_2d(np.zeros(shape))


@pytest.mark.parametrize("latent_dim", [1, 2, 5])
def test_latent_scatter_is_600_by_600_pixels(latent_dim, tmp_path):
    latents = np.random.default_rng(0).normal(size=(50, latent_dim))
    path = tmp_path / "sub" / "latent.png"
    assert plots.latent_scatter(latents, path) == path
    assert _read_png(path).shape[:2] == (600, 600)


def test_latent_scatter_colours_classes_and_names_them_in_a_colour_bar(tmp_path):
    latents = np.random.default_rng(0).normal(size=(60, 3))
    tab10 = matplotlib.colormaps["tab10"].colors
    labelled = _read_png(plots.latent_scatter(latents, tmp_path / "labelled.png", labels=np.arange(60) % 3))
    unlabelled = _read_png(plots.latent_scatter(latents, tmp_path / "unlabelled.png"))
    assert labelled.shape[:2] == (600, 600)
    # The colour bar shows each class's colour opaque; points alone are translucent.
    assert all(_contains_colour(labelled, colour) for colour in tab10[:3])
    assert not _contains_colour(unlabelled, tab10[1]) and not _contains_colour(labelled, tab10[3])


def test_latent_scatter_rejects_labels_of_the_wrong_shape_or_dtype(tmp_path):
    latents = np.zeros([50, 2])
    with pytest.raises(ValueError, match=r"`labels` must be integers of shape \(50,\); received shape \(2,\)"):
        plots.latent_scatter(latents, tmp_path / "bad.png", labels=[1, 2])
    with pytest.raises(ValueError, match="received shape \\(50,\\) and dtype float64"):
        plots.latent_scatter(latents, tmp_path / "bad.png", labels=np.zeros(50))
    assert not (tmp_path / "bad.png").exists()


def test_loss_curves_is_400_pixels_wide_per_metric_and_350_high(tmp_path):
    history = {"loss": [3.0, 2.0, 1.5], "val_loss": [3.5, 2.5, 2.0], "kl": [1.0, 0.5, 0.4], "val_kl": [1.1, 0.6, 0.5]}
    assert _read_png(plots.loss_curves(history, tmp_path / "val.png")).shape[:2] == (350, 2 * 400)
    history = {"loss": [3.0, 2.0], "elbo": [-3.0, -2.0], "kl": [1.0, 0.5]}
    assert _read_png(plots.loss_curves(history, tmp_path / "train.png")).shape[:2] == (350, 3 * 400)


def test_loss_curves_draws_validation_only_when_val_keys_exist(tmp_path):
    orange = matplotlib.colors.to_rgb(plots.VALIDATION_COLOUR)
    with_val = _read_png(plots.loss_curves({"loss": [3.0, 2.0], "val_loss": [3.5, 2.5]}, tmp_path / "a.png"))
    without_val = _read_png(plots.loss_curves({"loss": [3.0, 2.0]}, tmp_path / "b.png"))
    assert _contains_colour(with_val, orange) and not _contains_colour(without_val, orange)


def test_loss_curves_rejects_an_empty_history(tmp_path):
    for history in [{}, {"loss": []}]:
        with pytest.raises(ValueError, match="`history` must map metric names to non-empty lists"):
            plots.loss_curves(history, tmp_path / "empty.png")


def test_compare_curves_draws_every_run_on_one_axes_at_its_documented_size(tmp_path):
    path = plots.compare_curves({"a": [-100.0, -95.0, -93.0], "b": [-101.0, -94.0]}, tmp_path / "c.png", "validation ELBO")
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (400, 600)
    with pytest.raises(ValueError, match="`curves` must map labels to non-empty lists"):
        plots.compare_curves({"a": []}, tmp_path / "d.png", "x")
