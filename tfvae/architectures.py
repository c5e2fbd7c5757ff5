"""Encoder and decoder builders: Functional Keras models that output distributions.

    encoder = mlp_encoder((28, 28, 1), latent_dim=50)       # x -> q(z|x)
    decoder = mlp_decoder(50, (28, 28, 1))                   # z -> p(x|z)

With `num_classes=N` each builder makes the conditional model of a
conditional VAE (`tfvae.VAE(..., num_classes=N)`): the encoder takes
`[x, one_hot]` -> q(z|x, y), the decoder `[z, one_hot]` -> p(x|z, y), with
`one_hot: [batch, N]` (input "label"). The one-hot label is concatenated to
the flattened image (MLPs), to the flattened features of the last convolution
(`conv_encoder`), or to z (decoders), so it enters the first dense layer
that reads them: for a fixed class c that layer is the unconditional one with
its bias moved by the kernel's row for c.

Posteriors and likelihoods are chosen by name from the registries below.
Decoders end in a layer that reads its parameters parameter-major,
`[batch, P, *image_shape]` (P = 1 for "bernoulli", "gaussian" and
"continuous_bernoulli", 2 for "normal", 3 K for "discretized_logistic_mixture");
`conv_decoder` arranges its last convolution's channels so.
"""

import math

import keras
import tensorflow as tf

from tfvae import layers
from tfvae.layers.checks import as_event_shape, check_positive_int
from tfvae.layers.distribution import SERIALIZATION_PACKAGE
from tfvae.layers.likelihoods import DiscretizedLogisticMixture, IndependentContinuousBernoulli

POSTERIORS = {
    "independent_normal": lambda latent_dim: layers.IndependentNormal(latent_dim, name="posterior"),
    "multivariate_normal_tril": lambda latent_dim: layers.MultivariateNormalTriL(
        latent_dim, name="posterior"
    ),
    "iaf": lambda latent_dim: layers.InverseAutoregressiveFlowNormal(latent_dim, name="posterior"),
}

# Logistics per sub-pixel of "discretized_logistic_mixture". PixelCNN++'s code defaults to 10 per RGB
# pixel with coupled channels; a grey pixel given z has a few modes at most (background, ink, the grey
# edge between), and the decoder's last layer grows with its 3 K outputs per pixel: 5 keeps the gated
# MLP's 300 x 3 K x 784 weights at 3.5 million (10: 7.1 million; Bernoulli: 0.24 million).
DISCRETIZED_COMPONENTS = 5

LIKELIHOODS = {
    # Binary pixels.
    "bernoulli": lambda shape: layers.IndependentBernoulli(shape, name="likelihood"),
    # A mean per pixel, one learned scale per pixel shared by all images (a sigma-VAE).
    "gaussian": lambda shape: layers.IndependentGaussian(shape, name="likelihood"),
    # A mean and a scale per pixel, both predicted.
    "normal": lambda shape: layers.IndependentNormal(shape, name="likelihood"),
    # The density on [0, 1] for grey levels (Loaiza-Ganem & Cunningham, 2019).
    "continuous_bernoulli": lambda shape: IndependentContinuousBernoulli(shape, name="likelihood"),
    # 8-bit grey levels, a discrete probability per level (PixelCNN++), K = DISCRETIZED_COMPONENTS.
    "discretized_logistic_mixture": lambda shape: DiscretizedLogisticMixture(
        shape, num_components=DISCRETIZED_COMPONENTS, num_bits=8, name="likelihood"),
}

# The likelihoods that model grey levels in [0, 1]: binarized images are outside what they describe.
GREY_LEVEL_LIKELIHOODS = ("normal", "continuous_bernoulli", "discretized_logistic_mixture")

# The likelihoods whose log_prob is a discrete log-probability of 8-bit levels, so NLL / (D ln 2) is
# bits per dimension comparable with published ones.
DISCRETE_GREY_LEVEL_LIKELIHOODS = ("discretized_logistic_mixture",)


def _choose(registry, name, argument):
    if name not in registry:
        raise ValueError(f"Unknown `{argument}` {name!r}; known: {sorted(registry)}.")
    return registry[name]


def _check_sizes(latent_dim, shape, shape_argument, hidden_units, hidden_argument):
    """The builders' sizes, checked by name before any layer is made: `(latent_dim, shape, hidden_units)`."""
    latent_dim = check_positive_int("latent_dim", latent_dim)
    shape = as_event_shape(shape, shape_argument)
    if isinstance(hidden_units, (str, bytes)) or not hasattr(hidden_units, "__iter__"):
        raise ValueError(f"`{hidden_argument}` must be a sequence of ints >= 1; received {hidden_units!r}.")
    hidden_units = tuple(check_positive_int(hidden_argument, units) for units in hidden_units)
    return latent_dim, shape, hidden_units


def check_num_classes(num_classes):
    """`num_classes` checked: None (unconditional) or an int >= 2; raises ValueError naming it otherwise."""
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be None (unconditional) or an int >= 2; received {num_classes!r}.")
    return num_classes


def _with_label(hidden, num_classes, name):
    """`(hidden, label_input)`: `hidden` with the one-hot label `[batch, num_classes]` concatenated, and that input.

    `(hidden, None)` when `num_classes` is None: the unconditional model is left exactly as it was.
    """
    if num_classes is None:
        return hidden, None
    label = keras.Input((num_classes,), name="label")
    return keras.layers.Concatenate(name=name)([hidden, label]), label


def _model(inputs, label, outputs, name):
    """A Functional model on `inputs`, or on `[inputs, label]` when conditional."""
    return keras.Model(inputs if label is None else [inputs, label], outputs, name=name)


def _check_image_shape(shape, argument, num_downsamplings):
    if len(shape) != 3:
        raise ValueError(f"`{argument}` must be (height, width, channels); received {shape}.")
    factor = 2**num_downsamplings
    if shape[0] % factor or shape[1] % factor:
        raise ValueError(
            f"`{argument}` height and width must be divisible by {factor} (2 ** the number "
            f"of conv layers, {num_downsamplings}); received {shape}."
        )


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class GatedDense(keras.layers.Layer):
    """Gated dense units: `h = activation(x W + b) * sigmoid(x V + c)`.

    The units of the MLPs of Tomczak & Welling (2018, "VAE with a
    VampPrior"), after the gated linear units of Dauphin et al. (2017); their
    code uses no activation (`activation=None`, linear h). W and V are one
    `[input, 2 * units]` kernel, so one matmul computes both halves.

    Input `[batch, input]`, output `[batch, units]`.
    """

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.dense = keras.layers.Dense(2 * units, name="values_and_gates")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, inputs):
        values, gates = tf.split(self.dense(inputs), 2, axis=-1)
        return self.activation(values) * tf.sigmoid(gates)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": keras.activations.serialize(self.activation)}


def _hidden_layer(units, activation):
    """A dense layer, or gated units (`GatedDense`) for `activation="gated"`."""
    return GatedDense(units) if activation == "gated" else keras.layers.Dense(units, activation=activation)


def mlp_encoder(
    input_shape,
    latent_dim,
    hidden_units=(200, 200),
    activation="tanh",
    posterior="independent_normal",
    name="encoder",
    num_classes=None,
):
    """x: `[batch, *input_shape]` -> q(z|x) through dense layers.

    The default is the encoder of the IWAE paper (Burda et al., 2015):
    784-200-200-latent, tanh. `activation="gated"` uses `GatedDense` units.
    With `num_classes`: `[x, one_hot]` -> q(z|x, y), the one-hot
    `[batch, num_classes]` concatenated to the flattened x.
    """
    latent_dim, input_shape, hidden_units = _check_sizes(latent_dim, input_shape, "input_shape", hidden_units, "hidden_units")
    num_classes = check_num_classes(num_classes)
    make_posterior = _choose(POSTERIORS, posterior, "posterior")
    distribution = make_posterior(latent_dim)
    inputs = keras.Input(input_shape, name="x")
    hidden, label = _with_label(keras.layers.Flatten()(inputs), num_classes, "x_and_label")
    for units in hidden_units:
        hidden = _hidden_layer(units, activation)(hidden)
    params = keras.layers.Dense(distribution.num_params, name="posterior_params")(hidden)
    return _model(inputs, label, distribution(params), name)


def mlp_decoder(
    latent_dim,
    output_shape,
    hidden_units=(200, 200),
    activation="tanh",
    likelihood="bernoulli",
    name="decoder",
    num_classes=None,
):
    """z: `[batch, latent_dim]` -> p(x|z) with event shape `output_shape`.

    `activation="gated"` uses `GatedDense` units. With `num_classes`:
    `[z, one_hot]` -> p(x|z, y), the one-hot concatenated to z.
    """
    latent_dim, output_shape, hidden_units = _check_sizes(latent_dim, output_shape, "output_shape", hidden_units, "hidden_units")
    num_classes = check_num_classes(num_classes)
    distribution = _choose(LIKELIHOODS, likelihood, "likelihood")(output_shape)
    inputs = keras.Input((latent_dim,), name="z")
    hidden, label = _with_label(inputs, num_classes, "z_and_label")
    for units in hidden_units:
        hidden = _hidden_layer(units, activation)(hidden)
    params = keras.layers.Dense(distribution.num_params, name="likelihood_params")(hidden)
    return _model(inputs, label, distribution(params), name)


def conv_encoder(
    input_shape,
    latent_dim,
    filters=(32, 64),
    kernel_size=3,
    activation="relu",
    posterior="independent_normal",
    name="encoder",
    num_classes=None,
):
    """x: `[batch, height, width, channels]` -> q(z|x) through strided convolutions.

    Each conv layer halves height and width; both must be divisible by
    `2 ** len(filters)` (e.g. (28, 28, 1) or (32, 32, 3) with two layers).
    With `num_classes`: `[x, one_hot]` -> q(z|x, y), the one-hot concatenated
    to the flattened features of the last convolution.
    """
    latent_dim, input_shape, filters = _check_sizes(latent_dim, input_shape, "input_shape", filters, "filters")
    num_classes = check_num_classes(num_classes)
    _check_image_shape(input_shape, "input_shape", len(filters))
    distribution = _choose(POSTERIORS, posterior, "posterior")(latent_dim)
    inputs = keras.Input(input_shape, name="x")
    hidden = inputs
    for num_filters in filters:
        hidden = keras.layers.Conv2D(
            num_filters, kernel_size, strides=2, padding="same", activation=activation
        )(hidden)
    hidden, label = _with_label(keras.layers.Flatten()(hidden), num_classes, "features_and_label")
    params = keras.layers.Dense(distribution.num_params, name="posterior_params")(hidden)
    return _model(inputs, label, distribution(params), name)


def conv_decoder(
    latent_dim,
    output_shape,
    filters=(64, 32),
    kernel_size=3,
    activation="relu",
    likelihood="bernoulli",
    name="decoder",
    num_classes=None,
):
    """z: `[batch, latent_dim]` -> p(x|z) through transposed convolutions.

    The mirror image of `conv_encoder`: a dense layer to a
    `[height / 2**k, width / 2**k, filters[0]]` map, k = len(filters)
    stride-2 transposed convolutions, then a 1x1 convolution to the P
    parameters of each pixel and channel. Its `P * channels` outputs at a
    pixel are read as `[P, channels]` and moved to the parameter-major
    layout `[P, height, width, channels]` that the likelihood layers read,
    so each pixel's parameters come from that pixel's features. With
    `num_classes`: `[z, one_hot]` -> p(x|z, y), the one-hot concatenated to z.
    """
    latent_dim, output_shape, filters = _check_sizes(latent_dim, output_shape, "output_shape", filters, "filters")
    num_classes = check_num_classes(num_classes)
    _check_image_shape(output_shape, "output_shape", len(filters))
    distribution = _choose(LIKELIHOODS, likelihood, "likelihood")(output_shape)
    factor = 2 ** len(filters)
    height, width, channels = output_shape
    start_shape = (height // factor, width // factor, filters[0])
    inputs = keras.Input((latent_dim,), name="z")
    hidden, label = _with_label(inputs, num_classes, "z_and_label")
    hidden = keras.layers.Dense(math.prod(start_shape), activation=activation)(hidden)
    hidden = keras.layers.Reshape(start_shape)(hidden)
    for num_filters in filters:
        hidden = keras.layers.Conv2DTranspose(
            num_filters, kernel_size, strides=2, padding="same", activation=activation
        )(hidden)
    params_per_element = distribution.num_params // math.prod(output_shape)
    params = keras.layers.Conv2D(params_per_element * channels, 1, name="likelihood_params")(hidden)
    if params_per_element > 1:
        params = keras.layers.Reshape((height, width, params_per_element, channels))(params)
        params = keras.layers.Permute((3, 1, 2, 4), name="likelihood_params_by_parameter")(params)
    return _model(inputs, label, distribution(params), name)


def gated_mlp_encoder(input_shape, latent_dim, posterior="independent_normal", name="encoder", num_classes=None):
    """The encoder of the VampPrior paper's MLP (Tomczak & Welling, 2018): 784-300-300-latent, gated units."""
    return mlp_encoder(input_shape, latent_dim, hidden_units=(300, 300), activation="gated", posterior=posterior, name=name,
                       num_classes=num_classes)


def gated_mlp_decoder(latent_dim, output_shape, likelihood="bernoulli", name="decoder", num_classes=None):
    """The decoder of the VampPrior paper's MLP: latent-300-300-784, gated units."""
    return mlp_decoder(latent_dim, output_shape, hidden_units=(300, 300), activation="gated", likelihood=likelihood, name=name,
                       num_classes=num_classes)


ARCHITECTURES = {
    "mlp": (mlp_encoder, mlp_decoder),
    "gated_mlp": (gated_mlp_encoder, gated_mlp_decoder),
    "conv": (conv_encoder, conv_decoder),
}


def encoder_and_decoder(arch, image_shape, latent_dim, likelihood="bernoulli", posterior="independent_normal",
                        num_classes=None):
    """Returns `(encoder, decoder)` of architecture `arch` (a key of `ARCHITECTURES`) with default sizes.

    With `num_classes`, the conditional pair: `[x, one_hot]` -> q(z|x, y) and `[z, one_hot]` -> p(x|z, y).
    """
    make_encoder, make_decoder = _choose(ARCHITECTURES, arch, "arch")
    return (make_encoder(image_shape, latent_dim, posterior=posterior, num_classes=num_classes),
            make_decoder(latent_dim, image_shape, likelihood=likelihood, num_classes=num_classes))
