"""Priors p(z) over the latent space, as Keras layers that own their variables.

A prior is a layer so that its variables are tracked, trained and saved with
the model that holds it. `prior.distribution()` (or `prior()`) returns a distribution with
batch shape `[]` and event shape `[latent_dim]`; it broadcasts against a
posterior of batch shape `[batch]` in `tfd.kl_divergence`.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers import (
    SERIALIZATION_PACKAGE,
    MeanConvertibleIndependent,
    _as_event_shape,
    check_scale_floor,
    unit_scale_initializer,
)

tfd = tfp.distributions


class Prior(keras.layers.Layer):
    """Base class of priors; subclasses implement `distribution()`."""

    def __init__(self, latent_dim, **kwargs):
        super().__init__(**kwargs)
        (self.latent_dim,) = _as_event_shape(latent_dim, "latent_dim")
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

    Starts at N(0, I). The scale is `softplus(raw_scale) + scale_floor`.
    """

    def __init__(self, latent_dim, scale_floor=1e-3, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.scale_floor = check_scale_floor(scale_floor)
        self.loc = self.add_weight(shape=(self.latent_dim,), initializer="zeros", name="loc")
        self.raw_scale = self.add_weight(
            shape=(self.latent_dim,), initializer=unit_scale_initializer(self.scale_floor), name="raw_scale"
        )

    def distribution(self):
        scale = tf.math.softplus(tf.convert_to_tensor(self.raw_scale)) + self.scale_floor
        return MeanConvertibleIndependent(
            tfd.Normal(loc=tf.convert_to_tensor(self.loc), scale=scale),
            reinterpreted_batch_ndims=1,
        )

    def get_config(self):
        return {**super().get_config(), "scale_floor": self.scale_floor}


PRIORS = {"standard_normal": StandardNormal, "diagonal_normal": DiagonalNormal}


def get_prior(name, latent_dim):
    """Returns the prior registered under `name`, e.g. `"standard_normal"`."""
    if name not in PRIORS:
        raise ValueError(f"Unknown prior {name!r}; known priors: {sorted(PRIORS)}.")
    return PRIORS[name](latent_dim)
