import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import layers, priors
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


def test_diagonal_normal_starts_at_initial_scale_and_trains_for_any_floor():
    z = tf.random.stateless_normal([16, 3], seed=(1, 2)) * 0.5 + 3.0
    for scale_floor in [1e-3, 0.5, 1.0, 2.0]:
        prior = priors.DiagonalNormal(3, scale_floor=scale_floor)
        expected = np.full(3, layers.initial_scale(scale_floor), np.float32)
        np.testing.assert_array_max_ulp(prior.distribution().stddev().numpy(), expected, maxulp=1)
        np.testing.assert_array_equal(prior.distribution().mean(), np.zeros(3))
        optimizer = keras.optimizers.Adam(0.05)
        before = [w.numpy() for w in prior.trainable_weights]
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(prior.distribution().log_prob(z))
            optimizer.apply_gradients(zip(tape.gradient(loss, prior.trainable_weights), prior.trainable_weights))
            assert np.isfinite(loss.numpy()), scale_floor
        assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, prior.trainable_weights)), scale_floor
        assert np.all(prior.distribution().stddev().numpy() >= scale_floor), scale_floor


def test_diagonal_normal_refuses_a_non_positive_floor():
    with pytest.raises(ValueError, match=r"`scale_floor` must be a finite number > 0; received -1"):
        priors.DiagonalNormal(2, scale_floor=-1)
    with pytest.raises(ValueError, match=r"`latent_dim` must be a positive int"):
        priors.StandardNormal(0)


def test_priors_are_float32_under_a_mixed_policy():
    try:
        for policy in ["mixed_float16", "mixed_bfloat16"]:
            keras.config.set_dtype_policy(policy)
            for prior in [priors.StandardNormal(2), priors.DiagonalNormal(2)]:
                assert prior.compute_dtype == "float32", (policy, prior.name)
                assert prior.distribution().dtype == tf.float32 and prior().dtype == tf.float32
                assert assert_config_round_trip(prior).compute_dtype == "float32"
    finally:
        keras.config.set_dtype_policy("float32")


def test_prior_keeps_an_explicit_dtype():
    prior = priors.DiagonalNormal(2, dtype="float64")
    assert prior.distribution().dtype == tf.float64
    assert priors.StandardNormal(2, dtype="float64").distribution().dtype == tf.float64
    assert assert_config_round_trip(prior).compute_dtype == "float64"


@pytest.mark.parametrize("prior", [priors.DiagonalNormal(2, scale_floor=2.0), priors.StandardNormal(4, name="p")])
def test_prior_round_trips_with_every_argument(prior):
    restored = serialized_round_trip(prior)
    assert restored.get_config() == prior.get_config()
    np.testing.assert_allclose(restored.distribution().stddev(), prior.distribution().stddev())
