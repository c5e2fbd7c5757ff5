"""Interpolations and traversals of the latent space, against their definitions."""

import numpy as np
import pytest

import tfvae
from tfvae import architectures
from tfvae.models import latent_paths


def _vae(latent_dim=3):
    return tfvae.VAE(architectures.mlp_encoder((4, 4, 1), latent_dim, hidden_units=(8,)),
                     architectures.mlp_decoder(latent_dim, (4, 4, 1), hidden_units=(8,)))


def test_interpolation_latents_are_the_straight_line_with_both_ends():
    start, end = np.array([[0.0, 2.0], [1.0, -1.0]], np.float32), np.array([[4.0, 2.0], [-1.0, 1.0]], np.float32)
    latents = latent_paths.interpolation_latents(start, end, 5).numpy()
    assert latents.shape == (2, 5, 2)
    np.testing.assert_allclose(latents[:, 0], start)
    np.testing.assert_allclose(latents[:, -1], end)
    np.testing.assert_allclose(latents[0, :, 0], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(latents[1, 2], [0.0, 0.0])
    with pytest.raises(ValueError, match=r"`num_steps` must be an int >= 2.*received 1"):
        latent_paths.interpolation_latents(start, end, 1)


def test_traversal_latents_change_one_coordinate_per_row():
    center = np.array([0.5, -0.5, 2.0], np.float32)
    latents = latent_paths.traversal_latents(center, dims=[2, 0], values=[-1.0, 0.0, 1.0])
    assert latents.shape == (2, 3, 3)
    np.testing.assert_array_equal(latents[0, :, 2], [-1, 0, 1])
    np.testing.assert_array_equal(latents[0, :, :2], np.tile(center[:2], (3, 1)))
    np.testing.assert_array_equal(latents[1, :, 0], [-1, 0, 1])
    np.testing.assert_array_equal(latents[1, :, 1:], np.tile(center[1:], (3, 1)))


def test_active_dimensions_rank_by_the_variance_of_posterior_means():
    means = np.stack([np.zeros(100), np.linspace(-1, 1, 100), 3 * np.linspace(-1, 1, 100), np.full(100, 7.0)], axis=1)
    dims, activities = latent_paths.active_dimensions(means, max_dims=3)
    assert list(dims) == [2, 1, 0]
    np.testing.assert_allclose(activities[0], 9 * activities[1])


def test_decoded_paths_end_at_reconstructions_and_vary_only_the_shown_dimension():
    vae = _vae()
    images = (np.random.default_rng(0).uniform(size=(6, 4, 4, 1)) > 0.5).astype(np.float32)
    paths = latent_paths.interpolations(vae, images[:2], images[2:4], num_steps=4).numpy()
    assert paths.shape == (2, 4, 4, 4, 1)
    np.testing.assert_allclose(paths[:, 0], vae.reconstruct(images[:2]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(paths[:, -1], vae.reconstruct(images[2:4]), rtol=1e-5, atol=1e-6)
    grid, dims = latent_paths.traversals(vae, images[0], images, values=[-2.0, 0.0, 2.0], max_dims=2)
    assert grid.shape == (2, 3, 4, 4, 1) and len(dims) == 2
    center = vae.encode(images[:1]).mean().numpy()[0]
    for row, dim in enumerate(dims):
        for column, value in enumerate([-2.0, 0.0, 2.0]):
            z = center.copy()
            z[dim] = value
            np.testing.assert_allclose(grid[row, column], vae.decode(z[None]).mean()[0], rtol=1e-5, atol=1e-6)
