"""Masked autoregressive networks (MADE) and the flow layer built on them.

    AutoregressiveNetwork    MADE [1]: x -> params of p(x_i | x_<i), autoregressive by masks
    AutoregressiveTransform  a layer: distribution p(u) -> p(x), x = f(u) a masked
                             autoregressive flow [2] whose shift and log-scale come from a MADE

Keras 3 ports of `tfp.bijectors.AutoregressiveNetwork` (a tf_keras layer) and
`tfp.layers.AutoregressiveTransform`, with the same arguments.

The autoregressive property and the masks that give it: `tfvae.layers.masks`.

The flow [2]. With `shift, log_scale = unstack(made(x), axis=-1)`,

    u = f^{-1}(x) = (x - shift(x)) * exp(-log_scale(x)),
    log p(x) = log p_base(u) - sum_i log_scale_i(x),

one pass of the MADE (the Jacobian is triangular in the input order).
Sampling inverts this one coordinate at a time: n passes.

[1] Germain, Gregor, Murray, Larochelle. MADE: Masked Autoencoder for
    Distribution Estimation. ICML 2015. https://arxiv.org/abs/1502.03509
[2] Papamakarios, Pavlakou, Murray. Masked Autoregressive Flow for Density
    Estimation. NeurIPS 2017. https://arxiv.org/abs/1705.07057
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.checks import as_event_shape, check_positive_int, get_keras_object
from tfvae.layers.distribution import SERIALIZATION_PACKAGE, DistributionLambda, DistributionLayer
from tfvae.layers.masks import HIDDEN_DEGREES, INPUT_ORDERS, input_degrees, make_dense_autoregressive_masks

tfd = tfp.distributions
tfb = tfp.bijectors

CONDITIONAL_INPUT_LAYERS = ("all_layers", "first_layer")


def _is_random(input_order, hidden_degrees):
    return (isinstance(input_order, str) and input_order == "random") or hidden_degrees == "random"


def _as_rank1_shape(value, argument):
    shape = as_event_shape(value, argument)
    if len(shape) != 1:
        raise ValueError(f"`{argument}` must describe a rank-1 shape, e.g. 3 or [3]; received {value!r}.")
    return shape


def _check_hidden_units(hidden_units):
    """`hidden_units` as a list of ints >= 1 (None: no hidden layer), or ValueError."""
    if hidden_units is None:
        return []
    if isinstance(hidden_units, (str, bytes)) or not hasattr(hidden_units, "__iter__"):
        raise ValueError(f"`hidden_units` must be a list of ints >= 1; received {hidden_units!r}.")
    units = list(hidden_units)
    if not all(isinstance(u, (int, np.integer)) and not isinstance(u, bool) and u >= 1 for u in units):
        raise ValueError(f"`hidden_units` must be a list of ints >= 1; received {hidden_units!r}.")
    return [int(u) for u in units]


def _check_input_order(input_order, event_shape):
    """A known name, or a list of degrees (checked against `event_shape` when known), or ValueError."""
    message = f"`input_order` must be one of {sorted(INPUT_ORDERS)} or a permutation of 1..event_size; received {input_order!r}."
    if isinstance(input_order, str):
        if input_order not in INPUT_ORDERS:
            raise ValueError(message)
        return input_order
    if np.ndim(input_order) != 1 or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in input_order):
        raise ValueError(message)
    input_order = [int(d) for d in input_order]
    if event_shape is not None:
        input_degrees(event_shape[0], input_order)  # raises unless a permutation
    return input_order


def _resolve_seed(seed, input_order, hidden_degrees):
    """`seed`; for random masks without one, a seed drawn from NumPy's global generator."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"`seed` must be None or an int >= 0; received {seed!r}.")
    if seed is None and _is_random(input_order, hidden_degrees):
        seed = np.random.randint(0, 2**31 - 1)
    return None if seed is None else int(seed)


def _masked_initializer(initializer, mask):
    def initialize(shape, dtype=None):
        return initializer(shape, dtype=dtype) * tf.cast(mask, dtype)

    return initialize


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class AutoregressiveNetwork(keras.layers.Layer):
    """MADE: parameters of `p(x_i | x_<i)` for every `i`, from one pass over `x`.

    `x: [..., event_size]` -> `[..., event_size, params]`; with a conditional
    input `c: [..., conditional_size]` the leading axes broadcast. Output
    `[..., i, :]` depends on `x[..., j]` only where input `j` comes before
    input `i` in `input_order` (see the module docstring), and on all of `c`.

    Args:
      params: int >= 1, parameters per input (2 for a shift and log-scale).
      event_shape: int or `[int]`, the size of `x`'s last axis; None infers
        it at build time.
      conditional: bool, whether `call` takes `conditional_input`.
      conditional_event_shape: int or `[int]`, the size of the conditional
        input's last axis; required iff `conditional`.
      conditional_input_layers: 'all_layers' (an unmasked dense map of `c` is
        added to every layer's pre-activation) or 'first_layer' (only the first).
      hidden_units: list of ints >= 1, the widths of the hidden layers.
      input_order: 'left-to-right', 'right-to-left', 'random', or the input
        degrees as a permutation of 1..event_size (1-based, as in TFP).
      hidden_degrees: 'equal' (hidden degrees spread evenly) or 'random'.
      activation: of the hidden layers; None is linear (TFP's default).
      use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
      bias_regularizer, kernel_constraint, bias_constraint: as for
        `keras.layers.Dense`, for every dense map; the conditional maps have
        no bias. Kernels start at zero where masked.
      validate_args: accepted for TFP compatibility; adds no checks (TFP's
        layer adds none either).
      seed: int >= 0 fixing 'random' input orders and hidden degrees. None
        draws one from NumPy's global generator (which
        `keras.utils.set_random_seed` seeds) at construction; it is kept in
        `get_config`, so a saved and reloaded network has the same masks.
      **kwargs: of `keras.layers.Layer` (`name`, `dtype`, ...).

    As the `shift_and_log_scale_fn` of `tfb.MaskedAutoregressiveFlow`, a
    network with `params=2` is passed as is: the bijector unstacks a tensor
    output into `shift, log_scale = tf.unstack(made(y), num=2, axis=-1)`.
    Conditional inputs go through `bijector_kwargs`. With `params=1` (shift
    only) pass `lambda y: (made(y)[..., 0], None)`. The bijector (a
    `tf.Module`) does not see Keras 3 variables: train through a Keras
    layer or model that holds the network (`AutoregressiveTransform`, or a
    layer that calls it), or `made.trainable_weights`.

    Example:

        import keras, numpy as np, tensorflow_probability as tfp
        from tfvae.layers.autoregressive import AutoregressiveNetwork
        tfd, tfb = tfp.distributions, tfp.bijectors

        made = AutoregressiveNetwork(params=2, event_shape=2, hidden_units=[16, 16], activation="relu")
        flow = tfd.TransformedDistribution(
            tfd.Sample(tfd.Normal(0.0, 1.0), [2]), tfb.MaskedAutoregressiveFlow(made))
        assert flow.log_prob(np.zeros([5, 2], np.float32)).shape == (5,)
        assert flow.sample(3, seed=(1, 2)).shape == (3, 2)
    """

    def __init__(
        self,
        params,
        event_shape=None,
        conditional=False,
        conditional_event_shape=None,
        conditional_input_layers="all_layers",
        hidden_units=None,
        input_order="left-to-right",
        hidden_degrees="equal",
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        validate_args=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._params = check_positive_int("params", params)
        self._event_shape = None if event_shape is None else list(_as_rank1_shape(event_shape, "event_shape"))
        self._event_shape_argument = None if event_shape is None else list(self._event_shape)
        if not isinstance(conditional, bool):
            raise TypeError(f"`conditional` must be a bool; received {conditional!r}.")
        self.conditional = conditional
        if conditional and self._event_shape is None:
            raise ValueError("`event_shape` must be given when `conditional=True`; received None.")
        if conditional and conditional_event_shape is None:
            raise ValueError("`conditional_event_shape` must be given when `conditional=True`; received None.")
        if not conditional and conditional_event_shape is not None:
            raise ValueError(
                f"`conditional_event_shape` is only for `conditional=True`; received "
                f"{conditional_event_shape!r} with conditional=False."
            )
        self.conditional_event_shape = (
            None if conditional_event_shape is None else list(_as_rank1_shape(conditional_event_shape, "conditional_event_shape"))
        )
        if conditional_input_layers not in CONDITIONAL_INPUT_LAYERS:
            raise ValueError(
                f"`conditional_input_layers` must be one of {list(CONDITIONAL_INPUT_LAYERS)}; "
                f"received {conditional_input_layers!r}."
            )
        self.conditional_input_layers = conditional_input_layers
        self.hidden_units = _check_hidden_units(hidden_units)
        self.input_order = _check_input_order(input_order, self._event_shape)
        if hidden_degrees not in HIDDEN_DEGREES:
            raise ValueError(f"`hidden_degrees` must be one of {sorted(HIDDEN_DEGREES)}; received {hidden_degrees!r}.")
        self.hidden_degrees = hidden_degrees
        self.seed = _resolve_seed(seed, self.input_order, hidden_degrees)
        self.activation = get_keras_object("activation", "activation", activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = get_keras_object("initializer", "kernel_initializer", kernel_initializer)
        self.bias_initializer = get_keras_object("initializer", "bias_initializer", bias_initializer)
        self.kernel_regularizer = get_keras_object("regularizer", "kernel_regularizer", kernel_regularizer)
        self.bias_regularizer = get_keras_object("regularizer", "bias_regularizer", bias_regularizer)
        self.kernel_constraint = get_keras_object("constraint", "kernel_constraint", kernel_constraint)
        self.bias_constraint = get_keras_object("constraint", "bias_constraint", bias_constraint)
        self.validate_args = bool(validate_args)
        self._masks = None
        self._degrees = None

    @property
    def params(self):
        """Parameters per input: the last axis of the output."""
        return self._params

    @property
    def event_shape(self):
        """`[event_size]`, or None until built when not given."""
        return self._event_shape

    @property
    def masks(self):
        """The masks, NumPy bool arrays `[fan_in, fan_out]`, one per dense layer (after build)."""
        return self._masks

    @property
    def degrees(self):
        """The input degrees, a permutation of 1..event_size (after build)."""
        return self._degrees

    def build(self, input_shape):
        event_size = input_shape[-1]
        if event_size is None:
            raise ValueError(f"{type(self).__name__} needs a known last axis of `x`; received shape {tuple(input_shape)}.")
        if self._event_shape is None:
            self._event_shape = [int(event_size)]
        elif event_size != self._event_shape[0]:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} has event_shape={self._event_shape}; received an "
                f"input of shape {tuple(input_shape)}, whose last axis should be {self._event_shape[0]}."
            )
        event_size = self._event_shape[0]
        # Both draw the input order first from the same seed, so they agree.
        self._degrees = input_degrees(event_size, self.input_order, seed=self.seed)
        self._masks = tuple(
            make_dense_autoregressive_masks(
                self._params, event_size, self.hidden_units, self.input_order, self.hidden_degrees, seed=self.seed
            )
        )
        fan_ins = [event_size, *self.hidden_units]
        fan_outs = [*self.hidden_units, event_size * self._params]
        self._kernels, self._biases, self._conditional_kernels = [], [], []
        for k, (fan_in, fan_out, mask) in enumerate(zip(fan_ins, fan_outs, self._masks)):
            self._kernels.append(
                self.add_weight(
                    shape=(fan_in, fan_out),
                    initializer=_masked_initializer(self.kernel_initializer, mask),
                    regularizer=self.kernel_regularizer,
                    constraint=self.kernel_constraint,
                    name=f"kernel_{k}",
                )
            )
            if self.use_bias:
                self._biases.append(
                    self.add_weight(
                        shape=(fan_out,),
                        initializer=self.bias_initializer,
                        regularizer=self.bias_regularizer,
                        constraint=self.bias_constraint,
                        name=f"bias_{k}",
                    )
                )
            if self._conditions_layer(k):
                self._conditional_kernels.append(
                    self.add_weight(
                        shape=(self.conditional_event_shape[0], fan_out),
                        initializer=self.kernel_initializer,
                        regularizer=self.kernel_regularizer,
                        constraint=self.kernel_constraint,
                        name=f"conditional_kernel_{k}",
                    )
                )

    def _conditions_layer(self, k):
        return self.conditional and (self.conditional_input_layers == "all_layers" or k == 0)

    def _check_last_axis(self, shape, size, argument):
        if shape.rank is not None and (shape.rank == 0 or shape[-1] not in (None, size)):
            raise ValueError(
                f"{type(self).__name__} {self.name!r} expects `{argument}` of shape [..., {size}]; "
                f"received {tuple(shape)}."
            )

    def call(self, x, conditional_input=None):
        """`x: [..., event_size]`, `conditional_input: [..., conditional_size]` -> `[..., event_size, params]`."""
        event_size = self._event_shape[0]
        self._check_last_axis(x.shape, event_size, "x")
        if self.conditional:
            if conditional_input is None:
                raise ValueError(
                    f"{type(self).__name__} {self.name!r} is conditional: pass "
                    "`conditional_input=` (through `bijector_kwargs={'conditional_input': c}` in a flow)."
                )
            conditional_input = tf.cast(conditional_input, self.compute_dtype)
            self._check_last_axis(conditional_input.shape, self.conditional_event_shape[0], "conditional_input")
        elif conditional_input is not None:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} has conditional=False; received a `conditional_input`."
            )
        hidden = tf.cast(x, self.compute_dtype)
        conditional_kernels = iter(self._conditional_kernels)
        for k, mask in enumerate(self._masks):
            kernel = keras.ops.convert_to_tensor(self._kernels[k])
            hidden = keras.ops.matmul(hidden, kernel * tf.constant(mask, kernel.dtype))
            if self.use_bias:
                hidden = hidden + self._biases[k]
            if self._conditions_layer(k):
                hidden = hidden + keras.ops.matmul(conditional_input, next(conditional_kernels))
            if k + 1 < len(self._masks):
                hidden = self.activation(hidden)
        output_shape = tf.concat([tf.shape(hidden)[:-1], [event_size, self._params]], axis=0)
        return tf.reshape(hidden, output_shape)

    def compute_output_spec(self, x, conditional_input=None):
        event_size = self._event_shape[0] if self._event_shape else x.shape[-1]
        batch_shape = tuple(x.shape[:-1])
        if conditional_input is not None:
            batch_shape = _broadcast_static(batch_shape, tuple(conditional_input.shape[:-1]))
        return keras.KerasTensor((*batch_shape, event_size, self._params), dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "params": self._params,
            "event_shape": self._event_shape_argument,
            "conditional": self.conditional,
            "conditional_event_shape": self.conditional_event_shape,
            "conditional_input_layers": self.conditional_input_layers,
            "hidden_units": self.hidden_units,
            "input_order": self.input_order,
            "hidden_degrees": self.hidden_degrees,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "validate_args": self.validate_args,
            "seed": self.seed,
        }


def _broadcast_static(a, b):
    """The broadcast of two static shapes (None where unknown)."""
    rank = max(len(a), len(b))
    a = (1,) * (rank - len(a)) + a
    b = (1,) * (rank - len(b)) + b
    return tuple(y if x == 1 else x if y == 1 else (x if x == y else None) for x, y in zip(a, b))


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class AutoregressiveTransform(DistributionLambda):
    """A masked autoregressive flow layer: distribution p(u) in, p(x) with x = f(u) out.

    Takes the previous layer's distribution (event shape `[event_size]`) and
    returns

        tfd.TransformedDistribution(distribution, tfb.MaskedAutoregressiveFlow(made)),

    whose density is `log p(x) = log p(u) - sum_i log_scale_i(x)` with
    `u = (x - shift(x)) * exp(-log_scale(x))` and
    `shift, log_scale = unstack(made(x), axis=-1)` (module docstring). The
    Keras 3 counterpart of `tfp.layers.AutoregressiveTransform`.

    Args:
      made: an `AutoregressiveNetwork` with `params=2`, not conditional (for
        a conditional flow, use `tfb.MaskedAutoregressiveFlow(made)` with
        `bijector_kwargs={"conditional_input": c}`). Saved inside this
        layer's config; built from the input's shape.
      convert_to_tensor_fn: what the output converts to where Keras needs a
        tensor (`predict`, a layer stacked on it). Default "sample", as in
        tfp.layers: a flow has no closed-form mean. Sampling makes
        `event_size` passes of the MADE.
      **kwargs: of `DistributionLambda` (`validate_args`, `name`, `dtype`,
        ...), not `make_distribution_fn` or `output_shape`.

    Input: a distribution with batch shape `[batch]` and event shape
    `[event_size]` (in a Functional or Sequential model: the output of a
    distribution layer). Output: a distribution with the same shapes; its
    symbolic spec is `[batch, event_size]`. The MADE's output is cast to the
    flow's dtype, so a MADE built under a mixed policy (float16) still gives a
    float32 flow.

    TFP's example in Keras 3, density estimation of a banana-shaped 2-D
    distribution (the model's input is empty and sets only the batch size).

    Example:

        import keras, numpy as np, tensorflow as tf, tensorflow_probability as tfp
        from tfvae.layers.autoregressive import AutoregressiveNetwork, AutoregressiveTransform
        from tfvae.layers.distribution import DistributionLambda
        from tfvae.losses import NegativeLogLikelihood
        tfd = tfp.distributions

        x2 = np.random.randn(2000) * 2
        data = np.stack([x2, np.random.randn(2000) + x2**2 / 4], axis=-1).astype("float32")

        @keras.saving.register_keras_serializable()
        def standard_normal(t):  # t: [batch, 0]
            return tfd.MultivariateNormalDiag(loc=tf.zeros(tf.concat([tf.shape(t)[:-1], [2]], 0)))

        model = keras.Sequential([
            keras.Input((0,)),
            DistributionLambda(standard_normal, output_shape=(2,)),
            AutoregressiveTransform(AutoregressiveNetwork(params=2, hidden_units=[16], activation="relu")),
        ])
        model.compile(optimizer="adam", loss=NegativeLogLikelihood())
        model.fit(np.zeros((2000, 0), "float32"), data, batch_size=25, epochs=1, verbose=0)
        samples = model(np.zeros((1, 0), "float32")).sample(4, seed=(1, 2))
        assert samples.shape == (4, 1, 2)
    """

    def __init__(self, made, convert_to_tensor_fn="sample", **kwargs):
        for argument in ("make_distribution_fn", "output_shape"):
            if argument in kwargs:
                raise TypeError(f"{type(self).__name__} takes no `{argument}`; received {kwargs[argument]!r}.")
        if isinstance(made, dict):  # from get_config
            made = keras.saving.deserialize_keras_object(made)
        if not isinstance(made, AutoregressiveNetwork):
            raise TypeError(f"`made` must be an AutoregressiveNetwork; received {made!r} of type {type(made).__name__}.")
        if made.params != 2:
            raise ValueError(f"`made` must output 2 parameters (shift, log-scale) per input; received params={made.params}.")
        if made.conditional:
            raise ValueError(
                "`made` must not be conditional in an AutoregressiveTransform; received conditional=True. Use "
                "tfb.MaskedAutoregressiveFlow(made) with bijector_kwargs={'conditional_input': c} instead."
            )
        super().__init__(self._transform, convert_to_tensor_fn=convert_to_tensor_fn, **kwargs)
        self.made = made
        self._allow_non_tensor_positional_args = True  # the input is a distribution
        self.built = False  # DistributionLambda has no state; this layer builds `made`

    def build(self, input_shape):
        # `input_shape` is the symbolic spec of the distribution before:
        # [batch, event_size]; None when called eagerly on a distribution.
        if input_shape is not None and not self.made.built:
            self.made.build(tuple(input_shape))

    def _transform(self, distribution):
        if not isinstance(distribution, tfd.Distribution):
            raise TypeError(
                f"{type(self).__name__} {self.name!r} transforms a tfd.Distribution (the output of a distribution "
                f"layer); received {type(distribution).__name__}."
            )
        if distribution.event_shape.rank != 1:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} needs a distribution with a rank-1 event shape "
                f"[event_size]; received event_shape={distribution.event_shape}."
            )
        if not self.made.built:
            self.made.build((None, *distribution.event_shape))
        return tfd.TransformedDistribution(
            distribution=distribution, bijector=tfb.MaskedAutoregressiveFlow(self._shift_and_log_scale)
        )

    def _shift_and_log_scale(self, y):
        # In the flow's dtype: a MADE built under a mixed policy computes in float16.
        return tf.cast(self.made(y), y.dtype)

    def compute_output_spec(self, inputs):
        # The input spec is one sample of the distribution before; the flow keeps its shape.
        return keras.KerasTensor(tuple(inputs.shape), dtype=self.compute_dtype)

    def get_config(self):
        # DistributionLambda's config would hold `make_distribution_fn`, a bound method here.
        return {
            **DistributionLayer.get_config(self),
            "made": keras.saving.serialize_keras_object(self.made),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("made")), **config)
