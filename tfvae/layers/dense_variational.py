"""`DenseVariational`: a dense layer whose kernel and bias have a learned posterior (TFP's `dense_variational_v2.py`).

The posterior q(w) and prior p(w) over the flattened weights
`w = [vec(kernel), bias]` are Keras layers (or models) made by user
functions `make_posterior_fn(kernel_size, bias_size, dtype)` and
`make_prior_fn(...)`, called on the layer's input and returning a
`tfd.Distribution` with event shape `[kernel_size + bias_size]`:

    w ~ q(w)                                             one seeded draw per call
    outputs = activation(inputs @ reshape(w_kernel, [in, units]) + w_bias)
                                                         inputs: [batch, ..., in], outputs: [batch, ..., units]
    layer.losses += [kl_weight * KL]                     KL = KL[q || p] exactly (kl_use_exact) or
                                                         log q(w) - log p(w), the one-sample estimate

Ready-made, registered builders (TFP's regression tutorial's functions):

    posterior_mean_field   trainable N(mu, (1e-5 + softplus(c + rho))^2) per weight, c = log(e - 1)
    prior_trainable        trainable N(mu, 1) per weight
    prior_standard_normal  fixed N(0, 1) per weight

Your own builders must be registered with
`@keras.saving.register_keras_serializable()` for the layer to be saved;
any Keras layer returning a distribution works, e.g. a `keras.Sequential`
of `tfvae.layers.VariableLayer` and `tfvae.layers.DistributionLambda` as in
TFP's tutorial.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import seeds
from tfvae.layers.checks import (
    check_float32_range,
    check_num_elements,
    check_positive_int,
    check_real_dtype,
    get_keras_object,
)
from tfvae.layers.distribution import SERIALIZATION_PACKAGE, resolve_dtype
from tfvae.layers.variational_base import check_seed
from tfvae.layers.variational_fns import check_callable, deserialize_callable, serialize_callable

tfd = tfp.distributions

_SOFTPLUS_INVERSE_OF_ONE = float(np.log(np.expm1(1.0)))  # softplus(c) = 1


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class IndependentNormalWeights(keras.layers.Layer):
    """A Normal over `size` weights that ignores its input: a posterior or prior for `DenseVariational`.

        q(w) = prod_i N(w_i; loc_i, scale_i^2)        event shape [size], no batch axis
        loc = the variable `loc` (zeros at the start) if `trainable_loc`, else 0
        scale = scale_floor + softplus(c + untransformed_scale) (1 + scale_floor at the start)
                if `trainable_scale`, else 1;  c = log(e - 1)

    Args:
      size: int >= 1, the number of weights.
      trainable_loc, trainable_scale: bool, which parameters are variables.
      scale_floor: float >= 0 added to a trainable scale (TFP's tutorial: 1e-5).
      dtype: the layer's dtype policy; None gives float32 under a mixed global
        policy, as for the distribution layers.
      **kwargs: `keras.layers.Layer`'s, e.g. `name`.

    Example:
      ```python
      posterior = tfvae.layers.IndependentNormalWeights(6)
      q = posterior(tf.zeros([1, 2]))  # tfd.Independent(tfd.Normal), event_shape [6]; the input is ignored
      assert q.event_shape == [6] and np.allclose(q.mean(), 0) and np.allclose(q.stddev(), 1 + 1e-5)
      ```
    """

    def __init__(self, size, trainable_loc=True, trainable_scale=True, scale_floor=1e-5, dtype=None, **kwargs):
        super().__init__(dtype=resolve_dtype(dtype), **kwargs)
        self.size = check_positive_int("size", size)
        for argument, value in (("trainable_loc", trainable_loc), ("trainable_scale", trainable_scale)):
            if not isinstance(value, bool):
                raise TypeError(f"`{argument}` must be a bool; received {value!r}.")
        if isinstance(scale_floor, bool) or not isinstance(scale_floor, (int, float)) or not 0 <= scale_floor < np.inf:
            raise ValueError(f"`scale_floor` must be a finite number >= 0; received {scale_floor!r}.")
        check_float32_range(scale_floor, "scale_floor")
        self.trainable_loc, self.trainable_scale, self.scale_floor = trainable_loc, trainable_scale, float(scale_floor)
        self.loc = self._zeros_weight("loc") if trainable_loc else None
        self.untransformed_scale = self._zeros_weight("untransformed_scale") if trainable_scale else None

    def _zeros_weight(self, name):
        return self.add_weight(name=name, shape=(self.size,), initializer="zeros", autocast=False)

    def build(self, input_shape):
        pass  # the variables do not depend on the input

    def call(self, inputs):
        del inputs  # ignored
        dtype = self.compute_dtype
        loc = tf.zeros([self.size], dtype) if self.loc is None else tf.cast(self.loc, dtype)
        if self.untransformed_scale is None:
            scale = tf.ones([self.size], dtype)
        else:
            untransformed_scale = tf.cast(self.untransformed_scale, dtype)
            scale = self.scale_floor + tf.nn.softplus(_SOFTPLUS_INVERSE_OF_ONE + untransformed_scale)
        return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((self.size,), dtype=self.compute_dtype)  # one sample

    def get_config(self):
        return {**super().get_config(), "size": self.size, "trainable_loc": self.trainable_loc,
                "trainable_scale": self.trainable_scale, "scale_floor": self.scale_floor}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
def posterior_mean_field(kernel_size, bias_size=0, dtype=None):
    """Trainable mean-field Normal posterior over `kernel_size + bias_size` weights (TFP's tutorial's).

    loc starts at 0 and scale at 1 + 1e-5: `IndependentNormalWeights(n)`.
    """
    return IndependentNormalWeights(kernel_size + bias_size, scale_floor=1e-5, dtype=dtype)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
def prior_trainable(kernel_size, bias_size=0, dtype=None):
    """Trainable-mean, unit-scale Normal prior N(mu, 1) over the weights (TFP's tutorial's); mu starts at 0."""
    return IndependentNormalWeights(kernel_size + bias_size, trainable_scale=False, dtype=dtype)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
def prior_standard_normal(kernel_size, bias_size=0, dtype=None):
    """Fixed standard Normal prior N(0, 1) over the weights; no variables."""
    return IndependentNormalWeights(kernel_size + bias_size, trainable_loc=False, trainable_scale=False, dtype=dtype)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DenseVariational(keras.layers.Layer):
    """Dense layer with random `kernel` and `bias` under a learned posterior (TFP's `DenseVariational`).

    See the module docstring for the math. Each call draws `w ~ q(w)` once,
    with a seed from the layer's `keras.random.SeedGenerator(seed)` (always a
    draw: TFP took `tf.convert_to_tensor(q)`, a draw under its
    `DistributionLambda`'s default conversion, whereas tfvae's distribution
    layers convert to the mean by default), and adds
    `kl_weight * KL` (summed) to `layer.losses`, which `model.fit` adds to the
    loss. Use `kl_weight = 1 / num_examples_per_epoch` to count it once per
    epoch.

    Args:
      units: int >= 1, the output size.
      make_posterior_fn: `fn(kernel_size, bias_size, dtype)` -> a Keras layer
        whose call returns q(w), e.g. `posterior_mean_field`. Registered to be
        saved.
      make_prior_fn: the same for p(w), e.g. `prior_trainable`.
      kl_weight: None (1) or a number >= 0 scaling the KL term.
      kl_use_exact: bool, `tfd.kl_divergence(q, p)` instead of the one-sample
        estimate `log q(w) - log p(w)`.
      activation: Keras activation, default none.
      use_bias: bool, whether `w` holds a bias.
      activity_regularizer: as in `keras.layers.Dense`.
      seed: None or int, seeds the weight draws.

    Example (TFP's "Probabilistic Layers Regression" tutorial, migrated):
      ```python
      x = np.linspace(-1, 1, 100, dtype="float32")[:, None]
      y = 2 * x + 0.1 * np.random.normal(size=x.shape).astype("float32")
      model = keras.Sequential([
          keras.Input((1,)),
          tfvae.layers.DenseVariational(1, tfvae.layers.posterior_mean_field, tfvae.layers.prior_trainable,
                                        kl_weight=1 / x.shape[0]),
      ])
      model.compile(keras.optimizers.Adam(0.05), "mse")
      model.fit(x, y, epochs=30, verbose=0)
      draws = np.stack([model(np.ones((1, 1), "float32")) for _ in range(20)])  # new weights w ~ q(w) each call
      assert abs(draws.mean() - 2) < 0.3  # the slope, learned
      ```
    """

    def __init__(self, units, make_posterior_fn, make_prior_fn, kl_weight=None, kl_use_exact=False, activation=None,
                 use_bias=True, activity_regularizer=None, seed=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = check_positive_int("units", units)
        self.make_posterior_fn = check_callable(
            deserialize_callable(make_posterior_fn), "make_posterior_fn", optional=False)
        self.make_prior_fn = check_callable(deserialize_callable(make_prior_fn), "make_prior_fn", optional=False)
        if kl_weight is not None and (isinstance(kl_weight, bool) or not isinstance(kl_weight, (int, float, np.number))
                                      or not 0 <= kl_weight < np.inf):
            raise ValueError(f"`kl_weight` must be None or a finite number >= 0; received {kl_weight!r}.")
        self.kl_weight = None if kl_weight is None else float(check_float32_range(kl_weight, "kl_weight"))
        for argument, value in (("kl_use_exact", kl_use_exact), ("use_bias", use_bias)):
            if not isinstance(value, bool):
                raise TypeError(f"`{argument}` must be a bool; received {value!r}.")
        self.kl_use_exact, self.use_bias = kl_use_exact, use_bias
        self.activation = get_keras_object("activation", "activation", activation)
        self.seed = check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.input_spec = keras.InputSpec(min_ndim=2)

    def build(self, input_shape):
        last_dim = input_shape[-1]
        if last_dim is None:
            raise ValueError("The last axis of the inputs of DenseVariational must be known; "
                             f"received shape {tuple(input_shape)}.")
        check_num_elements("units", (last_dim, self.units), self.units)
        self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: last_dim})
        dtype = tf.as_dtype(self.variable_dtype)
        sizes = (last_dim * self.units, self.units if self.use_bias else 0, dtype)
        self._posterior = self._make_layer(self.make_posterior_fn, "make_posterior_fn", sizes, input_shape)
        self._prior = self._make_layer(self.make_prior_fn, "make_prior_fn", sizes, input_shape)

    @staticmethod
    def _make_layer(make_fn, argument, sizes, input_shape):
        layer = make_fn(*sizes)
        if not callable(layer):
            raise TypeError(f"`{argument}` must return a Keras layer returning a distribution; it returned {layer!r}.")
        if isinstance(layer, keras.layers.Layer) and not layer.built:
            layer.build(input_shape)  # its variables exist before weights are loaded into them
        return layer

    @property
    def posterior(self):
        """The layer (or model) whose call returns q(w) (TFP's `_posterior`)."""
        return self._posterior

    @property
    def prior(self):
        """The layer (or model) whose call returns p(w) (TFP's `_prior`)."""
        return self._prior

    def call(self, inputs):
        inputs = tf.cast(check_real_dtype(inputs, "inputs"), self.variable_dtype)
        posterior, prior = self._posterior(inputs), self._prior(inputs)
        weights = posterior.sample(seed=seeds.stateless(None, self.seed_generator))
        if self.kl_use_exact:
            divergence = tfd.kl_divergence(posterior, prior)
        else:
            divergence = posterior.log_prob(weights) - prior.log_prob(weights)
        if self.kl_weight is not None:
            divergence = tf.cast(self.kl_weight, divergence.dtype) * divergence
        self.add_loss(tf.reduce_sum(divergence, name="batch_total_kl_divergence"))

        in_size = self.input_spec.axes[-1]
        kernel, bias = weights[..., : in_size * self.units], weights[..., in_size * self.units:]
        kernel = tf.reshape(kernel, tf.concat([tf.shape(kernel)[:-1], [in_size, self.units]], 0))
        outputs = tf.matmul(inputs, kernel)
        if self.use_bias:
            outputs = outputs + bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return tf.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "make_posterior_fn": serialize_callable(self.make_posterior_fn, "make_posterior_fn"),
            "make_prior_fn": serialize_callable(self.make_prior_fn, "make_prior_fn"),
            "kl_weight": self.kl_weight,
            "kl_use_exact": self.kl_use_exact,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "seed": self.seed,
        }
