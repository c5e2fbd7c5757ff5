import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import architectures, layers, priors
from tests.helpers import assert_config_round_trip

IMAGE_SHAPE = (6, 6, 1)


def _binary_images(num_examples, seed=0):
    """Two noisy prototypes, so a model can learn structure in a few steps."""
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(size=(2, *IMAGE_SHAPE)) > 0.5
    flips = rng.uniform(size=(num_examples, *IMAGE_SHAPE)) < 0.05
    return (prototypes[rng.integers(0, 2, num_examples)] ^ flips).astype(np.float32)


def _vae(latent_dim=2, posterior="independent_normal", **kwargs):
    encoder = architectures.mlp_encoder(IMAGE_SHAPE, latent_dim, hidden_units=(16,), posterior=posterior)
    decoder = architectures.mlp_decoder(latent_dim, IMAGE_SHAPE, hidden_units=(16,))
    return tfvae.VAE(encoder, decoder, **kwargs)


def test_logged_metrics_are_exactly_loss_elbo_reconstruction_kl_per_example():
    vae = _vae(beta=2.0)
    vae.compile(optimizer="adam")
    x = _binary_images(8)
    seed = vae.seed_generator.state.numpy().copy()  # the seed the next step draws
    logs = vae.evaluate(x, batch_size=8, verbose=0, return_dict=True)
    assert sorted(logs) == ["elbo", "kl", "loss", "reconstruction"]

    posterior = vae.encoder(x)
    z = posterior.sample(seed=tf.cast(seed, tf.int32))
    reconstruction = -vae.decoder(z).log_prob(x).numpy()
    loc, scale = posterior.mean().numpy(), posterior.stddev().numpy()
    kl = 0.5 * np.sum(loc**2 + scale**2 - 1 - np.log(scale**2), axis=1)
    np.testing.assert_allclose(logs["reconstruction"], reconstruction.mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["kl"], kl.mean(), rtol=1e-4)
    np.testing.assert_allclose(logs["elbo"], -(reconstruction + kl).mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], (reconstruction + 2.0 * kl).mean(), rtol=1e-5)


@pytest.mark.parametrize("yields", ["x", "x_and_label"])
def test_training_on_a_dataset_raises_the_elbo(yields):
    x = _binary_images(512)
    dataset = tf.data.Dataset.from_tensor_slices(x if yields == "x" else (x, np.zeros(len(x))))
    vae = _vae()
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = vae.evaluate(dataset.batch(512), verbose=0, return_dict=True)["elbo"]
    vae.fit(dataset.batch(32), epochs=3, verbose=0)
    after = vae.evaluate(dataset.batch(512), verbose=0, return_dict=True)["elbo"]
    assert after > before + 5.0  # nats per example; 36 binary pixels start near -25


def test_xla_compiled_training_trains():
    x = _binary_images(256)
    vae = _vae()
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
    history = vae.fit(x, batch_size=32, epochs=3, verbose=0).history
    assert vae.jit_compile
    assert history["elbo"][-1] > history["elbo"][0] + 3.0


def test_seeded_runs_give_identical_weights():
    x = _binary_images(64)

    def train():
        keras.utils.set_random_seed(7)
        vae = _vae()
        vae.compile(optimizer="adam")
        vae.fit(x, batch_size=16, epochs=2, verbose=0)
        return vae.get_weights()

    first, second = train(), train()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_latent_size_mismatch_names_both_sizes():
    encoder = architectures.mlp_encoder(IMAGE_SHAPE, 3, hidden_units=(8,))
    decoder = architectures.mlp_decoder(5, IMAGE_SHAPE, hidden_units=(8,))
    with pytest.raises(ValueError, match=r"encoder's latent size is 3 .* decoder's is 5"):
        tfvae.VAE(encoder, decoder)
    with pytest.raises(ValueError, match=r"prior's latent_dim is 4"):
        tfvae.VAE(encoder, architectures.mlp_decoder(3, IMAGE_SHAPE, hidden_units=(8,)), prior=priors.StandardNormal(4))


def test_invalid_beta_and_kl_are_rejected():
    with pytest.raises(ValueError, match="`beta` must be a number > 0; received -1"):
        _vae(beta=-1)
    with pytest.raises(ValueError, match="`kl` must be one of"):
        _vae(kl="exact")


def test_kl_method_follows_the_distributions():
    assert _vae(kl="auto")._kl_method == "analytic"
    assert _vae(posterior="multivariate_normal_tril", kl="auto")._kl_method == "monte_carlo"
    with pytest.raises(ValueError, match="kl='analytic'.*no closed-form KL"):
        _vae(posterior="multivariate_normal_tril", kl="analytic")


def test_monte_carlo_kl_model_trains():
    x = _binary_images(256)
    vae = _vae(posterior="multivariate_normal_tril")
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = vae.fit(x, batch_size=32, epochs=3, verbose=0).history
    assert history["elbo"][-1] > history["elbo"][0] + 3.0


def test_trainable_prior_trains_with_the_model():
    vae = _vae(prior=priors.DiagonalNormal(2))
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [w.numpy().copy() for w in vae.prior.trainable_weights]
    vae.fit(_binary_images(64), batch_size=16, epochs=1, verbose=0)
    assert all(np.any(b != w.numpy()) for b, w in zip(before, vae.prior.trainable_weights))
    assert len(vae.trainable_weights) == len(vae.encoder.trainable_weights) + len(vae.decoder.trainable_weights) + 2


def test_public_methods_return_documented_shapes():
    vae = _vae()
    x = _binary_images(5)
    assert vae.encode(x).batch_shape == [5] and vae.encode(x).event_shape == [2]
    assert vae.decode(np.zeros([3, 2], np.float32)).event_shape == IMAGE_SHAPE
    assert vae.elbo(x).shape == (5,)
    assert vae.reconstruct(x).shape == (5, *IMAGE_SHAPE)
    np.testing.assert_allclose(vae.predict(x, verbose=0), vae.reconstruct(x), rtol=1e-6)
    images = vae.sample(4, seed=(1, 2))
    assert images.shape == (4, *IMAGE_SHAPE) and np.all((images >= 0) & (images <= 1))
    np.testing.assert_array_equal(images, vae.sample(4, seed=(1, 2)))
    binary = vae.sample(4, seed=(1, 2), mean=False).numpy()
    assert set(np.unique(binary)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="`num_images` must be an int >= 1; received 0"):
        vae.sample(0)


def test_vae_config_round_trips():
    vae = _vae(beta=0.5, kl="monte_carlo", seed=3, prior=priors.DiagonalNormal(2))
    restored = assert_config_round_trip(vae)
    assert (restored.beta, restored.kl, restored.seed) == (0.5, "monte_carlo", 3)
    assert isinstance(restored.prior, priors.DiagonalNormal)
    json.dumps(vae.get_config())


def test_elbo_with_several_samples_averages_them():
    vae = _vae(kl="analytic")
    x = _binary_images(4)
    seed = tf.constant([3, 1])
    terms = vae.elbo_terms(x, seed=seed, k=5)
    posterior = vae.encoder(x)
    z = posterior.sample(5, seed=seed).numpy()  # [5, 4, 2]
    log_likelihoods = np.stack([vae.decoder(z[s]).log_prob(x).numpy() for s in range(5)])
    np.testing.assert_allclose(terms.reconstruction, -log_likelihoods.mean(axis=0), rtol=1e-5)


def test_iwae_gradient_is_finite_and_the_objective_trains():
    x = _binary_images(256)
    vae = _vae(objective="iwae", k=5)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    with tf.GradientTape() as tape:
        terms, log_weights = vae._bound_terms(x[:32], tf.constant([1, 2]), 5, training=True, with_log_weights=True)
        loss = -tf.reduce_mean(tfvae.bounds.importance_weighted_bound(log_weights))
    gradients = tape.gradient(loss, vae.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g)) for g in gradients)
    history = vae.fit(x, batch_size=32, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 3.0
    # -L_k <= -ELBO: the IWAE loss is below the ELBO loss.
    assert all(loss <= -elbo + 1e-3 for loss, elbo in zip(history["loss"], history["elbo"]))


def test_iwae_and_k_are_validated_and_serialized():
    with pytest.raises(ValueError, match="`objective` must be one of"):
        _vae(objective="vi")
    with pytest.raises(ValueError, match="`k` must be an int >= 1; received 0"):
        _vae(k=0)
    with pytest.raises(ValueError, match="`beta` must be 1 with objective='iwae'"):
        _vae(objective="iwae", beta=0.5)
    restored = assert_config_round_trip(_vae(objective="iwae", k=4))
    assert (restored.objective, restored.k) == ("iwae", 4)


def test_mean_terms_averages_each_term_over_all_examples_and_resets():
    tracker = tfvae.model.MeanTerms(("a", "b"))
    tracker.update_state([tf.constant([1.0, 2.0, 3.0]), tf.constant([0.0, 0.0, 3.0])])
    tracker.update_state([tf.constant([6.0]), tf.constant([-1.0])])  # batches of unequal size
    result = {name: float(value) for name, value in tracker.result().items()}
    assert result == {"a": 3.0, "b": 0.5}
    tracker.reset_state()
    assert {name: float(value) for name, value in tracker.result().items()} == {"a": 0.0, "b": 0.0}
