"""Bayesian dense layers with a distribution over their kernel and bias (TFP's `layers/dense_variational.py`).

Each layer keeps a surrogate posterior q(W), q(b) and a prior p(W), p(b); a
forward pass draws the weights (or the pre-activations they induce) and adds
the divergence of each posterior from its prior to the layer's losses:

    W ~ q(W), b ~ q(b)
    outputs = activation(inputs @ W + b)                    inputs: [batch, ..., in], outputs: [batch, ..., units]
    layer.losses += [D(q(W), p(W)), D(q(b), p(b))]           D: kernel_/bias_divergence_fn, KL[q || p] by default

`model.fit` adds `sum(model.losses)` to the loss. The divergences are sums
over all weights, so with minibatches scale them to be counted once per epoch,
e.g. `kernel_divergence_fn=ScaledKLDivergence(1 / num_examples)` (TFP's
`lambda q, p, _: tfd.kl_divergence(q, p) / num_examples`). The three estimators of the forward pass:

    DenseReparameterization       one draw of W for the whole batch
    DenseLocalReparameterization  draws the pre-activations x @ W ~ N(x @ mu, x^2 @ sigma^2) per example
    DenseFlipout                  x @ mu + ((x * s_in) @ dW) * s_out with dW ~ N(0, sigma^2), random signs s

The posterior, prior and divergence arguments are TFP's callables (see
`tfvae.layers.variational_fns`); their defaults are TFP's, as registered
serializable objects. Randomness comes from the layer's
`keras.random.SeedGenerator(seed)`: a seeded layer repeats and compiles under
XLA.

How the TFP callables run under Keras 3: `tfvae.layers.variational_base`.
"""

import keras
import numpy as np
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

tfd = tfp.distributions


class _DenseVariational(VariationalLayer):
    """Dense variational layer: `units` outputs from inputs `[batch, ..., in]` (see the module docstring)."""

    def __init__(
        self,
        units,
        activation=None,
        activity_regularizer=None,
        trainable=True,
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
            activation=activation, activity_regularizer=activity_regularizer, trainable=trainable,
            kernel_posterior_fn=kernel_posterior_fn, kernel_posterior_tensor_fn=kernel_posterior_tensor_fn,
            kernel_prior_fn=kernel_prior_fn, kernel_divergence_fn=kernel_divergence_fn,
            bias_posterior_fn=bias_posterior_fn, bias_posterior_tensor_fn=bias_posterior_tensor_fn,
            bias_prior_fn=bias_prior_fn, bias_divergence_fn=bias_divergence_fn, seed=seed, **kwargs)
        self.units = check_positive_int("units", units)
        self.input_spec = keras.InputSpec(min_ndim=2)

    def kernel_shape(self, input_shape):
        in_size = input_shape[-1]
        if in_size is None:
            raise ValueError(f"The last axis of the inputs of {type(self).__name__} must be known; "
                             f"received shape {tuple(input_shape)}.")
        self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: in_size})
        return (in_size, self.units)

    def bias_shape(self):
        return (self.units,)

    def add_bias(self, outputs, bias):
        return outputs + bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DenseReparameterization(_DenseVariational):
    """Dense layer with a random kernel and bias, trained by the reparameterization estimator (Kingma & Welling, 2014).

    One draw `W ~ q(W)`, `b ~ q(b)` per call, shared by the batch:
    `outputs = activation(inputs @ W + b)`, `inputs: [batch, ..., in]`,
    `outputs: [batch, ..., units]`. Adds KL[q(W) || p(W)] (and the bias's,
    with a `bias_prior_fn`) to `layer.losses`.

    Args (TFP's, plus `seed`):
      units: int >= 1, the output size.
      activation, activity_regularizer, trainable: as in `keras.layers.Dense`.
      kernel_posterior_fn: `fn(dtype, shape, name, trainable, add_variable_fn)`
        -> q(W); default `default_mean_field_normal_fn()`.
      kernel_posterior_tensor_fn: `fn(distribution[, seed])` -> the weights
        used; default `sample_tensor_fn` (a seeded draw).
      kernel_prior_fn: like kernel_posterior_fn -> p(W), or None; default
        `default_multivariate_normal_fn`, N(0, I).
      kernel_divergence_fn: `fn(q, p, posterior_tensor)` -> the loss added,
        or None; default `kl_divergence_fn`, the exact KL.
      bias_posterior_fn, bias_posterior_tensor_fn, bias_prior_fn,
        bias_divergence_fn: the same for the bias; the default posterior is a
        trainable point mass (`default_mean_field_normal_fn(is_singular=True)`),
        no prior; `bias_posterior_fn=None` for no bias.
      seed: None or int, seeds the layer's `keras.random.SeedGenerator`.

    Example:
      ```python
      x = np.random.normal(size=(64, 8)).astype("float32")
      y = (x[:, 0] > 0).astype("int32")
      model = keras.Sequential([
          keras.Input((8,)),
          tfvae.layers.DenseReparameterization(16, activation="relu"),
          tfvae.layers.DenseReparameterization(3),
      ])
      model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
      model.fit(x, y, verbose=0)  # the loss includes sum(model.losses), the KL terms
      ```
    """

    def apply_kernel(self, inputs, kernel_posterior, kernel_seeds):
        kernel = self.posterior_tensor(self.kernel_posterior_tensor_fn, kernel_posterior, kernel_seeds[0])
        return tf.matmul(inputs, kernel), kernel


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DenseLocalReparameterization(_DenseVariational):
    """Dense layer with a random kernel, trained by the local reparameterization estimator (Kingma et al., 2015).

    Draws the pre-activations instead of the kernel, independently per example:
    `inputs @ W ~ N(inputs @ mu, sqrt(inputs^2 @ sigma^2))` for a posterior
    `tfd.Independent(tfd.Normal(mu, sigma))` (required: TypeError otherwise).
    `kernel_posterior_tensor_fn` is applied to that Normal. Arguments and
    losses are `DenseReparameterization`'s.

    Example:
      ```python
      layer = tfvae.layers.DenseLocalReparameterization(10, seed=1)
      outputs = layer(tf.ones([4, 3]))  # sum(layer.losses) is KL[q(W) || p(W)]
      assert outputs.shape == (4, 10) and len(layer.losses) == 1
      ```
    """

    def check_kernel_posterior(self, kernel_posterior):
        check_normal_posterior(self, kernel_posterior)

    def apply_kernel(self, inputs, kernel_posterior, kernel_seeds):
        normal = kernel_posterior.distribution
        variance = tf.matmul(tf.square(inputs), tf.square(normal.scale))
        # TFP takes tf.sqrt(variance), whose gradient is infinite where an input row is all zeros
        # (after a ReLU, say) and turns the weights into NaNs; the floor (1e-19 for float32) keeps it finite.
        tiny = np.finfo(variance.dtype.as_numpy_dtype).tiny
        affine = tfd.Normal(loc=tf.matmul(inputs, normal.loc), scale=tf.sqrt(tf.maximum(variance, tiny)))
        return self.posterior_tensor(self.kernel_posterior_tensor_fn, affine, kernel_seeds[0]), None


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DenseFlipout(_DenseVariational):
    """Dense layer with a random kernel, trained by the Flipout estimator (Wen et al., 2018).

    With a posterior `tfd.Independent(tfd.Normal(mu, sigma))` (required), one
    perturbation `dW ~ N(0, sigma^2)` per call decorrelated across examples by
    random signs `s_in: [batch, ..., in]`, `s_out: [batch, ..., units]`:

        outputs = inputs @ mu + ((inputs * s_in) @ dW) * s_out

    so each example sees a Normal with mean `x @ mu` and variance
    `x^2 @ sigma^2`, at about twice the cost of `DenseReparameterization` and
    with lower-variance gradients. Arguments and losses are
    `DenseReparameterization`'s; `seed` seeds the draws and the signs.

    Example:
      ```python
      model = keras.Sequential([keras.Input((8,)), tfvae.layers.DenseFlipout(16, activation="relu", seed=1),
                                tfvae.layers.DenseFlipout(1, seed=2)])
      outputs = model(np.ones((4, 8), "float32"))
      assert outputs.shape == (4, 1) and len(model.losses) == 2  # one KL[q(W) || p(W)] per layer
      ```
    """

    def check_kernel_posterior(self, kernel_posterior):
        check_normal_posterior(self, kernel_posterior)

    def apply_kernel(self, inputs, kernel_posterior, kernel_seeds):
        normal = kernel_posterior.distribution
        affine = tfd.Normal(loc=tf.zeros_like(normal.loc), scale=normal.scale)
        perturbation = self.posterior_tensor(self.kernel_posterior_tensor_fn, affine, kernel_seeds[0])
        input_seed, output_seed = tfp.random.split_seed(kernel_seeds[1], n=2)
        shape = tf.shape(inputs)
        sign_input = tfp.random.rademacher(shape, dtype=inputs.dtype, seed=input_seed)
        sign_output = tfp.random.rademacher(
            tf.concat([shape[:-1], [self.units]], 0), dtype=inputs.dtype, seed=output_seed)
        outputs = tf.matmul(inputs, normal.loc) + tf.matmul(inputs * sign_input, perturbation) * sign_output
        return outputs, None
