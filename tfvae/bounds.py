r"""The evidence lower bound and its parts, as pure functions of distributions.

For data x, encoder q(z|x), decoder p(x|z) and prior p(z),

    log p(x) = log E_q[p(x|z) p(z) / q(z|x)]
            >= E_q[log p(x|z)] - KL(q(z|x) || p(z))            (Jensen)
             = ELBO(x),

with equality exactly when q(z|x) is the true posterior p(z|x), since
log p(x) - ELBO(x) = KL(q(z|x) || p(z|x)). Training maximises
E_q[log p(x|z)] - beta * KL (beta = 1 is the ELBO; Higgins et al., 2017).

The expectation is estimated with reparameterised samples z ~ q(z|x)
(Kingma & Welling, 2014), one by default. The KL term is computed in closed form by
`tfd.kl_divergence` when TFP has one for the pair of distributions
("analytic"), otherwise by the single-sample Monte Carlo estimate
log q(z|x) - log p(z) at the same z ("monte_carlo"). With the Monte Carlo KL
the whole estimate is log p(x|z) + log p(z) - log q(z|x), which equals
log p(x) for every z when q is the exact posterior.

The importance-weighted bound of Burda et al. (2015) uses k samples
z_1..z_k ~ q(z|x) and log weights log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x):

    L_k(x) = log (1/k) sum_i w_i = logsumexp_i(log w_i) - log k,

with L_1 = the ELBO estimate with the Monte Carlo KL, E[L_k] <= E[L_{k+1}] <= log p(x),
and L_k -> log p(x) as k grows. `logsumexp` keeps it finite in float32 where
the weights themselves (e^-100 for MNIST) underflow.

The training loss per example is reconstruction + beta * KL for the
(beta-)ELBO and -L_k for IWAE (`per_example_loss`). Its average over a batch
(`average_loss`) is Keras' "sum over batch size": sum_i w_i loss_i / N, with
sample weights w_i (1 by default) and N the *global* batch size, so that the
gradients that `tf.distribute` sums over replicas are those of one device.

Reported likelihoods convert to bits per dimension as
nll / (D ln 2) for D-dimensional data (`bits_per_dim`).

Shapes: x is `[batch, *event_shape]`, distributions have batch shape
`[batch]`, and every returned term is `[batch]`, in nats.
"""

import math
from typing import NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.checks import check_positive_int

tfd = tfp.distributions

KL_METHODS = ("auto", "analytic", "monte_carlo")
OBJECTIVES = ("elbo", "iwae")


class ElboTerms(NamedTuple):
    """Per-example parts of the bound, each `[batch]`, in nats."""

    elbo: object  # E_q log p(x|z) - KL
    reconstruction: object  # -E_q log p(x|z)
    kl: object  # KL(q(z|x) || p(z))
    kl_by_layer: object = None  # {layer name: [batch]} for several stochastic layers (`kl_per_layer`), else None


def analytic_kl_available(posterior, prior):
    """True when TFP has a closed-form KL for `(type(posterior), type(prior))`."""
    try:
        tfd.kl_divergence(posterior, prior)
    except NotImplementedError:
        return False
    return True


def resolve_kl_method(method, posterior, prior):
    """Returns "analytic" or "monte_carlo" for the requested `method`.

    Raises:
      ValueError: `method` is not one of `KL_METHODS`, or it is "analytic" and
        TFP has no closed form for this pair of distributions.
    """
    if method not in KL_METHODS:
        raise ValueError(f"`kl` must be one of {KL_METHODS}; received {method!r}.")
    if method == "monte_carlo":
        return method
    available = analytic_kl_available(posterior, prior)
    if method == "analytic" and not available:
        raise ValueError(
            "`kl='analytic'` was requested, but TensorFlow Probability has no closed-form "
            f"KL between the posterior {type(posterior).__name__} and the prior "
            f"{type(prior).__name__}. Use kl='auto' or kl='monte_carlo'."
        )
    return "analytic" if available else "monte_carlo"


def kl_divergence(posterior, prior, method, latent_sample=None):
    """KL(posterior || prior) per example, `[batch]`.

    Args:
      posterior: q(z|x), batch shape `[batch]`, event shape `[latent_dim]`.
      prior: p(z), batch shape `[]` or `[batch]`, same event shape.
      method: "analytic" or "monte_carlo" (see `resolve_kl_method`).
      latent_sample: `[..., batch, latent_dim]` draws from the posterior,
        required for "monte_carlo", which then returns `[..., batch]`.
    """
    if method == "analytic":
        return tfd.kl_divergence(posterior, prior)
    if method == "monte_carlo":
        if latent_sample is None:
            raise ValueError("The Monte Carlo KL needs `latent_sample`, a draw from the posterior.")
        return posterior.log_prob(latent_sample) - prior.log_prob(latent_sample)
    raise ValueError(f"`method` must be 'analytic' or 'monte_carlo'; received {method!r}.")


def elbo_terms(log_likelihood, posterior, prior, latent_samples, kl_method, by_layer=False):
    """The ELBO estimate from k samples and its parts, each `[batch]`.

    Args:
      log_likelihood: `[k, batch]`, log p(x|z_s) for each sample z_s.
      posterior: q(z|x) with batch shape `[batch]`.
      prior: p(z).
      latent_samples: `[k, batch, latent_dim]`, the z_s.
      kl_method: "analytic" or "monte_carlo".
      by_layer: also the KL of each stochastic layer (`kl_per_layer`), for a
        posterior and prior with layers; the Monte Carlo KL is then their sum,
        so each log-density is computed once.

    The reconstruction term, and the Monte Carlo KL, average over the samples.
    """
    reconstruction = -tf.reduce_mean(log_likelihood, axis=0)
    kl_by_layer = kl_per_layer(posterior, prior, latent_samples) if by_layer else None
    if kl_by_layer is not None and kl_method == "monte_carlo":
        kl = tf.add_n(list(kl_by_layer.values()))
    else:
        kl = kl_divergence(posterior, prior, kl_method, latent_samples)
        if kl_method == "monte_carlo":
            kl = tf.reduce_mean(kl, axis=0)
    return ElboTerms(elbo=-(reconstruction + kl), reconstruction=reconstruction, kl=kl, kl_by_layer=kl_by_layer)


def log_importance_weights(log_likelihood, posterior, prior, latent_samples):
    """log w = log p(x|z) + log p(z) - log q(z|x) per sample, `[k, batch]`.

    Args:
      log_likelihood: `[k, batch]`, log p(x|z_s).
      posterior: q(z|x), batch shape `[batch]`.
      prior: p(z).
      latent_samples: `[k, batch, latent_dim]` draws z_s from q(z|x).
    """
    return log_likelihood + prior.log_prob(latent_samples) - posterior.log_prob(latent_samples)


def importance_weighted_bound(log_weights):
    """L_k = logsumexp(log w) - log k over axis 0 of `log_weights: [k, batch]`; `[batch]`."""
    k = tf.cast(tf.shape(log_weights)[0], log_weights.dtype)
    return chunk_logsumexp(log_weights) - tf.math.log(k)


def chunk_logsumexp(log_weights):
    """logsumexp over one chunk of samples, `log_weights: [chunk, batch]` -> `[batch]`."""
    return tf.reduce_logsumexp(log_weights, axis=0)


def importance_weighted_bound_from_chunks(chunk_logsumexps, k):
    """L_k from per-chunk totals: `chunk_logsumexps: [num_chunks, batch]` -> `[batch]`.

    Each row is `chunk_logsumexp` of one chunk of samples; together the chunks
    hold k samples. Computing L_k this way keeps memory at one chunk, whatever
    k is: logsumexp over all k = logsumexp over the chunks' logsumexps.
    """
    return tf.reduce_logsumexp(chunk_logsumexps, axis=0) - math.log(check_positive_int("k", k))


def per_example_loss(objective, terms, log_weights=None, beta=1.0):
    """The training loss per example, `[batch]`, in nats.

    Args:
      objective: "elbo": reconstruction + beta * KL (the negative beta-ELBO);
        "iwae": -L_k, from `log_weights: [k, batch]`.
      terms: `ElboTerms` of the same samples.
      log_weights: required for "iwae".
      beta: the KL weight of "elbo".
    """
    if objective == "elbo":
        return terms.reconstruction + beta * terms.kl
    if objective == "iwae":
        if log_weights is None:
            raise ValueError("The IWAE loss needs `log_weights`, the log importance weights of the samples.")
        return -importance_weighted_bound(log_weights)
    raise ValueError(f"`objective` must be one of {OBJECTIVES}; received {objective!r}.")


def warmed_up_beta(beta, step, warmup_steps):
    """The KL weight of training step `step` (0-based) under a linear warm-up.

        beta_t = beta * min(1, (t + 1) / warmup_steps)

    rising from beta / warmup_steps at the first step to `beta` from step
    `warmup_steps - 1` on: the deterministic warm-up of Sonderby et al.
    (2016) and Tomczak & Welling (2018), per step rather than per epoch.
    `step` may be a tensor (the optimizer's iteration count); returns a
    float32 scalar tensor.
    """
    progress = (tf.cast(step, tf.float32) + 1.0) / float(check_positive_int("warmup_steps", warmup_steps))
    return beta * tf.minimum(1.0, progress)


def average_loss(per_example, sample_weight=None):
    """sum_i w_i loss_i / N: this replica's share of the global batch's mean, a scalar.

    N is this replica's batch size times the number of replicas in sync (the
    global batch under `tf.distribute`), as `tf.nn.compute_average_loss`
    computes it, without that function's run-time assertion, which XLA drops
    with a warning on every compilation. `sample_weight: [batch]` (None: all ones).
    """
    if sample_weight is not None:
        per_example = per_example * tf.cast(tf.reshape(sample_weight, tf.shape(per_example)), per_example.dtype)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    global_batch = tf.cast(tf.shape(per_example)[0] * replicas, per_example.dtype)
    return tf.reduce_sum(per_example) / global_batch


def bits_per_dim(nll, num_dimensions):
    """A negative log-likelihood in nats per example as bits per dimension: nll / (D ln 2)."""
    return nll / (check_positive_int("num_dimensions", num_dimensions) * math.log(2))


def kl_per_dimension(posterior, prior):
    """The analytic KL of each latent dimension, `[batch, latent_dim]`, for factorized Gaussians.

        KL_j = log(s_j / t_j) + (t_j^2 + (m_j - u_j)^2) / (2 s_j^2) - 1/2

    for q(z_j|x) = N(m_j, t_j^2) and p(z_j) = N(u_j, s_j^2); their sum over j
    is `tfd.kl_divergence(posterior, prior)`. Both must be
    `tfd.Independent(tfd.Normal)` (a diagonal posterior, the standard or a
    learned diagonal prior): the free-bits objective needs the KL by dimension.
    """
    def normal_of(distribution, argument):
        base = distribution.distribution if isinstance(distribution, tfd.Independent) else None
        if not isinstance(base, tfd.Normal):
            raise ValueError(
                f"Free bits need the KL of each latent dimension: `{argument}` must be a diagonal Gaussian "
                f"(tfd.Independent(tfd.Normal)); received {type(distribution).__name__}."
            )
        return base

    return tfd.kl_divergence(normal_of(posterior, "posterior"), normal_of(prior, "prior"))


def free_bits_kl(kl_by_dimension, free_bits):
    """Kingma et al. (2016)'s free-bits KL per example, `[batch]`, from `kl_by_dimension: [batch, latent_dim]`.

    The objective's KL term is sum_j max(lambda, E_batch[KL_j]): a dimension
    whose batch-mean KL is below lambda = `free_bits` (nats) costs lambda and
    gets no gradient, so the optimizer may use it without paying for it until
    it carries more than lambda nats. Spread over the examples as

        KL'_i = sum_j (KL_ij if E_batch[KL_j] >= lambda else lambda)

    whose batch mean is that term and whose gradients are its gradients.
    """
    batch_mean = tf.reduce_mean(kl_by_dimension, axis=0)  # [latent_dim]
    floor = tf.cast(free_bits, kl_by_dimension.dtype)
    clamped = tf.where(batch_mean[tf.newaxis] >= floor, kl_by_dimension, floor * tf.ones_like(kl_by_dimension))
    return tf.reduce_sum(clamped, axis=-1)


def kl_per_layer(posterior, prior, latent_samples):
    """The Monte Carlo KL of each stochastic layer, `{name: [batch]}`, averaged over the k samples.

        KL_l = 1/k sum_s [log q(z_l^s | its parents) - log p(z_l^s | its parents)]

    For a two-layer chain (`tfvae.layers.latent_chain.LatentChain`), "z2" is
    log q(z2|x) - log p(z2), and "z1" is log q(z1|x, z2) - log p(z1|z2), whose
    mean is E_q(z2|x) KL(q(z1|x, z2) || p(z1|z2)). The layers' terms sum to
    the Monte Carlo KL of `elbo_terms` at the same samples, since each
    log-density is the sum of its layers' (`log_prob_parts`).

    Args:
      posterior: q(z|x) with `log_prob_parts`, batch shape `[batch]`.
      prior: p(z) with `log_prob_parts` of the same layer names.
      latent_samples: `[k, batch, latent_dim]` draws from the posterior.
    """
    for argument, distribution in (("posterior", posterior), ("prior", prior)):
        if not callable(getattr(distribution, "log_prob_parts", None)):
            raise ValueError(f"The KL per layer needs a `{argument}` with layers (`log_prob_parts`), e.g. a LatentChain; "
                             f"received {type(distribution).__name__}.")
    posterior_parts = posterior.log_prob_parts(latent_samples)
    prior_parts = prior.log_prob_parts(latent_samples)
    if set(posterior_parts) != set(prior_parts):
        raise ValueError(f"The posterior's layers {sorted(posterior_parts)} and the prior's {sorted(prior_parts)} "
                         "must be the same for a KL per layer.")
    return {name: tf.reduce_mean(posterior_parts[name] - prior_parts[name], axis=0) for name in posterior_parts}
