"""Priors p(z) over the latent space, as Keras layers that own their variables.

A prior is a layer so that its variables are tracked, trained and saved with
the model that holds it: `StandardNormal`, `DiagonalNormal`,
`MixtureOfGaussians`, `VampPrior` (whose components are the VAE encoder's
posteriors at learned pseudo-inputs), `FlowPrior` (a masked autoregressive
flow on a standard normal) and `HierarchicalPrior` (p(z2) p(z1|z2) for two
stochastic layers, any of the others as p(z2)). `prior.distribution()` (or `prior()`) returns a
distribution with batch shape `[]` and event shape `[latent_dim]`; it
broadcasts against a posterior of batch shape `[batch]` in `tfd.kl_divergence`.

Priors follow the dtype rule of `tfvae.layers.distribution`: under a mixed
global policy a prior created without `dtype=` computes in float32, so that it
matches the float32 posterior in the KL term. `distribution()` is usually
called outside a layer call, where Keras does not cast variables, so it casts
them to the prior's compute dtype itself.
"""

import copy
import functools

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers import (
    SERIALIZATION_PACKAGE,
    AutoregressiveNetwork,
    MeanConvertibleIndependent,
    as_event_shape,
    check_positive_int,
    check_scale_floor,
    initial_scale_initializer,
    resolve_dtype,
    scale_bijector,
)
from tfvae.layers.checks import check_num_elements
from tfvae.layers.latent_chain import LatentChain
from tfvae.layers.variational_base import check_seed

tfb = tfp.bijectors
tfd = tfp.distributions


class Prior(keras.layers.Layer):
    """Base class of priors; subclasses implement `distribution()`.

    Args:
      latent_dim: int, the dimension of z.
      dtype: the dtype policy; None gives float32 under a mixed global policy.
    """

    def __init__(self, latent_dim, dtype=None, **kwargs):
        super().__init__(dtype=resolve_dtype(dtype), **kwargs)
        shape = as_event_shape(latent_dim, "latent_dim")
        if len(shape) != 1:
            raise ValueError(f"`latent_dim` must be a positive int (z is a vector); received {latent_dim!r}.")
        (self.latent_dim,) = shape
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


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class MixtureOfGaussians(Prior):
    """A trainable mixture of diagonal Gaussians.

        p(z) = sum_c pi_c N(z; mu_c, diag(sigma_c^2)),   pi = softmax(logits)

    with `num_components` components, each scale `softplus(raw) + scale_floor`.
    Starts with equal weights, unit scales and means drawn from N(0, I) (the
    layer's seed), so that the components differ from the first step. TFP has
    no closed-form KL against a mixture: a VAE with this prior uses the Monte
    Carlo KL (`kl="auto"`).

    Args:
      latent_dim: int, the dimension of z.
      num_components: int >= 1.
      scale_floor: float > 0 added to every scale.
      seed: int or None, for the initial means.
    """

    def __init__(self, latent_dim, num_components, scale_floor=1e-3, seed=None, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = check_positive_int("num_components", num_components)
        self.scale_floor = check_scale_floor(scale_floor)
        self.seed = check_seed(seed)
        shape = (self.num_components, self.latent_dim)
        check_num_elements("num_components", shape, num_components)
        self.logits = self.add_weight(shape=(self.num_components,), initializer="zeros", name="logits")
        self.loc = self.add_weight(shape=shape, initializer=keras.initializers.RandomNormal(seed=seed), name="loc")
        self.raw_scale = self.add_weight(shape=shape, initializer=initial_scale_initializer(self.scale_floor), name="raw_scale")

    def distribution(self):
        dtype = self.compute_dtype
        scale = scale_bijector(self.scale_floor, dtype).forward(tf.cast(self.raw_scale, dtype))
        components = tfd.Independent(tfd.Normal(loc=tf.cast(self.loc, dtype), scale=scale), reinterpreted_batch_ndims=1)
        return tfd.MixtureSameFamily(tfd.Categorical(logits=tf.cast(self.logits, dtype)), components)

    def get_config(self):
        return {**super().get_config(), "num_components": self.num_components, "scale_floor": self.scale_floor,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class VampPrior(Prior):
    """The VampPrior: the mixture of the encoder's posteriors at learned pseudo-inputs.

        p(z) = 1/K sum_k q(z | u_k),   u_k = clip(v_k, 0, 1)

    (Tomczak & Welling, 2018), K = `num_pseudo_inputs` trainable images v_k
    of shape `input_shape`, clipped to [0, 1] as the paper's hard-tanh does,
    and started at N(0.05, 0.01^2) per pixel, the paper's start for MNIST
    (`initialize_from(images)` starts them at data instead). The encoder is
    the VAE's own: `tfvae.VAE` binds it (`bind_encoder`), and it stays the
    VAE's, saved once with it. TFP has no closed-form KL against a mixture:
    the VAE uses the Monte Carlo KL (`kl="auto"`). Each training step runs
    the encoder on the K pseudo-inputs too.

    Args:
      latent_dim: int, the dimension of z.
      num_pseudo_inputs: int >= 1 (the paper: 500).
      input_shape: the shape of one image, e.g. (28, 28, 1).
      seed: int or None, for the initial pseudo-inputs.
    """

    def __init__(self, latent_dim, num_pseudo_inputs, input_shape, seed=None, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_pseudo_inputs = check_positive_int("num_pseudo_inputs", num_pseudo_inputs)
        self.input_shape_per_example = as_event_shape(input_shape, "input_shape")
        self.seed = check_seed(seed)
        check_num_elements("num_pseudo_inputs", (self.num_pseudo_inputs, *self.input_shape_per_example), num_pseudo_inputs)
        self.pseudo_inputs = self.add_weight(
            shape=(self.num_pseudo_inputs, *self.input_shape_per_example),
            initializer=keras.initializers.RandomNormal(mean=0.05, stddev=0.01, seed=seed), name="pseudo_inputs",
        )
        self._encoder = None

    def bind_encoder(self, encoder):
        """Uses `encoder` (x -> q(z|x)) for the mixture's components; not tracked here (the VAE owns it)."""
        object.__setattr__(self, "_encoder", encoder)  # past Keras' tracking: no second copy of its weights

    def initialize_from(self, images):
        """Starts the pseudo-inputs at `images: [num_pseudo_inputs, *input_shape]` (e.g. random training images)."""
        images = tf.convert_to_tensor(images, self.pseudo_inputs.dtype)
        if tuple(images.shape) != tuple(self.pseudo_inputs.shape):
            raise ValueError(f"`images` must have shape {tuple(self.pseudo_inputs.shape)}; received {tuple(images.shape)}.")
        self.pseudo_inputs.assign(images)

    def distribution(self):
        if self._encoder is None:
            raise ValueError("A VampPrior needs its encoder: build the VAE with it, or call bind_encoder(encoder).")
        pseudo_inputs = tf.clip_by_value(self.pseudo_inputs, 0.0, 1.0)
        components = self._encoder(pseudo_inputs)  # batch shape [K], event shape [latent_dim]
        dtype = components.dtype
        return tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros([self.num_pseudo_inputs], dtype)), components)

    def get_config(self):
        return {**super().get_config(), "num_pseudo_inputs": self.num_pseudo_inputs,
                "input_shape": list(self.input_shape_per_example), "seed": self.seed}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class FlowPrior(Prior):
    """A masked autoregressive flow on a standard normal: a prior as flexible as its networks.

        z = f_F(...f_1(u)),  u ~ N(0, I);   log p(z) = log N(u; 0, I) - sum_f log |det df/du|

    Each f is a masked autoregressive flow (MAF; Papamakarios et al., 2017)
    whose shift and log-scale come from a MADE (`tfvae.layers.AutoregressiveNetwork`,
    Germain et al., 2015), alternating left-to-right and right-to-left orders
    so that every coordinate can depend on every other. Its density, what
    training needs, costs one pass of each network; drawing z (`VAE.sample`)
    costs `latent_dim` passes. Each MADE's last layer starts at zero, so the
    prior starts as N(0, I), the standard VAE's, and learns from there. TFP
    has no closed-form KL against a flow: the VAE uses the Monte Carlo KL.

    Args:
      latent_dim: int, the dimension of z.
      num_flows: int >= 1, the number of MAF steps.
      hidden_units: the hidden layer sizes of each MADE.
      activation: of the MADEs' hidden layers.
    """

    def __init__(self, latent_dim, num_flows=2, hidden_units=(128, 128), activation="tanh", seed=None, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_flows = check_positive_int("num_flows", num_flows)
        self.hidden_units = tuple(hidden_units) if isinstance(hidden_units, (list, tuple)) else hidden_units
        self.activation = activation
        self.seed = check_seed(seed)
        self.networks = []
        for index in range(self.num_flows):
            network = AutoregressiveNetwork(
                params=2, event_shape=[self.latent_dim], hidden_units=self.hidden_units, activation=activation,
                input_order="left-to-right" if index % 2 == 0 else "right-to-left",
                kernel_initializer=keras.initializers.GlorotUniform(seed=None if seed is None else seed + index),
                dtype=self.dtype_policy, name=f"made_{index}",
            )
            network.build((None, self.latent_dim))
            last = len(self.hidden_units)
            for weight in network.weights:
                if weight.name in (f"kernel_{last}", f"bias_{last}"):
                    weight.assign(tf.zeros(weight.shape, weight.dtype))  # the flow starts as the identity
            self.networks.append(network)

    def distribution(self):
        dtype = self.compute_dtype
        base = tfd.Independent(tfd.Normal(loc=tf.zeros([self.latent_dim], dtype), scale=tf.ones([], dtype)),
                               reinterpreted_batch_ndims=1)
        # tfb.Chain applies its list last to first: the first network acts on u.
        flows = [tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=network) for network in reversed(self.networks)]
        return tfd.TransformedDistribution(base, tfb.Chain(flows))

    def get_config(self):
        return {**super().get_config(), "num_flows": self.num_flows, "hidden_units": list(self.hidden_units),
                "activation": self.activation, "seed": self.seed}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class HierarchicalPrior(Prior):
    """p(z1, z2) = p(z2) p(z1 | z2) over z = [z1, z2]: the prior of a VAE with two stochastic layers.

    The generative side of the HVAE of Tomczak & Welling (2018, section 3.2):
    `top` is any tfvae prior over z2, e.g. `StandardNormal(d2)`, or
    `VampPrior(d2, K, input_shape)`, the mixture of the encoder's top layer
    q(z2 | u_k) at pseudo-inputs u_k (the paper's "HVAE + VampPrior"); the
    learned `conditional` network gives p(z1 | z2). `distribution()` is a
    `tfvae.layers.latent_chain.LatentChain` (batch shape `[]`, event shape
    `[latent_dim]`), so that

        log p(z) = log p(z2) + log p(z1 | z2),   z = [z1, z2]

    and `log_prob_parts` gives each layer's term. TFP has no closed-form KL
    against it: a VAE uses the Monte Carlo KL (`kl="auto"`). The encoder must
    return a `LatentChain` too (`tfvae.models.hierarchical.hvae_encoder`).

    Args:
      latent_dim: d1 + d2, the size of z = [z1, z2].
      top: a `Prior` over z2 (its `latent_dim` is d2 < `latent_dim`).
      conditional: a Keras model (or layer) from `z2: [N, d2]` to p(z1 | z2),
        a distribution with batch shape `[N]`, event shape `[d1]`, e.g.
        the network `tfvae.models.hierarchical.hvae_prior` builds.
    """

    def __init__(self, latent_dim, top, conditional, **kwargs):
        # From get_config: copies, as Keras' deserialization edits nested configs.
        top = keras.saving.deserialize_keras_object(copy.deepcopy(top)) if isinstance(top, dict) else top
        if isinstance(conditional, dict):
            conditional = keras.saving.deserialize_keras_object(copy.deepcopy(conditional))
        super().__init__(latent_dim, **kwargs)
        if not isinstance(top, Prior):
            raise TypeError(f"`top` must be a tfvae.priors.Prior over z2 (e.g. StandardNormal(d2)); received {top!r} "
                            f"of type {type(top).__name__}.")
        if not top.latent_dim < self.latent_dim:
            raise ValueError(f"`top` is a prior over z2, smaller than z = [z1, z2] of size latent_dim={self.latent_dim}; "
                             f"received a top with latent_dim={top.latent_dim}.")
        if not isinstance(conditional, keras.layers.Layer):
            raise TypeError(f"`conditional` must be a Keras model z2 -> p(z1|z2); received {conditional!r} of type "
                            f"{type(conditional).__name__}.")
        self.conditional_size = self.latent_dim - top.latent_dim
        outputs = getattr(conditional, "outputs", None)
        if outputs and outputs[0].shape[-1] != self.conditional_size:
            raise ValueError(f"`conditional` must give z1 of size latent_dim - top.latent_dim = {self.conditional_size}; "
                             f"received a model whose output has shape {tuple(outputs[0].shape)}.")
        self.top = top
        self.conditional = conditional

    def bind_encoder(self, encoder):
        """Binds a VampPrior top to the top layer q(z2|x) of `encoder` (x -> LatentChain); other tops need none."""
        if hasattr(self.top, "bind_encoder"):
            self.top.bind_encoder(functools.partial(_top_layer_of, encoder))

    def _conditional_distribution(self, z2, context=None):
        return self.conditional(z2)

    def distribution(self):
        return LatentChain(self.top.distribution(), self._conditional_distribution, self.conditional_size)

    def get_config(self):
        return {**super().get_config(), "top": keras.saving.serialize_keras_object(self.top),
                "conditional": keras.saving.serialize_keras_object(self.conditional)}


def _top_layer_of(encoder, x):
    """q(z2|x), the top layer of the chain `encoder(x)`: what a VampPrior over z2 mixes."""
    posterior = encoder(x)
    if not isinstance(posterior, LatentChain):
        raise TypeError(f"A HierarchicalPrior's VampPrior needs an encoder that returns a LatentChain (z2 -> z1); "
                        f"the encoder returned {type(posterior).__name__}.")
    return posterior.top


PRIORS = {
    "standard_normal": StandardNormal,
    "diagonal_normal": DiagonalNormal,
    "mixture_of_gaussians": MixtureOfGaussians,
    "vampprior": VampPrior,
    "flow": FlowPrior,
}


def get_prior(name, latent_dim, **kwargs):
    """Returns the prior registered under `name`, e.g. `"standard_normal"`, built with `kwargs`.

    `get_prior("vampprior", 40, num_pseudo_inputs=500, input_shape=(28, 28, 1))`.
    """
    if not isinstance(name, str) or name not in PRIORS:
        raise ValueError(f"Unknown prior {name!r}; known priors: {sorted(PRIORS)} (`name` must be one of them).")
    return PRIORS[name](latent_dim, **kwargs)
