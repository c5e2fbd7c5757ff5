"""The bound against exact answers: closed-form KL and a linear-Gaussian model.

Linear-Gaussian model: p(z) = N(0, I_d), p(x|z) = N(W z + b, s^2 I_D). Then
    p(x) = N(b, W W^T + s^2 I),
    p(z|x) = N(S W^T (x - b) / s^2, S),  S = (I + W^T W / s^2)^-1.
With orthogonal columns of W, S is diagonal, so an IndependentNormal encoder
can represent the exact posterior, and for any diagonal Gaussian q,
    E_q[ELBO estimate] = log p(x) - KL(q || p(z|x)).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats

import tfvae
from tfvae import bounds, layers, priors

tfd = tfp.distributions

SCALE_FLOOR = 1e-3


def _raw_scale(scale):
    """Inverse of softplus(raw) + SCALE_FLOOR."""
    return np.log(np.expm1(np.asarray(scale, np.float64) - SCALE_FLOOR))


def _diagonal_normal(loc, scale):
    loc = np.atleast_2d(loc).astype(np.float32)
    params = np.concatenate([loc, np.broadcast_to(_raw_scale(scale), loc.shape)], axis=1)
    return layers.IndependentNormal(loc.shape[1])(params.astype(np.float32))


# KL ----------------------------------------------------------------------------


def test_analytic_kl_equals_closed_form():
    loc = np.array([[0.3, -1.2, 2.0], [0.0, 0.0, 0.0]])
    scale = np.array([[0.5, 1.5, 0.1], [1.0, 1.0, 1.0]])
    posterior = _diagonal_normal(loc, scale)
    kl = bounds.kl_divergence(posterior, priors.StandardNormal(3).distribution(), "analytic")
    expected = 0.5 * np.sum(loc**2 + scale**2 - 1 - np.log(scale**2), axis=1)
    np.testing.assert_allclose(kl, expected, rtol=1e-5, atol=1e-6)
    assert expected[1] == 0


def test_monte_carlo_kl_agrees_with_analytic_within_four_standard_errors():
    posterior = _diagonal_normal(np.tile([[0.3, -1.2, 2.0]], (20000, 1)), [0.5, 1.5, 0.4])
    prior = priors.StandardNormal(3).distribution()
    z = posterior.sample(seed=(7, 11))
    estimates = bounds.kl_divergence(posterior, prior, "monte_carlo", latent_sample=z).numpy()
    analytic = bounds.kl_divergence(posterior, prior, "analytic").numpy()[0]
    standard_error = estimates.std() / np.sqrt(len(estimates))
    assert abs(estimates.mean() - analytic) < 4 * standard_error
    assert estimates.shape == (20000,)


def test_kl_method_resolution():
    normal = _diagonal_normal([[0.0, 0.0]], [1.0, 1.0])
    full = layers.MultivariateNormalTriL(2)(np.zeros([1, 5], np.float32))
    prior = priors.StandardNormal(2).distribution()
    assert bounds.resolve_kl_method("auto", normal, prior) == "analytic"
    assert bounds.resolve_kl_method("auto", full, prior) == "monte_carlo"
    assert bounds.resolve_kl_method("monte_carlo", normal, prior) == "monte_carlo"
    with pytest.raises(ValueError, match="no closed-form KL.*MeanConvertibleMultivariateNormalTriL"):
        bounds.resolve_kl_method("analytic", full, prior)
    with pytest.raises(ValueError, match="`kl` must be one of"):
        bounds.resolve_kl_method("exact", normal, prior)
    with pytest.raises(ValueError, match="latent_sample"):
        bounds.kl_divergence(full, prior, "monte_carlo")


# Linear-Gaussian model -------------------------------------------------------------

DATA_DIM, LATENT_DIM, NOISE_SCALE = 4, 2, 0.5


class LinearGaussian:
    """The model above with W = Q diag(2, 0.7) for an orthonormal Q."""

    def __init__(self):
        rng = np.random.default_rng(42)
        q, _ = np.linalg.qr(rng.normal(size=(DATA_DIM, DATA_DIM)))
        self.weight = q[:, :LATENT_DIM] * np.array([2.0, 0.7])  # [D, d]
        self.bias = rng.normal(size=DATA_DIM)
        column_norms_sq = np.sum(self.weight**2, axis=0)
        self.posterior_scale = 1 / np.sqrt(1 + column_norms_sq / NOISE_SCALE**2)  # [d]
        self.data = rng.multivariate_normal(self.bias, self.marginal_covariance, size=8)

    @property
    def marginal_covariance(self):
        return self.weight @ self.weight.T + NOISE_SCALE**2 * np.eye(DATA_DIM)

    def log_marginal(self, x):
        return stats.multivariate_normal(self.bias, self.marginal_covariance).logpdf(x)

    def posterior_loc(self, x):
        return (x - self.bias) @ self.weight * self.posterior_scale**2 / NOISE_SCALE**2

    def vae(self, kl, loc_shift=0.0, scale_factor=1.0):
        """A VAE whose encoder is the exact posterior, optionally shifted and rescaled."""
        projection = self.weight * self.posterior_scale**2 / NOISE_SCALE**2  # [D, d]
        encoder = keras.Sequential([keras.Input((DATA_DIM,)), keras.layers.Dense(2 * LATENT_DIM)])
        encoder.add(layers.IndependentNormal(LATENT_DIM))
        kernel = np.concatenate([projection, np.zeros_like(projection)], axis=1)
        bias = np.concatenate(
            [-self.bias @ projection + loc_shift, _raw_scale(self.posterior_scale * scale_factor)]
        )
        encoder.layers[0].set_weights([kernel, bias])
        decoder = keras.Sequential([keras.Input((LATENT_DIM,)), keras.layers.Dense(DATA_DIM)])
        decoder.add(layers.IndependentGaussian(DATA_DIM, scale=NOISE_SCALE))
        decoder.layers[0].set_weights([self.weight.T, self.bias])
        return tfvae.VAE(encoder, decoder, kl=kl, seed=0)


@pytest.fixture(scope="module")
def linear_gaussian():
    return LinearGaussian()


def test_elbo_equals_log_marginal_for_exact_posterior_with_monte_carlo_kl(linear_gaussian):
    # log p(x|z) + log p(z) - log q(z|x) = log p(x) for every z when q = p(z|x).
    vae = linear_gaussian.vae(kl="monte_carlo")
    x = linear_gaussian.data.astype(np.float32)
    np.testing.assert_allclose(vae.elbo(x), linear_gaussian.log_marginal(x), atol=1e-4)
    np.testing.assert_allclose(vae.encode(x).mean(), linear_gaussian.posterior_loc(x), atol=1e-5)


def test_expected_elbo_equals_log_marginal_for_exact_posterior_with_analytic_kl(linear_gaussian):
    # E_q log p(x|z) = log N(x; W mu + b, s^2 I) - tr(W S W^T) / (2 s^2), in closed form.
    model = linear_gaussian
    vae = model.vae(kl="analytic")
    x = model.data.astype(np.float32)
    posterior = vae.encode(x)
    mean_reconstruction = model.bias + posterior.mean().numpy().astype(np.float64) @ model.weight.T
    expected_log_likelihood = stats.norm(mean_reconstruction, NOISE_SCALE).logpdf(x).sum(axis=1) - np.sum(
        model.weight**2 * model.posterior_scale**2
    ) / (2 * NOISE_SCALE**2)
    kl = bounds.kl_divergence(posterior, vae.prior.distribution(), "analytic").numpy()
    np.testing.assert_allclose(expected_log_likelihood - kl, model.log_marginal(x), atol=1e-4)


@pytest.mark.parametrize("kl", ["analytic", "monte_carlo"])
@pytest.mark.parametrize("loc_shift, scale_factor", [(0.0, 1.0), (0.4, 1.0), (0.0, 0.5), (-0.3, 1.8)])
def test_elbo_estimate_is_log_marginal_minus_kl_to_true_posterior(linear_gaussian, kl, loc_shift, scale_factor):
    """Its mean never exceeds log p(x) and is exactly below it by KL(q || p(z|x))."""
    model = linear_gaussian
    vae = model.vae(kl=kl, loc_shift=loc_shift, scale_factor=scale_factor)
    num_draws = 20000
    x = np.repeat(model.data[:1], num_draws, axis=0).astype(np.float32)
    estimates = vae.elbo(x, seed=tf.constant([5, 9])).numpy().astype(np.float64)
    standard_error = estimates.std() / np.sqrt(num_draws)
    true_posterior = tfd.MultivariateNormalDiag(model.posterior_loc(model.data[:1]), model.posterior_scale)
    q = tfd.MultivariateNormalDiag(
        model.posterior_loc(model.data[:1]) + loc_shift, model.posterior_scale * scale_factor
    )
    gap = tfd.kl_divergence(q, true_posterior).numpy()[0]
    log_marginal = model.log_marginal(model.data[0])
    assert abs(estimates.mean() - (log_marginal - gap)) < 4 * standard_error + 1e-4
    assert estimates.mean() < log_marginal + 4 * standard_error + 1e-4  # float32 round-off


# Importance-weighted bound -------------------------------------------------------


def test_importance_weighted_bound_survives_log_weights_that_underflow_in_float32():
    log_weights = tf.constant([[-1000.0, -50.0], [-1001.0, -50.0]])
    bound = bounds.importance_weighted_bound(log_weights).numpy()
    np.testing.assert_allclose(bound, [-1000 + np.log((1 + np.exp(-1)) / 2), -50.0], rtol=1e-6)
    chunked = bounds.importance_weighted_bound_from_chunks(tf.reduce_logsumexp(log_weights, 0)[None], 2)
    np.testing.assert_allclose(chunked, bound, rtol=1e-6)


@pytest.mark.parametrize("k, chunk_size", [(1, 100), (23, 5), (100, 100)])
def test_iwae_bound_is_log_marginal_for_exact_posterior_however_it_is_chunked(linear_gaussian, k, chunk_size):
    # Every log weight equals log p(x) when q is the exact posterior, so any k
    # and any chunking must give log p(x).
    vae = linear_gaussian.vae(kl="analytic")
    x = linear_gaussian.data.astype(np.float32)
    estimate = vae.log_likelihood(x, k=k, chunk_size=chunk_size, seed=(1, 2))
    np.testing.assert_allclose(estimate, linear_gaussian.log_marginal(x), atol=1e-4)


def test_iwae_bound_with_one_sample_is_the_elbo_in_expectation(linear_gaussian):
    vae = linear_gaussian.vae(kl="analytic", loc_shift=0.4, scale_factor=1.8)
    x = np.repeat(linear_gaussian.data[:1], 20000, axis=0).astype(np.float32)
    bound_1 = vae.log_likelihood(x, k=1, chunk_size=1, seed=(3, 4)).numpy().astype(np.float64)
    elbo = vae.elbo(x, seed=tf.constant([5, 6])).numpy().astype(np.float64)
    standard_error = np.sqrt(bound_1.var() / len(x) + elbo.var() / len(x))
    assert abs(bound_1.mean() - elbo.mean()) < 4 * standard_error


def test_iwae_bound_rises_with_k_towards_log_marginal(linear_gaussian):
    vae = linear_gaussian.vae(kl="analytic", loc_shift=0.4, scale_factor=1.8)
    log_marginal = linear_gaussian.log_marginal(linear_gaussian.data[0])
    x = np.repeat(linear_gaussian.data[:1], 2000, axis=0).astype(np.float32)
    means, errors = [], []
    for k in (1, 10, 100):
        estimates = vae.log_likelihood(x, k=k, chunk_size=100, seed=(k, 0)).numpy().astype(np.float64)
        means.append(estimates.mean())
        errors.append(estimates.std() / np.sqrt(len(estimates)))
    for (lower, lower_error), (higher, higher_error) in zip(zip(means, errors), zip(means[1:], errors[1:])):
        assert higher - lower > 4 * np.hypot(lower_error, higher_error)
    assert means[-1] < log_marginal + 4 * errors[-1]
    assert log_marginal - means[0] > 0.3  # the gap KL(q || p(z|x)) that L_k closes


def test_iwae_bound_with_5000_samples_is_within_005_nats_of_log_marginal(linear_gaussian):
    vae = linear_gaussian.vae(kl="analytic", loc_shift=0.4, scale_factor=1.8)
    x = linear_gaussian.data.astype(np.float32)
    gap = linear_gaussian.log_marginal(x) - vae.elbo(np.repeat(x, 1, 0), k=1000, seed=tf.constant([7, 8])).numpy()
    assert np.all(gap > 0.3)  # the ELBO alone is far off
    estimate = vae.log_likelihood(x, k=5000, chunk_size=1000, seed=(9, 9)).numpy()
    np.testing.assert_allclose(estimate, linear_gaussian.log_marginal(x), atol=0.05)


def test_warmed_up_beta_rises_linearly_to_beta_and_stays():
    steps = tf.range(6)
    np.testing.assert_allclose(bounds.warmed_up_beta(2.0, steps, 4), [0.5, 1.0, 1.5, 2.0, 2.0, 2.0])


@pytest.mark.parametrize("call, argument", [
    (lambda: bounds.bits_per_dim(100.0, 0), "num_dimensions"),  # ZeroDivisionError
    (lambda: bounds.warmed_up_beta(1.0, 3, 0), "warmup_steps"),  # ZeroDivisionError
    (lambda: bounds.importance_weighted_bound_from_chunks(tf.zeros([1, 2]), 0), "k"),  # "math domain error"
])
def test_counts_of_zero_are_refused_by_name(call, argument):
    with pytest.raises(ValueError, match=f"`{argument}` must be an int >= 1; received 0"):
        call()


def test_kl_per_dimension_sums_to_tfps_kl_and_matches_the_closed_form():
    posterior = tfd.Independent(tfd.Normal(loc=[[0.5, -1.0], [0.0, 2.0]], scale=[[0.7, 1.3], [1.0, 0.2]]), 1)
    prior = tfd.Independent(tfd.Normal(loc=[0.1, 0.0], scale=[1.0, 2.0]), 1)
    by_dimension = bounds.kl_per_dimension(posterior, prior).numpy()
    assert by_dimension.shape == (2, 2)
    np.testing.assert_allclose(by_dimension.sum(-1), tfd.kl_divergence(posterior, prior), rtol=1e-6)
    m, t, u, s = 0.5, 0.7, 0.1, 1.0  # example 0, dimension 0, by hand
    assert by_dimension[0, 0] == pytest.approx(np.log(s / t) + (t**2 + (m - u) ** 2) / (2 * s**2) - 0.5, rel=1e-6)
    mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=[0.0, 0.0]), tfd.Independent(tfd.Normal([[0.0], [1.0]], 1.0), 1))
    with pytest.raises(ValueError, match=r"`prior` must be a diagonal Gaussian.*received MixtureSameFamily"):
        bounds.kl_per_dimension(posterior, mixture)


def test_free_bits_charge_lambda_for_quiet_dimensions_and_pass_no_gradient_there():
    kl = tf.Variable([[0.1, 2.0, 0.5], [0.3, 4.0, 0.9]])  # batch means 0.2, 3.0, 0.7
    with tf.GradientTape() as tape:
        per_example = bounds.free_bits_kl(kl, 0.5)
    np.testing.assert_allclose(per_example, [0.5 + 2.0 + 0.5, 0.5 + 4.0 + 0.9])
    assert float(tf.reduce_mean(per_example)) == pytest.approx(max(0.5, 0.2) + max(0.5, 3.0) + max(0.5, 0.7))
    np.testing.assert_array_equal(tape.gradient(per_example, kl), [[0, 1, 1], [0, 1, 1]])
    np.testing.assert_allclose(bounds.free_bits_kl(kl, 0.0), tf.reduce_sum(kl, -1))  # lambda = 0: the plain KL
