r"""An inverse autoregressive flow (IAF) on a diagonal Gaussian: a posterior q(z|x) beyond diagonal.

Kingma et al. (2016, "Improved variational inference with inverse
autoregressive flow", eq. 10) make the encoder's Gaussian more flexible by T
invertible steps, each an affine map whose shift and scale for coordinate i
depend only on the coordinates before it (a MADE, `AutoregressiveNetwork`)
and on a context vector h that the encoder computes from x:

    z_0 = mu + sigma * eps,  eps ~ N(0, I)
    z_t = z_{t-1} * exp(a_t) + b_t,   (b_t, a_t) = MADE_t(z_{t-1}, h),   t = 1..T

Each step's Jacobian is triangular with diagonal exp(a_t), so

    log q(z_T | x) = log N(z_0; mu, diag sigma^2) - sum_t sum_i a_{t,i}.

Drawing z and its density cost one pass of each MADE (the "inverse" in the
name: a MAF's cheap direction is the density, an IAF's is sampling). The
density at a z that was not drawn here needs each step inverted, which takes
`event_size` passes (`AffineAutoregressiveStep._inverse`). A VAE evaluates
log q only at its own draws, and TFP's bijectors cache the draw's way back,
so training pays one pass per step. (Under a multi-replica strategy the VAE
keeps each replica's block of the draws, a new tensor: there the density
takes the `event_size` passes.) Successive steps alternate the MADE's order,
left-to-right then right-to-left, and each MADE's last layer starts at zero,
so the posterior starts as the diagonal Gaussian N(mu, sigma^2) and learns
from there. This is the affine form of the paper's eq. 10; its eq. 11-14
gate variant keeps scales below one for LSTM-style stability, which the
zero start makes unnecessary here.

There is no closed form for E[z] or its spread: `mean()`, `stddev()` and
`variance()` are Monte Carlo estimates over `num_moment_samples` draws with a
fixed seed, so they are deterministic (what an encoder's export and the
figures need), within about stddev / sqrt(num_moment_samples) of the truth.
TFP has no KL against this distribution: a VAE uses the Monte Carlo KL.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.autoregressive import AutoregressiveNetwork
from tfvae.layers.conversion import TensorCoercible
from tfvae.layers.variational_base import check_seed
from tfvae.layers.checks import check_event_size, check_positive_int, check_scale_floor
from tfvae.layers.distribution import SERIALIZATION_PACKAGE, DistributionLayer, scale_bijector

tfd = tfp.distributions
tfb = tfp.bijectors

_MOMENT_SEED = (20161, 4934)  # any fixed pair: the moments must not change between calls


class AffineAutoregressiveStep(tfb.Bijector):
    """One IAF step, `y = x * exp(a(x)) + b(x)` with `(b, a) = made(x, context)`.

    `x: [..., event_size]`; `context: [batch, context_size]` broadcasts
    against `x`'s leading axes (draws `[k, batch, event_size]` included).
    `forward` and its log-determinant sum(a) cost one pass of `made`;
    `inverse` solves for x one coordinate per pass (`event_size` passes), as
    TFP's `MaskedAutoregressiveFlow` samples.
    """

    def __init__(self, made, context, event_size, name="affine_autoregressive_step"):
        parameters = dict(locals())
        self._made = made
        self._context = context
        self._event_size = event_size
        super().__init__(forward_min_event_ndims=1, validate_args=False, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}  # the network and the context are not batch parameters of the bijector

    def _shift_and_log_scale(self, x):
        params = self._made(x, conditional_input=self._context)  # [..., event_size, 2]
        return params[..., 0], params[..., 1]

    def _forward(self, x):
        shift, log_scale = self._shift_and_log_scale(x)
        return x * tf.exp(log_scale) + shift

    def _forward_log_det_jacobian(self, x):
        return tf.reduce_sum(self._shift_and_log_scale(x)[1], axis=-1)

    def _inverse(self, y):
        # After pass i the coordinates up to the i-th in the MADE's order are
        # exact: each depends only on those before it.
        def solve_next(_, x):
            shift, log_scale = self._shift_and_log_scale(x)
            return (y - shift) * tf.exp(-log_scale)

        x = tf.zeros_like(y)
        _, x = tf.while_loop(lambda i, _: i < self._event_size, lambda i, x: (i + 1, solve_next(i, x)),
                             (tf.constant(0), x), maximum_iterations=self._event_size)
        return x


class InverseAutoregressiveFlowDistribution(TensorCoercible, tfd.TransformedDistribution):
    """A `tfd.TransformedDistribution` whose moments are fixed-seed Monte Carlo estimates.

    Converts to its (estimated) mean where a tensor is needed. The moments
    are over `num_moment_samples` draws with one fixed seed: the same
    numbers on every call.
    """

    convert_to_tensor_fn = staticmethod(tfd.Distribution.mean)

    def __init__(self, distribution, bijector, num_moment_samples=256, validate_args=False, parameters=None,
                 name=None):
        parameters = dict(locals()) if parameters is None else parameters
        self.num_moment_samples = num_moment_samples
        super().__init__(distribution=distribution, bijector=bijector, validate_args=validate_args,
                         parameters=parameters, name=name or "InverseAutoregressiveFlow")

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return tfd.TransformedDistribution._parameter_properties(dtype, num_classes=num_classes)

    def _moment_draws(self):
        return self.sample(self.num_moment_samples, seed=_MOMENT_SEED)

    def _mean(self):
        return tf.reduce_mean(self._moment_draws(), axis=0)

    def _variance(self):
        return tf.math.reduce_variance(self._moment_draws(), axis=0)

    def _stddev(self):
        return tf.sqrt(self._variance())


def inverse_autoregressive_flow(params, networks, event_size, context_size, scale_floor=1e-3, num_moment_samples=256):
    """q(z) for `params: [batch, 2 * event_size + context_size]`, its steps given by `networks` (MADEs).

    `params` is `[mu, raw scale, context h]` per example; sigma =
    softplus(raw) + `scale_floor`. Returns an
    `InverseAutoregressiveFlowDistribution` with batch shape `[batch]` and
    event shape `[event_size]`.
    """
    loc, raw_scale, context = tf.split(params, [event_size, event_size, context_size], axis=-1)
    scale = scale_bijector(scale_floor, params.dtype).forward(raw_scale)
    base = tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1)
    # tfb.Chain applies its list last to first: the first network acts on z_0.
    steps = [AffineAutoregressiveStep(network, context, event_size, name=f"iaf_step_{index}")
             for index, network in reversed(list(enumerate(networks)))]
    return InverseAutoregressiveFlowDistribution(base, tfb.Chain(steps), num_moment_samples=num_moment_samples)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class InverseAutoregressiveFlowNormal(DistributionLayer):
    """A diagonal Gaussian moved by `num_flows` IAF steps: a posterior q(z|x) that is not diagonal.

    Input `[batch, params_size(event_size, context_size)]`: the Gaussian's
    mean and raw scales, then a context vector h that every step's MADE
    sees (the module docstring has the math). Output a distribution with
    batch shape `[batch]` and event shape `[event_size]`, exactly the
    diagonal Gaussian when the layer is new (each MADE's last layer starts
    at zero).

    Args:
      event_size: int >= 1, the size of z.
      num_flows: int >= 1, the number of IAF steps T.
      hidden_units: the hidden layer sizes of each step's MADE.
      context_size: int >= 1, the size of h.
      activation: of the MADEs' hidden layers.
      scale_floor: float > 0 added to every scale of the Gaussian.
      num_moment_samples: int >= 1, the draws behind `mean()` and `stddev()`.
      seed: None or an int fixing the MADEs' initial weights (the last
        layers start at zero whatever it is).
      convert_to_tensor_fn, validate_args, **kwargs: as for every
        distribution layer (`DistributionLayer`).

    Example (an encoder with an IAF posterior over 8 latents):

        from tfvae.layers import InverseAutoregressiveFlowNormal
        x = keras.Input((784,))
        hidden = keras.layers.Dense(256, activation="relu")(x)
        params = keras.layers.Dense(InverseAutoregressiveFlowNormal.params_size(8))(hidden)
        encoder = keras.Model(x, InverseAutoregressiveFlowNormal(8)(params))
        posterior = encoder(np.random.uniform(size=(3, 784)).astype("float32"))
        z = posterior.sample(seed=(1, 2))
        assert z.shape == (3, 8) and posterior.log_prob(z).shape == (3,)
    """

    def __init__(self, event_size, num_flows=2, hidden_units=(64, 64), context_size=16, activation="elu",
                 scale_floor=1e-3, num_moment_samples=256, seed=None, convert_to_tensor_fn="mean", validate_args=False,
                 **kwargs):
        super().__init__(convert_to_tensor_fn, validate_args, **kwargs)
        self.event_size = check_event_size(event_size)
        self.num_flows = check_positive_int("num_flows", num_flows)
        if not isinstance(hidden_units, (list, tuple)) or not hidden_units:
            raise TypeError(f"`hidden_units` must be a non-empty list of ints >= 1; received {hidden_units!r}.")
        self.hidden_units = tuple(check_positive_int("hidden_units", units) for units in hidden_units)
        self.context_size = check_positive_int("context_size", context_size)
        self.activation = activation
        self.scale_floor = check_scale_floor(scale_floor)
        self.num_moment_samples = check_positive_int("num_moment_samples", num_moment_samples)
        self.seed = check_seed(seed)
        self.networks = [
            AutoregressiveNetwork(params=2, event_shape=[self.event_size], conditional=True,
                                  conditional_event_shape=[self.context_size], hidden_units=list(self.hidden_units),
                                  activation=activation,
                                  kernel_initializer=keras.initializers.GlorotUniform(None if seed is None else seed + index),
                                  input_order="left-to-right" if index % 2 == 0 else "right-to-left",
                                  dtype=self.dtype_policy, name=f"made_{index}")
            for index in range(self.num_flows)
        ]

    @property
    def event_shape(self):
        return (self.event_size,)

    @staticmethod
    def params_size(event_size, context_size=16):
        """Parameters per example: a mean and a raw scale per coordinate, then the context."""
        return 2 * check_event_size(event_size) + check_positive_int("context_size", context_size)

    @property
    def num_params(self):
        return self.params_size(self.event_size, self.context_size)

    def build(self, input_shape):
        super().build(input_shape)
        last = len(self.hidden_units)
        for network in self.networks:
            network.build((None, self.event_size))
            for weight in network.weights:
                if weight.name in (f"kernel_{last}", f"bias_{last}", f"conditional_kernel_{last}"):
                    weight.assign(tf.zeros(weight.shape, weight.dtype))  # each step starts as the identity

    def make_distribution(self, params):
        return inverse_autoregressive_flow(params, self.networks, self.event_size, self.context_size, self.scale_floor,
                                           self.num_moment_samples)

    def get_config(self):
        return {**super().get_config(), "event_size": self.event_size, "num_flows": self.num_flows,
                "hidden_units": list(self.hidden_units), "context_size": self.context_size,
                "activation": self.activation, "scale_floor": self.scale_floor,
                "num_moment_samples": self.num_moment_samples, "seed": self.seed}
