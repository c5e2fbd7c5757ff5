"""The prior `distribution_b` of the KL layers (`tfvae.layers.kl`): what it may be, and how it is saved.

What it may be, the distribution it stands for, and what is saved (`get_config`, `.keras`):

    a tfvae prior layer (tfvae.priors.StandardNormal, DiagonalNormal, ...)  prior.distribution(); its config
    a Keras layer or model returning a distribution                       layer(0.), as TFP's model(0.); its config
    tfd.Normal, Independent, MultivariateNormalDiag, MultivariateNormalTriL
      with constant parameters                                            class name and parameter values
    a function of no arguments returning a distribution                   registered functions only

A prior with variables (a trainable `DiagonalNormal`, a `VariableLayer`
model) works only in `KLDivergenceAddLoss`: the layer holds the prior as a
sublayer, so Keras 3 trains and saves its variables. Keras 3 tracks nothing
held by an activity regularizer (TFP mixed `tf.Module` into its regularizer
and tf_keras collected its variables; Keras 3 does neither, and its `.keras`
format skips the `activity_regularizer` attribute), so the regularizer refuses
such a prior with a ValueError rather than leave it untrained and unsaved.
`tf.Variable`s inside a plain TFP distribution are refused by both: Keras 3
tracks only its own variables.
"""

import numbers

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.conversion import TensorCoercible, is_registered

tfd = tfp.distributions

# The TFP families a constant `distribution_b` is saved as (class name and parameter values).
SAVED_DISTRIBUTIONS = {
    family.__name__: family
    for family in (tfd.Normal, tfd.Independent, tfd.MultivariateNormalDiag, tfd.MultivariateNormalTriL)
}

DISTRIBUTION_B_EXPECTED = (
    "a tfvae prior layer (e.g. tfvae.priors.StandardNormal(latent_dim)), a Keras layer or model returning a "
    "tfd.Distribution, a tfd.Distribution with constant parameters, or a function of no arguments returning one"
)


def is_prior(value):
    """A tfvae prior: a Keras layer with a `distribution()` method (duck-typed: tfvae.priors sits below layers)."""
    return isinstance(value, keras.layers.Layer) and callable(getattr(value, "distribution", None))


def resolve_distribution_b(distribution_b):
    """`distribution_b` as given (a config's dict deserialized), or TypeError."""
    if isinstance(distribution_b, dict):
        distribution_b = (_rebuild_distribution(distribution_b) if "tfp_distribution" in distribution_b
                          else keras.saving.deserialize_keras_object(distribution_b))
    if isinstance(distribution_b, tfd.Distribution) or is_prior(distribution_b):
        return distribution_b
    if callable(distribution_b):
        # Called once now: a layer is built outside any traced step, and a
        # callable that returns no distribution fails here, not in `fit`.
        try:
            with tf.init_scope():
                distribution_of(distribution_b)
        except TypeError:
            raise
        except Exception as error:
            how = "layer(0.)" if isinstance(distribution_b, keras.layers.Layer) else "function()"
            raise TypeError(
                f"`distribution_b` must be {DISTRIBUTION_B_EXPECTED}; calling {distribution_b!r} as {how} failed: {error}"
            ) from error
        return distribution_b
    raise TypeError(f"`distribution_b` must be {DISTRIBUTION_B_EXPECTED}; received {distribution_b!r}.")


def distribution_of(distribution_b):
    """The `tfd.Distribution` that `distribution_b` stands for, or TypeError."""
    if isinstance(distribution_b, tfd.Distribution):
        return distribution_b
    if is_prior(distribution_b):
        distribution = distribution_b.distribution()
    elif isinstance(distribution_b, keras.layers.Layer):
        distribution = distribution_b(tf.constant(0.0))  # a dummy input, as TFP's model(0.)
    else:
        distribution = distribution_b()
    if not isinstance(distribution, tfd.Distribution):
        raise TypeError(
            f"`distribution_b` {distribution_b!r} must return a tfd.Distribution; it returned {type(distribution).__name__}."
        )
    return distribution


def variables_of(distribution_b):
    """The variables `distribution_b` holds: a layer's weights; a distribution's `tf.Variable`s and Keras variables."""
    if isinstance(distribution_b, keras.layers.Layer):
        return list(distribution_b.weights)
    if isinstance(distribution_b, tfd.Distribution):
        found = list(distribution_b.variables)
        for value in distribution_b.parameters.values():
            if isinstance(value, keras.Variable):
                found.append(value)
            elif isinstance(value, tfd.Distribution):
                found += variables_of(value)
        return found
    return []


def check_no_untracked_variables(distribution_b, holder):
    """Raises ValueError where `distribution_b`'s variables would be neither trained nor saved by Keras 3."""
    if isinstance(distribution_b, tfd.Distribution) and variables_of(distribution_b):
        raise ValueError(
            f"`distribution_b` {distribution_b!r} holds variables, which Keras 3 neither trains nor saves inside a "
            "TFP distribution; for a trainable prior pass a tfvae prior layer (e.g. "
            "tfvae.priors.DiagonalNormal(latent_dim)) or a Keras layer returning the distribution to KLDivergenceAddLoss."
        )
    if holder == "KLDivergenceRegularizer" and variables_of(distribution_b):
        raise ValueError(
            f"`distribution_b` {getattr(distribution_b, 'name', distribution_b)!r} has variables, which Keras 3 neither "
            "trains nor saves through an activity_regularizer. Put a KLDivergenceAddLoss(distribution_b, ...) layer "
            "after the distribution layer instead: it holds the prior as a sublayer, so its variables are trained and "
            "saved (its penalty is not divided by the batch size; see its docstring)."
        )


def serialize_distribution_b(distribution_b):
    if isinstance(distribution_b, tfd.Distribution):
        return _describe_distribution(distribution_b)
    if isinstance(distribution_b, keras.layers.Layer) or is_registered(distribution_b):
        return keras.saving.serialize_keras_object(distribution_b)
    raise ValueError(
        f"`distribution_b`={distribution_b!r} cannot be saved: pass a tfvae prior layer, a Keras layer returning the "
        "distribution, a constant tfd." + "/".join(SAVED_DISTRIBUTIONS) + ", or a function registered with "
        "@keras.saving.register_keras_serializable()."
    )


def _describe_distribution(distribution):
    """`{"tfp_distribution": class name, "parameters": {...}}` for a constant distribution of a saved family."""
    family = next((cls for cls in type(distribution).__mro__ if cls in SAVED_DISTRIBUTIONS.values()), None)
    if family is None or not (type(distribution) is family or issubclass(type(distribution), TensorCoercible)):
        raise ValueError(
            f"`distribution_b` {type(distribution).__name__} cannot be saved: a tfd.Distribution is saved only as one of "
            f"{sorted(SAVED_DISTRIBUTIONS)} with constant parameters. Pass a tfvae prior layer (tfvae.priors) or a "
            "Keras layer returning the distribution instead."
        )
    return {"tfp_distribution": family.__name__,
            "parameters": {name: _describe_parameter(value, distribution.dtype)
                           for name, value in distribution.parameters.items()}}


def _describe_parameter(value, dtype):
    if isinstance(value, tfd.Distribution):
        return _describe_distribution(value)
    if value is None or isinstance(value, (bool, str, numbers.Integral, float)):
        return value
    # Converted as TFP converts it (a list of floats becomes the distribution's float32, not NumPy's float64).
    constant = tf.get_static_value(tf.convert_to_tensor(value, dtype_hint=dtype))
    if constant is None:
        raise ValueError(f"`distribution_b` cannot be saved: its parameter {value!r} is not a constant.")
    array = np.asarray(constant)
    return {"array": array.tolist(), "dtype": array.dtype.name}


def _rebuild_distribution(description):
    family = SAVED_DISTRIBUTIONS.get(description["tfp_distribution"])
    if family is None:
        raise ValueError(f"Unknown saved distribution {description['tfp_distribution']!r}; known: {sorted(SAVED_DISTRIBUTIONS)}.")
    return family(**{name: _rebuild_parameter(value) for name, value in description["parameters"].items()})


def _rebuild_parameter(value):
    if isinstance(value, dict):
        if "tfp_distribution" in value:
            return _rebuild_distribution(value)
        return np.asarray(value["array"], dtype=value["dtype"])
    return value
