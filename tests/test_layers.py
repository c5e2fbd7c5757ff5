import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats

from tfvae import layers
from tfvae.losses import NegativeLogLikelihood
from tests.helpers import assert_config_round_trip, serialized_round_trip

tfd = tfp.distributions

LAYER_CASES = [
    (lambda: layers.IndependentNormal(3), 6, (3,)),
    (lambda: layers.IndependentNormal((2, 2)), 8, (2, 2)),
    (lambda: layers.MultivariateNormalTriL(3), 9, (3,)),
    (lambda: layers.IndependentBernoulli((4, 2, 1)), 8, (4, 2, 1)),
    (lambda: layers.IndependentGaussian((2, 3)), 6, (2, 3)),
    (lambda: layers.IndependentGaussian(5, scale=0.3), 5, (5,)),
    (lambda: layers.IndependentLogistic((3, 2)), 12, (3, 2)),
    (lambda: layers.IndependentPoisson(4), 4, (4,)),
    (lambda: layers.IndependentNormal(), 2, ()),
    (lambda: layers.IndependentBernoulli(), 1, ()),
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


FLOORS = [1e-3, 0.5, 1.0, 2.0]
SCALED_LAYERS = {
    "independent_normal": lambda floor: layers.IndependentNormal(2, scale_floor=floor),
    "multivariate_normal_tril": lambda floor: layers.MultivariateNormalTriL(2, scale_floor=floor),
    "independent_gaussian": lambda floor: layers.IndependentGaussian(2, scale_floor=floor),
}


def _raw_params(layer, raw_scale):
    """Parameters with zero means and every raw scale (or Cholesky entry) `raw_scale`."""
    if isinstance(layer, layers.IndependentGaussian):
        return np.zeros([1, 2], np.float32)
    return np.concatenate([np.zeros([1, 2]), np.full([1, layer.num_params - 2], raw_scale)], axis=1).astype(np.float32)


def _marginal_scales(distribution):
    if isinstance(distribution, tfd.MultivariateNormalTriL):
        return tf.linalg.diag_part(distribution.scale.to_dense()).numpy()
    return distribution.stddev().numpy()


@pytest.mark.parametrize("kind", ["independent_normal", "multivariate_normal_tril"])
def test_scale_floor_bounds_every_scale_from_below(kind):
    for scale_floor in FLOORS:
        layer = SCALED_LAYERS[kind](scale_floor)
        scales = _marginal_scales(layer(_raw_params(layer, -100.0)))
        np.testing.assert_allclose(scales, np.full([1, 2], scale_floor), rtol=1e-6, err_msg=str(scale_floor))


@pytest.mark.parametrize("kind", sorted(SCALED_LAYERS))
def test_scale_starts_at_the_documented_initial_scale(kind):
    """A learned scale starts at max(1, 2 floor), to float32 rounding; so does a raw parameter of its inverse."""
    for scale_floor in FLOORS:
        layer = SCALED_LAYERS[kind](scale_floor)
        raw = float(layers.initial_scale_initializer(scale_floor)(shape=(), dtype="float32"))
        expected = np.full([1, 2], layers.initial_scale(scale_floor), np.float32)
        np.testing.assert_array_max_ulp(_marginal_scales(layer(_raw_params(layer, raw))), expected, maxulp=1)


@pytest.mark.parametrize("kind", sorted(SCALED_LAYERS))
def test_any_positive_scale_floor_trains_to_finite_loss(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = (x[:, :2] + 0.1 * rng.normal(size=(16, 2))).astype(np.float32)
    for scale_floor in FLOORS:
        layer = SCALED_LAYERS[kind](scale_floor)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(layer.num_params), layer])
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=NegativeLogLikelihood())
        before = [w.numpy() for w in model.trainable_weights]
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # 4 steps
        assert np.all(np.isfinite(history.history["loss"])), scale_floor
        assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)), scale_floor
        assert np.all(np.isfinite(model(x).log_prob(y))), scale_floor
        assert np.all(_marginal_scales(model(x)) >= scale_floor), scale_floor


def test_independent_gaussian_density_matches_tfp_normal():
    means = np.array([[0.5, -1.0, 2.0]], np.float32)
    x = np.array([[0.0, 0.0, 1.0]], np.float32)
    distribution = layers.independent_gaussian(means, (3,), tf.constant([0.5, 1.0, 2.0]))
    expected = tfd.Normal(means[0], [0.5, 1.0, 2.0]).log_prob(x[0]).numpy().sum()
    np.testing.assert_allclose(distribution.log_prob(x), [expected], rtol=1e-6)
    assert distribution.batch_shape == [1] and distribution.event_shape == [3]


def test_pure_functions_match_their_layers():
    params = np.random.default_rng(0).normal(size=(4, 9)).astype(np.float32)
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(
        layers.independent_normal(params[:, :6], (3,), 0.1).log_prob(x),
        layers.IndependentNormal(3, scale_floor=0.1)(params[:, :6]).log_prob(x),
    )
    np.testing.assert_allclose(
        layers.multivariate_normal_tril(params, 3, 0.1).log_prob(x),
        layers.MultivariateNormalTriL(3, scale_floor=0.1)(params).log_prob(x),
    )
    np.testing.assert_allclose(
        layers.independent_bernoulli(params[:, :3], (3,)).log_prob((x > 0).astype(np.float32)),
        layers.IndependentBernoulli(3)(params[:, :3]).log_prob((x > 0).astype(np.float32)),
    )


def test_layers_with_large_floors_round_trip_through_config():
    for make_layer in SCALED_LAYERS.values():
        layer = make_layer(2.0)
        assert_config_round_trip(layer)
        assert serialized_round_trip(layer).get_config() == layer.get_config()


def test_multivariate_normal_tril_is_tfps_fill_scale_tril_and_differentiates_under_xla():
    params = tf.random.stateless_normal([4, 3 + 6], seed=[1, 2])
    ours = layers.MultivariateNormalTriL(3, scale_floor=0.01)(params)
    bijector = tfp.bijectors.FillScaleTriL(diag_bijector=layers.scale_bijector(0.01), diag_shift=None)
    np.testing.assert_allclose(ours.scale.to_dense(), bijector(params[:, 3:]), rtol=1e-6)

    layer = layers.MultivariateNormalTriL(3)
    z = tf.random.stateless_normal([4, 3], seed=[3, 4])

    @tf.function(jit_compile=True)
    def gradient(params):
        with tf.GradientTape() as tape:
            tape.watch(params)
            log_prob = tf.reduce_sum(layer(params).log_prob(z))
        return tape.gradient(log_prob, params)

    with tf.GradientTape() as tape:
        tape.watch(params)
        eager_log_prob = tf.reduce_sum(layer(params).log_prob(z))
    np.testing.assert_allclose(gradient(params), tape.gradient(eager_log_prob, params), rtol=1e-4, atol=1e-5)


def test_logistic_and_poisson_densities_match_tfp():
    params = np.array([[0.5, -1.0, 0.2, -3.0], [1.0, 2.0, 0.0, 1.0]], np.float32)
    x = np.array([[0.3, 4.0], [-2.0, 1.5]], np.float32)
    logistic = layers.IndependentLogistic(2)(params)
    scale = np.log1p(np.exp(params[:, 2:])) + 1e-3
    np.testing.assert_allclose(logistic.log_prob(x), stats.logistic.logpdf(x, params[:, :2], scale).sum(-1), rtol=1e-5)
    counts = np.array([[0.0, 3.0, 1.0, 7.0], [2.0, 0.0, 5.0, 1.0]], np.float32)
    poisson = layers.IndependentPoisson(4)(params)
    np.testing.assert_allclose(poisson.log_prob(counts), stats.poisson.logpmf(counts, np.exp(params)).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(poisson.mean(), np.exp(params), rtol=1e-6)


def test_scalar_events_as_tfp_layers_default():
    params = np.array([[0.5, -1.0], [1.0, 2.0]], np.float32)
    normal = layers.IndependentNormal()(params)
    assert normal.batch_shape == [2] and normal.event_shape == []
    y = np.array([0.1, -0.4], np.float32)
    np.testing.assert_allclose(normal.log_prob(y), stats.norm.logpdf(y, params[:, 0], np.log1p(np.exp(params[:, 1])) + 1e-3), rtol=1e-5)
    assert layers.IndependentNormal.params_size() == 2 and layers.IndependentPoisson.params_size() == 1


def test_tfp_argument_order_and_static_new():
    """`tfpl.IndependentNormal(shape, convert_to_tensor_fn, validate_args)` means the same here."""
    layer = layers.IndependentNormal(2, tfd.Distribution.sample, True)
    assert layer.convert_to_tensor_fn is tfd.Distribution.sample and layer.validate_args
    assert layers.MultivariateNormalTriL(2, "mode").convert_to_tensor_fn is tfd.Distribution.mode
    assert layers.IndependentBernoulli(3, "sample", sample_dtype="int32")(tf.zeros([1, 3])).sample(seed=(1, 2)).dtype == tf.int32
    params = tf.random.stateless_normal([3, 6], seed=(1, 2))
    for layer_class, event in [(layers.IndependentNormal, (3,)), (layers.IndependentLogistic, (3,)),
                               (layers.IndependentPoisson, (6,)), (layers.IndependentBernoulli, (2, 3))]:
        new = layer_class.new(params, event)
        np.testing.assert_allclose(new.mean(), layer_class(event)(params).mean(), rtol=1e-6, err_msg=layer_class.__name__)
    new = layers.MultivariateNormalTriL.new(params[:, :5], 2, validate_args=True)
    assert new.validate_args
    np.testing.assert_allclose(new.covariance(), layers.MultivariateNormalTriL(2)(params[:, :5]).covariance(), rtol=1e-6)


def test_event_shapes_are_checked_naming_the_argument():
    for bad in [0, -1, (2, 0), 2.5, "3", (2, None), True]:
        with pytest.raises(ValueError, match=r"`event_shape` must be a positive int or a tuple of positive ints"):
            layers.IndependentLogistic(bad)
    with pytest.raises(ValueError, match=r"`event_size` must be a positive int or a non-empty tuple"):
        layers.MultivariateNormalTriL(())


@pytest.mark.parametrize("make_layer, num_params, event_shape", LAYER_CASES)
def test_layer_trains_under_xla_and_predicts_its_conversion(make_layer, num_params, event_shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    layer = make_layer()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(num_params), layer])
    y = model(x).sample(seed=(1, 2)).numpy()  # a target the model can fit exactly
    model.layers[0].set_weights([w + 0.5 for w in model.layers[0].get_weights()])
    model.compile(keras.optimizers.Adam(0.05), loss=NegativeLogLikelihood(), jit_compile=True)
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0).history["loss"]
    assert np.isfinite(history).all() and history[-1] < history[0]
    np.testing.assert_allclose(model.predict(x, verbose=0), model(x).mean(), rtol=1e-5, atol=1e-6)


# Regressions from tests/test_properties.py (bad input found by hypothesis) -------------------------


@pytest.mark.parametrize("event_shape", [b"x", {}, {2: 3}, {2}, "22"])
def test_event_shape_of_bytes_text_dicts_or_sets_is_refused_by_name(event_shape):
    # b"x" was read as (120,) and {} as a scalar event.
    with pytest.raises(ValueError, match="`event_shape` must be a positive int or"):
        layers.IndependentNormal(event_shape)


@pytest.mark.parametrize("make_layer", [lambda: layers.IndependentGaussian(10**12), lambda: layers.IndependentNormal((2**16, 2**16)),
                                        lambda: layers.OneHotCategorical(2**31)])
def test_event_shapes_past_2_to_the_31_values_are_refused_before_any_memory_is_asked_for(make_layer):
    # IndependentGaussian(10**12) was a ResourceExhaustedError (a 3.6 TiB variable).
    with pytest.raises(ValueError, match=r"`event_(shape|size)` is too large: .* more than the 2147483647"):
        make_layer()


@pytest.mark.parametrize("sample_dtype", [3, True, 2.0, "string", "complex64"])
def test_bernoulli_sample_dtype_must_name_an_integer_float_or_bool_dtype(sample_dtype):
    # tf.as_dtype(3) is int32 (the enum value): 3 was silently int32, "string" failed only when sampling.
    with pytest.raises(ValueError, match="`sample_dtype` must be None or an integer, float or bool dtype"):
        layers.IndependentBernoulli(2, sample_dtype=sample_dtype)
    assert layers.IndependentBernoulli(2, sample_dtype="bool").sample_dtype == "bool"


@pytest.mark.parametrize("inputs", [np.full([3, 4], "a"), np.zeros([3, 4], np.complex64)], ids=["strings", "complex"])
def test_inputs_that_are_not_real_numbers_are_refused_by_name(inputs):
    # Strings were an UnimplementedError (Cast string to float); complex numbers lost their imaginary part.
    with pytest.raises(TypeError, match=r"`inputs` must hold real numbers .* received dtype (string|complex64)"):
        layers.IndependentNormal(2)(inputs)


def test_a_scalar_input_is_refused_by_name():
    with pytest.raises(ValueError, match=r"needs `inputs` of shape \[batch, \.\.\.\]"):
        layers.IndependentPoisson()(np.float32(1.0))


@pytest.mark.parametrize("make_layer, argument", [
    (lambda: layers.IndependentNormal(2, scale_floor=1e300), "scale_floor"),  # an infinite float32 floor
    (lambda: layers.IndependentGaussian(2, scale=1e39), "scale"),
])
def test_numbers_past_float32s_largest_are_refused_by_name(make_layer, argument):
    with pytest.raises(ValueError, match=rf"`{argument}` must be at most 3\.40282e\+38 \(float32's largest number\)"):
        make_layer()

