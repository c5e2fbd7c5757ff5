"""Posteriors, priors and divergences of the variational layers (TFP's `layers/util.py`).

The layers of `tfvae.layers.variational` and `tfvae.layers.conv_variational`
take TFP's callables:

    kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn) -> tfd.Distribution
    kernel_posterior_tensor_fn(distribution[, seed=...])                 -> Tensor
    kernel_divergence_fn(posterior, prior, posterior_tensor)             -> Tensor

TFP's defaults are closures and lambdas, which Keras 3 cannot save. Here they
are registered serializable objects under TFP's names:

    default_loc_scale_fn(...)           -> LocScale(...)
    default_mean_field_normal_fn(...)   -> MeanFieldNormal(...)
    default_multivariate_normal_fn      a registered function, N(0, 1) per weight
    kl_divergence_fn(q, p, ignore)      tfd.kl_divergence(q, p), TFP's default divergence
    ScaledKLDivergence(weight)          weight * tfd.kl_divergence(q, p), e.g. weight = 1 / num_examples
    sample_tensor_fn(d, seed=None)      d.sample(seed=seed), TFP's `lambda d: d.sample()`
    mean_tensor_fn(d, seed=None)        d.mean(), for a deterministic forward pass

A user's own callable must be a function registered with
`@keras.saving.register_keras_serializable()` or an instance of a registered
class with `get_config`, for the layer's `get_config` (and so `.keras` files)
to hold it; `serialize_callable` says so, naming the argument, otherwise.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.conversion import is_registered
from tfvae.layers.checks import get_keras_object
from tfvae.layers.distribution import SERIALIZATION_PACKAGE

tfd = tfp.distributions


def serialize_callable(fn, argument):
    """`fn` as Keras serializes it (None stays None), or ValueError naming `argument` if it cannot be saved."""
    if fn is None:
        return None
    if inspect.isfunction(fn):
        if not is_registered(fn):
            raise ValueError(
                f"`{argument}` must be a function registered with "
                "`@keras.saving.register_keras_serializable()` (or an instance of a registered class "
                f"with `get_config`) so that it can be saved; received the unregistered {fn!r}. "
                "Lambdas and closures cannot be saved: write a named, registered function."
            )
        return keras.saving.serialize_keras_object(fn)
    registered = keras.saving.get_registered_object(keras.saving.get_registered_name(type(fn)))
    if registered is not type(fn) or not hasattr(fn, "get_config"):
        raise ValueError(
            f"`{argument}` must be a registered function or an instance of a class registered with "
            "`@keras.saving.register_keras_serializable()` that has `get_config`, so that it can be "
            f"saved; received {fn!r}."
        )
    return keras.saving.serialize_keras_object(fn)


def deserialize_callable(config):
    """The callable `serialize_callable` wrote (None stays None; a callable passes through).

    Anything else, or a dict that does not deserialize, comes back as it is,
    for `check_callable` to refuse with the argument's name.
    """
    if not isinstance(config, dict):
        return config
    try:
        return keras.saving.deserialize_keras_object(config)
    except (ValueError, TypeError, KeyError):
        return config


def check_callable(fn, argument, optional=True):
    """Returns `fn`, or raises TypeError naming `argument` unless it is callable (or None when `optional`)."""
    if fn is None and optional:
        return fn
    if not callable(fn):
        expected = "a callable or None" if optional else "a callable"
        raise TypeError(f"`{argument}` must be {expected}; received {fn!r}.")
    return fn


def accepts_seed(fn):
    """Whether `fn` takes a `seed` keyword (then the layers pass it one drawn from their seed generator)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in parameters or any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
def sample_tensor_fn(distribution, seed=None):
    """A draw from `distribution`: TFP's default `lambda d: d.sample()`, seeded by the layer."""
    return distribution.sample(seed=seed)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
def mean_tensor_fn(distribution, seed=None):
    """The mean of `distribution` (no noise): a deterministic forward pass."""
    del seed  # unused
    return distribution.mean()


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
def kl_divergence_fn(posterior, prior, ignore=None):
    """TFP's default divergence `lambda q, p, ignore: kl_divergence(q, p)`: the exact KL[q || p]."""
    del ignore  # the posterior's sample; the exact KL does not need it
    return tfd.kl_divergence(posterior, prior)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ScaledKLDivergence:
    """A divergence function `weight * KL[q || p]`, e.g. `weight = 1 / num_examples` to count the KL once per epoch.

    The serializable form of TFP's idiom
    `kernel_divergence_fn=lambda q, p, _: tfd.kl_divergence(q, p) / num_examples`.

    Example:
      ```python
      layer = tfvae.layers.DenseFlipout(10, kernel_divergence_fn=tfvae.layers.ScaledKLDivergence(1 / 60000))
      ```
    """

    def __init__(self, weight):
        if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating, np.integer)) or not (
                0 <= weight < np.inf):
            raise ValueError(f"`weight` must be a finite number >= 0; received {weight!r}.")
        self.weight = float(weight)

    def __call__(self, posterior, prior, ignore=None):
        divergence = tfd.kl_divergence(posterior, prior)
        return tf.cast(self.weight, divergence.dtype) * divergence

    def get_config(self):
        return {"weight": self.weight}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"ScaledKLDivergence(weight={self.weight})"


def _initializer(identifier):
    """A fresh initializer object for `identifier`, so that an unseeded one draws new values per variable."""
    return keras.initializers.get(keras.initializers.serialize(keras.initializers.get(identifier)))


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class LocScale:
    """Creates a `loc` and a `scale = eps + softplus(untransformed_scale)` variable pair (TFP's `default_loc_scale_fn`).

    Called as `loc, scale = LocScale()(dtype, shape, name, trainable,
    add_variable_fn)`; the variables are `name + '_loc'` and
    `name + '_untransformed_scale'`, both of `shape`; `scale` is None when
    `is_singular`. `eps` is the dtype's machine epsilon, as in TFP.

    Args:
      is_singular: bool, no scale (a point mass).
      loc_initializer, untransformed_scale_initializer: Keras initializers
        (identifiers, dicts or objects); TFP's defaults N(0, 0.1^2) and
        N(-3, 0.1^2), i.e. scales near softplus(-3) = 0.049.
      loc_regularizer, untransformed_scale_regularizer: Keras regularizers.
      loc_constraint, untransformed_scale_constraint: Keras constraints.

    Example:
      ```python
      layer = tfvae.layers.DenseReparameterization(
          4, kernel_posterior_fn=tfvae.layers.default_mean_field_normal_fn(
              untransformed_scale_initializer=keras.initializers.Constant(-5.0)))
      ```
    """

    def __init__(
        self,
        is_singular=False,
        loc_initializer=None,
        untransformed_scale_initializer=None,
        loc_regularizer=None,
        untransformed_scale_regularizer=None,
        loc_constraint=None,
        untransformed_scale_constraint=None,
    ):
        if not isinstance(is_singular, bool):
            raise TypeError(f"`is_singular` must be a bool; received {is_singular!r}.")
        if loc_initializer is None:
            loc_initializer = keras.initializers.RandomNormal(stddev=0.1)
        if untransformed_scale_initializer is None:
            untransformed_scale_initializer = keras.initializers.RandomNormal(mean=-3.0, stddev=0.1)
        self.is_singular = is_singular
        self.loc_initializer = keras.initializers.serialize(get_keras_object("initializer", "loc_initializer", loc_initializer))
        self.untransformed_scale_initializer = keras.initializers.serialize(
            get_keras_object("initializer", "untransformed_scale_initializer", untransformed_scale_initializer))
        self.loc_regularizer = get_keras_object("regularizer", "loc_regularizer", loc_regularizer)
        self.untransformed_scale_regularizer = get_keras_object(
            "regularizer", "untransformed_scale_regularizer", untransformed_scale_regularizer)
        self.loc_constraint = get_keras_object("constraint", "loc_constraint", loc_constraint)
        self.untransformed_scale_constraint = get_keras_object(
            "constraint", "untransformed_scale_constraint", untransformed_scale_constraint)

    def __call__(self, dtype, shape, name, trainable, add_variable_fn):
        """Returns `(loc, scale)` tensors; `scale` is None when `is_singular`."""
        loc = add_variable_fn(
            name=name + "_loc", shape=shape, initializer=_initializer(self.loc_initializer),
            regularizer=self.loc_regularizer, constraint=self.loc_constraint, dtype=dtype, trainable=trainable)
        if self.is_singular:
            return tf.convert_to_tensor(loc), None
        untransformed_scale = add_variable_fn(
            name=name + "_untransformed_scale", shape=shape,
            initializer=_initializer(self.untransformed_scale_initializer),
            regularizer=self.untransformed_scale_regularizer, constraint=self.untransformed_scale_constraint,
            dtype=dtype, trainable=trainable)
        eps = np.finfo(tf.as_dtype(dtype).as_numpy_dtype).eps
        return tf.convert_to_tensor(loc), eps + tf.nn.softplus(tf.convert_to_tensor(untransformed_scale))

    def get_config(self):
        return {
            "is_singular": self.is_singular,
            "loc_initializer": self.loc_initializer,
            "untransformed_scale_initializer": self.untransformed_scale_initializer,
            "loc_regularizer": keras.regularizers.serialize(self.loc_regularizer) if self.loc_regularizer else None,
            "untransformed_scale_regularizer": (
                keras.regularizers.serialize(self.untransformed_scale_regularizer)
                if self.untransformed_scale_regularizer else None),
            "loc_constraint": keras.constraints.serialize(self.loc_constraint) if self.loc_constraint else None,
            "untransformed_scale_constraint": (
                keras.constraints.serialize(self.untransformed_scale_constraint)
                if self.untransformed_scale_constraint else None),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(is_singular={self.is_singular})"


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MeanFieldNormal(LocScale):
    """A trainable factorized Normal (or a point mass) over a weight: TFP's `default_mean_field_normal_fn`.

    Called as `MeanFieldNormal()(dtype, shape, name, trainable,
    add_variable_fn)`, it returns

        tfd.Independent(tfd.Normal(loc, eps + softplus(untransformed_scale)))   (batch_shape [], event_shape shape)

    or `tfd.Independent(tfd.Deterministic(loc))` when `is_singular`. The
    arguments are `LocScale`'s.

    Example:
      ```python
      bias_posterior_fn = tfvae.layers.default_mean_field_normal_fn()  # a Normal bias, not TFP's point mass
      layer = tfvae.layers.DenseFlipout(4, bias_posterior_fn=bias_posterior_fn)
      ```
    """

    def __call__(self, dtype, shape, name, trainable, add_variable_fn):
        loc, scale = super().__call__(dtype, shape, name, trainable, add_variable_fn)
        distribution = tfd.Deterministic(loc=loc) if scale is None else tfd.Normal(loc=loc, scale=scale)
        return tfd.Independent(distribution, reinterpreted_batch_ndims=len(shape))


def default_loc_scale_fn(is_singular=False, loc_initializer=None, untransformed_scale_initializer=None,
                         loc_regularizer=None, untransformed_scale_regularizer=None, loc_constraint=None,
                         untransformed_scale_constraint=None):
    """TFP's `default_loc_scale_fn`: a `LocScale` (None initializers are TFP's defaults)."""
    return LocScale(is_singular, loc_initializer, untransformed_scale_initializer, loc_regularizer,
                    untransformed_scale_regularizer, loc_constraint, untransformed_scale_constraint)


def default_mean_field_normal_fn(is_singular=False, loc_initializer=None, untransformed_scale_initializer=None,
                                 loc_regularizer=None, untransformed_scale_regularizer=None, loc_constraint=None,
                                 untransformed_scale_constraint=None):
    """TFP's `default_mean_field_normal_fn`: a `MeanFieldNormal` (None initializers are TFP's defaults)."""
    return MeanFieldNormal(is_singular, loc_initializer, untransformed_scale_initializer, loc_regularizer,
                           untransformed_scale_regularizer, loc_constraint, untransformed_scale_constraint)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
def default_multivariate_normal_fn(dtype, shape, name, trainable, add_variable_fn):
    """The standard Normal N(0, I) over a weight of `shape` (TFP's default prior); creates no variables.

    Returns `tfd.Independent(tfd.Normal(zeros(shape), 1))`: batch shape [],
    event shape `shape`.
    """
    del name, trainable, add_variable_fn  # unused
    dtype = tf.as_dtype(dtype)
    distribution = tfd.Normal(loc=tf.zeros(shape, dtype), scale=dtype.as_numpy_dtype(1))
    return tfd.Independent(distribution, reinterpreted_batch_ndims=len(shape))
