"""Training under tf.distribute equals training on one device.

Two logical CPU devices (see conftest.py) stand in for two accelerators. SGD
rather than Adam, because Adam's normalisation would hide a gradient that is
scaled by the number of replicas.
"""

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import architectures, training
from tests.helpers import single_and_mirrored_step

IMAGE_SHAPE = (4, 4, 1)
GLOBAL_BATCH = 8


def _build_vae():
    encoder = architectures.mlp_encoder(IMAGE_SHAPE, 2, hidden_units=(8,))
    decoder = architectures.mlp_decoder(2, IMAGE_SHAPE, hidden_units=(8,))
    return tfvae.VAE(encoder, decoder, seed=5)


def _binary_batch():
    x = (np.random.default_rng(0).uniform(size=(GLOBAL_BATCH, *IMAGE_SHAPE)) > 0.5).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices(x).batch(GLOBAL_BATCH)


@pytest.fixture
def two_replicas():
    strategy = training.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])  # distinct collective keys (tensorflow#62790)
    assert strategy.num_replicas_in_sync == 2
    return strategy


def test_one_mirrored_step_equals_one_single_device_step():
    initial, (single, single_logs), (mirrored, mirrored_logs) = single_and_mirrored_step(_build_vae, _binary_batch())
    changed = [not np.allclose(a, b) for a, b in zip(initial, single.get_weights())]
    assert sum(changed) >= 4  # the step really moved the weights
    for single_value, mirrored_value in zip(single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(mirrored_value, single_value, rtol=1e-5, atol=1e-6)
    for name in ("loss", "elbo", "reconstruction", "kl"):
        np.testing.assert_allclose(mirrored_logs[name], single_logs[name], rtol=1e-5)


def test_replicas_draw_different_noise(two_replicas):
    """Each replica keeps its own block of the global batch's noise, not a copy of one."""
    x = np.zeros((GLOBAL_BATCH, *IMAGE_SHAPE), np.float32)  # the same input on both replicas
    with two_replicas.scope():
        vae = _build_vae()

    @tf.function
    def reconstruction_terms(batch):
        return vae.elbo_terms(batch, seed=(1, 2)).reconstruction

    dataset = two_replicas.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(GLOBAL_BATCH))
    per_replica = two_replicas.run(reconstruction_terms, args=(next(iter(dataset)),))
    first, second = (t.numpy() for t in two_replicas.experimental_local_results(per_replica))
    assert not np.allclose(first, second)
    single = vae.elbo_terms(x, seed=(1, 2)).reconstruction.numpy()  # one device, the whole batch
    np.testing.assert_allclose(np.concatenate([first, second]), single, rtol=1e-6)


@pytest.mark.parametrize("prior_name, arguments", [
    ("mixture_of_gaussians", {"num_components": 3, "seed": 1}),
    ("vampprior", {"num_pseudo_inputs": 3, "input_shape": IMAGE_SHAPE, "seed": 1}),
    ("flow", {"hidden_units": (4,), "seed": 1}),
])
def test_a_mirrored_step_equals_a_single_device_step_with_each_trainable_prior(prior_name, arguments):
    """The priors' own variables (mixture weights, pseudo-inputs, MADE weights) get the single-device gradient too."""
    from tfvae import priors

    def build():
        return tfvae.VAE(architectures.mlp_encoder(IMAGE_SHAPE, 2, hidden_units=(8,)),
                         architectures.mlp_decoder(2, IMAGE_SHAPE, hidden_units=(8,)),
                         prior=priors.get_prior(prior_name, 2, **arguments), seed=5)

    initial, (single, _), (mirrored, _) = single_and_mirrored_step(build, _binary_batch())
    prior_weights = {id(w) for w in single.prior.trainable_weights}
    moved = [not np.allclose(a, b) for w, a, b in zip(single.weights, initial, single.get_weights()) if id(w) in prior_weights]
    assert any(moved), "the step moved no weight of the prior"
    for single_value, mirrored_value in zip(single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(mirrored_value, single_value, rtol=1e-4, atol=1e-5)
