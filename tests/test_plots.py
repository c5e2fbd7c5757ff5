import matplotlib.image
import numpy as np
import pytest

from tfvae import plots


def _png(path):
    return matplotlib.image.imread(path)


def test_image_grid_places_each_image_in_its_tile(tmp_path):
    values = np.linspace(0, 1, 6, dtype=np.float32)
    images = values[:, None, None, None] * np.ones([6, 5, 4, 1], np.float32)
    pixels = _png(plots.image_grid(images, tmp_path / "sub" / "grid.png", num_columns=3))
    assert pixels.shape[:2] == (2 * 6 - 1, 3 * 5 - 1)  # rows * (h + 1) - 1, cols * (w + 1) - 1
    for index, value in enumerate(values):
        row, column = divmod(index, 3)
        np.testing.assert_allclose(pixels[row * 6 + 2, column * 5 + 2, 0], value, atol=1 / 255)
    np.testing.assert_allclose(pixels[5, 0, 0], 1.0)  # the gap is white


def test_image_grid_keeps_colour_and_defaults_to_square(tmp_path):
    images = np.zeros([9, 2, 2, 3], np.float32)
    images[..., 0] = 1.0  # red
    pixels = _png(plots.image_grid(images, tmp_path / "rgb.png"))
    assert pixels.shape[:2] == (3 * 3 - 1, 3 * 3 - 1)
    np.testing.assert_allclose(pixels[0, 0, :3], [1.0, 0.0, 0.0])


def test_reconstruction_pairs_puts_inputs_above_reconstructions(tmp_path):
    inputs, reconstructions = np.zeros([10, 3, 3, 1]), np.ones([10, 3, 3, 1])
    pixels = _png(plots.reconstruction_pairs(inputs, reconstructions, tmp_path / "pairs.png", num_pairs=4))
    assert pixels.shape[:2] == (2 * 4 - 1, 4 * 4 - 1)
    assert pixels[1, 1, 0] == 0.0 and pixels[5, 1, 0] == 1.0
    with pytest.raises(ValueError, match=r"same shape; received \(10, 3, 3, 1\) and \(9, 3, 3, 1\)"):
        plots.reconstruction_pairs(inputs, reconstructions[:9], tmp_path / "bad.png")


@pytest.mark.parametrize("shape", [(4, 4, 1), (2, 4, 4, 2), (0, 4, 4, 1)])
def test_image_grid_rejects_bad_shapes(shape, tmp_path):
    with pytest.raises(ValueError, match=r"\[num_images, height, width, 1 or 3\]"):
        plots.image_grid(np.zeros(shape), tmp_path / "bad.png")


def test_project_2d_keeps_2d_latents_and_preserves_distances_of_planar_data():
    rng = np.random.default_rng(0)
    points, labels = plots.project_2d(rng.normal(size=(20, 2)))
    assert labels == ("z[0]", "z[1]") and points.shape == (20, 2)
    plane = np.linalg.qr(rng.normal(size=(5, 5)))[0][:, :2]
    latents = rng.normal(size=(30, 2)) @ plane.T + 3.0  # lies in a 2-D affine subspace of R^5
    projected, labels = plots.project_2d(latents)
    assert labels == ("PC 1", "PC 2")
    distances = lambda p: np.linalg.norm(p[:, None] - p[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(distances(projected), distances(latents), atol=1e-5)


def test_latent_scatter_and_loss_curves_have_documented_pixel_sizes(tmp_path):
    latents = np.random.default_rng(0).normal(size=(50, 3))
    scatter = _png(plots.latent_scatter(latents, tmp_path / "latent.png", labels=np.arange(50) % 10))
    assert scatter.shape[:2] == (600, 600)
    history = {"loss": [3.0, 2.0], "val_loss": [3.5, 2.5], "kl": [1.0, 0.5]}
    curves = _png(plots.loss_curves(history, tmp_path / "curves.png"))
    assert curves.shape[:2] == (350, 2 * 400)
    with pytest.raises(ValueError, match="history"):
        plots.loss_curves({}, tmp_path / "empty.png")
    with pytest.raises(ValueError, match=r"`labels` must have shape \(50,\)"):
        plots.latent_scatter(latents, tmp_path / "bad.png", labels=[1, 2])
