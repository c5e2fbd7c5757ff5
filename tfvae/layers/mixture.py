"""Mixtures of k distributions of one family: mixture density networks.

A mixture layer reads, per example, k mixture logits followed by the
parameters of each of the k components, in `tfp.layers`' layout:

    params: [batch, k (1 + c)] = [logits_1 .. logits_k | component 1 (c values) | ... | component k (c values)]

    pi = softmax(logits)                                   [batch, k]
    log p(x) = logsumexp_k (log pi_k + log p_k(x))         x: [batch, *event_shape]
    mean     = sum_k pi_k mu_k
    variance = sum_k pi_k (sigma_k^2 + mu_k^2) - mean^2    (per element; the law of total variance)

where mu_k, sigma_k^2 are component k's mean and variance. The result is a
`tfd.MixtureSameFamily` with batch shape `[batch]` and the components' event
shape. It has a mean, a variance and a stddev but, as in TFP, no mode (a
mixture's mode has no closed form), so `convert_to_tensor_fn="mode"` is
refused when the layer is made; "mean" (the default), "sample", "stddev" and
"variance" work. TFP does not reparameterize mixture samples: a "sample"
conversion passes no gradient to the parameters.

    mixture_same_family  MixtureSameFamily  components from any tfvae distribution layer
    mixture_normal       MixtureNormal      diagonal Gaussian components (IndependentNormal)
    mixture_logistic     MixtureLogistic    logistic components (IndependentLogistic)

Differences from `tfp.layers`: `params` is read as `[batch, ...]` (every
value after the first axis a parameter), as for all tfvae layers; the
component layer of `MixtureSameFamily` must be a tfvae distribution layer
(TFP took any callable) so that a model can be saved, and it is called on
`[batch * k, c]`, the layout every tfvae layer reads, not on `[batch, k, c]`;
component scales are `softplus + scale_floor` (TFP: softplus alone).
"""

import functools
import math
import numbers

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.checks import as_event_shape, check_positive_int, check_scale_floor
from tfvae.layers.distribution import (
    SERIALIZATION_PACKAGE,
    DistributionLambda,
    DistributionLayer,
    reshape_params,
    with_validation,
)
from tfvae.layers.independent import IndependentLogistic, IndependentNormal, independent_logistic, independent_normal

tfd = tfp.distributions


def mixture_parts(params, num_components, make_components):
    """The mixture logits and the components of a mixture: `(tfd.Categorical, components)`.

    Args:
      params: `[batch, ...]` with `k (1 + c)` values per example, k =
        `num_components`: first the k mixture logits, then component 1's c
        parameters, ..., component k's.
      num_components: int k.
      make_components: callable from `[batch * k, c]` parameters to a
        distribution with batch shape `[batch * k]` (component j of example i
        at row `i k + j`) whose parameters all carry that leading axis, as
        every tfvae distribution layer's do.

    Returns:
      The categorical over components, batch shape `[batch]`, and the
      components, batch shape `[batch, k]`.
    """
    if params.shape[1:].is_fully_defined():
        flat = tf.reshape(params, [-1, math.prod(params.shape[1:])])
        component_size = flat.shape[1] // num_components - 1
    else:
        flat = reshape_params(params, [-1])
        component_size = tf.shape(flat)[1] // num_components - 1
    components = make_components(tf.reshape(flat[:, num_components:], tf.stack([-1, component_size])))
    if not isinstance(components, tfd.Distribution):
        raise TypeError(f"The component layer must return a tfd.Distribution; it returned {type(components).__name__}.")
    return tfd.Categorical(logits=flat[:, :num_components]), split_batch(components, num_components)


def mixture_same_family(params, num_components, make_components, validate_args=False):
    """A `tfd.MixtureSameFamily` from `params: [batch, k (1 + c)]`; see `mixture_parts`.

    Batch shape `[batch]`, the components' event shape.
    """
    mixture, components = mixture_parts(params, num_components, make_components)
    return tfd.MixtureSameFamily(mixture, components, validate_args=validate_args)


def split_batch(distribution, num_components):
    """`distribution` with batch shape `[batch * k, ...]` rebuilt with batch shape `[batch, k, ...]`.

    Reshapes the leading axis of every batched parameter (nested
    distributions included, e.g. the base of a `tfd.Independent`), so it
    needs parameters that carry the full leading batch axis; scalars
    broadcast and are kept. `tfd.BatchReshape` would be the generic tool, but
    it refuses the broadcasting `tfd.MixtureSameFamily.log_prob` does.
    """
    properties = type(distribution).parameter_properties()
    split = {}
    for name, value in distribution.parameters.items():
        if name not in properties or value is None or isinstance(value, (numbers.Number, np.generic)):
            continue
        if isinstance(value, tfd.Distribution):
            split[name] = split_batch(value, num_components)
            continue
        value = tf.convert_to_tensor(value)
        if value.shape.rank == 0:  # broadcasts; also a shape parameter such as reinterpreted_batch_ndims
            continue
        rest = value.shape[1:] if value.shape[1:].is_fully_defined() else tf.shape(value)[1:]
        split[name] = tf.reshape(value, tf.concat([[-1, num_components], rest], axis=0))
    return distribution.copy(**split)


def mixture_normal(params, num_components, event_shape=(), scale_floor=1e-3):
    """Mixture of k diagonal Gaussians from `params: [batch, k (1 + 2 n)]`, n = prod(event_shape).

    Component j's 2n values are its mean and raw scale, as `independent_normal`
    reads them: sigma = softplus(raw) + scale_floor.
    """
    return mixture_same_family(params, num_components, functools.partial(
        independent_normal, event_shape=tuple(event_shape), scale_floor=scale_floor))


def mixture_logistic(params, num_components, event_shape=(), scale_floor=1e-3):
    """Mixture of k logistics from `params: [batch, k (1 + 2 n)]`, each read as `independent_logistic` does."""
    return mixture_same_family(params, num_components, functools.partial(
        independent_logistic, event_shape=tuple(event_shape), scale_floor=scale_floor))


def check_component_layer(component_layer):
    """Returns `component_layer`, or raises TypeError unless it is a tfvae distribution layer."""
    if not isinstance(component_layer, DistributionLayer):
        raise TypeError(
            "`component_layer` must be a tfvae distribution layer (e.g. tfvae.layers.IndependentNormal(event_shape)) "
            "so that the mixture can be saved; tfp.layers also took any callable. Received "
            f"{component_layer!r} of type {type(component_layer).__name__}."
        )
    return component_layer


def component_distribution(component_layer, params):
    """The distribution `component_layer` makes from `params: [batch * k, c]` (no conversion, no regularizer)."""
    if isinstance(component_layer, DistributionLambda):
        distribution = component_layer.make_distribution_fn(component_layer._cast(params))
    else:
        distribution = component_layer.make_distribution(tf.cast(params, component_layer.compute_dtype))
    return with_validation(distribution) if component_layer.validate_args else distribution


class _MixtureLayer(DistributionLayer):
    """Shared by the mixture layers: `num_components`, and no "mode" conversion."""

    def __init__(self, num_components, convert_to_tensor_fn="mean", validate_args=False, **kwargs):
        super().__init__(convert_to_tensor_fn=convert_to_tensor_fn, validate_args=validate_args, **kwargs)
        self.num_components = check_positive_int("num_components", num_components)
        if self.convert_to_tensor_fn is tfd.Distribution.mode:
            raise ValueError(
                f"`convert_to_tensor_fn` of {type(self).__name__} cannot be 'mode': a mixture has no closed-form "
                "mode (tfd.MixtureSameFamily defines none); use 'mean', 'sample', 'stddev' or 'variance'. "
                "Received 'mode'."
            )

    def get_config(self):
        return {**super().get_config(), "num_components": self.num_components}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MixtureSameFamily(_MixtureLayer):
    """Mixture of k components made by another distribution layer: a mixture density network's head.

    Args:
      num_components: int k >= 1.
      component_layer: a tfvae distribution layer (IndependentNormal,
        MultivariateNormalTriL, IndependentBernoulli, a DistributionLambda,
        ...). It is called on `[batch * k, c]` and must give every parameter
        of its distribution that leading axis (all tfvae layers do); only its
        distribution is used, not its `convert_to_tensor_fn` or activity
        regularizer. Its weights, if any, are the mixture's, shared by the k
        components. Saved as a nested layer.
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor (`predict`, a layer stacked on it): "mean" (the default; TFP
        draws a "sample"), "sample", "stddev", "variance" or a callable; not
        "mode", which mixtures lack.
      validate_args: check parameters and values at run time (slower).

    Input `[batch, k (1 + c)]`, c = `component_layer.params_size(...)`; output
    a `tfd.MixtureSameFamily` with batch shape `[batch]` and the component's
    event shape (see the module docstring for the layout and the math).
    Example:

        num_components, params_size = 3, MixtureSameFamily.params_size(3, IndependentNormal.params_size(2))
        model = keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(params_size),
            MixtureSameFamily(num_components, IndependentNormal(2)),
        ])
        model.compile("adam", loss=tfvae.losses.NegativeLogLikelihood())
        x = np.random.normal(size=(64, 4)).astype("float32")
        y = np.random.normal(size=(64, 2)).astype("float32")  # [64, 2]
        model.fit(x, y, epochs=1, verbose=0)
        mixture = model(x)
        assert mixture.batch_shape == [64] and mixture.event_shape == [2] and mixture.log_prob(y).shape == (64,)
    """

    def __init__(self, num_components, component_layer, convert_to_tensor_fn="mean", validate_args=False, **kwargs):
        if isinstance(component_layer, dict):  # from get_config
            component_layer = keras.saving.deserialize_keras_object(component_layer)
        super().__init__(num_components, convert_to_tensor_fn, validate_args, **kwargs)
        self.component_layer = check_component_layer(component_layer)
        if hasattr(component_layer, "event_shape"):  # a DistributionLambda's is known only once called
            self.event_shape = tuple(component_layer.event_shape)

    @staticmethod
    def params_size(num_components, component_params_size, name=None):
        """Parameters per example: `num_components * (1 + component_params_size)`, as TFP's."""
        return check_positive_int("num_components", num_components) * (
            1 + check_positive_int("component_params_size", component_params_size))

    @staticmethod
    def new(params, num_components, component_layer, validate_args=False, name=None):
        """The mixture for `params: [batch, k (1 + c)]`, as TFP's `new` (`component_layer` a tfvae layer)."""
        check_component_layer(component_layer)
        num_components = check_positive_int("num_components", num_components)
        distribution = mixture_same_family(tf.convert_to_tensor(params), num_components,
                                           functools.partial(component_distribution, component_layer))
        return with_validation(distribution) if validate_args else distribution

    @property
    def num_params(self):
        """Parameters per example, or None while the component layer's count is unknown (a DistributionLambda)."""
        if not hasattr(self.component_layer, "event_shape"):
            return None
        return self.params_size(self.num_components, self.component_layer.num_params)

    def build(self, input_shape):
        received = input_shape[1:]
        if self.num_params is None and all(d is not None for d in received):
            size = math.prod(received)
            if size % self.num_components or size <= self.num_components:
                raise ValueError(
                    f"{type(self).__name__} {self.name!r} needs num_components * (1 + c) parameters per example "
                    f"(num_components={self.num_components}, c >= 1 per component); received an input of shape "
                    f"{tuple(input_shape)}, i.e. {size} per example."
                )
            self.component_layer.build((None, size // self.num_components - 1))
        elif self.num_params is not None:
            super().build(input_shape)
            if not self.component_layer.built:
                self.component_layer.build((None, self.component_layer.num_params))
        self.built = True

    def make_distribution(self, params):
        make_components = functools.partial(component_distribution, self.component_layer)
        return mixture_same_family(params, self.num_components, make_components)

    def get_config(self):
        return {**super().get_config(), "component_layer": keras.saving.serialize_keras_object(self.component_layer)}


class _IndependentMixture(_MixtureLayer):
    """A mixture whose components are one of tfvae's scaled elementwise layers."""

    component_class = None  # IndependentNormal or IndependentLogistic
    family = None  # mixture_normal or mixture_logistic

    def __init__(self, num_components, event_shape=(), convert_to_tensor_fn="mean", validate_args=False,
                 scale_floor=1e-3, **kwargs):
        super().__init__(num_components, convert_to_tensor_fn, validate_args, **kwargs)
        self.event_shape = as_event_shape(event_shape, allow_scalar=True)
        self.scale_floor = check_scale_floor(scale_floor)

    @classmethod
    def params_size(cls, num_components, event_shape=(), name=None):
        """Parameters per example: `k (1 + 2 prod(event_shape))`, as TFP's."""
        return MixtureSameFamily.params_size(num_components, cls.component_class.params_size(event_shape))

    @classmethod
    def new(cls, params, num_components, event_shape=(), validate_args=False, name=None, scale_floor=1e-3):
        """The mixture for `params: [batch, params_size(num_components, event_shape)]`, as TFP's `new`."""
        distribution = cls.family(tf.convert_to_tensor(params), check_positive_int("num_components", num_components),
                                  as_event_shape(event_shape, allow_scalar=True), check_scale_floor(scale_floor))
        return with_validation(distribution) if validate_args else distribution

    @property
    def num_params(self):
        return self.params_size(self.num_components, self.event_shape)

    def make_distribution(self, params):
        return type(self).family(params, self.num_components, self.event_shape, self.scale_floor)

    def get_config(self):
        return {**super().get_config(), "event_shape": list(self.event_shape), "scale_floor": self.scale_floor}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MixtureNormal(_IndependentMixture):
    """Mixture of k diagonal Gaussians: a mixture density network for multimodal real targets.

    Args:
      num_components: int k >= 1.
      event_shape: int or tuple, the shape of one sample; () for scalars.
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor (`predict`, a layer stacked on it): "mean" (the default; TFP
        draws a "sample"), "sample", "stddev", "variance" or a callable; not
        "mode", which mixtures lack.
      validate_args: check parameters and values at run time (slower).
      scale_floor: float > 0 added to every component scale.

    Input `[batch, k (1 + 2 n)]`, n = prod(event_shape): k logits, then each
    component's n means and n raw scales (sigma = softplus(raw) + scale_floor).
    Output a `tfd.MixtureSameFamily` with batch shape `[batch]`, event shape
    `event_shape`; mean sum_k pi_k mu_k, variance
    sum_k pi_k (sigma_k^2 + mu_k^2) - mean^2. Example (y = +x or -x):

        model = keras.Sequential([
            keras.Input((1,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(MixtureNormal.params_size(2)),
            MixtureNormal(2),
        ])
        model.compile(keras.optimizers.Adam(0.02), loss=tfvae.losses.NegativeLogLikelihood())
        x = np.random.uniform(size=(1024, 1)).astype("float32")
        y = np.where(np.random.uniform(size=1024) < 0.5, 1.0, -1.0).astype("float32") * x[:, 0]  # [1024]
        model.fit(x, y, batch_size=64, epochs=20, verbose=0)
        means = model(np.array([[0.5]], "float32")).components_distribution.mean()  # [1, 2]: near -0.5 and +0.5
        assert np.allclose(np.sort(means.numpy().ravel()), [-0.5, 0.5], atol=0.2)
    """

    component_class = IndependentNormal
    family = staticmethod(mixture_normal)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MixtureLogistic(_IndependentMixture):
    """Mixture of k logistics per element: heavier-tailed multimodal real targets.

    Args:
      num_components: int k >= 1.
      event_shape: int or tuple, the shape of one sample; () for scalars.
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor (`predict`, a layer stacked on it): "mean" (the default; TFP
        draws a "sample"), "sample", "stddev", "variance" or a callable; not
        "mode", which mixtures lack.
      validate_args: check parameters and values at run time (slower).
      scale_floor: float > 0 added to every component scale.

    Input `[batch, k (1 + 2 n)]`, read as `MixtureNormal`'s, with component
    densities p_k(x) = exp(-(x - mu_k) / s_k) / (s_k (1 + exp(-(x - mu_k) / s_k))^2)
    per element and variance s_k^2 pi^2 / 3. Example:

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(MixtureLogistic.params_size(4, 2)),
                                  MixtureLogistic(4, 2)])
        mixture = model(np.zeros((5, 3), "float32"))  # Dense gives 0: pi_k = 1/4, mu_k = 0, s_k = softplus(0) + 1e-3
        assert mixture.batch_shape == [5] and mixture.event_shape == [2]
        assert np.allclose(mixture.variance(), (np.log(2) + 1e-3) ** 2 * np.pi**2 / 3, rtol=1e-5)
    """

    component_class = IndependentLogistic
    family = staticmethod(mixture_logistic)
