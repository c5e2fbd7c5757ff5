"""What the variational dense and convolution layers share: TFP's callables under Keras 3, divergences, seeds.

`VariationalLayer` holds TFP's eight callables (see
`tfvae.layers.variational_fns`) and runs them the Keras 3 way: each posterior
and prior callable is called once in `build`, where `add_variable_fn`
creates the variables, and again in each call, where `add_variable_fn` hands
back the same variables in the same order (the "create or access existing"
contract of TFP's `tf.get_variable`-like argument). So the distributions read
the variables inside the traced call, and `layer.kernel_posterior` etc. are
built afresh on each access.

A call draws one seed from the layer's `keras.random.SeedGenerator(seed)`
and splits it for the kernel, the bias and Flipout's signs: a seeded layer
repeats and compiles under XLA. The weights and the math are in the variable
dtype (float32 under a mixed policy); the output is cast to the compute dtype.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import seeds
from tfvae.layers.checks import check_num_elements, check_real_dtype, get_keras_object
from tfvae.layers.variational_fns import (
    accepts_seed,
    check_callable,
    default_mean_field_normal_fn,
    default_multivariate_normal_fn,
    deserialize_callable,
    kl_divergence_fn,
    sample_tensor_fn,
    serialize_callable,
)

tfd = tfp.distributions

FUNCTION_ARGUMENTS = (
    "kernel_posterior_fn", "kernel_posterior_tensor_fn", "kernel_prior_fn", "kernel_divergence_fn",
    "bias_posterior_fn", "bias_posterior_tensor_fn", "bias_prior_fn", "bias_divergence_fn",
)
_ROLES = ("kernel_posterior", "kernel_prior", "bias_posterior", "bias_prior")


class _CreatedVariables:
    """The variables each posterior/prior callable created in `build`, in order.

    A plain object, so that Keras does not track the variables twice (the layer already does).
    """

    def __init__(self):
        self.by_role = {}


def check_seed(seed):
    """Returns `seed`, or raises ValueError unless it is None or an int that fits in int64 (Keras' seeds are int64)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not -2**63 <= seed < 2**63):
        raise ValueError(f"`seed` must be None or an int in [-2**63, 2**63); received {seed!r}.")
    return seed


class VariationalLayer(keras.layers.Layer):
    """Base of the dense and convolutional variational layers: the callables, the divergences, the seeds.

    Subclasses define `kernel_shape(input_shape)`, `bias_shape()`,
    `apply_kernel(inputs, kernel_posterior, kernel_seeds) -> (outputs, kernel_tensor)`
    (`kernel_seeds` a pair of stateless seeds, for the draw and for Flipout's
    signs; `kernel_tensor` None when no weight is drawn, as in TFP) and
    `add_bias(outputs, bias)`; `check_kernel_posterior` where the estimator
    needs a particular posterior.
    """

    def __init__(
        self,
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
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.activation = get_keras_object("activation", "activation", activation)
        functions = dict(zip(FUNCTION_ARGUMENTS, (
            kernel_posterior_fn, kernel_posterior_tensor_fn, kernel_prior_fn, kernel_divergence_fn,
            bias_posterior_fn, bias_posterior_tensor_fn, bias_prior_fn, bias_divergence_fn)))
        for argument, fn in functions.items():
            optional = argument not in ("kernel_posterior_fn", "kernel_posterior_tensor_fn")
            setattr(self, argument, check_callable(deserialize_callable(fn), argument, optional))
        if self.bias_posterior_fn is not None and self.bias_posterior_tensor_fn is None:
            raise TypeError(
                "`bias_posterior_tensor_fn` must be a callable when `bias_posterior_fn` is given; received None.")
        self.seed = check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._created = _CreatedVariables()

    def kernel_shape(self, input_shape):
        raise NotImplementedError

    def bias_shape(self):
        raise NotImplementedError

    def apply_kernel(self, inputs, kernel_posterior, kernel_seeds):
        raise NotImplementedError

    def add_bias(self, outputs, bias):
        raise NotImplementedError

    @property
    def weight_dtype(self):
        """The tf.DType of the weights and of the layer's math (float32 under a mixed policy)."""
        return tf.as_dtype(self.variable_dtype)

    def build(self, input_shape):
        self._shapes = {"kernel": list(self.kernel_shape(input_shape)), "bias": list(self.bias_shape())}
        size_argument = "filters" if hasattr(self, "filters") else "units"
        check_num_elements(size_argument, self._shapes["kernel"], getattr(self, size_argument, None))
        for role in _ROLES:
            self._weight_distribution(role, create=True)
        self.check_kernel_posterior(self._weight_distribution("kernel_posterior"))

    def check_kernel_posterior(self, kernel_posterior):
        """Raises TypeError if this layer's estimator cannot use `kernel_posterior` (every distribution here)."""

    def _weight_distribution(self, role, create=False):
        """The distribution `role` (e.g. 'kernel_posterior') of the built layer, or None without its callable."""
        fn = getattr(self, role + "_fn")
        if fn is None:
            return None
        if create:
            created = self._created.by_role[role] = []
        else:
            created = list(self._created.by_role[role])

        def add_variable_fn(name=None, shape=None, initializer=None, regularizer=None, constraint=None,
                            dtype=None, trainable=True, **kwargs):
            if create:
                kwargs.setdefault("autocast", False)  # float32 weights stay float32 under a mixed policy
                variable = self.add_weight(
                    name=name, shape=shape, initializer=initializer, regularizer=regularizer,
                    constraint=constraint, dtype=dtype, trainable=trainable, **kwargs)
                created.append(variable)
                return variable
            if not created:
                raise ValueError(
                    f"`{role}_fn` asked for more variables than it created in build (at {name!r}).")
            variable = created.pop(0)
            if shape is not None and tuple(variable.shape) != tuple(shape):
                raise ValueError(
                    f"`{role}_fn` must ask for the same variables on every call: it created {variable.path} "
                    f"of shape {tuple(variable.shape)}, then asked for {name!r} of shape {tuple(shape)}.")
            return variable

        weight = role.split("_")[0]
        return fn(self.weight_dtype, self._shapes[weight], role, self.trainable, add_variable_fn)

    def _built_distribution(self, role):
        if not self.built:
            raise ValueError(f"Layer {self.name!r} has no `{role}` before it is built (called on an input).")
        return self._weight_distribution(role)

    @property
    def kernel_posterior(self):
        """q(W), built afresh from the layer's variables."""
        return self._built_distribution("kernel_posterior")

    @property
    def kernel_prior(self):
        """p(W), or None without a `kernel_prior_fn`."""
        return self._built_distribution("kernel_prior")

    @property
    def bias_posterior(self):
        """q(b), or None: no bias."""
        return self._built_distribution("bias_posterior")

    @property
    def bias_prior(self):
        """p(b), or None without a `bias_prior_fn`."""
        return self._built_distribution("bias_prior")

    def posterior_tensor(self, fn, distribution, seed):
        """`fn(distribution)`, passing `seed` when `fn` takes one."""
        return fn(distribution, seed=seed) if accepts_seed(fn) else fn(distribution)

    def call(self, inputs):
        inputs = tf.cast(check_real_dtype(inputs, "inputs"), self.weight_dtype)
        seed = seeds.stateless(None, self.seed_generator)
        kernel_seed, bias_seed, sign_seed = tfp.random.split_seed(seed, n=3)
        distributions = {role: self._weight_distribution(role) for role in _ROLES}
        outputs, kernel_tensor = self.apply_kernel(inputs, distributions["kernel_posterior"], (kernel_seed, sign_seed))
        bias_tensor = None
        if distributions["bias_posterior"] is not None:
            bias_tensor = self.posterior_tensor(
                self.bias_posterior_tensor_fn, distributions["bias_posterior"], bias_seed)
            outputs = self.add_bias(outputs, bias_tensor)
        if self.activation is not None:
            outputs = self.activation(outputs)
        for weight, tensor in (("kernel", kernel_tensor), ("bias", bias_tensor)):
            divergence_fn = getattr(self, weight + "_divergence_fn")
            posterior, prior = distributions[weight + "_posterior"], distributions[weight + "_prior"]
            if divergence_fn is not None and posterior is not None and prior is not None:
                self.add_loss(tf.identity(divergence_fn(posterior, prior, tensor), name=f"divergence_{weight}"))
        return tf.cast(outputs, self.compute_dtype)

    def get_config(self):
        config = {
            **super().get_config(),
            "activation": keras.activations.serialize(self.activation),
            "seed": self.seed,
        }
        for argument in FUNCTION_ARGUMENTS:
            config[argument] = serialize_callable(getattr(self, argument), argument)
        return config


def check_normal_posterior(layer, kernel_posterior):
    """Raises TypeError unless `kernel_posterior` is `tfd.Independent(tfd.Normal)`, as Flipout and local
    reparameterization need (they use its loc and scale)."""
    if not isinstance(kernel_posterior, tfd.Independent) or not isinstance(kernel_posterior.distribution, tfd.Normal):
        raise TypeError(
            f"`{type(layer).__name__}` requires `kernel_posterior_fn` to produce a "
            f"`tfd.Independent(tfd.Normal)`; received {kernel_posterior!r}.")
