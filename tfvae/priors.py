"""Priors p(z) over the latent space, as Keras layers that own their variables.

A prior is a layer so that its variables are tracked, trained and saved with
the model that holds it. `prior.distribution()` (or `prior()`) returns a
distribution with batch shape `[]` and event shape `[latent_dim]`; it
broadcasts against a posterior of batch shape `[batch]` in `tfd.kl_divergence`.

Priors follow the dtype rule of `tfvae.layers.distribution`: under a mixed
global policy a prior created without `dtype=` computes in float32, so that it
matches the float32 posterior in the KL term. `distribution()` is usually
called outside a layer call, where Keras does not cast variables, so it casts
them to the prior's compute dtype itself.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers import (
    SERIALIZATION_PACKAGE,
    MeanConvertibleIndependent,
    as_event_shape,
    check_scale_floor,
    initial_scale_initializer,
    resolve_dtype,
    scale_bijector,
)

tfd = tfp.distributions


class Prior(keras.layers.Layer):
    """Base class of priors; subclasses implement `distribution()`.

    Args:
      latent_dim: int, the dimension of z.
      dtype: the dtype policy; None gives float32 under a mixed global policy.
    """

    def __init__(self, latent_dim, dtype=None, **kwargs):
        super().__init__(dtype=resolve_dtype(dtype), **kwargs)
        (self.latent_dim,) = as_event_shape(latent_dim, "latent_dim")
        self.built = True

    def distribution(self):
        """Returns p(z): batch shape `[]`, event shape `[latent_dim]`."""
        raise NotImplementedError

    def call(self, inputs=None):
        return self.distribution()

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class StandardNormal(Prior):
    """The fixed prior N(0, I) of the original VAE (Kingma & Welling, 2014)."""

    def distribution(self):
        zeros = tf.zeros([self.latent_dim], self.compute_dtype)
        return MeanConvertibleIndependent(
            tfd.Normal(loc=zeros, scale=tf.ones_like(zeros)), reinterpreted_batch_ndims=1
        )


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DiagonalNormal(Prior):
    """A diagonal Gaussian prior N(loc, diag(scale^2)) with trainable loc and scale.

    The scale is `softplus(raw_scale) + scale_floor`. Starts at loc = 0 and
    scale = `initial_scale(scale_floor) = max(1, 2 * scale_floor)`: N(0, I)
    for every floor below 1/2.

    Args:
      latent_dim: int, the dimension of z.
      scale_floor: float > 0 added to the scale.
    """

    def __init__(self, latent_dim, scale_floor=1e-3, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.scale_floor = check_scale_floor(scale_floor)
        self.loc = self.add_weight(shape=(self.latent_dim,), initializer="zeros", name="loc")
        self.raw_scale = self.add_weight(
            shape=(self.latent_dim,), initializer=initial_scale_initializer(self.scale_floor), name="raw_scale"
        )

    def distribution(self):
        dtype = self.compute_dtype
        scale = scale_bijector(self.scale_floor, dtype).forward(tf.cast(self.raw_scale, dtype))
        return MeanConvertibleIndependent(
            tfd.Normal(loc=tf.cast(self.loc, dtype), scale=scale), reinterpreted_batch_ndims=1
        )

    def get_config(self):
        return {**super().get_config(), "scale_floor": self.scale_floor}


PRIORS = {"standard_normal": StandardNormal, "diagonal_normal": DiagonalNormal}


def get_prior(name, latent_dim):
    """Returns the prior registered under `name`, e.g. `"standard_normal"`."""
    if name not in PRIORS:
        raise ValueError(f"Unknown prior {name!r}; known priors: {sorted(PRIORS)}.")
    return PRIORS[name](latent_dim)
