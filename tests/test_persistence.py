"""Whole-model persistence: `.keras` files reload in a fresh process."""

import functools

import keras
import numpy as np

import tfvae
from tfvae import architectures, priors
from tests import fresh_process

IMAGE_SHAPE = (4, 4, 1)


@functools.cache
def _trained_vae():
    """One VAE trained for one epoch, shared by the tests here (they save it, and change only what they load)."""
    x = (np.random.default_rng(0).uniform(size=(64, *IMAGE_SHAPE)) > 0.5).astype(np.float32)
    encoder = architectures.conv_encoder(IMAGE_SHAPE, 3, filters=(4, 8))
    decoder = architectures.conv_decoder(3, IMAGE_SHAPE, filters=(8, 4), likelihood="gaussian")
    vae = tfvae.VAE(encoder, decoder, prior=priors.DiagonalNormal(3), beta=0.7)
    vae.compile(optimizer="adam")
    vae.fit(x, batch_size=16, epochs=1, verbose=0)
    return vae, x


def _save_for_a_fresh_process(directory):
    vae, x = _trained_vae()
    vae.save(directory / "vae.keras")
    np.save(directory / "x.npy", x)
    posterior = vae.encode(x)
    return {"loc": posterior.mean().numpy(), "scale": posterior.stddev().numpy(),
            "reconstruction": np.asarray(vae.reconstruct(x)), "prior_loc": vae.prior.distribution().mean().numpy()}


fresh_process.register("persistence: VAE .keras file", _save_for_a_fresh_process, """
import numpy as np, keras
import tfvae  # registers the classes; no custom_objects needed
vae = keras.models.load_model(directory / "vae.keras")
x = np.load(directory / "x.npy")
posterior = vae.encode(x)
result = {"loc": np.asarray(posterior.mean()), "scale": np.asarray(posterior.stddev()),
          "reconstruction": np.asarray(vae.reconstruct(x)), "prior_loc": np.asarray(vae.prior.distribution().mean()),
          "beta": np.asarray(vae.beta)}  # as np.savez keeps it
""")


def test_saved_vae_reloads_in_a_fresh_process_with_identical_outputs(fresh_process_results):
    expected, loaded = fresh_process_results("persistence: VAE .keras file")
    for key in ("loc", "scale", "reconstruction", "prior_loc"):
        np.testing.assert_allclose(loaded[key], expected[key], rtol=1e-6, err_msg=key)
    assert loaded["beta"] == 0.7


def test_loaded_encoder_works_inside_another_model_frozen_or_fine_tuned(tmp_path):
    vae, x = _trained_vae()
    vae.save(tmp_path / "vae.keras")
    encoder = keras.models.load_model(tmp_path / "vae.keras").encoder
    labels = np.arange(len(x)) % 2

    def classifier(trainable):
        encoder.trainable = trainable
        inputs = keras.Input(IMAGE_SHAPE)
        # A layer stacked on the encoder receives the posterior mean.
        outputs = keras.layers.Dense(2, activation="softmax")(encoder(inputs))
        model = keras.Model(inputs, outputs)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    before = [w.numpy().copy() for w in encoder.weights]
    frozen = classifier(trainable=False)
    dense = frozen.layers[-1]
    np.testing.assert_allclose(frozen(x[:4]), dense(encoder(x[:4]).mean()), rtol=1e-6)
    frozen.fit(x, labels, epochs=1, verbose=0)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, encoder.weights))
    classifier(trainable=True).fit(x, labels, epochs=1, verbose=0)
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, encoder.weights))
