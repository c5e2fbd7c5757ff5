import numpy as np
import pytest
import tensorflow as tf

from tfvae import priors
from tests.helpers import assert_config_round_trip, serialized_round_trip


def test_standard_normal_is_zero_mean_unit_scale():
    distribution = priors.StandardNormal(3).distribution()
    assert distribution.batch_shape == [] and distribution.event_shape == [3]
    np.testing.assert_array_equal(distribution.mean(), np.zeros(3))
    np.testing.assert_array_equal(distribution.stddev(), np.ones(3))
    assert priors.StandardNormal(3).weights == []
    assert priors.StandardNormal(3)().event_shape == [3]  # calling the layer gives the same


def test_diagonal_normal_starts_at_standard_normal_and_has_trainable_variables():
    prior = priors.DiagonalNormal(4)
    distribution = prior.distribution()
    np.testing.assert_allclose(distribution.stddev(), np.ones(4), rtol=1e-6)
    assert sorted(w.name for w in prior.trainable_weights) == ["loc", "raw_scale"]
    z = tf.fill([2, 4], 2.0)
    with tf.GradientTape() as tape:
        log_prob = tf.reduce_sum(prior.distribution().log_prob(z))
    gradients = tape.gradient(log_prob, prior.trainable_weights)
    assert all(g is not None and np.all(np.abs(g) > 0) for g in gradients)


@pytest.mark.parametrize("prior", [priors.StandardNormal(2), priors.DiagonalNormal(3, scale_floor=0.01)])
def test_prior_config_round_trips(prior):
    assert_config_round_trip(prior)
    assert serialized_round_trip(prior).get_config() == prior.get_config()


def test_get_prior_lists_known_names_for_an_unknown_one():
    assert isinstance(priors.get_prior("diagonal_normal", 2), priors.DiagonalNormal)
    with pytest.raises(ValueError, match=r"Unknown prior 'vamp'.*diagonal_normal.*standard_normal"):
        priors.get_prior("vamp", 2)
