"""convert_to_tensor_fn, DistributionLambda, and what every distribution layer does with them."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import layers
from tfvae.layers import conversion
from tfvae.losses import NegativeLogLikelihood
from tests import fresh_process
from tests.helpers import assert_config_round_trip, serialized_round_trip

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="tfvae_tests")
def normal_from_two_params(t):
    return tfd.Normal(loc=t[..., 0], scale=tf.math.softplus(t[..., 1]) + 1e-3)


@keras.saving.register_keras_serializable(package="tfvae_tests")
def mean_plus_stddev(distribution):
    return distribution.mean() + distribution.stddev()


@keras.saving.register_keras_serializable(package="tfvae_tests")
def three_samples(distribution):
    return distribution.sample(3)


def test_conversions_resolve_from_names_tfp_methods_and_properties():
    for name, method in conversion.CONVERSIONS.items():
        assert conversion.resolve_convert_to_tensor_fn(name) is method
        assert conversion.resolve_convert_to_tensor_fn(method) is method
        assert conversion.serialize_convert_to_tensor_fn(method) == name
    assert conversion.resolve_convert_to_tensor_fn(property(tfd.Distribution.mode)) is tfd.Distribution.mode
    assert conversion.resolve_convert_to_tensor_fn(mean_plus_stddev) is mean_plus_stddev


def test_bad_conversions_are_refused_naming_the_argument():
    with pytest.raises(ValueError, match=r"`convert_to_tensor_fn` must be one of .*'mean'.*received 'median'"):
        conversion.resolve_convert_to_tensor_fn("median")
    with pytest.raises(TypeError, match=r"`convert_to_tensor_fn` must be .*received 3 of type int"):
        layers.IndependentNormal(2, convert_to_tensor_fn=3)
    with pytest.raises(TypeError, match="`validate_args` must be a bool"):
        layers.IndependentNormal(2, validate_args="yes")


def test_a_registered_conversion_round_trips_and_a_lambda_cannot_be_saved():
    layer = layers.IndependentNormal(2, convert_to_tensor_fn=mean_plus_stddev)
    restored = assert_config_round_trip(layer)
    assert restored.convert_to_tensor_fn is mean_plus_stddev
    with pytest.raises(ValueError, match=r"`convert_to_tensor_fn`=.*lambda.* cannot be saved.*register_keras_serializable"):
        layers.IndependentNormal(2, convert_to_tensor_fn=lambda d: d.mean()).get_config()


@pytest.mark.parametrize("name", sorted(conversion.CONVERSIONS))
def test_a_layer_converts_with_its_conversion(name):
    params = tf.constant([[0.5, -1.0, 0.2, -3.0], [1.0, 2.0, 0.0, 1.0]])
    distribution = layers.IndependentNormal(2, convert_to_tensor_fn=name)(params)
    reference = tfd.Independent(tfd.Normal(distribution.distribution.loc, distribution.distribution.scale), 1)
    value = tf.convert_to_tensor(distribution)
    assert value.shape == (2, 2)
    if name == "sample":
        np.testing.assert_array_equal(value, tf.convert_to_tensor(distribution))  # one draw per distribution
        assert not np.allclose(value, reference.mean())
    else:
        np.testing.assert_allclose(value, getattr(reference, name)(), rtol=1e-6)
    # The conversion changes nothing else.
    np.testing.assert_allclose(distribution.log_prob(value), reference.log_prob(value), rtol=1e-6)


def test_the_default_conversion_is_the_mean_and_tfps_sample_is_one_argument_away():
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    mean_model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), layers.IndependentNormal(2)])
    sample_model = keras.Sequential([keras.Input((3,)), mean_model.layers[0], layers.IndependentNormal(2, "sample")])
    np.testing.assert_allclose(mean_model.predict(x, verbose=0), mean_model(x).mean(), rtol=1e-6)
    samples = sample_model.predict(x, verbose=0)
    standardized = (samples - mean_model(x).mean()) / mean_model(x).stddev()
    assert abs(np.mean(standardized)) < 0.3 and 0.7 < np.std(standardized) < 1.3


def test_a_conversion_survives_a_tf_function_boundary():
    """Keras' predict loop rebuilds the distribution from its type spec: the class carries the conversion."""
    layer = layers.IndependentNormal(2, convert_to_tensor_fn="stddev")
    params = tf.constant([[0.5, -1.0, 0.2, -3.0]])
    rebuilt = tf.function(layer)(params)
    assert type(rebuilt) is type(layer(params))
    np.testing.assert_allclose(tf.convert_to_tensor(rebuilt), layer(params).stddev(), rtol=1e-6)


def test_a_conversion_that_adds_axes_gives_the_symbolic_shape_keras_carries():
    inputs = keras.Input((3,))
    outputs = layers.IndependentNormal(2, convert_to_tensor_fn=three_samples)(keras.layers.Dense(4)(inputs))
    assert tuple(outputs.shape) == (3, None, 2)


def test_distribution_lambda_returns_its_distribution_and_trains_under_xla():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 1)).astype(np.float32)
    y = (2.0 * x[:, 0] + 0.5 * rng.normal(size=256)).astype(np.float32)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2), layers.DistributionLambda(normal_from_two_params)])
    assert isinstance(model(x), tfd.Normal) and model(x).batch_shape == [256]
    model.compile(keras.optimizers.Adam(0.05), loss=NegativeLogLikelihood(), jit_compile=True)
    history = model.fit(x, y, epochs=100, batch_size=32, verbose=0).history["loss"]
    assert history[-1] < history[0] - 0.5
    slope = model.predict(np.array([[1.0]], np.float32), verbose=0)[0] - model.predict(np.array([[0.0]], np.float32), verbose=0)[0]
    assert slope == pytest.approx(2.0, abs=0.3)
    assert np.mean(model(x).stddev()) == pytest.approx(0.5, abs=0.15)  # the learned noise tracks the true one


def test_distribution_lambda_takes_a_distribution_from_the_layer_before():
    params = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    normal = layers.DistributionLambda(lambda t: tfd.Normal(t[..., :2], tf.exp(t[..., 2:])))
    independent = layers.DistributionLambda(lambda d: tfd.Independent(d, 1), output_shape=(2,))
    distribution = independent(normal(params))
    assert distribution.batch_shape == [5] and distribution.event_shape == [2]
    inputs = keras.Input((4,))
    model = keras.Model(inputs, independent(normal(inputs)))
    np.testing.assert_allclose(model(params).log_prob(np.zeros([5, 2], np.float32)),
                               distribution.log_prob(np.zeros([5, 2], np.float32)), rtol=1e-6)


def test_distribution_lambda_refuses_what_it_cannot_use_or_save():
    with pytest.raises(TypeError, match="`make_distribution_fn` must be a callable"):
        layers.DistributionLambda("normal")
    with pytest.raises(TypeError, match="must return a tfd.Distribution; it returned"):
        layers.DistributionLambda(lambda t: t)(tf.zeros([2, 2]))
    with pytest.raises(ValueError, match="cannot be saved: its `make_distribution_fn`.*not registered"):
        layers.DistributionLambda(lambda t: tfd.Normal(t, 1.0)).get_config()
    restored = assert_config_round_trip(layers.DistributionLambda(normal_from_two_params, "sample", name="head"))
    assert restored.make_distribution_fn is normal_from_two_params and restored.convert_to_tensor_fn is tfd.Distribution.sample
    assert serialized_round_trip(restored).get_config() == restored.get_config()


def test_activity_regularizer_sees_the_distribution_and_is_averaged_over_the_batch():
    prior = tfd.Independent(tfd.Normal(tf.zeros(2), 1.0), 1)

    class KLToPrior(keras.regularizers.Regularizer):
        def __call__(self, distribution):
            return tf.reduce_sum(tfd.kl_divergence(distribution, prior))

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), layers.IndependentNormal(2, activity_regularizer=KLToPrior())])
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    distribution = model(x)
    (loss,) = model.losses
    np.testing.assert_allclose(loss, np.mean(tfd.kl_divergence(distribution, prior)), rtol=1e-6)


def test_validate_args_checks_values_at_run_time():
    poisson = layers.IndependentPoisson(validate_args=True)(tf.zeros([2, 1]))
    assert poisson.distribution.validate_args
    with pytest.raises(tf.errors.InvalidArgumentError):
        poisson.log_prob(tf.constant([-1.0, 0.5]))
    assert not layers.IndependentPoisson()(tf.zeros([2, 1])).distribution.validate_args


def _save_for_a_fresh_process(directory):
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4)(inputs)
    model = keras.Model(inputs, {
        "lambda": layers.DistributionLambda(normal_from_two_params, convert_to_tensor_fn="sample")(keras.layers.Dense(2)(inputs)),
        "logistic": layers.IndependentLogistic(2, convert_to_tensor_fn=mean_plus_stddev)(hidden),
        "poisson": layers.IndependentPoisson(4, convert_to_tensor_fn="mode")(hidden),
        "normal": layers.IndependentNormal(2, scale_floor=0.01)(hidden),
        "bernoulli": layers.IndependentBernoulli((2, 2))(hidden),
        "gaussian": layers.IndependentGaussian((2, 2))(hidden),
        "tril": layers.MultivariateNormalTriL(2, "stddev")(keras.layers.Dense(5)(inputs)),
    })
    gaussian = next(layer for layer in model.layers if isinstance(layer, layers.IndependentGaussian))
    gaussian.raw_scale.assign(np.full((2, 2), 0.3, np.float32))  # a weight of the distribution layer itself
    model.save(directory / "model.keras")
    expected = {name: tf.convert_to_tensor(d).numpy() for name, d in model(x).items() if name != "lambda"}
    expected["lambda_mean"] = model(x)["lambda"].mean().numpy()
    np.save(directory / "x.npy", x)
    return expected


fresh_process.register("conversion: .keras file", _save_for_a_fresh_process, """
import keras, numpy as np, tensorflow as tf
import tfvae
from tests import test_layers_conversion  # registers the test functions
model = keras.models.load_model(directory / "model.keras")
outputs = model(np.load(directory / "x.npy"))
result = {name: tf.convert_to_tensor(d).numpy() for name, d in outputs.items() if name != "lambda"}
result["lambda_mean"] = outputs["lambda"].mean().numpy()
result["lambda_type"] = type(outputs["lambda"]).__name__
""")


def test_conversions_and_distribution_lambda_reload_in_a_fresh_process(fresh_process_results):
    expected, reloaded = fresh_process_results("conversion: .keras file")
    reloaded = dict(reloaded)
    assert reloaded.pop("lambda_type") == "SampleConvertibleNormal"
    for name, value in expected.items():
        np.testing.assert_allclose(reloaded[name], value, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("identifier", [{"a": 1}, {}, {"class_name": "function", "config": "nope", "module": "x"}])
def test_a_dict_that_is_not_a_serialized_function_is_refused_by_name(identifier):
    # {"a": 1} recursed until RecursionError: deserializing it returns the dict itself.
    with pytest.raises(TypeError, match="`convert_to_tensor_fn` must be one of"):
        layers.IndependentNormal(2, convert_to_tensor_fn=identifier)
