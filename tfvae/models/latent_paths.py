"""Paths through a VAE's latent space: interpolation between images, traversal of latent dimensions.

Both decode points on a path to the mean of p(x|z):

    interpolation:  z_t = (1 - t) z_a + t z_b,  t = 0, 1/(S - 1), ..., 1
                    z_a, z_b the posterior means of two images
    traversal:      z = z_0 with coordinate j replaced by v, for each v in `values`
                    z_0 the posterior mean of one image; `values` in units of the
                    prior's standard deviation (the standard normal prior's: 1)

The dimensions a traversal shows are the VAE's most *active* ones (Burda et al.,
2015): the variance over the data of the posterior mean E_q[z_j | x], largest
first. A dimension whose posterior mean barely moves with x is unused by the
decoder, and its row of a traversal would be constant.
"""

import numpy as np
import tensorflow as tf

from tfvae import _backend  # noqa: F401  (selects the TensorFlow backend)


def interpolation_latents(start, end, num_steps):
    """`[pairs, num_steps, d]`: the straight line from `start: [pairs, d]` to `end: [pairs, d]`, both ends included."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"`num_steps` must be an int >= 2 (both ends are included); received {num_steps!r}.")
    start, end = tf.convert_to_tensor(start), tf.convert_to_tensor(end)
    t = tf.linspace(tf.constant(0.0, start.dtype), tf.constant(1.0, start.dtype), num_steps)[None, :, None]
    return (1.0 - t) * start[:, None, :] + t * end[:, None, :]


def traversal_latents(center, dims, values):
    """`[len(dims), len(values), d]`: `center: [d]` with coordinate `dims[i]` set to `values[k]` in row i, column k."""
    center = np.asarray(center, np.float32)
    latents = np.repeat(np.repeat(center[None, None, :], len(dims), 0), len(values), 1)
    for row, dim in enumerate(dims):
        latents[row, :, dim] = values
    return latents


def active_dimensions(posterior_means, max_dims=None):
    """The latent dimensions by activity `Var_x(E_q[z_j | x])`, largest first: `(dims, activities)`.

    Args:
      posterior_means: `[num_images, d]`, the posterior means of some images.
      max_dims: keep at most this many (None: all d).
    """
    activities = np.var(np.asarray(posterior_means, np.float64), axis=0)
    order = np.argsort(-activities, kind="stable")[:max_dims]
    return order, activities[order]


def interpolations(vae, start_images, end_images, num_steps=10):
    """Decoded interpolations between image pairs: `[pairs, num_steps, *image_shape]` means of p(x|z).

    Column 0 is the reconstruction of `start_images[i]`, the last column that of `end_images[i]`.
    """
    start = vae.encode(start_images).mean()
    end = vae.encode(end_images).mean()
    latents = interpolation_latents(start, end, num_steps)
    pairs, steps, latent_dim = latents.shape
    images = vae.decode(tf.reshape(latents, [pairs * steps, latent_dim])).mean()
    return tf.reshape(images, [pairs, steps, *images.shape[1:]])


def traversals(vae, image, reference_images, values=np.linspace(-3.0, 3.0, 9), max_dims=10):
    """Decoded traversals of the most active latent dimensions around one image.

    Args:
      image: `[*image_shape]`, the image whose posterior mean is the centre.
      reference_images: `[num_images, *image_shape]` that rank the dimensions
        by activity (`active_dimensions`).
      values: the values each shown coordinate takes.
      max_dims: the number of dimensions shown.

    Returns:
      `(images, dims)`: `[len(dims), len(values), *image_shape]` means of
      p(x|z), row i varying dimension `dims[i]`.
    """
    dims, _ = active_dimensions(vae.encode(reference_images).mean().numpy(), max_dims)
    center = vae.encode(np.asarray(image)[None]).mean().numpy()[0]
    latents = traversal_latents(center, dims, np.asarray(values, np.float32))
    rows, columns, latent_dim = latents.shape
    images = vae.decode(latents.reshape(rows * columns, latent_dim)).mean()
    return tf.reshape(images, [rows, columns, *images.shape[1:]]), dims
