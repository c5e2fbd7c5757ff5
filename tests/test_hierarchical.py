r"""Two stochastic layers (tfvae.models.hierarchical) against a linear-Gaussian model whose log p(x) is exact.

The model, z = [z1, z2] with z1: [D1], z2: [D2], x: [DX]:

    p(z2) = N(0, I),   p(z1 | z2) = N(A z2 + a, S1),   p(x | z1, z2) = N(B z1 + b, SX),

S1 = diag(s1^2), SX = diag(sx^2). Everything is jointly Gaussian, so

    p(x) = N(B a + b, B (A A^T + S1) B^T + SX).

The exact posterior, as the chain p(z2 | x) p(z1 | x, z2) that a hierarchical
encoder represents:

  * p(z2 | x): integrating z1 out, x | z2 ~ N(B A z2 + B a + b, R) with
    R = B S1 B^T + SX. Gaussian conditioning on the prior N(0, I) gives
        C2 = (I + (B A)^T R^-1 B A)^-1,   m2(x) = C2 (B A)^T R^-1 (x - B a - b).
  * p(z1 | x, z2): x depends on z2 only through z1, so this is the posterior of
    the prior N(A z2 + a, S1) and the likelihood N(x; B z1 + b, SX):
        C1 = (S1^-1 + B^T SX^-1 B)^-1,
        m1(x, z2) = C1 (S1^-1 (A z2 + a) + B^T SX^-1 (x - b)) = M z2 + N x + c1,
    with M = C1 S1^-1 A, N = C1 B^T SX^-1, c1 = C1 (S1^-1 a - B^T SX^-1 b):
    affine in z2 and x, with a covariance that depends on neither.

Both layers are full-covariance Gaussians with affine means: the encoder below
is a Dense layer into `MultivariateNormalTriL` for each, whose weights are set
to these values. With it, log p(x|z) + log p(z) - log q(z|x) = log p(x) for
every z, so the VAE's ELBO estimate equals log p(x) for every sample.
"""

import copy
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
from tests.helpers import assert_config_round_trip
from tfvae import bounds, layers, priors, training
from tfvae.layers.distribution import scale_bijector
from tfvae.layers.latent_chain import LatentChain
from tfvae.models import hierarchical

tfd = tfp.distributions

D1, D2, DX = 2, 2, 3
FLOOR = 1e-3  # the layers' default scale floor
IMAGE_SHAPE = (4, 4, 1)


# The linear-Gaussian model ------------------------------------------------------


class LinearGaussian:
    """The model of the module docstring, in float64, with its exact marginal and posterior."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.A, self.a = rng.normal(size=(D1, D2)), rng.normal(size=D1)
        self.B, self.b = rng.normal(size=(DX, D1)), rng.normal(size=DX)
        self.s1, self.sx = rng.uniform(0.5, 1.5, size=D1), rng.uniform(0.5, 1.0, size=DX)
        S1, SX = np.diag(self.s1**2), np.diag(self.sx**2)
        BA = self.B @ self.A
        R = self.B @ S1 @ self.B.T + SX
        self.C2 = np.linalg.inv(np.eye(D2) + BA.T @ np.linalg.solve(R, BA))
        self.W2 = self.C2 @ BA.T @ np.linalg.inv(R)  # m2(x) = W2 x + c2
        self.c2 = -self.W2 @ (self.B @ self.a + self.b)
        self.C1 = np.linalg.inv(np.linalg.inv(S1) + self.B.T @ np.linalg.solve(SX, self.B))
        self.M = self.C1 @ np.linalg.solve(S1, self.A)
        self.N = self.C1 @ self.B.T @ np.linalg.inv(SX)
        self.c1 = self.C1 @ (np.linalg.solve(S1, self.a) - self.B.T @ np.linalg.solve(SX, self.b))

    def joint_covariance(self):
        """Cov[z1, z2, x] and E[z1, z2, x] of the whole model."""
        S1, SX = np.diag(self.s1**2), np.diag(self.sx**2)
        z1z1, z1z2 = self.A @ self.A.T + S1, self.A
        z = np.block([[z1z1, z1z2], [z1z2.T, np.eye(D2)]])
        zx = z[:, :D1] @ self.B.T
        covariance = np.block([[z, zx], [zx.T, self.B @ z1z1 @ self.B.T + SX]])
        mean = np.concatenate([self.a, np.zeros(D2), self.B @ self.a + self.b])
        return mean, covariance

    def log_marginal(self, x):
        """log p(x), `x: [batch, DX]` -> `[batch]`."""
        mean, covariance = self.joint_covariance()
        return _gaussian(mean[D1 + D2:], covariance[D1 + D2:, D1 + D2:]).log_prob(x).numpy()

    def prior_joint(self):
        mean, covariance = self.joint_covariance()
        return _gaussian(mean[:D1 + D2], covariance[:D1 + D2, :D1 + D2])

    def posterior_joint(self, x):
        """p(z1, z2 | x) from the chain's parameters: z2 ~ N(m2, C2), z1 = M z2 + N x + c1 + N(0, C1)."""
        m2 = x @ self.W2.T + self.c2
        m1 = m2 @ self.M.T + x @ self.N.T + self.c1
        z1z2 = self.M @ self.C2
        covariance = np.block([[z1z2 @ self.M.T + self.C1, z1z2], [z1z2.T, self.C2]])
        return _gaussian(np.concatenate([m1, m2], axis=-1), covariance)

    def draw_x(self, num, seed):
        mean, covariance = self.joint_covariance()
        return np.random.default_rng(seed).multivariate_normal(mean[D1 + D2:], covariance[D1 + D2:, D1 + D2:], num)


def _gaussian(mean, covariance):
    """N(mean, covariance) (MultivariateNormalFullCovariance, which TFP deprecates in favour of this)."""
    return tfd.MultivariateNormalTriL(mean, tf.linalg.cholesky(covariance))


def _raw(scale):
    """softplus^-1(scale - FLOOR): the raw value the layers turn into `scale`."""
    return scale_bijector(FLOOR, "float64").inverse(np.asarray(scale, np.float64)).numpy()


def _tril_params(covariance):
    """The raw Cholesky parameters of `MultivariateNormalTriL` for `covariance`."""
    tril = np.linalg.cholesky(covariance)
    tril[np.diag_indices_from(tril)] = _raw(np.diag(tril))
    return tfp.math.fill_triangular_inverse(tril).numpy()


def _set_dense(layer, kernel, bias):
    layer.set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])


def _linear_gaussian_vae(model, exact=True, seed=0):
    """tfvae.VAE of `model` with its exact posterior (or, with exact=False, a perturbed one)."""
    W2, C2, M, C1 = model.W2, model.C2, model.M, model.C1
    if not exact:
        W2, C2, M, C1 = 0.6 * W2, 2.0 * C2, 0.7 * M, 1.5 * C1
    x = keras.Input((DX,), name="x")
    top_params = keras.layers.Dense(layers.MultivariateNormalTriL.params_size(D2))
    top = layers.MultivariateNormalTriL(D2)(top_params(x))
    z2, context = keras.Input((D2,), name="z2"), keras.Input((DX,), name="context")
    conditional_params = keras.layers.Dense(layers.MultivariateNormalTriL.params_size(D1))
    conditional = keras.Model([z2, context], layers.MultivariateNormalTriL(D1)(
        conditional_params(keras.layers.Concatenate()([z2, context]))))
    encoder = keras.Model(x, hierarchical.LatentChainLayer(conditional)(top, x))
    _set_dense(top_params, np.concatenate([W2.T, np.zeros((DX, D2 * (D2 + 1) // 2))], axis=1),
               np.concatenate([model.c2, _tril_params(C2)]))
    # The conditional reads [z2, x]: its loc kernel is [M^T; N^T].
    loc_kernel = np.concatenate([M.T, model.N.T])
    _set_dense(conditional_params, np.concatenate([loc_kernel, np.zeros((D2 + DX, D1 * (D1 + 1) // 2))], axis=1),
               np.concatenate([model.c1, _tril_params(C1)]))

    z2_prior = keras.Input((D2,))
    prior_params = keras.layers.Dense(2 * D1)
    prior_conditional = keras.Model(z2_prior, layers.IndependentNormal(D1)(prior_params(z2_prior)))
    _set_dense(prior_params, np.concatenate([model.A.T, np.zeros((D2, D1))], axis=1), np.concatenate([model.a, _raw(model.s1)]))
    prior = priors.HierarchicalPrior(D1 + D2, priors.StandardNormal(D2), prior_conditional)

    z = keras.Input((D1 + D2,))
    likelihood_params = keras.layers.Dense(2 * DX)
    decoder = keras.Model(z, layers.IndependentNormal(DX)(likelihood_params(z)))
    loc_kernel = np.concatenate([model.B.T, np.zeros((D2, DX))])  # x depends on z1 only
    _set_dense(likelihood_params, np.concatenate([loc_kernel, np.zeros((D1 + D2, DX))], axis=1),
               np.concatenate([model.b, _raw(model.sx)]))
    return tfvae.VAE(encoder, decoder, prior, seed=seed)


@pytest.fixture(scope="module")
def model():
    return LinearGaussian()


# The chain as a distribution ------------------------------------------------------


def test_the_derivation_gives_the_exact_posterior_of_the_joint_gaussian(model):
    """The chain's parameters (module docstring) against Gaussian conditioning of the whole joint on x."""
    x = model.draw_x(3, seed=1)
    mean, covariance = model.joint_covariance()
    zz, zx, xx = covariance[:D1 + D2, :D1 + D2], covariance[:D1 + D2, D1 + D2:], covariance[D1 + D2:, D1 + D2:]
    expected_mean = mean[:D1 + D2] + (x - mean[D1 + D2:]) @ np.linalg.solve(xx, zx.T)
    posterior = model.posterior_joint(x)
    np.testing.assert_allclose(posterior.mean(), expected_mean, rtol=1e-10, atol=1e-10)
    expected_covariance = np.broadcast_to(zz - zx @ np.linalg.solve(xx, zx.T), (3, D1 + D2, D1 + D2))
    np.testing.assert_allclose(posterior.covariance(), expected_covariance, rtol=1e-10, atol=1e-10)


def test_log_prob_of_linear_gaussian_chains_is_that_of_their_joint_gaussian(model):
    vae = _linear_gaussian_vae(model)
    x = model.draw_x(4, seed=2).astype(np.float32)
    posterior, prior = vae.encode(x), vae.prior.distribution()
    assert isinstance(posterior, LatentChain) and isinstance(prior, LatentChain)
    assert posterior.batch_shape == [4] and prior.batch_shape == [] and posterior.event_shape == [D1 + D2]
    assert posterior.reparameterization_type == tfd.FULLY_REPARAMETERIZED
    z = np.random.default_rng(3).normal(size=(5, 4, D1 + D2)).astype(np.float32)  # [k, batch, d], as the VAE asks
    np.testing.assert_allclose(posterior.log_prob(z), model.posterior_joint(x.astype(np.float64)).log_prob(z), rtol=1e-5)
    np.testing.assert_allclose(prior.log_prob(z), model.prior_joint().log_prob(z), rtol=1e-5)
    for chain in (posterior, prior):
        parts = chain.log_prob_parts(z)
        assert list(parts) == ["z1", "z2"] and parts["z1"].shape == (5, 4)
        np.testing.assert_allclose(parts["z1"] + parts["z2"], chain.log_prob(z), rtol=1e-6)
    np.testing.assert_allclose(prior.log_prob_parts(z)["z2"], tfd.MultivariateNormalDiag(tf.zeros(D2)).log_prob(z[..., D1:]),
                               rtol=1e-6)


def test_moments_and_draws_of_linear_gaussian_chains_are_those_of_their_joint_gaussian(model):
    vae = _linear_gaussian_vae(model)
    x = model.draw_x(2, seed=4).astype(np.float32)
    for chain, exact in ((vae.encode(x), model.posterior_joint(x.astype(np.float64))),
                         (vae.prior.distribution(), model.prior_joint())):
        # The first-order moments are exact for a linear-Gaussian chain.
        np.testing.assert_allclose(chain.mean(), exact.mean(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(chain.covariance(), exact.covariance(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(chain.stddev(), exact.stddev(), rtol=1e-4)
        draws = chain.sample(20_000, seed=(5, 6)).numpy().astype(np.float64)  # [n, *batch, d]
        assert draws.shape == (20_000, *chain.batch_shape, D1 + D2)
        standard_error = exact.stddev().numpy() / np.sqrt(len(draws))
        assert np.all(np.abs(draws.mean(axis=0) - exact.mean()) < 5 * standard_error)
        centred = draws - draws.mean(axis=0)
        sample_covariance = np.einsum("n...i,n...j->...ij", centred, centred) / (len(draws) - 1)
        np.testing.assert_allclose(sample_covariance, exact.covariance(), atol=0.1 * exact.covariance().numpy().max())
    # The VAE's draws: a sample shape of two axes (as under a MirroredStrategy) keeps [k, R, batch, d].
    assert vae.encode(x).sample([3, 2], seed=(1, 2)).shape == (3, 2, 2, D1 + D2)


# The bounds ---------------------------------------------------------------------


def test_elbo_and_l_k_equal_log_p_x_for_every_sample_with_the_exact_posterior(model):
    vae = _linear_gaussian_vae(model)
    assert vae.kl_method == "monte_carlo"  # no closed form between two chains
    x = model.draw_x(6, seed=7).astype(np.float32)
    log_marginal = model.log_marginal(x.astype(np.float64))
    for seed in range(4):
        np.testing.assert_allclose(vae.elbo(x, seed=seed), log_marginal, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(vae.elbo(x, seed=9, k=7), log_marginal, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(vae.log_likelihood(x, k=24, chunk_size=10, seed=1), log_marginal, rtol=1e-5, atol=2e-5)


def test_the_kl_of_each_layer_sums_to_the_kl_and_the_top_one_is_the_closed_form(model):
    vae = _linear_gaussian_vae(model)
    x = model.draw_x(3, seed=8).astype(np.float32)
    posterior, prior = vae.encode(x), vae.prior.distribution()
    z = posterior.sample(4, seed=(2, 3))
    per_layer = bounds.kl_per_layer(posterior, prior, z)
    assert list(per_layer) == ["z1", "z2"] and per_layer["z1"].shape == (3,)
    total = tf.reduce_mean(bounds.kl_divergence(posterior, prior, "monte_carlo", z), axis=0)
    np.testing.assert_allclose(per_layer["z1"] + per_layer["z2"], total, rtol=1e-5, atol=1e-5)
    # elbo_terms by layer takes its KL from the layers' terms: the same KL and ELBO as from the whole densities.
    log_likelihood = tf.zeros([4, 3])
    whole = bounds.elbo_terms(log_likelihood, posterior, prior, z, "monte_carlo")
    layered = bounds.elbo_terms(log_likelihood, posterior, prior, z, "monte_carlo", by_layer=True)
    assert whole.kl_by_layer is None and list(layered.kl_by_layer) == ["z1", "z2"]
    np.testing.assert_allclose(layered.kl, whole.kl, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layered.elbo, whole.elbo, rtol=1e-5, atol=1e-5)
    # Many samples: the top layer's term tends to KL(q(z2|x) || N(0, I)) in closed form.
    many = posterior.sample(20_000, seed=(4, 5))
    top_terms = posterior.top.log_prob(many[..., D1:]) - prior.top.log_prob(many[..., D1:])
    standard_error = tf.math.reduce_std(top_terms, axis=0) / np.sqrt(20_000)
    closed_form = tfd.kl_divergence(posterior.top, tfd.MultivariateNormalDiag(tf.zeros(D2)))
    assert np.all(np.abs(tf.reduce_mean(top_terms, axis=0) - closed_form) < 4 * standard_error)
    with pytest.raises(ValueError, match="needs a `posterior` with layers"):
        bounds.kl_per_layer(posterior.top, prior, z)


def test_with_another_posterior_elbo_below_l_k_below_log_p_x_and_l_k_tends_to_it(model):
    vae = _linear_gaussian_vae(model, exact=False)
    x = model.draw_x(3, seed=10).astype(np.float32)
    log_marginal = model.log_marginal(x.astype(np.float64))
    copies = 200  # E[L_k] estimated by the mean of 200 independent L_k, with its standard error

    def expected_bound(k):
        bounds_k = vae.log_likelihood(np.repeat(x, copies, axis=0), k=k, chunk_size=min(k, 64), seed=k).numpy()
        bounds_k = bounds_k.reshape(3, copies)
        return bounds_k.mean(axis=1), bounds_k.std(axis=1) / np.sqrt(copies)

    elbo_gap = log_marginal - vae.elbo(x, seed=1, k=4000).numpy()  # precise: 4000 samples
    assert np.all(elbo_gap > 0.3)  # the posterior is clearly not the exact one
    l_1, error = expected_bound(1)
    assert np.all(np.abs(l_1 - (log_marginal - elbo_gap)) < 4 * error + 0.01)  # L_1 is the ELBO
    gaps, errors = zip(*[(log_marginal - mean, error) for mean, error in map(expected_bound, (8, 64, 512))])
    assert np.all(gaps[0] < 0.25 * elbo_gap)  # ELBO < L_8
    for looser, tighter, looser_error, tighter_error in zip(gaps, gaps[1:], errors, errors[1:]):
        assert np.all(tighter < looser + 4 * np.hypot(looser_error, tighter_error))
    assert np.all(gaps[-1] > -4 * errors[-1])  # L_512 <= log p(x)
    assert np.all(gaps[-1] < 0.05 * elbo_gap)  # and close to it


# Priors -------------------------------------------------------------------------


def test_a_vampprior_over_z2_with_one_pseudo_input_is_the_encoders_top_layer_at_it():
    encoder, decoder, prior = hierarchical.hvae(IMAGE_SHAPE, latent_dim=5, units=8, prior="vampprior",
                                                num_pseudo_inputs=1, seed=2)
    assert (prior.conditional_size, prior.top.latent_dim) == (3, 2)
    tfvae.VAE(encoder, decoder, prior)  # binds the encoder
    image = (np.random.default_rng(3).random((1, *IMAGE_SHAPE)) < 0.5).astype(np.float32)
    prior.top.initialize_from(image)
    z = np.random.default_rng(4).normal(size=(6, 5)).astype(np.float32)
    chain = prior.distribution()
    top_at_image = encoder(image).top  # q(z2 | u), batch shape [1]
    np.testing.assert_allclose(chain.log_prob_parts(z)["z2"], top_at_image.log_prob(z[:, np.newaxis, 3:])[:, 0], rtol=1e-5)
    np.testing.assert_allclose(chain.log_prob(z), top_at_image.log_prob(z[:, np.newaxis, 3:])[:, 0]
                               + prior.conditional(z[:, 3:]).log_prob(z[:, :3]), rtol=1e-5)
    # The pseudo-inputs are the prior's only weights besides p(z1|z2)'s network: the encoder stays the VAE's.
    assert {w.path for w in prior.weights} == {"vamp_prior/pseudo_inputs"} | {w.path for w in prior.conditional.weights}
    unbound = hierarchical.hvae_prior(5, units=4, top="vampprior", num_pseudo_inputs=1, input_shape=IMAGE_SHAPE)
    unbound.bind_encoder(keras.Sequential([keras.Input(IMAGE_SHAPE), keras.layers.Flatten(), keras.layers.Dense(4),
                                           layers.IndependentNormal(2)]))
    with pytest.raises(TypeError, match="needs an encoder that returns a LatentChain"):
        unbound.distribution()


def test_configs_round_trip():
    encoder, decoder, prior = hierarchical.hvae(IMAGE_SHAPE, latent_dim=5, z2_dim=3, units=4, prior="vampprior",
                                                num_pseudo_inputs=2, seed=1)
    chain_layer = encoder.get_layer("posterior")
    restored = assert_config_round_trip(chain_layer)
    assert restored.conditional_size == 2
    for obj in (prior, hierarchical.hvae_prior(4, units=3)):
        assert_config_round_trip(obj)
    for model in (encoder, decoder):  # Keras' Functional.from_config edits the config it reads: give it a copy
        config = json.dumps(model.get_config(), sort_keys=True)
        assert json.dumps(keras.Model.from_config(copy.deepcopy(model.get_config())).get_config(), sort_keys=True) == config
    vae = tfvae.VAE(encoder, decoder, prior, objective="iwae", k=3)
    assert_config_round_trip(vae)


def test_bad_arguments_are_refused_by_name():
    top = tfd.MultivariateNormalDiag(tf.zeros(2))
    with pytest.raises(TypeError, match="`top` must be a tfd.Distribution"):
        LatentChain(tf.zeros(2), lambda z2, context: top, 2)
    with pytest.raises(ValueError, match=r"`conditional_size` must be an int >= 1.*received 0"):
        LatentChain(top, lambda z2, context: top, 0)
    with pytest.raises(TypeError, match="`conditional` must be a callable"):
        LatentChain(top, "network", 2)
    conditional = hierarchical.hvae_prior(4, units=3).conditional  # z2: [2] -> z1: [2]
    with pytest.raises(TypeError, match="`top` must be a tfvae.priors.Prior"):
        priors.HierarchicalPrior(4, top, conditional)
    with pytest.raises(ValueError, match="received a top with latent_dim=4"):
        priors.HierarchicalPrior(4, priors.StandardNormal(4), conditional)
    with pytest.raises(ValueError, match=r"z1 of size latent_dim - top.latent_dim = 3"):
        priors.HierarchicalPrior(5, priors.StandardNormal(2), conditional)
    with pytest.raises(ValueError, match=r"`z2_dim` must be < latent_dim = 4.*received 4"):
        hierarchical.hvae_encoder(IMAGE_SHAPE, 4, z2_dim=4)
    with pytest.raises(ValueError, match=r"`latent_dim` of a two-layer model must be >= 2"):
        hierarchical.hvae_decoder(1, IMAGE_SHAPE)
    with pytest.raises(ValueError, match=r"Unknown `posterior` 'normal'; known: \['independent_normal'"):
        hierarchical.hvae_encoder(IMAGE_SHAPE, 4, posterior="normal")
    with pytest.raises(TypeError, match="`conditional` must be a Functional Keras model"):
        hierarchical.LatentChainLayer(keras.layers.Dense(2))


# Training, saving, serving, replicas ------------------------------------------------


def _binary_images(num, seed=0):
    """Binary images near two random patterns (5% of pixels flipped): data with something to learn."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((2, *IMAGE_SHAPE)) < 0.5
    flips = rng.random((num, *IMAGE_SHAPE)) < 0.05
    return (patterns[rng.integers(2, size=num)] ^ flips).astype(np.float32)


def test_hvae_trains_under_xla_and_with_the_iwae_bound():
    x = _binary_images(64)
    # One XLA compilation (the slow part of this test); the IWAE step without it.
    for objective, k, jit_compile in (("elbo", 1, "auto"), ("iwae", 3, False)):
        vae = tfvae.VAE(*hierarchical.hvae(IMAGE_SHAPE, latent_dim=4, units=16), objective=objective, k=k, seed=3)
        before = vae.elbo(x, seed=1, k=20).numpy().mean()
        vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
        assert vae.jit_compile is (jit_compile == "auto")  # "auto": XLA, on one device
        history = vae.fit(x, batch_size=16, epochs=6, verbose=0).history
        assert np.all(np.isfinite(history["loss"]))
        assert vae.elbo(x, seed=1, k=20).numpy().mean() > before + 2.0, objective
        # Each layer's KL is logged, and the layers' KLs make up the KL.
        assert vae.kl_layers == ("z1", "z2")
        np.testing.assert_allclose(np.add(history["kl_z1"], history["kl_z2"]), history["kl"], rtol=1e-4, atol=1e-4)
        assert min(history["kl_z2"]) > 0
    with pytest.raises(ValueError, match="diagonal"):
        tfvae.VAE(*hierarchical.hvae(IMAGE_SHAPE, latent_dim=4, units=16), free_bits=0.5)


def test_hvae_with_a_vampprior_reloads_in_a_fresh_process_and_serves_without_tfvae_or_tfp(tmp_path):
    x = _binary_images(32)
    vae = tfvae.VAE(*hierarchical.hvae(IMAGE_SHAPE, latent_dim=4, units=8, prior="vampprior", num_pseudo_inputs=3, seed=1),
                    seed=2)
    vae.compile(optimizer="adam")
    vae.fit(x, batch_size=16, epochs=1, verbose=0)
    vae.save(tmp_path / "vae.keras")
    served_path = vae.export(tmp_path / "serving" / "1", verbose=False)
    z = np.random.default_rng(5).normal(size=(3, 4)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", x=x[:5], z=z)
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("tfvae", "tensorflow_probability"):
            sys.modules[name] = None  # importing them now fails
        import numpy as np, tensorflow as tf
        inputs = np.load({str(tmp_path / "inputs.npz")!r})
        x, z, seed = tf.constant(inputs["x"]), tf.constant(inputs["z"]), tf.constant([3, 4])
        served = tf.saved_model.load({str(served_path)!r})
        out = {{}}
        for batch in (1, 5):
            encoded = served.signatures["encode"](x=x[:batch])
            out[f"encode_mean_{{batch}}"], out[f"encode_stddev_{{batch}}"] = encoded["mean"], encoded["stddev"]
            out[f"served_elbo_{{batch}}"] = served.signatures["elbo"](x=x[:batch], seed=seed)["elbo"]
        out["served_reconstruction"] = served.signatures["reconstruct"](x=x)["reconstruction"]
        out["served_decode"] = served.signatures["decode"](z=z)["mean"]
        out["served_sample"] = served.signatures["sample"](num_images=tf.constant(3), seed=seed)["images"]
        for name in ("tfvae", "tensorflow_probability"):
            del sys.modules[name]
        import keras, tfvae  # now the .keras file, in the same fresh process (`import tfvae` registers every class)
        vae = keras.saving.load_model({str(tmp_path / "vae.keras")!r})
        out["elbo"] = vae.elbo(x, seed=seed)
        out["prior_log_prob"] = vae.prior.distribution().log_prob(z)
        out["posterior_mean"] = vae.encode(x).mean()
        out["reconstruction"] = vae.reconstruct(x)
        np.savez({str(tmp_path / "out.npz")!r}, **{{k: np.asarray(v) for k, v in out.items()}})
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    seed = tf.constant([3, 4])
    posterior = vae.encode(x[:5])
    for batch in (1, 5):
        np.testing.assert_allclose(out[f"encode_mean_{batch}"], posterior.mean()[:batch], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[f"encode_stddev_{batch}"], posterior.stddev()[:batch], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[f"served_elbo_{batch}"], vae.elbo(x[:batch], seed=seed), rtol=1e-5)
    np.testing.assert_allclose(out["served_reconstruction"], vae.reconstruct(x[:5]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["served_decode"], vae.decode(z).mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["served_sample"], vae.sample(3, seed=seed), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["elbo"], vae.elbo(x[:5], seed=seed), rtol=1e-6)
    np.testing.assert_allclose(out["prior_log_prob"], vae.prior.distribution().log_prob(z), rtol=1e-6)
    np.testing.assert_allclose(out["posterior_mean"], posterior.mean(), rtol=1e-6)
    np.testing.assert_allclose(out["reconstruction"], vae.reconstruct(x[:5]), rtol=1e-6)


def test_a_mirrored_step_equals_a_single_device_step():
    strategy = training.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2

    def build(weights=None):
        vae = tfvae.VAE(*hierarchical.hvae(IMAGE_SHAPE, latent_dim=4, units=8, prior="vampprior", num_pseudo_inputs=3,
                                           seed=1), seed=5, k=2)
        if weights is not None:
            vae.set_weights(weights)
        # Without XLA on both sides, as in tests/test_distribute.py: replicas train without it on CPUs.
        vae.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), jit_compile=False)
        return vae

    x = _binary_images(8)
    single = build()
    initial = single.get_weights()
    with strategy.scope():
        mirrored = build(initial)
    logs = {}
    for name, vae in (("single", single), ("mirrored", mirrored)):
        logs[name] = vae.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=1, verbose=0).history
    moved = {id(w) for w, a, b in zip(single.weights, initial, single.get_weights()) if not np.allclose(a, b)}
    assert {id(w) for w in single.prior.weights} & moved and {id(w) for w in single.encoder.weights} & moved
    for single_value, mirrored_value in zip(single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(mirrored_value, single_value, rtol=1e-4, atol=1e-5)
    for name in ("loss", "elbo", "kl"):
        np.testing.assert_allclose(logs["mirrored"][name], logs["single"][name], rtol=1e-5)


def test_the_command_line_trains_evaluates_and_exports_an_hvae_with_a_vampprior_over_z2(tmp_path, tfds_data_dir, capsys):
    from tests.mock_data import data_dir_args
    from tfvae import cli

    out = tmp_path / "run"
    code = cli.main(["train", "--arch", "hvae", "--prior", "vampprior", "--prior-components", "5", "--pseudo-inputs",
                     "data", "--dataset", "binarized_mnist", "--latent-dim", "4", "--epochs", "1", "--max-examples", "60",
                     "--batch-size", "20", "--out", str(out), "--verbose", "0", *data_dir_args(tfds_data_dir)])
    assert code == 0, capsys.readouterr()
    vae = keras.models.load_model(out / "model.keras")
    assert isinstance(vae.prior, priors.HierarchicalPrior) and isinstance(vae.prior.top, priors.VampPrior)
    assert vae.prior.top.num_pseudo_inputs == 5 and vae.latent_dim == 4
    assert cli.main(["evaluate", "--model", str(out), "-k", "3", "--max-examples", "20", *data_dir_args(tfds_data_dir)]) == 0
    assert cli.main(["export", "--model", str(out), "--out", str(tmp_path / "export" / "1")]) == 0
    for bad, argument in [({"posterior": "iaf"}, "posterior"), ({"free_bits": 0.5}, "free_bits"),
                          ({"latent_dim": 1}, "latent_dim")]:
        with pytest.raises(ValueError, match=argument):
            training.TrainingConfig(arch="hvae", dataset="binarized_mnist", binarize=None, **bad)
