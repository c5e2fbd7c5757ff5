"""MixtureSameFamily, MixtureNormal, MixtureLogistic: densities against SciPy, moments, training, saving.

Also the `.keras` round trip in a fresh process of the categorical layers
(tfvae.layers.categorical), in the one fresh process all test modules share (tests/fresh_process.py).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import special, stats

from tfvae.layers import categorical, distribution, independent, mixture
from tfvae.losses import NegativeLogLikelihood
from tests import fresh_process
from tests.helpers import assert_config_round_trip, serialized_round_trip

tfd = tfp.distributions

RNG = np.random.default_rng(0)
# Two examples, k = 3 components over events of shape (2,): 3 logits, then per
# component 2 means and 2 raw scales, 3 (1 + 4) = 15 values.
PARAMS = RNG.normal(size=(2, 15)).astype(np.float32)
X = RNG.normal(size=(2, 2)).astype(np.float32)


def _hand_parts(params, num_components=3, event_size=2, scale_floor=1e-3):
    """log pi `[batch, k]`, locations and scales `[batch, k, n]`, in float64, as the module docstring lays them out."""
    params = params.astype(np.float64)
    log_weights = special.log_softmax(params[:, :num_components], axis=-1)
    components = params[:, num_components:].reshape(-1, num_components, 2, event_size)
    return log_weights, components[:, :, 0], np.logaddexp(0, components[:, :, 1]) + scale_floor


def _hand_log_prob(params, x, density, **kwargs):
    """log sum_k pi_k prod_e p_k(x_e), with `density` a scipy.stats family (norm, logistic)."""
    log_weights, loc, scale = _hand_parts(params, **kwargs)
    per_component = density.logpdf(x[:, None, :], loc, scale).sum(-1)  # [batch, k]
    return special.logsumexp(log_weights + per_component, axis=-1)


def test_params_size_is_tfps():
    for num_components in (1, 3):
        for event_shape, size in (((), 1), (2, 2), ((2, 3), 6)):
            # TFP: MixtureSameFamily.params_size(k, Independent*.params_size(event_shape)) = k (1 + 2 n).
            expected = num_components * (1 + 2 * size)
            assert mixture.MixtureNormal.params_size(num_components, event_shape) == expected
            assert mixture.MixtureLogistic.params_size(num_components, event_shape) == expected
            assert mixture.MixtureNormal(num_components, event_shape).num_params == expected
        assert mixture.MixtureSameFamily.params_size(num_components, 7) == num_components * 8
    assert mixture.MixtureSameFamily(4, independent.MultivariateNormalTriL(3)).num_params == 4 * (1 + 3 + 6)


def test_mixture_normal_log_prob_matches_scipy():
    distribution = mixture.MixtureNormal(3, 2)(PARAMS)
    assert distribution.batch_shape == [2] and distribution.event_shape == [2]
    np.testing.assert_allclose(distribution.log_prob(X), _hand_log_prob(PARAMS, X, stats.norm), rtol=1e-5)


def test_mixture_normal_of_scalars_matches_scipy():
    params = RNG.normal(size=(4, 9)).astype(np.float32)  # k = 3, event ()
    x = RNG.normal(size=(4,)).astype(np.float32)
    distribution = mixture.MixtureNormal(3)(params)
    assert distribution.batch_shape == [4] and distribution.event_shape == []
    expected = _hand_log_prob(params, x[:, None], stats.norm, event_size=1)
    np.testing.assert_allclose(distribution.log_prob(x), expected, rtol=1e-5)


def test_mixture_logistic_log_prob_matches_scipy():
    distribution = mixture.MixtureLogistic(3, 2, scale_floor=0.05)(PARAMS)
    expected = _hand_log_prob(PARAMS, X, stats.logistic, scale_floor=0.05)
    np.testing.assert_allclose(distribution.log_prob(X), expected, rtol=1e-5)


def test_mixture_normal_mean_and_variance_are_the_closed_forms():
    distribution = mixture.MixtureNormal(3, 2)(PARAMS)
    log_weights, loc, scale = _hand_parts(PARAMS)
    weights = np.exp(log_weights)[..., None]  # [batch, k, 1]
    mean = (weights * loc).sum(1)
    variance = (weights * (scale**2 + loc**2)).sum(1) - mean**2
    np.testing.assert_allclose(distribution.mean(), mean, rtol=1e-5)
    np.testing.assert_allclose(distribution.variance(), variance, rtol=1e-5)
    np.testing.assert_allclose(distribution.stddev(), np.sqrt(variance), rtol=1e-5)


def test_mixture_logistic_variance_is_the_closed_form():
    distribution = mixture.MixtureLogistic(3, 2)(PARAMS)
    log_weights, loc, scale = _hand_parts(PARAMS)
    weights = np.exp(log_weights)[..., None]
    mean = (weights * loc).sum(1)
    np.testing.assert_allclose(distribution.variance(), (weights * (scale**2 * np.pi**2 / 3 + loc**2)).sum(1) - mean**2,
                               rtol=1e-5)


def test_mixture_same_family_of_independent_normals_is_mixture_normal():
    ours = mixture.MixtureSameFamily(3, independent.IndependentNormal(2))(PARAMS)
    np.testing.assert_allclose(ours.log_prob(X), mixture.MixtureNormal(3, 2)(PARAMS).log_prob(X), rtol=1e-6)
    np.testing.assert_allclose(ours.mean(), mixture.MixtureNormal(3, 2)(PARAMS).mean(), rtol=1e-6)


def test_mixture_same_family_of_full_covariance_gaussians_matches_scipy():
    component = independent.MultivariateNormalTriL(2)
    params = RNG.normal(size=(2, 2 * (1 + 5))).astype(np.float32)
    distribution = mixture.MixtureSameFamily(2, component)(params)
    components = component(params[:, 2:].reshape(4, 5))  # component j of example i at row 2 i + j
    covariances = components.covariance().numpy().reshape(2, 2, 2, 2)
    log_weights = special.log_softmax(params[:, :2].astype(np.float64), axis=-1)
    expected = [special.logsumexp([log_weights[i, j] + stats.multivariate_normal(
        params[i, 2 + 5 * j: 4 + 5 * j], covariances[i, j]).logpdf(X[i]) for j in range(2)]) for i in range(2)]
    np.testing.assert_allclose(distribution.log_prob(X), expected, rtol=1e-5)


def test_mixture_same_family_of_a_distribution_lambda_infers_the_component_size():
    component = distribution.DistributionLambda(lambda t: tfd.Normal(t[..., 0], tf.math.softplus(t[..., 1])))
    layer = mixture.MixtureSameFamily(2, component)
    assert layer.num_params is None
    params = PARAMS[:, :6]  # 2 logits, then (loc, raw scale) twice
    x = X[:, 0]
    log_weights = special.log_softmax(params[:, :2].astype(np.float64), -1)
    loc, scale = params[:, 2::2], np.logaddexp(0, params[:, 3::2].astype(np.float64))
    expected = special.logsumexp(log_weights + stats.norm.logpdf(x[:, None], loc, scale), axis=-1)
    np.testing.assert_allclose(layer(params).log_prob(x), expected, rtol=1e-5)
    assert tuple(keras.Model(inputs := keras.Input((6,)), layer(inputs)).outputs[0].shape) == (None,)
    with pytest.raises(ValueError, match=r"num_components \* \(1 \+ c\).*7 per example"):
        mixture.MixtureSameFamily(2, component)(keras.Input((7,)))


def test_scale_floor_bounds_every_component_scale():
    params = np.concatenate([np.zeros([1, 3]), np.full([1, 12], -100.0)], axis=1).astype(np.float32)
    for layer in (mixture.MixtureNormal(3, 2, scale_floor=0.2), mixture.MixtureLogistic(3, 2, scale_floor=0.2)):
        np.testing.assert_allclose(layer(params).components_distribution.distribution.scale, np.full([1, 3, 2], 0.2),
                                   rtol=1e-6)


@pytest.mark.parametrize("make_layer", [lambda **kw: mixture.MixtureNormal(3, 2, **kw),
                                        lambda **kw: mixture.MixtureLogistic(3, 2, **kw),
                                        lambda **kw: mixture.MixtureSameFamily(3, independent.IndependentNormal(2), **kw)],
                         ids=["normal", "logistic", "same_family"])
def test_conversion_is_the_mean_by_default_a_sample_on_request_and_never_the_mode(make_layer):
    distribution = make_layer()(PARAMS)
    np.testing.assert_allclose(tf.convert_to_tensor(distribution), distribution.mean(), rtol=1e-6)
    sample = tf.convert_to_tensor(make_layer(convert_to_tensor_fn="sample")(PARAMS))
    assert sample.shape == (2, 2) and np.all(np.isfinite(sample))
    distribution = make_layer(convert_to_tensor_fn="stddev")(PARAMS)
    np.testing.assert_allclose(tf.convert_to_tensor(distribution), distribution.stddev(), rtol=1e-6)
    with pytest.raises(ValueError, match="cannot be 'mode'.*no closed-form mode"):
        make_layer(convert_to_tensor_fn="mode")


def test_validate_args_checks_the_mixture_and_its_components():
    for layer in (mixture.MixtureNormal(3, 2, validate_args=True),
                  mixture.MixtureSameFamily(3, independent.IndependentNormal(2, validate_args=True))):
        distribution = layer(PARAMS)
        assert distribution.components_distribution.validate_args
        np.testing.assert_allclose(distribution.log_prob(X), _hand_log_prob(PARAMS, X, stats.norm), rtol=1e-5)
    assert mixture.MixtureNormal.new(PARAMS, 3, 2, validate_args=True).validate_args


def test_new_is_the_layers_distribution():
    np.testing.assert_allclose(mixture.MixtureNormal.new(PARAMS, 3, 2).log_prob(X), _hand_log_prob(PARAMS, X, stats.norm),
                               rtol=1e-5)
    np.testing.assert_allclose(mixture.MixtureLogistic.new(PARAMS, 3, (2,), scale_floor=0.05).log_prob(X),
                               _hand_log_prob(PARAMS, X, stats.logistic, scale_floor=0.05), rtol=1e-5)
    np.testing.assert_allclose(mixture.MixtureSameFamily.new(PARAMS, 3, independent.IndependentNormal(2)).log_prob(X),
                               _hand_log_prob(PARAMS, X, stats.norm), rtol=1e-5)


def test_configs_round_trip_with_the_component_layer_nested():
    layers = [
        mixture.MixtureNormal(3, (2, 2), "sample", validate_args=True, scale_floor=0.01, name="mdn"),
        mixture.MixtureLogistic(2, convert_to_tensor_fn="variance"),
        mixture.MixtureSameFamily(4, independent.MultivariateNormalTriL(3, scale_floor=0.1), "stddev"),
        mixture.MixtureSameFamily(2, independent.IndependentGaussian(3, scale=0.5)),
    ]
    for layer in layers:
        restored = assert_config_round_trip(layer)
        assert serialized_round_trip(layer).get_config() == layer.get_config()
        assert restored.num_params == layer.num_params
    nested = layers[2].get_config()["component_layer"]
    assert nested["class_name"] == "MultivariateNormalTriL" and nested["config"]["scale_floor"] == 0.1
    assert set(layers[0].get_config()) >= {"num_components", "event_shape", "convert_to_tensor_fn", "validate_args",
                                           "scale_floor"}


def test_a_component_layer_that_cannot_be_saved_is_refused_when_the_mixture_is_made():
    for bad in (lambda t: tfd.Normal(t[..., 0], 1.0), keras.layers.Dense(2), "IndependentNormal"):
        with pytest.raises(TypeError, match="`component_layer` must be a tfvae distribution layer"):
            mixture.MixtureSameFamily(2, bad)


def test_bad_arguments_are_refused():
    for bad in (0, -1, 2.0, True, None):
        with pytest.raises(ValueError, match="num_components.*received"):
            mixture.MixtureNormal(bad)
    with pytest.raises(ValueError, match="num_components"):
        mixture.MixtureSameFamily(0, independent.IndependentNormal(2))
    with pytest.raises(ValueError, match="component_params_size"):
        mixture.MixtureSameFamily.params_size(2, 0)
    with pytest.raises(ValueError, match="event_shape"):
        mixture.MixtureLogistic(2, event_shape=(2, 0))
    with pytest.raises(ValueError, match="scale_floor"):
        mixture.MixtureNormal(2, scale_floor=0.0)
    with pytest.raises(ValueError, match="convert_to_tensor_fn"):
        mixture.MixtureNormal(2, convert_to_tensor_fn="median")
    with pytest.raises(ValueError, match=r"needs 15 parameters.*16 per example"):
        mixture.MixtureNormal(3, 2)(keras.Input((16,)))


@pytest.mark.parametrize("make_layer", [lambda: mixture.MixtureNormal(2, 2), lambda: mixture.MixtureLogistic(2, 2),
                                        lambda: mixture.MixtureSameFamily(2, independent.MultivariateNormalTriL(2))],
                         ids=["normal", "logistic", "same_family_of_tril"])
def test_fit_under_xla_lowers_the_loss_and_predict_gives_the_mean(make_layer):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(128, 3)).astype(np.float32)
    y = (x[:, :2] + 0.1 * rng.normal(size=(128, 2))).astype(np.float32)
    layer = make_layer()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(layer.num_params), layer])
    model.compile(keras.optimizers.Adam(0.05), loss=NegativeLogLikelihood(), jit_compile=True)
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    predicted = model.predict(x, batch_size=50, verbose=0)
    assert predicted.shape == (128, 2)
    np.testing.assert_allclose(predicted, model(x).mean(), rtol=1e-5, atol=1e-6)


def test_mixture_density_network_recovers_both_branches_of_y_equals_plus_or_minus_x():
    """y = +x or -x with equal chance (noise 0.05), x in [0, 1]: the two heaviest components sit on the branches."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(1024, 1)).astype(np.float32)
    y = (np.where(rng.random(1024) < 0.5, 1.0, -1.0) * x[:, 0] + 0.05 * rng.normal(size=1024)).astype(np.float32)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(mixture.MixtureNormal.params_size(3)), mixture.MixtureNormal(3)])
    model.compile(keras.optimizers.Adam(0.02), loss=NegativeLogLikelihood(), jit_compile=True)
    model.fit(x, y, batch_size=64, epochs=20, verbose=0)  # 320 steps
    probes = np.array([0.3, 0.6, 0.9], np.float32)
    predicted = model(probes[:, None])
    weights = predicted.mixture_distribution.probs_parameter().numpy()  # [3, k]
    means = predicted.components_distribution.mean().numpy()  # [3, k]
    heaviest = np.argsort(weights, axis=1)[:, -2:]
    branches = np.sort(np.take_along_axis(means, heaviest, axis=1), axis=1)
    np.testing.assert_allclose(branches, np.stack([-probes, probes], axis=1), atol=0.1)
    assert np.all(np.take_along_axis(weights, heaviest, axis=1).sum(1) > 0.8)


def _saved_models():
    """name -> (model, x, y): every layer of tfvae.layers.mixture and .categorical after a Dense layer."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    one_hot = np.eye(3, dtype=np.float32)[[0, 2, 1, 2]]
    gaussian = independent.IndependentGaussian(2)  # a component with a weight of its own
    layers = {
        "mixture_normal": (mixture.MixtureNormal(3, 2, scale_floor=0.01), x[:, :2]),
        "mixture_logistic": (mixture.MixtureLogistic(2, convert_to_tensor_fn="sample"), x[:, 0]),
        "mixture_same_family": (mixture.MixtureSameFamily(3, gaussian), x[:, 1:]),
        "one_hot_categorical": (categorical.OneHotCategorical(3, sample_dtype="int32"), one_hot),
        "categorical_mixture": (categorical.CategoricalMixtureOfOneHotCategorical(3, 2, "mode"), one_hot),
    }
    models = {}
    for name, (layer, y) in layers.items():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(layer.num_params), layer])
        models[name] = (model, x, y)
    gaussian.raw_scale.assign([0.3, -0.7])
    return models


def _outputs(model, x, y):
    distribution = model(x)
    return {"log_prob": distribution.log_prob(y).numpy().tolist(), "mean": distribution.mean().numpy().tolist()}


def _save_for_a_fresh_process(directory):
    expected = {}
    for name, (model, x, y) in _saved_models().items():
        model.save(directory / f"{name}.keras")
        np.savez(directory / f"{name}.npz", x=x, y=y)
        expected[name] = {**_outputs(model, x, y), "layer": json.loads(json.dumps(model.layers[-1].get_config()))}
    return expected


fresh_process.register("mixture and categorical: .keras files", _save_for_a_fresh_process, """
import json, numpy as np, keras
import tfvae.layers.mixture, tfvae.layers.categorical  # registers the classes (tfvae.layers exports them)
result = {}
for name in ["categorical_mixture", "mixture_logistic", "mixture_normal", "mixture_same_family", "one_hot_categorical"]:
    model = keras.models.load_model(directory / f"{name}.keras")  # no custom_objects
    data = np.load(directory / f"{name}.npz")
    distribution = model(data["x"])
    result[name] = {"log_prob": distribution.log_prob(data["y"]).numpy().tolist(),
                    "mean": distribution.mean().numpy().tolist(),
                    "layer": json.loads(json.dumps(model.layers[-1].get_config())),
                    "predicted": model.predict(data["x"], verbose=0).tolist()}
""")


def test_keras_file_round_trip_in_a_fresh_process_for_every_layer(fresh_process_results):
    expected, restored = fresh_process_results("mixture and categorical: .keras files")
    assert sorted(restored) == sorted(expected)
    for name in expected:
        for key in ("log_prob", "mean"):
            np.testing.assert_allclose(restored[name][key], expected[name][key], rtol=1e-5, atol=1e-6, err_msg=name)
        assert restored[name]["layer"] == expected[name]["layer"], name
    assert np.asarray(restored["categorical_mixture"]["predicted"]).sum(-1).tolist() == [1.0] * 4  # "mode": one-hot
    assert np.asarray(restored["one_hot_categorical"]["predicted"]).shape == (4, 3)
    np.testing.assert_allclose(restored["mixture_same_family"]["predicted"], expected["mixture_same_family"]["mean"],
                               rtol=1e-5)
