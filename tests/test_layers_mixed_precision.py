"""Distribution layers and priors train under Keras' mixed-precision policies.

Dense layers compute in float16 or bfloat16; the distribution layers and priors
compute in float32 (tfvae.layers.distribution), so every density is float32.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import layers, priors
from tfvae.losses import NegativeLogLikelihood
from tests.helpers import assert_config_round_trip

POLICIES = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


@pytest.fixture(params=sorted(POLICIES))
def mixed_policy(request):
    """Sets a mixed global policy for one test, and float32 again afterwards."""
    keras.config.set_dtype_policy(request.param)
    try:
        yield request.param
    finally:
        keras.config.set_dtype_policy("float32")


def _weights(model):
    return [w.numpy().copy() for w in model.trainable_weights]


def _assert_trained(model, before, history):
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)), losses
    moved = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(moved), [w.path for w, m in zip(model.trainable_weights, moved) if not m]


# name -> (layer, targets for inputs x: [n, 4])
REGRESSIONS = {
    "independent_normal": (lambda: layers.IndependentNormal(2), lambda x: x[:, :2]),
    "multivariate_normal_tril": (lambda: layers.MultivariateNormalTriL(2), lambda x: x[:, :2]),
    "independent_bernoulli": (lambda: layers.IndependentBernoulli(3), lambda x: (x[:, :3] > 0).astype(np.float32)),
    "independent_gaussian": (lambda: layers.IndependentGaussian(3), lambda x: x[:, 1:]),
}


@pytest.mark.parametrize("kind", sorted(REGRESSIONS))
def test_distribution_layer_trains_under_mixed_policy(kind, mixed_policy):
    make_layer, targets = REGRESSIONS[kind]
    x = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    y = targets(x)
    layer = make_layer()
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = keras.Model(inputs, layer(keras.layers.Dense(layer.num_params)(hidden)))
    assert model.layers[1].compute_dtype == POLICIES[mixed_policy]  # the Dense layers are mixed
    assert layer.compute_dtype == layer.variable_dtype == "float32"
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=NegativeLogLikelihood())
    before = _weights(model)
    _assert_trained(model, before, model.fit(x, y, batch_size=4, epochs=1, verbose=0))  # 3 steps
    assert model(x).dtype == tf.float32
    assert np.all(np.isfinite(model(x).log_prob(y)))


VAE_CASES = {
    "normal_bernoulli_standard": (layers.IndependentNormal, layers.IndependentBernoulli, priors.StandardNormal),
    "tril_gaussian_diagonal": (layers.MultivariateNormalTriL, layers.IndependentGaussian, priors.DiagonalNormal),
}


@pytest.mark.parametrize("case", sorted(VAE_CASES))
def test_vae_trains_under_mixed_policy(case, mixed_policy):
    posterior_layer, likelihood_layer, make_prior = VAE_CASES[case]
    latent_dim = 2
    x = (np.random.default_rng(0).random((12, 4)) > 0.5).astype(np.float32)
    encoder_inputs = keras.Input((4,))
    posterior = posterior_layer(latent_dim)
    hidden = keras.layers.Dense(8, activation="relu")(encoder_inputs)
    encoder = keras.Model(encoder_inputs, posterior(keras.layers.Dense(posterior.num_params)(hidden)))
    decoder_inputs = keras.Input((latent_dim,))
    likelihood = likelihood_layer(4)
    decoder = keras.Model(decoder_inputs, likelihood(keras.layers.Dense(likelihood.num_params)(decoder_inputs)))
    vae = tfvae.VAE(encoder, decoder, prior=make_prior(latent_dim), seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = _weights(vae)
    _assert_trained(vae, before, vae.fit(x, batch_size=4, epochs=1, verbose=0))  # 3 steps
    assert vae.encode(x).dtype == tf.float32
    assert vae.decode(np.zeros([2, latent_dim], np.float32)).dtype == tf.float32
    assert vae.prior.distribution().dtype == tf.float32
    assert np.all(np.isfinite(vae.elbo(x, seed=(1, 2))))


def test_config_made_under_mixed_policy_keeps_float32():
    try:
        for policy in sorted(POLICIES):
            keras.config.set_dtype_policy(policy)
            for layer in [layers.IndependentNormal(2), layers.IndependentGaussian(3), priors.DiagonalNormal(2)]:
                config = layer.get_config()
                assert config["dtype"]["config"]["name"] == "float32", (policy, layer.name)
                assert assert_config_round_trip(layer).compute_dtype == "float32"
                keras.config.set_dtype_policy("float32")
                assert type(layer).from_config(config).compute_dtype == "float32"
                keras.config.set_dtype_policy(policy)
    finally:
        keras.config.set_dtype_policy("float32")
