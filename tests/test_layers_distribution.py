"""What every distribution layer shares: the scale transform, its start, dtypes.

Checks over tables of values loop inside one test: each test pays the
conftest's `clear_session` once.
"""

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import layers
from tfvae.layers import distribution

tfd = tfp.distributions

FLOORS = [1e-3, 0.5, 1.0, 2.0]


def test_scale_bijector_is_softplus_plus_floor():
    raw = np.array([-100.0, -1.0, 0.0, 3.0], np.float32)
    bijector = layers.scale_bijector(0.25)
    np.testing.assert_allclose(bijector.forward(raw), np.log1p(np.exp(raw.astype(np.float64))) + 0.25, rtol=1e-6)
    np.testing.assert_allclose(bijector.inverse(bijector.forward(raw[1:])), raw[1:], rtol=1e-5, atol=1e-6)


def test_scale_bijector_maps_tensors_of_its_dtype():
    for dtype in ["float16", "bfloat16", "float32", "float64"]:
        scale = layers.scale_bijector(1.0, dtype).forward(tf.zeros([2], dtype))
        assert scale.dtype == dtype
        np.testing.assert_allclose(tf.cast(scale, tf.float64), [math.log(2) + 1.0] * 2, rtol=1e-2, err_msg=dtype)


def test_initial_scale_is_one_below_half_and_twice_the_floor_above():
    table = {1e-3: 1.0, 0.25: 1.0, 0.5: 1.0, 0.75: 1.5, 1.0: 2.0, 2.0: 4.0}
    assert {floor: layers.initial_scale(floor) for floor in table} == table
    # Continuous where the two rules meet.
    assert layers.initial_scale(0.5 - 1e-9) == pytest.approx(layers.initial_scale(0.5 + 1e-9), abs=1e-8)


def test_initializer_starts_the_scale_at_initial_scale():
    """To float32 rounding: at most one unit in the last place."""
    for scale_floor in FLOORS + [1e-6, 0.3, 0.7, 10.0, 100.0]:
        raw = layers.initial_scale_initializer(scale_floor)(shape=(3,), dtype="float32")
        scale = layers.scale_bijector(scale_floor).forward(raw).numpy()
        assert np.all(np.isfinite(raw)), scale_floor
        np.testing.assert_array_max_ulp(scale, np.full(3, layers.initial_scale(scale_floor), np.float32), maxulp=1)


def test_older_names_are_kept_for_imports():
    assert layers.unit_scale_initializer is layers.initial_scale_initializer
    assert layers._as_event_shape is layers.as_event_shape


def test_check_scale_floor_accepts_only_a_finite_positive_number():
    assert layers.check_scale_floor(np.float32(0.5)) == 0.5
    assert layers.check_scale_floor(2) == 2.0
    for scale_floor in [0, 0.0, -1.0, math.inf, math.nan, True, "0.1", None]:
        with pytest.raises(ValueError, match=r"`scale_floor` must be a finite number > 0; received"):
            layers.check_scale_floor(scale_floor)


def test_as_event_shape_refuses_non_positive_or_non_int_shapes():
    assert layers.as_event_shape(3) == (3,) and layers.as_event_shape([28, 28, 1]) == (28, 28, 1)
    for event_shape in [0, (), (2, 0), (2.0,), True, (-1,)]:
        with pytest.raises(ValueError, match=r"`latent_dim` must be a positive int.*received"):
            layers.as_event_shape(event_shape, "latent_dim")


def test_resolve_dtype_is_float32_under_a_mixed_policy_unless_asked():
    table = [
        ("float32", None, None),
        ("float64", None, None),
        ("mixed_float16", None, "float32"),
        ("mixed_bfloat16", None, "float32"),
        ("mixed_float16", "float64", "float64"),
    ]
    try:
        for policy, requested, expected in table:
            keras.config.set_dtype_policy(policy)
            assert layers.resolve_dtype(requested) == expected, (policy, requested)
    finally:
        keras.config.set_dtype_policy("float32")


def test_an_explicit_dtype_is_kept():
    for layer, num_params in [
        (layers.IndependentNormal(2, dtype="float64"), 4),
        (layers.MultivariateNormalTriL(2, dtype="float64"), 5),
        (layers.IndependentBernoulli(2, dtype="float64"), 2),
        (layers.IndependentGaussian(2, dtype="float64"), 2),
    ]:
        assert layer(np.zeros([3, num_params])).dtype == tf.float64, layer.name


def test_package_exports_the_names_other_modules_import():
    for name in [
        "SERIALIZATION_PACKAGE",
        "DistributionLayer",
        "MeanConvertibleIndependent",
        "_as_event_shape",
        "check_scale_floor",
        "unit_scale_initializer",
    ]:
        assert hasattr(layers, name), name
    assert layers.SERIALIZATION_PACKAGE == distribution.SERIALIZATION_PACKAGE == "tfvae"
    for name in ["IndependentNormal", "MultivariateNormalTriL", "IndependentBernoulli", "IndependentGaussian"]:
        # The names that .keras files hold.
        assert keras.saving.get_registered_object(f"tfvae>{name}") is getattr(layers, name)



def test_flat_event_log_prob_equals_tfp_independent():
    # MeanConvertibleIndependent sums an elementwise base over one flat axis;
    # the densities must be TFP's own, whatever the sample and batch axes,
    # in graphs and under XLA.
    params = tf.random.stateless_normal([3, 4, 4, 1], seed=[1, 2])
    bases = {
        "bernoulli": lambda: tfd.Bernoulli(logits=params, dtype=params.dtype),
        "normal": lambda: tfd.Normal(loc=params, scale=tf.nn.softplus(params[::-1]) + 0.1),
        "logistic, scalar scale": lambda: tfd.Logistic(loc=params, scale=0.5),
    }
    x_shapes = [(3, 4, 4, 1), (5, 3, 4, 4, 1), (4, 4, 1), (5, 1, 4, 4, 1)]
    for (name, base), x_shape, jit_compile in itertools.product(bases.items(), x_shapes, [False, True]):
        x = tf.cast(tf.random.stateless_uniform(x_shape, seed=[3, 4]) < 0.5, tf.float32)
        ours = distribution.MeanConvertibleIndependent(base(), reinterpreted_batch_ndims=3)
        reference = tfd.Independent(base(), reinterpreted_batch_ndims=3)
        log_prob = tf.function(ours.log_prob, jit_compile=jit_compile)
        np.testing.assert_allclose(
            log_prob(x), reference.log_prob(x), rtol=1e-6, atol=1e-5, err_msg=f"{name}, x {x_shape}, XLA {jit_compile}"
        )


def test_flat_event_log_prob_falls_back_where_x_broadcasts_inside_the_event():
    params = tf.random.stateless_normal([3, 4, 4, 1], seed=[1, 2])
    x = tf.ones([3, 1, 4, 1])  # broadcasts along the event's first axis: no flat view
    ours = distribution.MeanConvertibleIndependent(tfd.Bernoulli(logits=params, dtype=tf.float32), 3)
    reference = tfd.Independent(tfd.Bernoulli(logits=params, dtype=tf.float32), 3)
    np.testing.assert_allclose(ours.log_prob(x), reference.log_prob(x), rtol=1e-6)


def test_flat_event_log_prob_keeps_gradients():
    params = tf.Variable(tf.random.stateless_normal([2, 3, 3, 1], seed=[5, 6]))
    x = tf.cast(tf.random.stateless_uniform([2, 3, 3, 1], seed=[7, 8]) < 0.5, tf.float32)
    gradients = []
    for make in (distribution.MeanConvertibleIndependent, tfd.Independent):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(make(tfd.Bernoulli(logits=params, dtype=tf.float32), 3).log_prob(x))
        gradients.append(tape.gradient(loss, params))
    np.testing.assert_allclose(gradients[0], gradients[1], rtol=1e-6)
