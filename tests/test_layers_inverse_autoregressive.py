"""The IAF posterior (tfvae.layers.inverse_autoregressive): its density, its draws, and a VAE built on it."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
from tfvae import architectures, cli, training
from tfvae.layers.inverse_autoregressive import AffineAutoregressiveStep, InverseAutoregressiveFlowNormal
from tests import fresh_process
from tests.helpers import assert_config_round_trip, serialized_round_trip, single_and_mirrored_step

tfd = tfp.distributions
IMAGE_SHAPE = (4, 4, 1)


def _perturbed_layer(event_size=2, context_size=3, seed=0, hidden_units=(8,), **kwargs):
    """A built layer whose MADEs no longer start at the identity."""
    layer = InverseAutoregressiveFlowNormal(event_size, hidden_units=hidden_units, context_size=context_size, seed=seed,
                                            **kwargs)
    layer.build((None, layer.num_params))
    for index, weight in enumerate(layer.weights):
        weight.assign(weight + 0.4 * tf.random.stateless_normal(weight.shape, (seed, index)))
    return layer


def _params(batch, layer, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, layer.num_params)).astype(np.float32)


def test_a_new_layer_is_the_diagonal_gaussian_of_its_first_parameters():
    layer = InverseAutoregressiveFlowNormal(3, hidden_units=(8,), context_size=4)
    params = _params(5, layer)
    posterior = layer(params)
    gaussian = tfvae.layers.IndependentNormal(3)(params[:, :6])
    z = gaussian.sample(seed=(1, 2))
    np.testing.assert_allclose(posterior.log_prob(z), gaussian.log_prob(z), rtol=1e-6)
    np.testing.assert_allclose(posterior.sample(seed=(3, 4)), gaussian.sample(seed=(3, 4)), rtol=1e-6)
    assert posterior.batch_shape == [5] and posterior.event_shape == [3]


def test_density_integrates_to_one_after_training_moved_the_flow():
    layer = _perturbed_layer(seed=1)
    posterior = layer(np.array([[0.3, -0.2, 0.5, 0.1, 0.7, -0.4, 0.2]], np.float32))
    grid = np.linspace(-12, 12, 961, dtype=np.float32)  # 1 draw in 2,000 falls beyond 8
    points = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 1, 2)
    density = np.exp(posterior.log_prob(points).numpy()).reshape(grid.size, grid.size)
    assert np.trapezoid(np.trapezoid(density, grid, axis=1), grid) == pytest.approx(1.0, abs=1e-3)
    # The flow really moved it away from its Gaussian.
    gaussian = tfvae.layers.IndependentNormal(2)(np.array([[0.3, -0.2, 0.5, 0.1]], np.float32))
    assert np.abs(posterior.log_prob(points) - gaussian.log_prob(points)).max() > 0.5


def test_the_density_at_its_own_draws_equals_the_density_found_by_inverting_the_flow():
    layer = _perturbed_layer(event_size=5, seed=2)
    posterior = layer(_params(4, layer, seed=2))
    draws = posterior.sample(3, seed=(5, 6))  # [3, 4, 5]: TFP's bijector cache knows their way back
    recomputed = posterior.log_prob(tf.identity(draws) * 1.0)  # a new tensor: the flow is inverted
    np.testing.assert_allclose(posterior.log_prob(draws), recomputed, rtol=1e-4, atol=1e-4)
    assert draws.shape == (3, 4, 5)


def test_each_step_is_autoregressive_and_its_log_determinant_is_the_sum_of_its_log_scales():
    layer = _perturbed_layer(event_size=4, seed=3)
    context = tf.constant(np.random.default_rng(3).normal(size=(1, 3)), tf.float32)
    for index, network in enumerate(layer.networks):
        step = AffineAutoregressiveStep(network, context, 4)
        x = tf.constant(np.random.default_rng(index).normal(size=(1, 4)), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = step.forward(x)
        jacobian = tape.batch_jacobian(y, x)[0].numpy()  # [4, 4]: d y_i / d x_j
        order = np.arange(4) if index % 2 == 0 else np.arange(4)[::-1]  # left-to-right, then right-to-left
        ordered = jacobian[np.ix_(order, order)]
        np.testing.assert_array_equal(np.triu(ordered, k=1), 0.0)  # y_i depends on x_j only before i
        np.testing.assert_allclose(np.log(np.abs(np.linalg.det(jacobian))), step.forward_log_det_jacobian(x, 1)[0],
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(step.inverse(y), x, rtol=1e-4, atol=1e-5)


def test_moments_are_deterministic_monte_carlo_estimates_near_the_truth():
    layer = _perturbed_layer(event_size=3, seed=4, num_moment_samples=512)
    posterior = layer(_params(2, layer, seed=4))
    np.testing.assert_array_equal(posterior.mean(), posterior.mean())
    draws = posterior.sample(20000, seed=(7, 8)).numpy()
    standard_error = draws.std(axis=0) / np.sqrt(512)
    assert np.all(np.abs(posterior.mean() - draws.mean(axis=0)) < 5 * standard_error)
    np.testing.assert_allclose(posterior.stddev(), draws.std(axis=0), rtol=0.2)
    np.testing.assert_allclose(tf.convert_to_tensor(posterior), posterior.mean())  # converts to its mean


def test_config_round_trips_and_bad_arguments_name_themselves():
    layer = InverseAutoregressiveFlowNormal(3, num_flows=3, hidden_units=(5, 6), context_size=2, activation="tanh",
                                            scale_floor=0.01, num_moment_samples=10, seed=4)
    assert_config_round_trip(layer)
    assert serialized_round_trip(layer).get_config() == layer.get_config()
    assert InverseAutoregressiveFlowNormal.params_size(3, context_size=2) == layer.num_params == 8
    for arguments, name in [({"event_size": 0}, "event_size"), ({"event_size": 2, "num_flows": 0}, "num_flows"),
                            ({"event_size": 2, "context_size": -1}, "context_size"),
                            ({"event_size": 2, "hidden_units": []}, "hidden_units"),
                            ({"event_size": 2, "num_moment_samples": 1.5}, "num_moment_samples"),
                            ({"event_size": 2, "seed": "a"}, "seed")]:
        with pytest.raises((TypeError, ValueError), match=name):
            InverseAutoregressiveFlowNormal(**arguments)
    with pytest.raises(ValueError, match="parameters per example"):
        InverseAutoregressiveFlowNormal(2, context_size=3)(np.zeros((1, 6), np.float32))


def _iaf_vae(seed=5):
    keras.utils.set_random_seed(seed)
    encoder = architectures.mlp_encoder(IMAGE_SHAPE, 2, hidden_units=(8,), posterior="iaf")
    decoder = architectures.mlp_decoder(2, IMAGE_SHAPE, hidden_units=(8,))
    return tfvae.VAE(encoder, decoder, seed=seed)


def _binary_images(count, seed=0):
    return (np.random.default_rng(seed).uniform(size=(count, *IMAGE_SHAPE)) > 0.5).astype(np.float32)


def test_a_vae_with_an_iaf_posterior_trains_under_xla_on_the_monte_carlo_kl():
    vae = _iaf_vae()
    vae.compile(optimizer=keras.optimizers.Adam(0.01))  # XLA on the CPU ("auto")
    x = np.tile(_binary_images(8), (8, 1, 1, 1))
    before = vae.evaluate(x, verbose=0, return_dict=True)["elbo"]
    vae.fit(x, epochs=30, batch_size=16, verbose=0)
    assert vae.kl_method == "monte_carlo"
    assert vae.evaluate(x, verbose=0, return_dict=True)["elbo"] > before + 1.0
    posterior_layer = vae.encoder.get_layer("posterior")
    last = f"kernel_{len(posterior_layer.hidden_units)}"  # zero at the start: the flow was the identity
    assert any(np.abs(w.numpy()).max() > 1e-3 for w in posterior_layer.trainable_weights if w.name == last)
    mean_elbo = np.mean([vae.elbo(x[:4], seed=seed).numpy() for seed in range(40)])
    assert np.mean(vae.log_likelihood(x[:4], k=200, seed=3).numpy()) > mean_elbo  # E[L_200] >= E[ELBO]

def test_a_mirrored_step_equals_a_single_device_step_with_an_iaf_posterior():
    """The replicas keep their block of the draws (a new tensor), so the density inverts the flow there."""

    def away_from_the_identity(vae):  # as after some training
        for weight in vae.encoder.get_layer("posterior").weights:
            weight.assign(weight + 0.05 * tf.random.stateless_normal(weight.shape, (1, 2)))

    dataset = tf.data.Dataset.from_tensor_slices(_binary_images(8)).batch(8)
    initial, (single, _), (mirrored, _) = single_and_mirrored_step(_iaf_vae, dataset, prepare=away_from_the_identity)
    assert any(not np.allclose(a, b) for a, b in zip(initial, single.get_weights()))
    for single_value, mirrored_value in zip(single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(mirrored_value, single_value, rtol=1e-4, atol=1e-5)


def _save_for_a_fresh_process(directory):
    vae = _iaf_vae()
    vae.compile(optimizer="adam")
    x = _binary_images(4)
    vae.fit(x, epochs=2, verbose=0)
    vae.save(directory / "vae.keras")
    vae.export(directory / "export", verbose=False)
    np.save(directory / "x.npy", x)
    posterior = vae.encode(x)
    return {"encode_mean": posterior.mean().numpy(), "log_prob": posterior.log_prob(np.zeros((4, 2), np.float32)).numpy(),
            "stddev": posterior.stddev().numpy()}


fresh_process.register("iaf: VAE .keras file", _save_for_a_fresh_process, """
import numpy as np, keras
import tfvae
vae = keras.models.load_model(directory / "vae.keras")
posterior = vae.encode(np.load(directory / "x.npy"))
result = {"encode_mean": posterior.mean().numpy(), "log_prob": posterior.log_prob(np.zeros((4, 2), np.float32)).numpy()}
""")
fresh_process.register("iaf: export", _save_for_a_fresh_process, """
import sys, numpy as np, tensorflow as tf
model = tf.saved_model.load(str(directory / "export"))
outputs = model.signatures["encode"](x=tf.constant(np.load(directory / "x.npy")))
assert sys.modules["tfvae"] is None and sys.modules["tensorflow_probability"] is None  # importing them fails
result = {"mean": outputs["mean"].numpy(), "stddev": outputs["stddev"].numpy()}
""", without=("tfvae", "tensorflow_probability"))


def test_saved_iaf_vae_loads_and_its_export_serves_without_tfvae_or_tfp(fresh_process_results):
    expected, loaded = fresh_process_results("iaf: VAE .keras file")
    _, served = fresh_process_results("iaf: export")
    np.testing.assert_allclose(loaded["encode_mean"], expected["encode_mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded["log_prob"], expected["log_prob"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served["mean"], expected["encode_mean"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(served["stddev"], expected["stddev"], rtol=1e-4, atol=1e-5)


def test_the_command_line_trains_with_an_iaf_posterior(tmp_path, tfds_data_dir, capsys):
    from tests.mock_data import data_dir_args

    out = tmp_path / "run"
    code = cli.main(["train", "--posterior", "iaf", "--arch", "mlp", "--latent-dim", "2", "--epochs", "1",
                     "--max-examples", "64", "--batch-size", "32", "--out", str(out), "--verbose", "0",
                     *data_dir_args(tfds_data_dir)])
    assert code == 0, capsys.readouterr()
    assert training.read_config(out).posterior == "iaf"
    assert isinstance(keras.models.load_model(out / "model.keras").encoder.get_layer("posterior"),
                      InverseAutoregressiveFlowNormal)
