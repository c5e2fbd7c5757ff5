"""Whole-model persistence: `.keras` files reload in a fresh process."""

import subprocess
import sys
import textwrap

import keras
import numpy as np

import tfvae
from tfvae import architectures, priors

IMAGE_SHAPE = (4, 4, 1)


def _trained_vae():
    x = (np.random.default_rng(0).uniform(size=(64, *IMAGE_SHAPE)) > 0.5).astype(np.float32)
    encoder = architectures.conv_encoder(IMAGE_SHAPE, 3, filters=(4, 8))
    decoder = architectures.conv_decoder(3, IMAGE_SHAPE, filters=(8, 4), likelihood="gaussian")
    vae = tfvae.VAE(encoder, decoder, prior=priors.DiagonalNormal(3), beta=0.7)
    vae.compile(optimizer="adam")
    vae.fit(x, batch_size=16, epochs=1, verbose=0)
    return vae, x


def test_saved_vae_reloads_in_a_fresh_process_with_identical_outputs(tmp_path):
    vae, x = _trained_vae()
    vae.save(tmp_path / "vae.keras")
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        import tfvae  # registers the classes; no custom_objects needed
        vae = keras.models.load_model({str(tmp_path / "vae.keras")!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        posterior = vae.encode(x)
        np.savez({str(tmp_path / "out.npz")!r}, loc=posterior.mean(), scale=posterior.stddev(),
                 reconstruction=vae.reconstruct(x), prior_loc=vae.prior.distribution().mean(),
                 beta=vae.beta)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    loaded = np.load(tmp_path / "out.npz")
    posterior = vae.encode(x)
    np.testing.assert_allclose(loaded["loc"], posterior.mean(), rtol=1e-6)
    np.testing.assert_allclose(loaded["scale"], posterior.stddev(), rtol=1e-6)
    np.testing.assert_allclose(loaded["reconstruction"], vae.reconstruct(x), rtol=1e-6)
    np.testing.assert_allclose(loaded["prior_loc"], vae.prior.distribution().mean(), rtol=1e-6)
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
