import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats

from tfvae import layers
from tests.helpers import assert_config_round_trip, serialized_round_trip

tfd = tfp.distributions

LAYER_CASES = [
    (lambda: layers.IndependentNormal(3), 6, (3,)),
    (lambda: layers.IndependentNormal((2, 2)), 8, (2, 2)),
    (lambda: layers.MultivariateNormalTriL(3), 9, (3,)),
    (lambda: layers.IndependentBernoulli((4, 2, 1)), 8, (4, 2, 1)),
    (lambda: layers.IndependentGaussian((2, 3)), 6, (2, 3)),
    (lambda: layers.IndependentGaussian(5, scale=0.3), 5, (5,)),
]


def test_params_size_counts_parameters_per_example():
    assert layers.IndependentNormal.params_size(3) == 6
    assert layers.IndependentNormal.params_size((28, 28, 1)) == 2 * 784
    assert layers.MultivariateNormalTriL.params_size(4) == 4 + 10
    assert layers.IndependentBernoulli.params_size((28, 28, 1)) == 784
    assert layers.IndependentGaussian.params_size((32, 32, 3)) == 3072


@pytest.mark.parametrize("make_layer, num_params, event_shape", LAYER_CASES)
def test_layer_returns_distribution_with_batch_and_event_shape(make_layer, num_params, event_shape):
    layer = make_layer()
    distribution = layer(tf.random.normal([7, num_params]))
    assert isinstance(distribution, tfd.Distribution)
    assert distribution.batch_shape == [7]
    assert tuple(distribution.event_shape) == event_shape
    assert distribution.sample(seed=(1, 2)).shape == (7, *event_shape)
    assert distribution.log_prob(distribution.sample(seed=(3, 4))).shape == (7,)


@pytest.mark.parametrize("make_layer, num_params, event_shape", LAYER_CASES)
def test_layer_config_round_trips(make_layer, num_params, event_shape):
    layer = make_layer()
    restored = assert_config_round_trip(layer)
    assert serialized_round_trip(layer).get_config() == layer.get_config()
    assert restored.num_params == num_params


@pytest.mark.parametrize("make_layer, num_params, event_shape", LAYER_CASES)
def test_layer_rejects_wrong_number_of_parameters(make_layer, num_params, event_shape):
    inputs = keras.Input((num_params + 1,))
    with pytest.raises(ValueError, match=rf"needs {num_params} parameters.*{num_params + 1} per example"):
        make_layer()(inputs)


def test_independent_normal_density_matches_scipy():
    params = np.array([[0.5, -1.0, 0.2, -3.0]], np.float32)
    distribution = layers.IndependentNormal(2)(params)
    scale = np.log1p(np.exp(params[0, 2:])) + 1e-3
    x = np.array([[0.1, 0.7]], np.float32)
    expected = stats.norm(params[0, :2], scale).logpdf(x[0]).sum()
    np.testing.assert_allclose(distribution.log_prob(x), [expected], rtol=1e-5)
    np.testing.assert_allclose(distribution.stddev()[0], scale, rtol=1e-6)


def test_scale_floor_bounds_the_scale_from_below():
    distribution = layers.IndependentNormal(1, scale_floor=0.05)(np.array([[0.0, -100.0]], np.float32))
    np.testing.assert_allclose(distribution.stddev(), [[0.05]], rtol=1e-5)


def test_multivariate_normal_tril_density_matches_scipy():
    rng = np.random.default_rng(0)
    params = rng.normal(size=(1, 9)).astype(np.float32)
    distribution = layers.MultivariateNormalTriL(3)(params)
    covariance = distribution.covariance()[0].numpy()
    assert np.all(np.linalg.eigvalsh(covariance) > 0)
    x = rng.normal(size=(1, 3)).astype(np.float32)
    expected = stats.multivariate_normal(params[0, :3], covariance).logpdf(x[0])
    np.testing.assert_allclose(distribution.log_prob(x), [expected], rtol=1e-5)


def test_independent_bernoulli_uses_logits():
    logits = np.array([[2.0, -1.0, 0.0]], np.float32)
    distribution = layers.IndependentBernoulli(3)(logits)
    x = np.array([[1.0, 0.0, 1.0]], np.float32)
    probabilities = 1 / (1 + np.exp(-logits[0]))
    expected = stats.bernoulli(probabilities).logpmf(x[0]).sum()
    np.testing.assert_allclose(distribution.log_prob(x), [expected], rtol=1e-5)
    assert distribution.sample(seed=(1, 1)).dtype == tf.float32


def test_independent_gaussian_scale_is_learned_or_fixed():
    learned = layers.IndependentGaussian((2, 2))
    assert [w.name for w in learned.trainable_weights] == ["raw_scale"]
    np.testing.assert_allclose(learned(np.zeros([1, 4], np.float32)).stddev(), np.ones([1, 2, 2]), rtol=1e-6)
    fixed = layers.IndependentGaussian((2, 2), scale=0.3)
    assert fixed.weights == []
    np.testing.assert_allclose(fixed(np.zeros([1, 4], np.float32)).stddev(), np.full([1, 2, 2], 0.3))


def test_invalid_constructor_arguments_are_rejected():
    with pytest.raises(ValueError, match="event_shape"):
        layers.IndependentNormal(0)
    with pytest.raises(ValueError, match="scale_floor"):
        layers.IndependentNormal(2, scale_floor=0.0)
    with pytest.raises(ValueError, match="scale"):
        layers.IndependentGaussian(2, scale=-1.0)


def _regression_models():
    functional_inputs = keras.Input((3,))
    hidden = keras.layers.Dense(2)(functional_inputs)
    functional = keras.Model(functional_inputs, layers.IndependentNormal(1)(hidden))
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), layers.IndependentNormal(1)])
    return {"functional": functional, "sequential": sequential}


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_layer_is_last_layer_of_model_and_round_trips_through_keras_file(kind, tmp_path):
    model = _regression_models()[kind]
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    distribution = model(x)
    assert isinstance(distribution, tfd.Independent)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)  # no custom_objects
    np.testing.assert_allclose(restored(x).mean(), distribution.mean(), rtol=1e-6)
    np.testing.assert_allclose(restored(x).stddev(), distribution.stddev(), rtol=1e-6)


def test_predict_returns_the_mean_of_the_distribution():
    model = _regression_models()["sequential"]
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    predicted = model.predict(x, batch_size=4, verbose=0)
    single_batch = model.predict(x, batch_size=32, verbose=0)
    np.testing.assert_allclose(single_batch, predicted, rtol=1e-6)
    assert isinstance(predicted, np.ndarray)
    np.testing.assert_allclose(predicted, model(x).mean(), rtol=1e-6)
