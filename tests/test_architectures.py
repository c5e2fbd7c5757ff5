import keras
import numpy as np
import pytest
import tensorflow_probability as tfp
from scipy import stats

from tfvae import architectures

tfd = tfp.distributions

BUILDERS = {
    "mlp": (architectures.mlp_encoder, architectures.mlp_decoder),
    "conv": (architectures.conv_encoder, architectures.conv_decoder),
}


# The grey-level likelihoods on colour images only: a channel axis of more than one is what they could get wrong.
@pytest.mark.parametrize("image_shape, likelihood", [
    *((shape, name) for shape in [(28, 28, 1), (32, 32, 3)] for name in ["bernoulli", "gaussian"]),
    *(((32, 32, 3), name) for name in architectures.GREY_LEVEL_LIKELIHOODS),
])
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_builders_map_images_to_posterior_and_latents_to_likelihood(image_shape, arch, likelihood):
    make_encoder, make_decoder = BUILDERS[arch]
    encoder = make_encoder(image_shape, 5)
    decoder = make_decoder(5, image_shape, likelihood=likelihood)
    posterior = encoder(np.zeros([3, *image_shape], np.float32))
    assert isinstance(posterior, tfd.Distribution)
    assert posterior.batch_shape == [3] and posterior.event_shape == [5]
    likelihood_distribution = decoder(posterior.sample(seed=(0, 1)))
    assert likelihood_distribution.batch_shape == [3]
    assert tuple(likelihood_distribution.event_shape) == image_shape
    assert encoder.outputs[0].shape == (None, 5) and decoder.inputs[0].shape == (None, 5)
    assert np.all(posterior.stddev().numpy() > 0)
    pixels = likelihood_distribution.sample(seed=(0, 2)).numpy()
    if likelihood == "bernoulli":
        assert set(np.unique(pixels)) == {0.0, 1.0}
    elif likelihood == "discretized_logistic_mixture":
        np.testing.assert_array_equal(pixels, np.round(pixels * 255).astype(np.float32) / 255)  # 8-bit levels
        assert np.all((pixels >= 0) & (pixels <= 1))
    else:
        assert len(np.unique(pixels)) > pixels.size // 2  # continuous


def test_hidden_sizes_and_activation_are_arguments():
    encoder = architectures.mlp_encoder((4, 4, 1), 2, hidden_units=(7, 5), activation="relu")
    dense = [layer for layer in encoder.layers if layer.name.startswith("dense")]
    assert [layer.units for layer in dense] == [7, 5]
    assert all(layer.get_config()["activation"] == "relu" for layer in dense)
    conv = architectures.conv_encoder((8, 8, 1), 2, filters=(3, 4, 6))
    assert [layer.filters for layer in conv.layers if hasattr(layer, "filters")] == [3, 4, 6]


def test_unknown_names_and_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"Unknown `likelihood` 'poisson'; known: \['bernoulli', 'continuous_bernoulli', "
                                         r"'discretized_logistic_mixture', 'gaussian', 'normal'\]"):
        architectures.mlp_decoder(2, (4, 4, 1), likelihood="poisson")
    with pytest.raises(ValueError, match=r"Unknown `posterior` 'flow'"):
        architectures.mlp_encoder((4, 4, 1), 2, posterior="flow")
    with pytest.raises(ValueError, match=r"divisible by 4.*\(30, 30, 1\)"):
        architectures.conv_encoder((30, 30, 1), 2)
    with pytest.raises(ValueError, match=r"\(height, width, channels\)"):
        architectures.conv_decoder(2, (28, 28))


def test_gated_dense_is_values_times_sigmoid_gates_and_round_trips():
    layer = architectures.GatedDense(3, activation="tanh")
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    output = layer(x).numpy()
    kernel, bias = (w.numpy() for w in layer.dense.weights)
    values, gates = np.split(x @ kernel + bias, 2, axis=-1)
    np.testing.assert_allclose(output, np.tanh(values) / (1 + np.exp(-gates)), rtol=1e-5, atol=1e-6)
    config = layer.get_config()
    assert config["units"] == 3 and config["activation"] == "tanh"
    assert architectures.GatedDense.from_config(config).compute_output_shape((None, 5)) == (None, 3)
    with pytest.raises(ValueError, match=r"`units` must be an int >= 1; received 0"):
        architectures.GatedDense(0)


def test_gated_mlp_is_the_vampprior_papers_mlp_and_saves(tmp_path):
    import keras
    encoder, decoder = architectures.encoder_and_decoder("gated_mlp", (28, 28, 1), 40)
    gated = [layer for model in (encoder, decoder) for layer in model.layers if isinstance(layer, architectures.GatedDense)]
    assert [layer.units for layer in gated] == [300, 300, 300, 300]
    assert encoder.count_params() == 784 * 600 + 600 + 300 * 600 + 600 + 300 * 80 + 80
    encoder.save(tmp_path / "encoder.keras")
    x = np.zeros((2, 28, 28, 1), "float32")
    loaded = keras.saving.load_model(tmp_path / "encoder.keras")
    np.testing.assert_allclose(loaded(x).mean(), encoder(x).mean())


def _parameters_by_pixel(decoder, z):
    """The last convolution's output of a conv decoder, `[batch, height, width, P * channels]`."""
    return keras.Model(decoder.inputs[0], decoder.get_layer("likelihood_params").output)(z).numpy()


def test_conv_decoders_per_pixel_gaussian_reads_each_pixels_mean_and_scale_from_that_pixel():
    decoder = architectures.conv_decoder(3, (8, 8, 2), filters=(4,), likelihood="normal")
    z = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    by_pixel = _parameters_by_pixel(decoder, z)  # [2, 8, 8, 2 * 2]: channels (loc of c0, c1, raw scale of c0, c1)
    likelihood = decoder(z)
    loc, scale = by_pixel[..., :2], np.logaddexp(0, by_pixel[..., 2:]) + 1e-3
    np.testing.assert_allclose(likelihood.distribution.loc, loc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(likelihood.distribution.scale, scale, rtol=1e-5, atol=1e-6)
    x = np.random.default_rng(1).uniform(size=(2, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(likelihood.log_prob(x), stats.norm.logpdf(x, loc, scale).sum((1, 2, 3)), rtol=1e-5)


def test_conv_decoders_mixture_reads_each_pixels_components_from_that_pixel():
    decoder = architectures.conv_decoder(3, (4, 4, 3), filters=(4,), likelihood="discretized_logistic_mixture")
    z = np.random.default_rng(2).normal(size=(2, 3)).astype(np.float32)
    k = architectures.DISCRETIZED_COMPONENTS
    by_pixel = _parameters_by_pixel(decoder, z).reshape(2, 4, 4, 3, k, 3)  # channel = (part * K + component) * 3 + c
    base = decoder(z).distribution  # parameters [2, 4, 4, 3, K]
    np.testing.assert_allclose(base.mixture_logits, by_pixel[:, :, :, 0].transpose(0, 1, 2, 4, 3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(base.loc, by_pixel[:, :, :, 1].transpose(0, 1, 2, 4, 3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(base.scale, np.logaddexp(0, by_pixel[:, :, :, 2].transpose(0, 1, 2, 4, 3)) + 1e-4,
                               rtol=1e-5, atol=1e-6)
