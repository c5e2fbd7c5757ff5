import numpy as np
import pytest
import tensorflow_probability as tfp

from tfvae import architectures

tfd = tfp.distributions

BUILDERS = {
    "mlp": (architectures.mlp_encoder, architectures.mlp_decoder),
    "conv": (architectures.conv_encoder, architectures.conv_decoder),
}


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
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
    with pytest.raises(ValueError, match=r"Unknown `likelihood` 'poisson'; known: \['bernoulli', 'gaussian'\]"):
        architectures.mlp_decoder(2, (4, 4, 1), likelihood="poisson")
    with pytest.raises(ValueError, match=r"Unknown `posterior` 'flow'"):
        architectures.mlp_encoder((4, 4, 1), 2, posterior="flow")
    with pytest.raises(ValueError, match=r"divisible by 4.*\(30, 30, 1\)"):
        architectures.conv_encoder((30, 30, 1), 2)
    with pytest.raises(ValueError, match=r"\(height, width, channels\)"):
        architectures.conv_decoder(2, (28, 28))
