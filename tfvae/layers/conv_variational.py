"""Bayesian convolutions with a distribution over their kernel and bias (TFP's `layers/conv_variational.py`).

As `tfvae.layers.variational`'s dense layers, for 1-, 2- and 3-D convolutions:

    W ~ q(W): [*kernel_size, in_channels, filters], b ~ q(b): [filters]
    outputs = activation(conv(inputs, W) + b)       inputs: [batch, *spatial, in_channels] (channels_last)
    layer.losses += [D(q(W), p(W)), D(q(b), p(b))]

    Convolution{1,2,3}DReparameterization  one draw of W per call
    Convolution{1,2,3}DFlipout             conv(x, mu) + conv(x * s_in, dW) * s_out, dW ~ N(0, sigma^2),
                                           signs s per example and channel

`Conv{1,2,3}D...` are the same classes under TFP's shorter names. The
posterior, prior and divergence arguments are the dense layers'
(`DenseReparameterization`'s docstring), with TFP's defaults.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.checks import check_positive_int
from tfvae.layers.distribution import SERIALIZATION_PACKAGE
from tfvae.layers.variational_base import VariationalLayer, check_normal_posterior
from tfvae.layers.variational_fns import (
    default_mean_field_normal_fn,
    default_multivariate_normal_fn,
    kl_divergence_fn,
    sample_tensor_fn,
)


def _as_tuple(value, rank, argument):
    """`value` (an int or `rank` ints, each >= 1) as a tuple of `rank` ints, or ValueError naming `argument`."""
    values = (value,) * rank if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(values) != rank or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ValueError(f"`{argument}` must be an int >= 1 or {rank} such ints; received {value!r}.")
    return values


def _output_length(length, kernel_size, padding, stride, dilation):
    """Keras' conv output length along one spatial axis (None stays None)."""
    if length is None:
        return None
    span = (kernel_size - 1) * dilation + 1
    return (length + stride - 1) // stride if padding == "same" else (length - span + stride) // stride


class _ConvVariational(VariationalLayer):
    """The convolution shared by the variational conv layers; `rank` is set by the subclass."""

    rank = None

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format="channels_last",
        dilation_rate=1,
        activation=None,
        activity_regularizer=None,
        kernel_posterior_fn=default_mean_field_normal_fn(),
        kernel_posterior_tensor_fn=sample_tensor_fn,
        kernel_prior_fn=default_multivariate_normal_fn,
        kernel_divergence_fn=kl_divergence_fn,
        bias_posterior_fn=default_mean_field_normal_fn(is_singular=True),
        bias_posterior_tensor_fn=sample_tensor_fn,
        bias_prior_fn=None,
        bias_divergence_fn=kl_divergence_fn,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            activation=activation, activity_regularizer=activity_regularizer,
            kernel_posterior_fn=kernel_posterior_fn, kernel_posterior_tensor_fn=kernel_posterior_tensor_fn,
            kernel_prior_fn=kernel_prior_fn, kernel_divergence_fn=kernel_divergence_fn,
            bias_posterior_fn=bias_posterior_fn, bias_posterior_tensor_fn=bias_posterior_tensor_fn,
            bias_prior_fn=bias_prior_fn, bias_divergence_fn=bias_divergence_fn, seed=seed, **kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = _as_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = _as_tuple(strides, self.rank, "strides")
        self.dilation_rate = _as_tuple(dilation_rate, self.rank, "dilation_rate")
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"`padding` must be 'valid' or 'same'; received {padding!r}.")
        self.data_format = str(data_format).lower()
        if self.data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"`data_format` must be 'channels_last' or 'channels_first'; received {data_format!r}.")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"`strides` > 1 and `dilation_rate` > 1 cannot be combined; received strides={self.strides}, "
                f"dilation_rate={self.dilation_rate}.")
        self.input_spec = keras.InputSpec(ndim=self.rank + 2)

    @property
    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def kernel_shape(self, input_shape):
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(f"The channel axis of the inputs of {type(self).__name__} must be known; "
                             f"received shape {tuple(input_shape)}.")
        self.input_spec = keras.InputSpec(ndim=self.rank + 2, axes={self._channel_axis: channels})
        return (*self.kernel_size, channels, self.filters)

    def bias_shape(self):
        return (self.filters,)

    def convolution(self, inputs, kernel):
        """`inputs` cross-correlated with `kernel: [*kernel_size, in_channels, filters]`."""
        return keras.ops.conv(inputs, kernel, strides=self.strides, padding=self.padding,
                              data_format=self.data_format, dilation_rate=self.dilation_rate)

    def channel_shape(self, values):
        """`values: [batch, channels]` shaped to broadcast against the outputs' channel axis."""
        ones = [1] * self.rank
        if self.data_format == "channels_last":
            return tf.reshape(values, tf.concat([tf.shape(values)[:1], ones, tf.shape(values)[1:]], 0))
        return tf.reshape(values, tf.concat([tf.shape(values), ones], 0))

    def add_bias(self, outputs, bias):
        return outputs + (bias if self.data_format == "channels_last" else tf.reshape(bias, [-1] + [1] * self.rank))

    def compute_output_shape(self, input_shape):
        spatial = input_shape[1:-1] if self.data_format == "channels_last" else input_shape[2:]
        lengths = [_output_length(length, k, self.padding, s, d)
                   for length, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)]
        if self.data_format == "channels_last":
            return (input_shape[0], *lengths, self.filters)
        return (input_shape[0], self.filters, *lengths)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate),
        }


class _ConvReparameterization(_ConvVariational):
    def apply_kernel(self, inputs, kernel_posterior, kernel_seeds):
        kernel = self.posterior_tensor(self.kernel_posterior_tensor_fn, kernel_posterior, kernel_seeds[0])
        return self.convolution(inputs, kernel), kernel


class _ConvFlipout(_ConvVariational):
    def check_kernel_posterior(self, kernel_posterior):
        check_normal_posterior(self, kernel_posterior)

    def apply_kernel(self, inputs, kernel_posterior, kernel_seeds):
        normal = kernel_posterior.distribution
        affine = tfp.distributions.Normal(loc=tf.zeros_like(normal.loc), scale=normal.scale)
        perturbation = self.posterior_tensor(self.kernel_posterior_tensor_fn, affine, kernel_seeds[0])
        input_seed, output_seed = tfp.random.split_seed(kernel_seeds[1], n=2)
        batch = tf.shape(inputs)[:1]
        channels = tf.shape(inputs)[self._channel_axis:][:1]
        sign_input = tfp.random.rademacher(tf.concat([batch, channels], 0), dtype=inputs.dtype, seed=input_seed)
        sign_output = tfp.random.rademacher(tf.concat([batch, [self.filters]], 0), dtype=inputs.dtype, seed=output_seed)
        perturbed = self.convolution(inputs * self.channel_shape(sign_input), perturbation)
        perturbed = perturbed * self.channel_shape(sign_output)
        return self.convolution(inputs, normal.loc) + perturbed, None


_REPARAMETERIZATION_DOC = """{rank}-D convolution with a random kernel and bias, by the reparameterization estimator.

    One draw `W ~ q(W)`, `b ~ q(b)` per call: `outputs = activation(conv(inputs, W) + b)`;
    `inputs: [batch, {spatial}, channels]` (channels_last). Adds KL[q(W) || p(W)] (and the
    bias's, with a `bias_prior_fn`) to `layer.losses`.

    Args: `filters`, `kernel_size`, `strides`, `padding`, `data_format`, `dilation_rate` as in
      `keras.layers.Conv{rank}D`; the posterior/prior/divergence callables, `activation`,
      `activity_regularizer` and `seed` as in `tfvae.layers.DenseReparameterization`.

    Example:
      ```python
      model = keras.Sequential([
          keras.Input(({example_shape})),
          tfvae.layers.Convolution{rank}DReparameterization(8, kernel_size=3, padding="same", activation="relu"),
          keras.layers.Flatten(),
          tfvae.layers.DenseReparameterization(10),
      ])
      outputs = model(np.ones((2, {example_shape}), "float32"))
      assert outputs.shape == (2, 10) and len(model.losses) == 2  # one KL[q(W) || p(W)] per layer
      ```
    """

_FLIPOUT_DOC = """{rank}-D convolution with a random kernel, trained by the Flipout estimator (Wen et al., 2018).

    With a posterior `tfd.Independent(tfd.Normal(mu, sigma))` (required), one perturbation
    `dW ~ N(0, sigma^2)` per call decorrelated across examples by random signs per example and
    channel: `outputs = conv(x, mu) + conv(x * s_in, dW) * s_out (+ b)`;
    `inputs: [batch, {spatial}, channels]` (channels_last). Arguments and losses are
    `Convolution{rank}DReparameterization`'s; `seed` seeds the draws and the signs.

    Example:
      ```python
      layer = tfvae.layers.Convolution{rank}DFlipout(4, kernel_size=3, seed=1)
      outputs = layer(tf.ones([2, {example_shape}]))  # "valid" padding: each spatial size 8 - 2
      assert outputs.shape[0] == 2 and set(outputs.shape[1:-1]) == set([6]) and outputs.shape[-1] == 4
      assert len(layer.losses) == 1  # the kernel's KL[q(W) || p(W)]
      ```
    """


def _doc(template, rank):
    spatial = ("length", "height, width", "depth, height, width")[rank - 1]
    return template.format(rank=rank, spatial=spatial, example_shape=", ".join(["8"] * rank + ["3"]))


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Convolution1DReparameterization(_ConvReparameterization):
    __doc__ = _doc(_REPARAMETERIZATION_DOC, 1)
    rank = 1


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Convolution2DReparameterization(_ConvReparameterization):
    __doc__ = _doc(_REPARAMETERIZATION_DOC, 2)
    rank = 2


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Convolution3DReparameterization(_ConvReparameterization):
    __doc__ = _doc(_REPARAMETERIZATION_DOC, 3)
    rank = 3


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Convolution1DFlipout(_ConvFlipout):
    __doc__ = _doc(_FLIPOUT_DOC, 1)
    rank = 1


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Convolution2DFlipout(_ConvFlipout):
    __doc__ = _doc(_FLIPOUT_DOC, 2)
    rank = 2


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class Convolution3DFlipout(_ConvFlipout):
    __doc__ = _doc(_FLIPOUT_DOC, 3)
    rank = 3


# TFP's class names; the Convolution* names above are the ones TFP exports.
Conv1DReparameterization = Convolution1DReparameterization
Conv2DReparameterization = Convolution2DReparameterization
Conv3DReparameterization = Convolution3DReparameterization
Conv1DFlipout = Convolution1DFlipout
Conv2DFlipout = Convolution2DFlipout
Conv3DFlipout = Convolution3DFlipout
