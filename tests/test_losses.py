import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import layers
from tfvae.losses import NegativeLogLikelihood
from tests.helpers import assert_config_round_trip


def _normal(loc, scale):
    raw_scale = np.log(np.expm1(np.asarray(scale, np.float32) - 1e-3))
    return layers.IndependentNormal(1)(np.stack([loc, raw_scale], axis=1).astype(np.float32))


def test_reductions_and_sample_weight_match_hand_computation():
    distribution = _normal([0.0, 1.0], [1.0, 2.0])
    y = np.array([[0.5], [0.0]], np.float32)
    per_example = -distribution.log_prob(y).numpy()
    np.testing.assert_allclose(NegativeLogLikelihood(reduction="none")(y, distribution), per_example, rtol=1e-6)
    np.testing.assert_allclose(NegativeLogLikelihood()(y, distribution), per_example.mean(), rtol=1e-6)
    np.testing.assert_allclose(NegativeLogLikelihood(reduction="sum")(y, distribution), per_example.sum(), rtol=1e-6)
    weighted = NegativeLogLikelihood()(y, distribution, sample_weight=np.array([2.0, 0.0]))
    np.testing.assert_allclose(weighted, 2 * per_example[0] / 2, rtol=1e-6)


def test_rejects_targets_without_event_axis_and_unknown_reduction():
    distribution = _normal([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"y_true.*\[batch, \*event_shape\]"):
        NegativeLogLikelihood()(tf.constant([0.5, 0.0]), distribution)
    with pytest.raises(ValueError, match="reduction"):
        NegativeLogLikelihood(reduction="mean_over_everything")


def test_config_round_trips():
    assert_config_round_trip(NegativeLogLikelihood(reduction="sum", name="nll"))


def test_heteroscedastic_regression_recovers_noise_scale():
    """A Sequential model ending in IndependentNormal learns sigma(x) within 10%."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(4000, 1)).astype(np.float32)
    true_scale = lambda x: 0.1 + 0.2 * (x + 1)  # noqa: E731  0.1 at x=-1, 0.5 at x=1
    y = (1.5 * x + true_scale(x) * rng.normal(size=x.shape)).astype(np.float32)
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(layers.IndependentNormal.params_size(1)),
            layers.IndependentNormal(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=NegativeLogLikelihood())
    model.fit(x, y, batch_size=200, epochs=40, verbose=0)
    probe = np.array([[-0.75], [-0.25], [0.25], [0.75]], np.float32)
    learned_scale = model(probe).stddev().numpy()
    np.testing.assert_allclose(learned_scale, true_scale(probe), rtol=0.10)
    # predict gives the mean, which tracks 1.5 x.
    np.testing.assert_allclose(model.predict(probe, verbose=0), 1.5 * probe, atol=0.1)
