r"""The evidence lower bound and its parts, as pure functions of distributions.

For data x, encoder q(z|x), decoder p(x|z) and prior p(z),

    log p(x) = log E_q[p(x|z) p(z) / q(z|x)]
            >= E_q[log p(x|z)] - KL(q(z|x) || p(z))            (Jensen)
             = ELBO(x),

with equality exactly when q(z|x) is the true posterior p(z|x), since
log p(x) - ELBO(x) = KL(q(z|x) || p(z|x)). Training maximises
E_q[log p(x|z)] - beta * KL (beta = 1 is the ELBO; Higgins et al., 2017).

The expectation is estimated with one reparameterised sample z ~ q(z|x)
(Kingma & Welling, 2014). The KL term is computed in closed form by
`tfd.kl_divergence` when TFP has one for the pair of distributions
("analytic"), otherwise by the single-sample Monte Carlo estimate
log q(z|x) - log p(z) at the same z ("monte_carlo"). With the Monte Carlo KL
the whole estimate is log p(x|z) + log p(z) - log q(z|x), which equals
log p(x) for every z when q is the exact posterior.

Shapes: x is `[batch, *event_shape]`, distributions have batch shape
`[batch]`, and every returned term is `[batch]`, in nats.
"""

from typing import NamedTuple

import tensorflow_probability as tfp

tfd = tfp.distributions

KL_METHODS = ("auto", "analytic", "monte_carlo")


class ElboTerms(NamedTuple):
    """Per-example parts of the bound, each `[batch]`, in nats."""

    elbo: object  # E_q log p(x|z) - KL
    reconstruction: object  # -E_q log p(x|z)
    kl: object  # KL(q(z|x) || p(z))


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
      latent_sample: `[batch, latent_dim]` draw from the posterior; required
        for "monte_carlo".
    """
    if method == "analytic":
        return tfd.kl_divergence(posterior, prior)
    if method == "monte_carlo":
        if latent_sample is None:
            raise ValueError("The Monte Carlo KL needs `latent_sample`, a draw from the posterior.")
        return posterior.log_prob(latent_sample) - prior.log_prob(latent_sample)
    raise ValueError(f"`method` must be 'analytic' or 'monte_carlo'; received {method!r}.")


def elbo_terms(x, posterior, likelihood, prior, latent_sample, kl_method):
    """The single-sample ELBO estimate and its parts, each `[batch]`.

    Args:
      x: `[batch, *event_shape]` data.
      posterior: q(z|x) with batch shape `[batch]`.
      likelihood: p(x|z) at `z = latent_sample`, batch shape `[batch]`.
      prior: p(z).
      latent_sample: `[batch, latent_dim]`, the z that `likelihood` was decoded from.
      kl_method: "analytic" or "monte_carlo".
    """
    reconstruction = -likelihood.log_prob(x)
    kl = kl_divergence(posterior, prior, kl_method, latent_sample)
    return ElboTerms(elbo=-(reconstruction + kl), reconstruction=reconstruction, kl=kl)
