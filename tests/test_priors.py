import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
from tfvae import architectures, layers, priors
from tests.helpers import assert_config_round_trip, serialized_round_trip

tfd = tfp.distributions


def test_standard_normal_is_zero_mean_unit_scale():
    distribution = priors.StandardNormal(3).distribution()
    assert distribution.batch_shape == [] and distribution.event_shape == [3]
    np.testing.assert_array_equal(distribution.mean(), np.zeros(3))
    np.testing.assert_array_equal(distribution.stddev(), np.ones(3))
    assert priors.StandardNormal(3).weights == []
    assert priors.StandardNormal(3)().event_shape == [3]  # calling the layer gives the same


def test_diagonal_normal_starts_at_standard_normal_and_has_trainable_variables():
    prior = priors.DiagonalNormal(4)
    distribution = prior.distribution()
    np.testing.assert_allclose(distribution.stddev(), np.ones(4), rtol=1e-6)
    assert sorted(w.name for w in prior.trainable_weights) == ["loc", "raw_scale"]
    z = tf.fill([2, 4], 2.0)
    with tf.GradientTape() as tape:
        log_prob = tf.reduce_sum(prior.distribution().log_prob(z))
    gradients = tape.gradient(log_prob, prior.trainable_weights)
    assert all(g is not None and np.all(np.abs(g) > 0) for g in gradients)


@pytest.mark.parametrize("prior", [priors.StandardNormal(2), priors.DiagonalNormal(3, scale_floor=0.01)])
def test_prior_config_round_trips(prior):
    assert_config_round_trip(prior)
    assert serialized_round_trip(prior).get_config() == prior.get_config()


def test_get_prior_lists_known_names_for_an_unknown_one():
    assert isinstance(priors.get_prior("diagonal_normal", 2), priors.DiagonalNormal)
    with pytest.raises(ValueError, match=r"Unknown prior 'vamp'.*diagonal_normal.*standard_normal"):
        priors.get_prior("vamp", 2)


def test_diagonal_normal_starts_at_initial_scale_and_trains_for_any_floor():
    z = tf.random.stateless_normal([16, 3], seed=(1, 2)) * 0.5 + 3.0
    for scale_floor in [1e-3, 0.5, 1.0, 2.0]:
        prior = priors.DiagonalNormal(3, scale_floor=scale_floor)
        expected = np.full(3, layers.initial_scale(scale_floor), np.float32)
        np.testing.assert_array_max_ulp(prior.distribution().stddev().numpy(), expected, maxulp=1)
        np.testing.assert_array_equal(prior.distribution().mean(), np.zeros(3))
        optimizer = keras.optimizers.Adam(0.05)
        before = [w.numpy() for w in prior.trainable_weights]
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(prior.distribution().log_prob(z))
            optimizer.apply_gradients(zip(tape.gradient(loss, prior.trainable_weights), prior.trainable_weights))
            assert np.isfinite(loss.numpy()), scale_floor
        assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, prior.trainable_weights)), scale_floor
        assert np.all(prior.distribution().stddev().numpy() >= scale_floor), scale_floor


def test_diagonal_normal_refuses_a_non_positive_floor():
    with pytest.raises(ValueError, match=r"`scale_floor` must be a finite number > 0; received -1"):
        priors.DiagonalNormal(2, scale_floor=-1)
    with pytest.raises(ValueError, match=r"`latent_dim` must be a positive int"):
        priors.StandardNormal(0)


def test_priors_are_float32_under_a_mixed_policy():
    try:
        for policy in ["mixed_float16", "mixed_bfloat16"]:
            keras.config.set_dtype_policy(policy)
            for prior in [priors.StandardNormal(2), priors.DiagonalNormal(2)]:
                assert prior.compute_dtype == "float32", (policy, prior.name)
                assert prior.distribution().dtype == tf.float32 and prior().dtype == tf.float32
                assert assert_config_round_trip(prior).compute_dtype == "float32"
    finally:
        keras.config.set_dtype_policy("float32")


def test_prior_keeps_an_explicit_dtype():
    prior = priors.DiagonalNormal(2, dtype="float64")
    assert prior.distribution().dtype == tf.float64
    assert priors.StandardNormal(2, dtype="float64").distribution().dtype == tf.float64
    assert assert_config_round_trip(prior).compute_dtype == "float64"


@pytest.mark.parametrize("prior", [priors.DiagonalNormal(2, scale_floor=2.0), priors.StandardNormal(4, name="p")])
def test_prior_round_trips_with_every_argument(prior):
    restored = serialized_round_trip(prior)
    assert restored.get_config() == prior.get_config()
    np.testing.assert_allclose(restored.distribution().stddev(), prior.distribution().stddev())


def _mlp_vae(prior, latent_dim=3, image_shape=(4, 4, 1)):
    from tfvae import architectures
    import tfvae
    encoder = architectures.mlp_encoder(image_shape, latent_dim, hidden_units=(8,))
    decoder = architectures.mlp_decoder(latent_dim, image_shape, hidden_units=(8,))
    return tfvae.VAE(encoder, decoder, prior=prior, seed=0)


def test_mixture_of_gaussians_log_density_is_the_closed_form():
    from scipy import special, stats
    prior = priors.MixtureOfGaussians(3, 4, seed=1)
    prior.logits.assign([0.5, -1.0, 0.0, 2.0])
    prior.raw_scale.assign(np.random.default_rng(0).normal(size=(4, 3)).astype("float32"))
    z = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")
    weights = special.softmax(prior.logits.numpy())
    means = prior.loc.numpy()
    scales = np.log1p(np.exp(prior.raw_scale.numpy())) + 1e-3
    per_component = np.stack([stats.norm(means[c], scales[c]).logpdf(z).sum(axis=1) for c in range(4)], axis=1)
    expected = special.logsumexp(per_component + np.log(weights), axis=1)
    np.testing.assert_allclose(prior.distribution().log_prob(z), expected, rtol=1e-5)
    assert prior.distribution().event_shape == [3] and prior.distribution().batch_shape == []
    assert len(np.unique(means.round(4), axis=0)) == 4  # the components start apart


def test_vampprior_with_one_pseudo_input_is_the_posterior_at_that_input():
    prior = priors.VampPrior(3, 1, (4, 4, 1), seed=2)
    vae = _mlp_vae(prior)
    image = (np.random.default_rng(3).random((1, 4, 4, 1)) < 0.5).astype("float32")
    prior.initialize_from(image)
    z = np.random.default_rng(4).normal(size=(6, 3)).astype("float32")
    posterior = vae.encoder(image)
    np.testing.assert_allclose(prior.distribution().log_prob(z), posterior.log_prob(z[:, np.newaxis]).numpy()[:, 0],
                               rtol=1e-5)
    # The encoder is the VAE's: its weights are not the prior's too.
    assert [w.name for w in prior.weights] == ["pseudo_inputs"]
    with pytest.raises(ValueError, match=r"`images` must have shape \(1, 4, 4, 1\); received \(2, 4, 4, 1\)"):
        prior.initialize_from(np.zeros((2, 4, 4, 1)))
    with pytest.raises(ValueError, match="needs its encoder"):
        priors.VampPrior(3, 2, (4, 4, 1)).distribution()


def test_pseudo_inputs_are_clipped_to_the_unit_interval():
    prior = priors.VampPrior(2, 2, (2, 2, 1))
    seen = []
    prior.bind_encoder(lambda x: seen.append(x.numpy()) or priors.StandardNormal(2).distribution())
    prior.pseudo_inputs.assign(np.array([-1.0, 0.5, 2.0, 0.2] * 2, "float32").reshape(2, 2, 2, 1))
    with pytest.raises(ValueError):  # a fake encoder's N(0, I) has no batch of components: only its input matters
        prior.distribution()
    np.testing.assert_array_equal(seen[0].ravel(), np.array([0.0, 0.5, 1.0, 0.2] * 2, "float32"))


def test_monte_carlo_kl_against_a_one_component_mixture_converges_to_the_analytic_kl():
    from tfvae import bounds
    mixture = priors.MixtureOfGaussians(3, 1, seed=5)
    mixture.raw_scale.assign(np.full((1, 3), 0.3, "float32"))
    gaussian = mixture.distribution().components_distribution[0]  # batch shape [], event shape [3]
    posterior = layers.MeanConvertibleIndependent(
        tfp.distributions.Normal(loc=[[0.5, -0.2, 1.0]], scale=[[0.7, 1.2, 0.4]]), 1)
    samples = posterior.sample(20_000, seed=[6, 7])  # [n, 1, 3]
    monte_carlo = bounds.kl_divergence(posterior, mixture.distribution(), "monte_carlo", samples).numpy()[:, 0]
    analytic = bounds.kl_divergence(posterior, gaussian, "analytic").numpy()[0]
    standard_error = monte_carlo.std() / np.sqrt(len(monte_carlo))
    assert abs(monte_carlo.mean() - analytic) < 4 * standard_error


@pytest.mark.parametrize("make_prior", [lambda: priors.MixtureOfGaussians(3, 4, seed=1),
                                        lambda: priors.VampPrior(3, 5, (4, 4, 1), seed=1)],
                         ids=["mixture_of_gaussians", "vampprior"])
def test_vae_with_a_mixture_prior_trains_under_xla_saves_loads_and_exports(make_prior, tmp_path):
    vae = _mlp_vae(make_prior())
    assert vae.kl_method == "monte_carlo"
    x = (np.random.default_rng(0).random((64, 4, 4, 1)) < 0.5).astype("float32")
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))  # XLA: the default on one device
    assert vae.jit_compile is True
    history = vae.fit(x, batch_size=16, epochs=4, verbose=0).history
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]
    vae.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    assert loaded.prior.get_config() == vae.prior.get_config()
    np.testing.assert_allclose(loaded.elbo(x[:8], seed=3), vae.elbo(x[:8], seed=3), rtol=1e-5)
    served = tf.saved_model.load(str(vae.export(tmp_path / "export" / "1", verbose=False)))
    images = served.signatures["sample"](num_images=tf.constant(3), seed=tf.constant([1, 2]))["images"]
    np.testing.assert_allclose(images, vae.sample(3, seed=(1, 2)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make, match",
    [(lambda: priors.MixtureOfGaussians(3, 0), r"`num_components` must be an int >= 1; received 0"),
     (lambda: priors.VampPrior(3, 2.5, (4, 4, 1)), r"`num_pseudo_inputs` must be an int >= 1; received 2.5"),
     (lambda: priors.VampPrior(3, 2, (4, 0, 1)), r"`input_shape` must be a positive int")],
)
def test_mixture_priors_refuse_bad_sizes_by_name(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_mixture_prior_configs_round_trip():
    for prior in (priors.MixtureOfGaussians(3, 4, scale_floor=0.01, seed=2), priors.VampPrior(3, 5, (4, 4, 1), seed=1)):
        assert_config_round_trip(prior)


def test_flow_prior_starts_as_the_standard_normal_and_stays_a_density():
    prior = priors.FlowPrior(2, num_flows=2, hidden_units=(16,), seed=1)
    z = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32)
    standard = priors.StandardNormal(2).distribution()
    np.testing.assert_allclose(prior.distribution().log_prob(z), standard.log_prob(z), rtol=1e-6, atol=1e-6)
    # Monte Carlo KL against the flow (at its start) converges to the analytic KL against N(0, I).
    posterior = tfd.Independent(tfd.Normal(loc=[0.5, -1.0], scale=[0.7, 1.3]), reinterpreted_batch_ndims=1)
    samples = posterior.sample(20000, seed=(1, 2))
    monte_carlo = posterior.log_prob(samples) - prior.distribution().log_prob(samples)
    assert float(tf.reduce_mean(monte_carlo)) == pytest.approx(float(tfd.kl_divergence(posterior, standard)),
                                                               abs=4 * float(tf.math.reduce_std(monte_carlo)) / np.sqrt(20000))
    # Moved away from the identity, it still integrates to one (a 2-D grid over [-8, 8]^2).
    for weight in prior.trainable_weights:
        weight.assign(weight + 0.3 * tf.random.stateless_normal(weight.shape, seed=(3, 4)))
    grid = np.linspace(-8, 8, 401, dtype=np.float32)
    points = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
    density = np.exp(prior.distribution().log_prob(points).numpy())
    assert density.sum() * (grid[1] - grid[0]) ** 2 == pytest.approx(1.0, abs=0.02)
    assert np.abs(prior.distribution().log_prob(z) - standard.log_prob(z)).max() > 0.1  # it did move


def test_vae_with_a_flow_prior_trains_under_xla_saves_loads_and_samples(tmp_path):
    vae = tfvae.VAE(architectures.mlp_encoder((4, 4, 1), 2, hidden_units=(8,)),
                    architectures.mlp_decoder(2, (4, 4, 1), hidden_units=(8,)),
                    prior=priors.get_prior("flow", 2, hidden_units=(8,)))
    x = (np.random.default_rng(0).uniform(size=(64, 4, 4, 1)) > 0.5).astype(np.float32)
    vae.compile(keras.optimizers.Adam(1e-2), jit_compile=True)
    history = vae.fit(x, epochs=5, batch_size=16, verbose=0).history["loss"]
    assert vae.kl_method == "monte_carlo" and history[-1] < history[0]
    prior_weights = [w.numpy() for w in vae.prior.trainable_weights]
    assert len(prior_weights) == 8 and any(np.abs(w).max() > 0 for w in prior_weights[-2:])  # the last layers learned
    vae.save(tmp_path / "vae.keras")
    restored = keras.models.load_model(tmp_path / "vae.keras")
    z = np.random.default_rng(1).normal(size=(5, 2)).astype(np.float32)
    np.testing.assert_allclose(restored.prior.distribution().log_prob(z), vae.prior.distribution().log_prob(z), rtol=1e-5)
    assert restored.sample(3, seed=0).shape == (3, 4, 4, 1)
    # The export draws z from the flow (its sequential direction) and scores x under it.
    served = tf.saved_model.load(str(vae.export(tmp_path / "export" / "1", verbose=False)))
    images = served.signatures["sample"](num_images=tf.constant(3), seed=tf.constant([1, 2]))["images"]
    assert images.shape == (3, 4, 4, 1) and np.all(np.isfinite(images))
    served_elbo = served.signatures["elbo"](x=tf.constant(x[:4]), seed=tf.constant([3, 4]))["elbo"]
    np.testing.assert_allclose(served_elbo, vae.elbo(x[:4], seed=(3, 4)), rtol=1e-4, atol=1e-3)
    assert_config_round_trip(priors.FlowPrior(3, num_flows=3, hidden_units=(4, 4), seed=2))


# Regressions from tests/test_properties.py ---------------------------------------------------------


@pytest.mark.parametrize("make_prior, argument", [
    (lambda: priors.MixtureOfGaussians(2, 10**12), "num_components"),
    (lambda: priors.MixtureOfGaussians(2**20, 2**12), "num_components"),
    (lambda: priors.VampPrior(2, 10**12, (2, 2, 1)), "num_pseudo_inputs"),
    (lambda: priors.VampPrior(2, 2**20, (64, 64, 1)), "num_pseudo_inputs"),
    (lambda: priors.VampPrior(2, 3, 10**12), "input_shape"),
    (lambda: priors.StandardNormal(10**12), "latent_dim"),
])
def test_priors_too_large_for_one_tensor_are_refused_by_name_before_any_memory_is_asked_for(make_prior, argument):
    # Were a ResourceExhaustedError from TensorFlow's allocator (terabytes of variables).
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make_prior()


@pytest.mark.parametrize("latent_dim", [(2, 3), [4, 1]])
def test_a_latent_dim_of_several_axes_is_refused_by_name(latent_dim):
    # Was "too many values to unpack (expected 1)".
    with pytest.raises(ValueError, match="`latent_dim` must be a positive int"):
        priors.StandardNormal(latent_dim)


@pytest.mark.parametrize("name", [["vamp"], {"a": 1}, None, 3])
def test_get_prior_refuses_names_that_are_not_strings_by_name(name):
    # A list or dict was "unhashable type", naming nothing.
    with pytest.raises(ValueError, match=r"Unknown prior .*`name` must be one of them"):
        priors.get_prior(name, 2)


@pytest.mark.parametrize("seed", ["a", 1.5, True, (1, 2), 2**63])
def test_initializer_seeds_must_be_none_or_an_int(seed):
    # 2**63 was Keras' "Can't convert Python sequence with out-of-range integer", naming no argument.
    with pytest.raises(ValueError, match="`seed` must be None or an int"):
        priors.MixtureOfGaussians(2, 2, seed=seed)
    with pytest.raises(ValueError, match="`seed` must be None or an int"):
        priors.VampPrior(2, 2, (2, 2, 1), seed=seed)
