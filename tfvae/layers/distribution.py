"""The base of tfvae's distribution layers, and what they share.

A distribution layer turns a tensor of unconstrained parameters into a
distribution:

    params: [batch, ..., params_size]  ->  distribution with batch_shape [batch]
                                           and event_shape `event_shape`

The math lives in a pure function per family (`tfvae.layers.independent`); the
Keras classes are thin wrappers that validate shapes, declare the output spec
for Functional models and serialize. A layer's symbolic output (what a
Functional model sees while it is being built) is a tensor shaped like one
sample, `[batch, *event_shape]`; its eager or graph output is the distribution.

Scales. Every learned scale is `sigma = softplus(raw) + scale_floor`, the
bijector `scale_bijector(scale_floor)`, so that it stays positive and a
collapsing variance cannot make log-densities infinite. A scale that is a
variable starts at

    initial_scale(scale_floor) = max(1, 2 * scale_floor),

i.e. 1 (a unit Gaussian) for every floor below 1/2, and twice the floor above
it, where 1 is no longer comfortably above the floor. The rule is continuous
in the floor and keeps softplus(raw) >= 1/2 at the start, so the raw value
`scale_bijector(scale_floor).inverse(initial_scale(scale_floor))` exists and
is well conditioned for every floor > 0.

Mixed precision. Keras' mixed-precision guide keeps a model's output layer in
float32; densities, log-probabilities and KL terms are where float16 and
bfloat16 lose the most. So under a mixed global policy (compute dtype !=
variable dtype, e.g. "mixed_float16", "mixed_bfloat16") a distribution layer
or prior created without `dtype=` computes in the policy's variable dtype
(float32): `resolve_dtype(None)`. The parameters arriving from float16 layers
are cast with `tf.cast`, and variables read outside a layer call (priors) are
cast explicitly, so every distribution is float32. Passing `dtype=` overrides
this.

Where Keras needs a tensor instead of a distribution (`model.predict`, a
built-in loss such as `"mse"`, a metric such as `"mae"`, a layer stacked on top
of a distribution layer, e.g. a classifier on a trained encoder), the
distributions returned here convert with the layer's `convert_to_tensor_fn`
(`tfvae.layers.conversion`): by default to their **mean**, where `tfp.layers`
draws a sample; pass `convert_to_tensor_fn="sample"` for TFP's behaviour.

Activity regularizers. Keras applies a layer's `activity_regularizer` only to
tensor outputs; a distribution layer applies it to its distribution (e.g. a
`KLDivergenceRegularizer`) and adds the result divided by the batch size, as
Keras does for tensors.
"""

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import _backend  # noqa: F401  (selects the TensorFlow backend)
from tfvae.layers.checks import check_real_dtype, check_scale_floor
from tfvae.layers.conversion import (
    TensorCoercible,
    convertible,
    is_registered,
    resolve_convert_to_tensor_fn,
    serialize_convert_to_tensor_fn,
)

tfd = tfp.distributions
tfb = tfp.bijectors

SERIALIZATION_PACKAGE = "tfvae"


class MeanConvertibleIndependent(TensorCoercible, tfd.Independent):
    """`tfd.Independent` that converts to its mean where a tensor is needed.

    Its log-density is TFP's, summed over the event, but computed on events
    flattened to one axis where the base is elementwise (every parameter a
    scalar per element, as for Bernoulli, Normal, Logistic) and `x` has the
    full event shape:

        log p(x) = sum_{j < n} log p_j(x_j),   x: [..., n], n = prod(event_shape)

    Same values; the reason is speed. XLA on a CPU vectorizes the innermost
    axis of an elementwise loop, and an image event `(28, 28, 1)` ends in an
    axis of one: a VAE's training step on MNIST ran 5-10% slower with the
    likelihood computed on `[batch, 28, 28, 1]` than on `[batch, 784]`
    (scripts/benchmark_throughput.py).
    """

    def _log_prob(self, x, **kwargs):
        event_ndims = self._static_reinterpreted_batch_ndims
        base = self.distribution
        properties = type(base).parameter_properties()
        elementwise = all(properties[name].event_ndims == 0 for name in properties)
        x = tf.convert_to_tensor(x, dtype_hint=base.dtype)
        if event_ndims is None or event_ndims < 2 or not elementwise or not _has_event_shape(x, self.event_shape):
            return super()._log_prob(x, **kwargs)
        flat_events = tf.concat([tf.shape(x)[:-event_ndims], [-1]], axis=0)
        return tf.reduce_sum(_flatten_events(base, event_ndims).log_prob(tf.reshape(x, flat_events), **kwargs), axis=-1)


def _has_event_shape(x, event_shape):
    """Whether `x` statically ends in exactly `event_shape` (no broadcasting inside an event)."""
    event_shape = tf.TensorShape(event_shape)
    return (
        event_shape.is_fully_defined()
        and x.shape.rank is not None
        and x.shape.rank >= event_shape.rank
        and x.shape[x.shape.rank - event_shape.rank :] == event_shape
    )


def _flatten_events(distribution, event_ndims):
    """The elementwise `distribution` with its last `event_ndims` batch axes as one axis."""
    batch_shape = distribution.batch_shape_tensor()
    flat_shape = tf.concat([batch_shape[:-event_ndims], [-1]], axis=0)
    flat = {
        name: tf.reshape(tf.broadcast_to(value, batch_shape), flat_shape)
        for name, value in distribution.parameters.items()
        if name in type(distribution).parameter_properties() and value is not None
    }
    return distribution.copy(**flat)


class MeanConvertibleMultivariateNormalTriL(TensorCoercible, tfd.MultivariateNormalTriL):
    """`tfd.MultivariateNormalTriL` that converts to its mean where needed."""


def scale_bijector(scale_floor, dtype="float32"):
    """The map raw -> scale, `sigma = softplus(raw) + scale_floor`, as a bijector.

    The one definition of tfvae's positive scales: layers apply `.forward` to
    raw parameters, initializers apply `.inverse` to the scale they start at.
    Elementwise, so any shape; `dtype` is the dtype of the tensors it maps.
    """
    floor = np.asarray(check_scale_floor(scale_floor), tf.as_dtype(dtype).as_numpy_dtype)
    return tfb.Chain([tfb.Shift(floor), tfb.Softplus()], name="scale")


def initial_scale(scale_floor):
    """The scale a learned scale variable starts at: `max(1, 2 * scale_floor)`."""
    return max(1.0, 2.0 * check_scale_floor(scale_floor))


def initial_scale_initializer(scale_floor):
    """Initializer of a raw scale variable so that its scale is `initial_scale(scale_floor)`.

    The raw value is the bijector's inverse, computed in float64 so that the
    float32 variable holds the correctly rounded value.
    """
    with tf.init_scope():  # eager even where a layer is built inside a tf.function
        raw = scale_bijector(scale_floor, "float64").inverse(np.float64(initial_scale(scale_floor)))
        return keras.initializers.Constant(float(raw))


# The old name: the scale is 1 for every floor below 1/2.
unit_scale_initializer = initial_scale_initializer


def resolve_dtype(dtype):
    """The dtype a distribution layer or prior uses: `dtype`, else float32 under a mixed policy.

    Returns `dtype` when given; otherwise the global policy's variable dtype
    when the policy is mixed (its compute dtype differs), else None (the
    global policy, as for any Keras layer).
    """
    if dtype is not None:
        return dtype
    policy = keras.config.dtype_policy()
    if policy.compute_dtype != policy.variable_dtype:
        return policy.variable_dtype
    return None


def reshape_params(params, param_shape):
    """Reshapes `params: [batch, ...]` to `[batch, *param_shape]`."""
    batch = tf.shape(params)[:1]
    return tf.reshape(params, tf.concat([batch, param_shape], axis=0))


class DistributionLayer(keras.layers.Layer):
    """Base class: a layer mapping parameters to a `tfd.Distribution`.

    Subclasses define `event_shape`, a static `params_size(...)` and
    `make_distribution(params)`, where `params: [batch, ...]` is already cast
    to the layer's compute dtype.

    Args:
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor: "mean" (the default), "mode", "sample", "stddev", "variance",
        `tfd.Distribution.sample` and the like, or a callable (registered with
        `keras.saving.register_keras_serializable` to be saved).
      validate_args: check the distribution's parameters and arguments at run
        time (slower), as TFP's `validate_args`.
      dtype: the layer's dtype policy; None gives float32 under a mixed
        global policy (see the module docstring), else the global policy.
      **kwargs: the other arguments of `keras.layers.Layer`, e.g. `name`,
        `activity_regularizer`.
    """

    event_shape: tuple

    def __init__(self, convert_to_tensor_fn="mean", validate_args=False, dtype=None, **kwargs):
        super().__init__(dtype=resolve_dtype(dtype), **kwargs)
        self.convert_to_tensor_fn = resolve_convert_to_tensor_fn(convert_to_tensor_fn)
        if not isinstance(validate_args, bool):
            raise TypeError(f"`validate_args` must be a bool; received {validate_args!r}.")
        self.validate_args = validate_args

    @property
    def num_params(self):
        """Number of parameters this layer expects per example."""
        return self.params_size(self.event_shape)

    def build(self, input_shape):
        if len(input_shape) == 0:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} needs `inputs` of shape [batch, ...] with {self.num_params} "
                "parameters per example; received a scalar (shape ())."
            )
        received = input_shape[1:]
        if all(d is not None for d in received) and math.prod(received) != self.num_params:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} needs {self.num_params} "
                f"parameters per example (event_shape={self.event_shape}); received "
                f"an input of shape {tuple(input_shape)}, i.e. {math.prod(received)} "
                f"per example. Use {type(self).__name__}.params_size(...) for the "
                "size of the layer before it."
            )
        super().build(input_shape)

    def call(self, inputs):
        check_real_dtype(inputs, "inputs")
        # tf.cast, not convert_to_tensor: float16 parameters become float32.
        return self.finish(self.make_distribution(tf.cast(inputs, self.compute_dtype)))

    def finish(self, distribution):
        """`distribution` validated if asked, made convertible, and regularized: what `call` returns."""
        if self.validate_args:
            distribution = with_validation(distribution)
        distribution = convertible(distribution, self.convert_to_tensor_fn)
        if self.activity_regularizer is not None:
            batch_size = tf.cast(distribution.batch_shape_tensor()[0], distribution.dtype)
            self.add_loss(tf.math.divide_no_nan(tf.cast(self.activity_regularizer(distribution), distribution.dtype), batch_size))
        return distribution

    def make_distribution(self, params):
        raise NotImplementedError

    def compute_output_spec(self, inputs):
        # What a Functional model carries symbolically: the converted tensor's
        # spec; one sample's shape for the conversions that keep it.
        if self.convert_to_tensor_fn in _SAMPLE_SHAPED and hasattr(self, "event_shape"):
            return keras.KerasTensor((inputs.shape[0], *self.event_shape), dtype=self.compute_dtype)
        return traced_output_spec(lambda params: self.make_distribution(tf.cast(params, self.compute_dtype)), self.convert_to_tensor_fn, inputs)

    def get_config(self):
        return {
            **super().get_config(),
            "convert_to_tensor_fn": serialize_convert_to_tensor_fn(self.convert_to_tensor_fn),
            "validate_args": self.validate_args,
        }


_SAMPLE_SHAPED = {tfd.Distribution.mean, tfd.Distribution.mode, tfd.Distribution.sample, tfd.Distribution.stddev,
                  tfd.Distribution.variance}


def traced_output_spec(make_distribution, convert_to_tensor_fn, inputs):
    """The `keras.KerasTensor` of `convert_to_tensor_fn(make_distribution(inputs))`, found by tracing.

    `inputs` is a structure of Keras tensors; nothing runs.
    """
    specs = keras.tree.map_structure(lambda x: tf.TensorSpec(x.shape, x.dtype), inputs)
    traced = tf.function(lambda structure: tf.convert_to_tensor(convert_to_tensor_fn(make_distribution(structure))))
    output = traced.get_concrete_function(specs).structured_outputs
    return keras.KerasTensor(tuple(output.shape), dtype=output.dtype.name)


def with_validation(distribution):
    """`distribution` rebuilt with `validate_args=True`, nested distributions included."""
    parameters = {
        name: with_validation(value) if isinstance(value, tfd.Distribution) else value
        for name, value in distribution.parameters.items()
    }
    if "validate_args" in parameters:
        parameters["validate_args"] = True
    return type(distribution)(**parameters)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DistributionLambda(DistributionLayer):
    """A layer whose output is the distribution `make_distribution_fn(inputs)`.

    The Keras 3 counterpart of `tfp.layers.DistributionLambda`. For inputs
    `t` (floating tensors cast to the layer's compute dtype, distributions
    passed as they are) it returns

        p = make_distribution_fn(t),   a tfd.Distribution, e.g. batch shape [batch]

    with no parameter transform of its own: the function applies any
    (softplus for a scale, ...). Where Keras needs a tensor (`predict`, a
    loss such as "mse", a layer stacked on it), `p` stands in as
    `convert_to_tensor_fn(p)`: `E[p]` by default, a draw `y ~ p` with
    "sample". A Functional model sees that tensor's shape (found by tracing,
    or given as `output_shape`).

    Example (a Normal whose mean and softplus scale a Dense layer predicts):

        model = keras.Sequential([
            keras.Input((3,)),
            keras.layers.Dense(2),
            tfvae.layers.DistributionLambda(
                lambda t: tfd.Normal(loc=t[..., 0], scale=tf.math.softplus(t[..., 1])),
                convert_to_tensor_fn="sample"),
        ])
        x = np.random.normal(size=(4, 3)).astype("float32")
        normal = model(x)  # a tfd.Normal with batch shape [4]
        assert normal.batch_shape == [4] and model.predict(x, verbose=0).shape == (4,)  # predict: one draw each

    Args:
      make_distribution_fn: callable from the layer's input (a tensor, a list
        of tensors, or a distribution from the layer before) to a
        `tfd.Distribution`. To save the layer, register the function with
        `keras.saving.register_keras_serializable()`; a lambda works in
        memory, and saving it raises a ValueError saying so (TFP pickled
        lambdas, which Keras 3's safe loading refuses).
      convert_to_tensor_fn: as for every distribution layer (default "mean";
        tfp.layers' default is "sample").
      output_shape: optional shape, without the batch axis, of the tensor
        the distribution converts to. Needed only in a Functional or
        Sequential model whose input is another layer's distribution (Keras
        then carries a tensor symbolically, which `make_distribution_fn` may
        not accept); otherwise it is found by tracing.
      **kwargs: `validate_args`, `dtype`, `name`, `activity_regularizer`, ...

    Inputs are passed through as given: tensors are cast to the layer's
    compute dtype, distributions are left alone.
    """

    def __init__(self, make_distribution_fn, convert_to_tensor_fn="mean", output_shape=None, **kwargs):
        if isinstance(make_distribution_fn, dict):  # from get_config
            make_distribution_fn = keras.saving.deserialize_keras_object(make_distribution_fn)
        if not callable(make_distribution_fn):
            raise TypeError(
                f"`make_distribution_fn` must be a callable returning a tfd.Distribution; received {make_distribution_fn!r}."
            )
        super().__init__(convert_to_tensor_fn=convert_to_tensor_fn, **kwargs)
        self.make_distribution_fn = make_distribution_fn
        self.output_shape_ = None if output_shape is None else tuple(output_shape)
        self._convert_input_args = False  # a distribution input stays a distribution
        self._allow_non_tensor_positional_args = True  # it, and NumPy arrays (cast in `call`)
        self.built = True

    def build(self, input_shape):
        pass

    def call(self, inputs):
        inputs = keras.tree.map_structure(self._cast, inputs)
        distribution = self.make_distribution_fn(inputs)
        if not isinstance(distribution, tfd.Distribution):
            raise TypeError(
                f"`make_distribution_fn` of {type(self).__name__} {self.name!r} must return a tfd.Distribution; "
                f"it returned {type(distribution).__name__}."
            )
        return self.finish(distribution)

    def _cast(self, value):
        if isinstance(value, tfd.Distribution) or value is None:
            return value
        value = tf.convert_to_tensor(value)
        return tf.cast(value, self.compute_dtype) if value.dtype.is_floating else value

    def compute_output_spec(self, inputs):
        if self.output_shape_ is not None:
            batch = keras.tree.flatten(inputs)[0].shape[0]
            return keras.KerasTensor((batch, *self.output_shape_), dtype=self.compute_dtype)
        return traced_output_spec(lambda structure: self.make_distribution_fn(keras.tree.map_structure(self._cast, structure)),
                                  self.convert_to_tensor_fn, inputs)

    def get_config(self):
        function = self.make_distribution_fn
        if not is_registered(function):
            raise ValueError(
                f"{type(self).__name__} {self.name!r} cannot be saved: its `make_distribution_fn` {function!r} is not "
                "registered. Define it as a named function decorated with "
                "@keras.saving.register_keras_serializable(), or subclass DistributionLambda with a get_config."
            )
        return {
            **super().get_config(),
            "make_distribution_fn": keras.saving.serialize_keras_object(function),
            "output_shape": None if self.output_shape_ is None else list(self.output_shape_),
        }
