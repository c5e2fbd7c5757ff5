r"""`LatentChain`: two stochastic layers as one distribution over z = [z1, z2].

A hierarchical VAE (the HVAE of Tomczak & Welling, 2018, section 3.2) has two
latent layers, z2 on top of z1, in the generative model and in the posterior:

    p(z1, z2)     = p(z2) p(z1 | z2)
    q(z1, z2 | x) = q(z2 | x) q(z1 | x, z2)

Both are chains: a top distribution over z2 and a conditional distribution over
z1 given z2 (and, in the posterior, features of x: the `context`). `LatentChain`
is such a chain as one distribution over the concatenated vector
z = [z1, z2] (z1 first, `event_shape [d1 + d2]`), so that `tfvae.VAE`, which
draws z ~ q and evaluates log q(z|x) and log p(z), trains it unchanged:

    log q(z | x) = log q(z2 | x) + log q(z1 | x, z2)                  (`log_prob`)

and the Monte Carlo KL, log q(z|x) - log p(z), is the sum of the layers' terms
log q(z_l | ...) - log p(z_l | ...) (`log_prob_parts`,
`tfvae.bounds.kl_per_layer`). TFP has no closed-form KL between two chains, so
`kl="auto"` resolves to the Monte Carlo KL, and the importance-weighted bound
works as for any posterior.

Draws are reparameterised when both layers' are: z2 ~ top, then
z1 ~ conditional(z2) at that z2, so gradients flow through both.

Moments. `mean()` and `covariance()` (with `variance()`, `stddev()`) are the
first-order (delta-method) moments: with m2, S2 the top's mean and covariance,
mu1(z2) and S1(z2) the conditional's, and J = d mu1 / d z2 at m2,

    E[z]   ~ [mu1(m2), m2]
    Cov[z] ~ [[J S2 J^T + S1(m2), J S2],
              [S2 J^T,            S2  ]]

These are exact when the conditional's mean is affine in z2 and its covariance
does not depend on z2 (a linear-Gaussian chain); otherwise an approximation,
the one a served `encode` signature reports (`tfvae.export`).

Shapes: the chain's batch shape is the top's (`[batch]` for a posterior, `[]`
for a prior). A `context` has shape `[*batch_shape, c]`. `sample(sample_shape)`
returns `[*sample_shape, *batch_shape, d1 + d2]`; the conditional is always
called on flat tensors `z2: [N, d2]`, `context: [N, c]` (every sample and
example in one call, as a decoder is) and must return a distribution with batch
shape `[N]` and event shape `[d1]`.
"""

import numbers

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import _backend  # noqa: F401  (selects the TensorFlow backend)

tfd = tfp.distributions

# The names of the two layers' terms in `log_prob_parts`, in the order of z = [z1, z2].
LAYER_NAMES = ("z1", "z2")


def _covariance_of(distribution):
    """`distribution.covariance()`, `[..., d, d]`; diag(variance) for a `tfd.Independent`, which TFP leaves out."""
    if isinstance(distribution, tfd.Independent) and distribution.event_shape.rank == 1:
        return tf.linalg.diag(distribution.variance())
    return distribution.covariance()


def _draw(distribution, sample_shape, seed):
    """The default sampler: the distribution's own `sample`."""
    return distribution.sample(sample_shape, seed=seed)


class LatentChain(tfd.Distribution):
    """p(z1, z2) = top(z2) conditional(z1 | z2, context) as a distribution over z = [z1, z2].

    Args:
      top: a `tfd.Distribution` over z2: batch shape `B` (`[batch]` or `[]`),
        event shape `[d2]`.
      conditional: callable `(z2, context) -> tfd.Distribution`, from
        `z2: [N, d2]` and `context: [N, c]` (None without a context) to the
        distribution of z1 with batch shape `[N]`, event shape `[d1]`.
      conditional_size: int d1, the size of z1.
      context: None, or `[*B, c]`: per-example features the conditional reads
        besides z2 (e.g. of x in q(z1 | x, z2)); broadcast against samples.
      sampler: callable `(distribution, sample_shape, seed) -> draws`, used for
        both layers; default each distribution's own `sample`. tfvae's
        hierarchical encoder passes `tfvae.models.reparameterized_sample`
        (Philox noise, fast under XLA).
      validate_args, allow_nan_stats, name: as for every TFP distribution.

    `reparameterization_type` is the top's: the conditional's draws are taken
    to be reparameterised too (Gaussian layers are).
    """

    def __init__(self, top, conditional, conditional_size, context=None, sampler=None, validate_args=False,
                 allow_nan_stats=True, name="LatentChain"):
        parameters = dict(locals())
        if not isinstance(top, tfd.Distribution):
            raise TypeError(f"`top` must be a tfd.Distribution over z2; received {top!r} of type {type(top).__name__}.")
        if top.event_shape.rank != 1 or top.event_shape[0] is None:
            raise ValueError(f"`top` must have a vector event of known size [d2]; received event shape {top.event_shape}.")
        if not callable(conditional):
            raise TypeError(f"`conditional` must be a callable (z2, context) -> distribution of z1; received {conditional!r}.")
        if (isinstance(conditional_size, bool) or not isinstance(conditional_size, numbers.Integral)
                or conditional_size < 1):
            raise ValueError(f"`conditional_size` must be an int >= 1 (the size d1 of z1); received {conditional_size!r}.")
        if sampler is not None and not callable(sampler):
            raise TypeError(f"`sampler` must be None or a callable (distribution, sample_shape, seed); received {sampler!r}.")
        with tf.name_scope(name) as name:
            self._top = top
            self._conditional = conditional
            self._conditional_size = int(conditional_size)
            self._top_size = int(top.event_shape[0])
            self._context = None if context is None else tf.convert_to_tensor(context, dtype_hint=top.dtype)
            self._sampler = sampler or _draw
            super().__init__(dtype=top.dtype, reparameterization_type=top.reparameterization_type,
                             validate_args=validate_args, allow_nan_stats=allow_nan_stats, parameters=parameters,
                             name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {}  # no tensor parameters of its own; shapes come from `top`

    @property
    def top(self):
        """The distribution of z2 (the top layer): q(z2|x) or p(z2)."""
        return self._top

    @property
    def conditional(self):
        """The callable `(z2, context) -> distribution of z1`."""
        return self._conditional

    @property
    def conditional_size(self):
        """d1, the size of z1."""
        return self._conditional_size

    @property
    def top_size(self):
        """d2, the size of z2."""
        return self._top_size

    @property
    def context(self):
        """The per-example features `[*batch_shape, c]` the conditional reads, or None."""
        return self._context

    def split(self, z):
        """`(z1, z2)` of `z: [..., d1 + d2]`: `[..., d1]` and `[..., d2]`."""
        return z[..., :self._conditional_size], z[..., self._conditional_size:]

    def conditional_at(self, z2):
        """The conditional at `z2: [..., d2]` with its leading shape: `(distribution over [N], leading_shape)`.

        The leading shape is `z2`'s broadcast against the chain's batch shape;
        `N` is its number of elements. Values of z1 must be flattened the same
        way (`reshape(z1, [-1, d1])`) before its `log_prob`.
        """
        leading = tf.broadcast_dynamic_shape(tf.shape(z2)[:-1], self.batch_shape_tensor())
        flat_z2 = tf.reshape(tf.broadcast_to(z2, tf.concat([leading, [self._top_size]], 0)), [-1, self._top_size])
        flat_context = None
        if self._context is not None:
            context_size = tf.shape(self._context)[-1:]
            flat_context = tf.reshape(tf.broadcast_to(self._context, tf.concat([leading, context_size], 0)),
                                      tf.concat([[-1], context_size], 0))
        return self._conditional(flat_z2, flat_context), leading

    def _batch_shape(self):
        return self._top.batch_shape

    def _batch_shape_tensor(self):
        return self._top.batch_shape_tensor()

    def _event_shape(self):
        return tf.TensorShape([self._conditional_size + self._top_size])

    def _event_shape_tensor(self):
        return tf.constant([self._conditional_size + self._top_size], tf.int32)

    def _sample_n(self, n, seed=None):
        top_seed, conditional_seed = tfp.random.split_seed(seed, n=2, salt="LatentChain")
        z2 = self._sampler(self._top, [n], top_seed)  # [n, *B, d2]
        conditional, leading = self.conditional_at(z2)
        z1 = self._sampler(conditional, [], conditional_seed)  # [n * prod(B), d1]
        z1 = tf.reshape(z1, tf.concat([leading, [self._conditional_size]], 0))
        return tf.concat([z1, z2], axis=-1)

    def log_prob_parts(self, value):
        """The log-density of each layer at `value: [..., d1 + d2]`: `{"z1": log c(z1|z2), "z2": log top(z2)}`.

        Each `[...]` (the value's leading shape broadcast against the batch
        shape); their sum is `log_prob(value)`.
        """
        value = tf.convert_to_tensor(value, dtype_hint=self.dtype)
        z1, z2 = self.split(value)
        conditional, leading = self.conditional_at(z2)
        flat_z1 = tf.reshape(tf.broadcast_to(z1, tf.concat([leading, [self._conditional_size]], 0)),
                             [-1, self._conditional_size])
        conditional_log_prob = tf.reshape(conditional.log_prob(flat_z1), leading)
        top_log_prob = tf.broadcast_to(self._top.log_prob(z2), leading)
        return dict(zip(LAYER_NAMES, (conditional_log_prob, top_log_prob)))

    def _log_prob(self, value):
        parts = self.log_prob_parts(value)
        return parts["z1"] + parts["z2"]

    def _mean(self):
        top_mean = self._top.mean()  # [*B, d2]
        conditional, leading = self.conditional_at(top_mean)
        conditional_mean = tf.reshape(conditional.mean(), tf.concat([leading, [self._conditional_size]], 0))
        return tf.concat([conditional_mean, top_mean], axis=-1)

    def _covariance(self):
        # The delta method of the module docstring; J by automatic differentiation at m2.
        top_mean = self._top.mean()
        top_covariance = _covariance_of(self._top)  # [*B, d2, d2]
        flat_mean = tf.reshape(top_mean, [-1, self._top_size])
        with tf.GradientTape() as tape:
            tape.watch(flat_mean)
            conditional, leading = self.conditional_at(tf.reshape(flat_mean, tf.shape(top_mean)))
            conditional_mean = conditional.mean()  # [N, d1]
        jacobian = tape.batch_jacobian(conditional_mean, flat_mean)  # [N, d1, d2]
        flat_top_covariance = tf.reshape(top_covariance, [-1, self._top_size, self._top_size])
        cross = tf.matmul(jacobian, flat_top_covariance)  # J S2: [N, d1, d2]
        z1_covariance = tf.matmul(cross, jacobian, transpose_b=True) + _covariance_of(conditional)
        covariance = tf.concat([tf.concat([z1_covariance, cross], axis=-1),
                                tf.concat([tf.linalg.matrix_transpose(cross), flat_top_covariance], axis=-1)], axis=-2)
        size = self._conditional_size + self._top_size
        return tf.reshape(covariance, tf.concat([leading, [size, size]], 0))

    def _variance(self):
        return tf.linalg.diag_part(self._covariance())

    def _stddev(self):
        return tf.sqrt(self._variance())
