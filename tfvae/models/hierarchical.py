r"""A VAE with two stochastic layers: the HVAE of Tomczak & Welling (2018, section 3.2).

    encoder, decoder, prior = hierarchical.hvae((28, 28, 1))             # z1, z2: 40 + 40
    vae = tfvae.VAE(encoder, decoder, prior)                            # or objective="iwae", k=5
    encoder, decoder, prior = hierarchical.hvae((28, 28, 1), prior="vampprior", num_pseudo_inputs=500)

The generative model and the posterior are chains z2 -> z1 -> x:

    p(x, z1, z2)  = p(z2) p(z1 | z2) p(x | z1, z2)
    q(z1, z2 | x) = q(z2 | x) q(z1 | x, z2)

`tfvae.VAE` trains them unchanged because its latent z is the concatenation
z = [z1, z2] (`latent_dim = d1 + d2`): the encoder returns a
`tfvae.layers.latent_chain.LatentChain` over z (made by `LatentChainLayer`),
the prior is a `tfvae.priors.HierarchicalPrior` (p(z2) = N(0, I) or a
VampPrior over z2, and a learned p(z1 | z2)), and the decoder is an ordinary
decoder of z that splits it. Log-densities of z are the sums of the layers',
so the VAE's Monte Carlo KL is

    KL = E_q[log q(z2|x) - log p(z2)] + E_q[log q(z1|x, z2) - log p(z1|z2)]

(`tfvae.bounds.kl_per_layer` gives the two terms), and the ELBO and the
importance-weighted bound L_k are those of the two-layer model.

The builders make the paper's networks (its `HVAE_2level`, gated units,
300 per layer), with tfvae's scales (softplus plus a floor, where the paper
clips a log-variance to [-6, 2]):

    q(z2 | x):      x -> 300 -> 300 -> z2
    q(z1 | x, z2):  [x -> 300, z2 -> 300] -> 300 -> z1
    p(z1 | z2):     z2 -> 300 -> 300 -> z1
    p(x | z1, z2):  [z1 -> 300, z2 -> 300] -> 300 -> x
"""

import copy

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import layers, priors
from tfvae.architectures import LIKELIHOODS, GatedDense
from tfvae.layers.conversion import convertible, resolve_convert_to_tensor_fn, serialize_convert_to_tensor_fn
from tfvae.layers.checks import as_event_shape, check_positive_int
from tfvae.layers.distribution import SERIALIZATION_PACKAGE, resolve_dtype
from tfvae.layers.latent_chain import LatentChain
from tfvae.models.sampling import reparameterized_sample

tfd = tfp.distributions

# The distribution of each posterior layer, by name (as `architectures.POSTERIORS`).
POSTERIOR_LAYERS = {
    "independent_normal": layers.IndependentNormal,
    "multivariate_normal_tril": layers.MultivariateNormalTriL,
}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class LatentChainLayer(keras.layers.Layer):
    """The output layer of a hierarchical encoder: q(z2|x) and a network for q(z1|x, z2) as one `LatentChain`.

    Called as `layer(top, context)`: `top` is q(z2|x), the distribution a
    tfvae distribution layer returns (batch shape `[batch]`, event shape
    `[d2]`), and `context: [batch, c]` are features of x that q(z1|x, z2)
    reads besides z2; or as `layer(top)` when the conditional reads z2 only.
    (Two arguments, not a list: Keras refuses a list that mixes a
    distribution with a tensor.)
    Returns the `LatentChain` q(z1, z2 | x) over z = [z1, z2], batch shape
    `[batch]`, event shape `[d1 + d2]`, whose draws use Philox noise
    (`tfvae.models.reparameterized_sample`).

    Args:
      conditional: a Functional Keras model `[z2: [N, d2], context: [N, c]]`
        (or `z2` alone) -> q(z1 | x, z2), a distribution with batch shape
        `[N]` and event shape `[d1]`. It is this layer's, trained and saved
        with it.
      convert_to_tensor_fn: what the chain becomes where Keras needs a tensor:
        "mean" (the default; see `LatentChain` for what its mean is),
        "sample", "stddev", "variance", or a registered callable.
      **kwargs: `name`, `dtype` and the other arguments of `keras.layers.Layer`.
    """

    def __init__(self, conditional, convert_to_tensor_fn="mean", dtype=None, **kwargs):
        if isinstance(conditional, dict):  # from get_config; a copy, as Keras' deserialization edits nested configs
            conditional = keras.saving.deserialize_keras_object(copy.deepcopy(conditional))
        super().__init__(dtype=resolve_dtype(dtype), **kwargs)
        outputs = getattr(conditional, "outputs", None) if isinstance(conditional, keras.layers.Layer) else None
        if not outputs or outputs[0].shape[-1] is None:
            raise TypeError(f"`conditional` must be a Functional Keras model [z2, context] -> q(z1|x, z2) whose output "
                            f"size d1 is known; received {conditional!r}.")
        self.conditional = conditional
        self.conditional_size = int(outputs[0].shape[-1])
        self.convert_to_tensor_fn = resolve_convert_to_tensor_fn(convert_to_tensor_fn)
        self._convert_input_args = False  # the top is a distribution and must stay one
        self._allow_non_tensor_positional_args = True
        self.built = True

    def build(self, *shapes, **named_shapes):
        pass  # the conditional model is built; the top comes built from its own layer

    def call(self, top, context=None):
        if not isinstance(top, tfd.Distribution):
            raise TypeError(f"LatentChainLayer {self.name!r} needs q(z2|x), a distribution, as its first input; "
                            f"received {type(top).__name__}.")
        if context is not None:
            context = tf.cast(context, self.compute_dtype)
        chain = LatentChain(top, self._conditional_distribution, self.conditional_size, context=context,
                            sampler=reparameterized_sample)
        return convertible(chain, self.convert_to_tensor_fn)

    def _conditional_distribution(self, z2, context):
        """q(z1 | x, z2) for flat `z2: [N, d2]`, `context: [N, c]` (or None): batch shape `[N]`."""
        return self.conditional(z2 if context is None else [z2, context])

    def compute_output_spec(self, top, context=None):
        return keras.KerasTensor((top.shape[0], self.conditional_size + top.shape[-1]), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "conditional": keras.saving.serialize_keras_object(self.conditional),
                "convert_to_tensor_fn": serialize_convert_to_tensor_fn(self.convert_to_tensor_fn)}


def split_latent_dim(latent_dim, z2_dim=None):
    """`(d1, d2)`: the sizes of z1 and z2 in z = [z1, z2] of size `latent_dim`; d2 defaults to latent_dim // 2.

    Raises ValueError naming the argument unless 1 <= d2 < latent_dim.
    """
    latent_dim = check_positive_int("latent_dim", latent_dim)
    if latent_dim < 2:
        raise ValueError(f"`latent_dim` of a two-layer model must be >= 2 (z1 and z2 of at least one dimension each); "
                         f"received {latent_dim!r}.")
    z2_dim = latent_dim // 2 if z2_dim is None else check_positive_int("z2_dim", z2_dim)
    if z2_dim >= latent_dim:
        raise ValueError(f"`z2_dim` must be < latent_dim = {latent_dim} (z1 takes the rest); received {z2_dim!r}.")
    return latent_dim - z2_dim, z2_dim


def _hidden(units, activation, name):
    """Gated units (`GatedDense`, the paper's) for `activation="gated"`, else a dense layer."""
    if activation == "gated":
        return GatedDense(units, name=name)
    return keras.layers.Dense(units, activation=activation, name=name)


def _choose(registry, name, argument):
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"Unknown `{argument}` {name!r}; known: {sorted(registry)}.")
    return registry[name]


def _distribution_head(hidden, layer_class, size, name):
    """The parameters of `layer_class(size)` from `hidden`, and the distribution: the model's last two layers."""
    distribution = layer_class(size, name=name)
    return distribution(keras.layers.Dense(distribution.num_params, name=f"{name}_params")(hidden))


def hvae_encoder(input_shape, latent_dim=80, z2_dim=None, units=300, activation="gated", posterior="independent_normal",
                 name="encoder"):
    """x: `[batch, *input_shape]` -> q(z1, z2 | x) = q(z2|x) q(z1|x, z2), a `LatentChain` over z = [z1, z2].

    The HVAE paper's encoder (defaults: 40 + 40 latents, 300 gated units):
    q(z2|x) from x -> units -> units; q(z1|x, z2) from [x -> units,
    z2 -> units] -> units. `latent_dim` is d1 + d2 (`split_latent_dim`);
    `posterior` ("independent_normal" or "multivariate_normal_tril") is the
    family of both layers.
    """
    input_shape = as_event_shape(input_shape, "input_shape")
    z1_dim, z2_dim = split_latent_dim(latent_dim, z2_dim)
    units = check_positive_int("units", units)
    layer_class = _choose(POSTERIOR_LAYERS, posterior, "posterior")
    x = keras.Input(input_shape, name="x")
    flat = keras.layers.Flatten(name="flatten")(x)
    hidden = _hidden(units, activation, "z2_hidden_1")(flat)
    hidden = _hidden(units, activation, "z2_hidden_2")(hidden)
    top = _distribution_head(hidden, layer_class, z2_dim, "posterior_z2")
    x_features = _hidden(units, activation, "x_features")(flat)

    z2 = keras.Input((z2_dim,), name="z2")
    context = keras.Input((units,), name="x_features")
    joint = keras.layers.Concatenate(name="joint")([context, _hidden(units, activation, "z2_features")(z2)])
    joint = _hidden(units, activation, "z1_hidden")(joint)
    conditional = keras.Model([z2, context], _distribution_head(joint, layer_class, z1_dim, "posterior_z1"),
                              name="posterior_z1_given_x_z2")
    return keras.Model(x, LatentChainLayer(conditional, name="posterior")(top, x_features), name=name)


def hvae_decoder(latent_dim=80, output_shape=(28, 28, 1), z2_dim=None, units=300, activation="gated",
                 likelihood="bernoulli", name="decoder"):
    """z = [z1, z2]: `[batch, latent_dim]` -> p(x | z1, z2), the HVAE paper's decoder.

    [z1 -> units, z2 -> units] -> units -> p(x|z1, z2), gated units by
    default; `likelihood` is a key of `tfvae.architectures.LIKELIHOODS`.
    """
    z1_dim, z2_dim = split_latent_dim(latent_dim, z2_dim)
    output_shape = as_event_shape(output_shape, "output_shape")
    units = check_positive_int("units", units)
    distribution = _choose(LIKELIHOODS, likelihood, "likelihood")(output_shape)
    z = keras.Input((z1_dim + z2_dim,), name="z")
    z1_features = _hidden(units, activation, "z1_features")(z[:, :z1_dim])
    z2_features = _hidden(units, activation, "z2_features")(z[:, z1_dim:])
    hidden = keras.layers.Concatenate(name="joint")([z1_features, z2_features])
    hidden = _hidden(units, activation, "x_hidden")(hidden)
    params = keras.layers.Dense(distribution.num_params, name="likelihood_params")(hidden)
    return keras.Model(z, distribution(params), name=name)


def hvae_prior(latent_dim=80, z2_dim=None, top="standard_normal", units=300, activation="gated", **top_arguments):
    """p(z1, z2) = p(z2) p(z1 | z2), a `tfvae.priors.HierarchicalPrior` with the HVAE paper's p(z1|z2).

    `top` names the prior over z2 (a key of `tfvae.priors.PRIORS`, built with
    `top_arguments`): "standard_normal", or "vampprior" for the paper's
    VampPrior over z2, e.g. `hvae_prior(80, top="vampprior",
    num_pseudo_inputs=500, input_shape=(28, 28, 1))`. p(z1|z2) is a diagonal
    Gaussian from z2 -> units -> units.
    """
    z1_dim, z2_dim = split_latent_dim(latent_dim, z2_dim)
    units = check_positive_int("units", units)
    top_prior = priors.get_prior(top, z2_dim, **top_arguments)
    z2 = keras.Input((z2_dim,), name="z2")
    hidden = _hidden(units, activation, "prior_z1_hidden_1")(z2)
    hidden = _hidden(units, activation, "prior_z1_hidden_2")(hidden)
    conditional = keras.Model(z2, _distribution_head(hidden, layers.IndependentNormal, z1_dim, "prior_z1"),
                              name="prior_z1_given_z2")
    return priors.HierarchicalPrior(z1_dim + z2_dim, top_prior, conditional, name="prior")


def hvae(input_shape=(28, 28, 1), latent_dim=80, z2_dim=None, units=300, activation="gated", likelihood="bernoulli",
         posterior="independent_normal", prior="standard_normal", **prior_arguments):
    """`(encoder, decoder, prior)` of the HVAE paper's model, in `tfvae.VAE`'s argument order.

    `prior` names p(z2) ("standard_normal" or "vampprior", see `hvae_prior`);
    a VampPrior's `input_shape` defaults to the images'. E.g.
    `tfvae.VAE(*hvae((28, 28, 1), prior="vampprior", num_pseudo_inputs=500))`.
    """
    if prior == "vampprior":
        prior_arguments.setdefault("input_shape", input_shape)
    encoder = hvae_encoder(input_shape, latent_dim, z2_dim, units, activation, posterior)
    decoder = hvae_decoder(latent_dim, input_shape, z2_dim, units, activation, likelihood)
    return encoder, decoder, hvae_prior(latent_dim, z2_dim, prior, units, activation, **prior_arguments)
