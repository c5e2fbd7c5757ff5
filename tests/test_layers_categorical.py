"""OneHotCategorical and CategoricalMixtureOfOneHotCategorical: densities, conversions, training, configs.

The `.keras` round trip in a fresh process, for these layers too, is in
tests/test_layers_mixture.py (one TensorFlow start-up for all of them).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import special

from tfvae.layers import categorical
from tfvae.losses import NegativeLogLikelihood
from tests.helpers import assert_config_round_trip, serialized_round_trip

tfd = tfp.distributions

# Two examples, k = 2 components over d = 3 classes: [a_1, a_2 | l_1 (3) | l_2 (3)].
MIXTURE_PARAMS = np.array([
    [0.5, -1.0, 2.0, 0.0, -1.0, -0.5, 1.5, 0.3],
    [-2.0, 1.0, 0.1, 0.2, 0.3, 3.0, -3.0, 0.0],
], np.float32)
ONE_HOTS = np.eye(3, dtype=np.float32)


def _hand_mixture_probabilities(params, num_components=2, event_size=3):
    """p(x = e_j) = sum_k softmax(a)_k softmax(l_k)_j, `[batch, d]`, in float64."""
    params = params.astype(np.float64)
    weights = special.softmax(params[:, :num_components], axis=-1)  # [batch, k]
    components = special.softmax(params[:, num_components:].reshape(-1, num_components, event_size), axis=-1)
    return np.einsum("bk,bkd->bd", weights, components)


def test_params_size_is_tfps():
    for event_size in (1, 3, 10):
        assert categorical.OneHotCategorical.params_size(event_size) == event_size
        for num_components in (1, 2, 5):
            # TFP: MixtureSameFamily.params_size(k, OneHotCategorical.params_size(d)) = k * (1 + d).
            expected = num_components * (1 + event_size)
            assert categorical.CategoricalMixtureOfOneHotCategorical.params_size(event_size, num_components) == expected
            assert categorical.CategoricalMixtureOfOneHotCategorical(event_size, num_components).num_params == expected


def test_one_hot_categorical_matches_tfd_with_the_same_logits():
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 3.0]], np.float32)
    ours = categorical.OneHotCategorical(3)(logits)
    reference = tfd.OneHotCategorical(logits=logits, dtype=tf.float32)
    assert ours.batch_shape == [2] and ours.event_shape == [3]
    for x in ONE_HOTS:
        x = np.tile(x, [2, 1])
        np.testing.assert_allclose(ours.log_prob(x), reference.log_prob(x), rtol=1e-6)
    np.testing.assert_allclose(ours.mean(), special.softmax(logits, axis=-1), rtol=1e-6)
    np.testing.assert_array_equal(ours.mode(), [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(ours.variance(), reference.variance(), rtol=1e-6)


def test_one_hot_categorical_reads_every_value_after_the_batch_axis():
    logits = np.random.default_rng(0).normal(size=(2, 3, 1)).astype(np.float32)
    np.testing.assert_allclose(categorical.OneHotCategorical(3)(logits).mean(),
                               categorical.OneHotCategorical(3)(logits[..., 0]).mean())


def test_mixture_matches_hand_computation():
    distribution = categorical.CategoricalMixtureOfOneHotCategorical(3, 2)(MIXTURE_PARAMS)
    expected = _hand_mixture_probabilities(MIXTURE_PARAMS)
    assert distribution.batch_shape == [2] and distribution.event_shape == [3]
    log_probs = np.stack([distribution.log_prob(np.tile(x, [2, 1])) for x in ONE_HOTS], axis=-1)
    np.testing.assert_allclose(log_probs, np.log(expected), rtol=1e-5)
    np.testing.assert_allclose(distribution.mean(), expected, rtol=1e-5)
    np.testing.assert_allclose(distribution.log_mean(), np.log(expected), rtol=1e-5)
    np.testing.assert_allclose(distribution.variance(), expected * (1 - expected), rtol=1e-5)
    np.testing.assert_array_equal(distribution.mode(), np.eye(3)[expected.argmax(axis=-1)])


def test_mixture_of_one_component_is_a_one_hot_categorical():
    logits = np.array([[0.3, 2.0, -1.0, 0.5]], np.float32)
    mixture = categorical.CategoricalMixtureOfOneHotCategorical(3, 1)(np.concatenate([[[7.0]], logits[:, 1:]], 1))
    np.testing.assert_allclose(mixture.mean(), categorical.OneHotCategorical(3)(logits[:, 1:]).mean(), rtol=1e-6)


@pytest.mark.parametrize("kind", ["one_hot", "mixture"])
def test_conversion_is_the_mean_by_default_and_a_one_hot_sample_or_mode_on_request(kind):
    def make(**kwargs):
        if kind == "one_hot":
            return categorical.OneHotCategorical(3, **kwargs), MIXTURE_PARAMS[:, :3]
        return categorical.CategoricalMixtureOfOneHotCategorical(3, 2, **kwargs), MIXTURE_PARAMS

    layer, params = make()
    distribution = layer(params)
    np.testing.assert_allclose(tf.convert_to_tensor(distribution), distribution.mean(), rtol=1e-6)
    layer, params = make(convert_to_tensor_fn="sample", sample_dtype="int32")
    sample = tf.convert_to_tensor(layer(params))
    assert sample.dtype == tf.int32 and sample.shape == (2, 3)
    np.testing.assert_array_equal(tf.reduce_sum(sample, axis=-1), [1, 1])
    layer, params = make(convert_to_tensor_fn="mode")
    distribution = layer(params)
    np.testing.assert_array_equal(tf.convert_to_tensor(distribution), np.eye(3)[np.argmax(distribution.mean(), -1)])
    assert tf.convert_to_tensor(distribution).dtype == tf.float32  # sample_dtype None: the parameters' dtype
    if kind == "one_hot":  # TFP's docstring suggests converting to the logits
        layer, params = make(convert_to_tensor_fn=tfd.OneHotCategorical.logits)
        np.testing.assert_allclose(tf.convert_to_tensor(layer(params)), params)


def test_symbolic_output_has_the_sample_dtype_for_samples_and_float_for_probabilities():
    inputs = keras.Input((8,))
    sampled = categorical.CategoricalMixtureOfOneHotCategorical(3, 2, "sample", sample_dtype="int32")(inputs)
    probabilities = categorical.CategoricalMixtureOfOneHotCategorical(3, 2, sample_dtype="int32")(inputs)
    assert (sampled.dtype, tuple(sampled.shape)) == ("int32", (None, 3))
    assert (probabilities.dtype, tuple(probabilities.shape)) == ("float32", (None, 3))
    predicted = keras.Model(inputs, sampled).predict(MIXTURE_PARAMS, verbose=0)
    assert predicted.dtype == np.int32 and np.all(predicted.sum(-1) == 1)


def test_validate_args_refuses_values_that_are_not_one_hot():
    for layer in (categorical.OneHotCategorical(3, validate_args=True),
                  categorical.CategoricalMixtureOfOneHotCategorical(3, 2, validate_args=True)):
        distribution = layer(np.zeros([2, layer.num_params], np.float32))
        np.testing.assert_allclose(distribution.log_prob(ONE_HOTS[:2]), np.log([1 / 3, 1 / 3]), rtol=1e-6)
        with pytest.raises(tf.errors.InvalidArgumentError):
            distribution.log_prob(np.full([2, 3], 0.5, np.float32))


def test_new_is_the_layers_distribution():
    np.testing.assert_allclose(categorical.OneHotCategorical.new(MIXTURE_PARAMS[:, :3], 3).mean(),
                               categorical.OneHotCategorical(3)(MIXTURE_PARAMS[:, :3]).mean())
    mixture = categorical.CategoricalMixtureOfOneHotCategorical.new(MIXTURE_PARAMS, 3, 2, dtype="int32")
    np.testing.assert_allclose(mixture.mean(), _hand_mixture_probabilities(MIXTURE_PARAMS), rtol=1e-5)
    assert mixture.sample(seed=(1, 2)).dtype == tf.int32  # TFP's `new` ignored `dtype`


def test_configs_round_trip():
    for layer in (categorical.OneHotCategorical(4, "mode", sample_dtype="int32", validate_args=True, name="classes"),
                  categorical.CategoricalMixtureOfOneHotCategorical(4, 3, "sample", sample_dtype="int64")):
        restored = assert_config_round_trip(layer)
        assert serialized_round_trip(layer).get_config() == layer.get_config()
        assert restored.num_params == layer.num_params
    config = categorical.CategoricalMixtureOfOneHotCategorical(4, 3).get_config()
    assert {key: config[key] for key in ("event_size", "num_components", "convert_to_tensor_fn", "sample_dtype",
                                         "validate_args")} == {"event_size": 4, "num_components": 3,
                                                               "convert_to_tensor_fn": "mean", "sample_dtype": None,
                                                               "validate_args": False}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="event_size.*received 0"):
        categorical.OneHotCategorical(0)
    with pytest.raises(ValueError, match="event_size"):
        categorical.OneHotCategorical((2, 2))
    with pytest.raises(ValueError, match="num_components.*received 0"):
        categorical.CategoricalMixtureOfOneHotCategorical(3, 0)
    with pytest.raises(ValueError, match="num_components.*received True"):
        categorical.CategoricalMixtureOfOneHotCategorical(3, True)
    with pytest.raises(ValueError, match="sample_dtype.*'string'"):
        categorical.OneHotCategorical(3, sample_dtype="string")
    with pytest.raises(ValueError, match="sample_dtype.*'nonsense'"):
        categorical.CategoricalMixtureOfOneHotCategorical(3, 2, sample_dtype="nonsense")
    with pytest.raises(ValueError, match="convert_to_tensor_fn"):
        categorical.OneHotCategorical(3, convert_to_tensor_fn="median")
    with pytest.raises(ValueError, match=r"needs 8 parameters.*9 per example"):
        categorical.CategoricalMixtureOfOneHotCategorical(3, 2)(keras.Input((9,)))
    with pytest.raises(ValueError, match=r"needs 3 parameters.*4 per example"):
        categorical.OneHotCategorical(3)(keras.Input((4,)))


@pytest.mark.parametrize("kind", ["one_hot", "mixture"])
def test_fit_under_xla_lowers_the_loss_and_predict_gives_class_probabilities(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 2)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)  # classes 0, 1, 2
    y = ONE_HOTS[labels]
    layer = categorical.OneHotCategorical(3) if kind == "one_hot" else categorical.CategoricalMixtureOfOneHotCategorical(3, 2)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(layer.num_params), layer])
    model.compile(keras.optimizers.Adam(0.05), loss=NegativeLogLikelihood(), jit_compile=True)
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    assert history.history["loss"][-1] < 0.9 * history.history["loss"][0]
    predicted = model.predict(x, batch_size=50, verbose=0)
    assert predicted.shape == (128, 3)
    np.testing.assert_allclose(predicted, model(x).mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predicted.sum(-1), np.ones(128), rtol=1e-5)


@pytest.mark.parametrize("sample_dtype", [3, 1.0, "bool", "string"])
def test_sample_dtype_given_as_a_number_or_a_non_numeric_dtype_is_refused_by_name(sample_dtype):
    # 3 was accepted as int32 (tf.as_dtype reads ints as enum values).
    with pytest.raises(ValueError, match="`sample_dtype` must be None or an integer or float dtype"):
        categorical.OneHotCategorical(3, sample_dtype=sample_dtype)
    with pytest.raises(ValueError, match="`dtype` must be None or an integer or float dtype"):
        categorical.OneHotCategorical.new(np.zeros([1, 3], np.float32), 3, dtype=sample_dtype)
