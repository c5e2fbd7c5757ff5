"""Likelihoods for grey levels: the continuous Bernoulli and the discretized logistic mixture.

Densities against numerical integration, TFP and float64 NumPy; the mixture's
probabilities sum to one over the levels; gradients at the edge levels;
saving in a fresh process; training under XLA. A VAE with each likelihood
trains (under XLA) in tests/test_cli.py and exports in tests/test_export.py.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import integrate, special

from tfvae.layers import likelihoods
from tfvae.losses import NegativeLogLikelihood
from tests import fresh_process
from tests.helpers import assert_config_round_trip, serialized_round_trip

tfd = tfp.distributions

LEVELS = np.arange(256, dtype=np.float32) / 255  # the 8-bit grey levels x_j = j / 255


# -- Continuous Bernoulli ---------------------------------------------------------------------------------------

# lambda near 1/2 (|logit| < 0.27, lambda in (0.434, 0.566)) is where TFP switches to a Taylor series.
LAMBDAS = np.array([1e-3, 0.1, 0.3, 0.45, 0.499, 0.5, 0.5001, 0.52, 0.56, 0.7, 0.95, 0.999])


def test_continuous_bernoulli_normaliser_is_one_over_the_integral_of_the_unnormalised_density():
    logits = special.logit(LAMBDAS).astype(np.float32)
    x = np.float32(0.3)
    log_prob = likelihoods.IndependentContinuousBernoulli()(logits).log_prob(np.full_like(logits, x)).numpy()
    lambdas = special.expit(logits.astype(np.float64))  # the float32 logits' own lambdas
    log_normaliser = log_prob - (x * np.log(lambdas) + (1 - x) * np.log1p(-lambdas))
    integrals = [integrate.quad(lambda t, lam=lam: lam**t * (1 - lam) ** (1 - t), 0, 1, epsabs=0, epsrel=1e-12)[0]
                 for lam in lambdas]
    np.testing.assert_allclose(log_normaliser, -np.log(integrals), rtol=0, atol=2e-6)
    assert log_normaliser[LAMBDAS == 0.5] == pytest.approx(np.log(2), abs=1e-7)  # C(1/2) = 2


def test_continuous_bernoulli_log_prob_and_mean_are_tfps_summed_over_the_event():
    rng = np.random.default_rng(0)
    params = rng.normal(scale=3, size=(4, 6)).astype(np.float32)
    x = rng.uniform(size=(4, 2, 3)).astype(np.float32)
    distribution = likelihoods.IndependentContinuousBernoulli((2, 3))(params)
    assert distribution.batch_shape == [4] and distribution.event_shape == [2, 3]
    reference = tfd.ContinuousBernoulli(logits=params.reshape(4, 2, 3))
    np.testing.assert_allclose(distribution.log_prob(x), tf.reduce_sum(reference.log_prob(x), [1, 2]), rtol=1e-6)
    np.testing.assert_allclose(distribution.mean(), reference.mean(), rtol=1e-6)
    # And the closed form, in float64: log C(lambda) + x log lambda + (1 - x) log(1 - lambda).
    lambdas = special.expit(params.reshape(4, 2, 3).astype(np.float64))
    closed = np.log(2 * np.arctanh(1 - 2 * lambdas) / (1 - 2 * lambdas)) + x * np.log(lambdas) + (1 - x) * np.log1p(-lambdas)
    np.testing.assert_allclose(distribution.log_prob(x), closed.sum((1, 2)), rtol=1e-5)


# -- Discretized logistic mixture -------------------------------------------------------------------------------


def _mixture(loc, scale, logits):
    """A `DiscretizedLogisticMixtureDistribution` of 8 bits from `[batch, K]` NumPy parameters."""
    return likelihoods.DiscretizedLogisticMixtureDistribution(
        np.asarray(logits, np.float32), np.asarray(loc, np.float32), np.asarray(scale, np.float32))


def _reference_log_prob(x, loc, scale, logits):
    """log P(level of x) in float64 from the logistic CDF F: F(upper) - F(lower), the end levels taking the tails.

    The difference is taken on the side of the bin away from mu (survival
    functions above it) so that float64 keeps it exact in the tails too.
    `x: [batch]`, parameters `[batch, K]`.
    """
    x, loc, scale = (np.asarray(a, np.float64) for a in (x, loc, scale))
    level = np.round(x * 255)[:, None]
    upper, lower = ((level + 0.5) / 255 - loc) / scale, ((level - 0.5) / 255 - loc) / scale
    middle = np.where(lower > 0, special.expit(-lower) - special.expit(-upper), special.expit(upper) - special.expit(lower))
    probs = np.where(level == 0, special.expit(upper), np.where(level == 255, special.expit(-lower), middle))
    log_weights = special.log_softmax(np.asarray(logits, np.float64), axis=-1)
    return special.logsumexp(log_weights + np.log(probs), axis=-1)


# (loc, scale) per example, three components each: ordinary, a component at each edge, means outside
# [0, 1], the scale floor (one component all on one level), and scales far wider than [0, 1].
SETTINGS = {
    "ordinary": ([0.2, 0.5, 0.8], [0.05, 0.1, 0.02]),
    "outside": ([-3.0, 1.004, 7.0], [0.5, 0.001, 2.0]),
    "edges": ([0.0, 1.0, -0.002], [0.01, 0.01, 1e-4]),
    "floor": ([0.5, 100 / 255, 0.5 + 0.4 / 255], [1e-4, 1e-4, 1e-4]),
    "wide": ([0.5, -20.0, 30.0], [1e3, 50.0, 1e5]),
}
LOGITS = np.array([[0.3, -1.0, 2.0], [-30.0, 0.0, 30.0], [5.0, 5.0, -5.0]], np.float32)


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_mixture_probabilities_sum_to_one_over_the_256_levels(setting):
    loc, scale = SETTINGS[setting]
    distribution = _mixture([loc] * 3, [scale] * 3, LOGITS)  # batch 3: three weightings of the components
    log_probs = distribution.log_prob(LEVELS[:, None]).numpy()  # [256, 3]
    assert np.all(np.isfinite(log_probs)) and np.all(log_probs <= 0)
    np.testing.assert_allclose(np.exp(special.logsumexp(log_probs, axis=0)), 1.0, rtol=0, atol=1e-5)


def test_mixture_log_prob_is_the_logistic_cdf_difference_in_float64_even_deep_in_the_tails():
    rng = np.random.default_rng(1)
    loc = np.concatenate([rng.uniform(-0.2, 1.2, size=(6, 3)), [[0.5, 0.6, 0.4]]]).astype(np.float32)
    scale = np.concatenate([rng.uniform(0.005, 0.3, size=(6, 3)), [[0.004, 0.004, 0.004]]]).astype(np.float32)
    logits = rng.normal(size=(7, 3)).astype(np.float32)
    # Level 250 of the last row is 46 scales above every mean: F(upper) - F(lower) ~ e^-46, where
    # the difference of two float32 CDFs is 0 and PixelCNN++'s code uses the density at the middle.
    x = np.array([0, 1, 37, 128, 254, 255, 250], np.float32) / 255
    ours = _mixture(loc, scale, logits).log_prob(x).numpy()
    np.testing.assert_allclose(ours, _reference_log_prob(x, loc, scale, logits), rtol=1e-5)
    assert ours[-1] < -40
    # Values between levels count as the nearest level; beyond half a level outside [0, 1], nothing.
    np.testing.assert_allclose(_mixture(loc, scale, logits).log_prob(x + 0.3 / 255), ours, rtol=1e-6)
    outside = _mixture(loc[:2], scale[:2], logits[:2]).log_prob(np.array([-0.01, 1.01], np.float32)).numpy()
    assert np.all(outside == -np.inf)


def test_mixture_gradients_are_finite_at_the_edge_levels_and_between():
    # Parameters [batch, 3 K] for K = 2, scalar events: logits, locations, raw scales (softplus + 1e-4).
    params = tf.constant([[0.0, 1.0, -5.0, 6.0, -30.0, 30.0],
                          [3.0, -3.0, 0.0, 1.0, -30.0, -30.0],
                          [0.0, 0.0, 0.5, 0.5, 20.0, 40.0]], tf.float32)
    for level in (0, 1, 254, 255):
        with tf.GradientTape() as tape:
            tape.watch(params)
            log_prob = likelihoods.DiscretizedLogisticMixture((), num_components=2)(params).log_prob(
                tf.fill([3], level / 255))
        gradient = tape.gradient(log_prob, params).numpy()
        assert np.all(np.isfinite(log_prob)) and np.all(np.isfinite(gradient)), level
        assert np.all(np.abs(gradient).sum(-1) > 0), level


def test_mixture_mean_is_the_censored_mean_within_half_a_level_of_the_discrete_mean():
    loc = np.array([SETTINGS[name][0] for name in sorted(SETTINGS)], np.float32)
    scale = np.array([SETTINGS[name][1] for name in sorted(SETTINGS)], np.float32)
    logits = np.resize(LOGITS, loc.shape).astype(np.float32)
    distribution = _mixture(loc, scale, logits)
    mean = distribution.mean().numpy()
    discrete_mean = (np.exp(distribution.log_prob(LEVELS[:, None]).numpy()) * LEVELS[:, None]).sum(0)
    assert np.all(np.abs(mean - discrete_mean) <= 0.5 / 255 + 1e-6)
    # E[clip(Y, 0, 1)] = int_0^1 P(Y > t) dt, integrated numerically.
    weights = special.softmax(logits.astype(np.float64), -1)
    censored = [sum(w * integrate.quad(lambda t, m=m, s=s: special.expit((m - t) / s), 0, 1, points=[min(max(m, 0), 1)],
                                       limit=200)[0] for w, m, s in zip(weights[i], loc[i].astype(float), scale[i].astype(float)))
                for i in range(len(loc))]
    np.testing.assert_allclose(mean, censored, rtol=1e-5, atol=1e-6)


def test_mixture_samples_are_levels_drawn_with_the_levels_probabilities():
    loc, scale, logits = [[0.1, 0.6, 1.3]], [[0.03, 0.1, 0.2]], [[0.0, 1.0, -0.5]]
    distribution = _mixture(loc, scale, logits)
    samples = distribution.sample(20000, seed=(4, 5)).numpy()[:, 0]
    levels = np.round(samples * 255)
    np.testing.assert_array_equal(samples, (levels / 255).astype(np.float32))
    frequencies = np.bincount(levels.astype(int), minlength=256) / len(samples)
    probs = np.exp(distribution.log_prob(LEVELS[:, None]).numpy()[:, 0])
    assert frequencies[255] == pytest.approx(probs[255], abs=0.01)  # the mass beyond 1
    np.testing.assert_allclose(np.add.reduceat(frequencies, range(0, 256, 16)), np.add.reduceat(probs, range(0, 256, 16)),
                               atol=0.01)
    np.testing.assert_array_equal(distribution.sample(3, seed=(4, 5)), distribution.sample(3, seed=(4, 5)))


def test_mixture_layer_reads_parameters_as_logits_locations_raw_scales_parameter_major():
    rng = np.random.default_rng(2)
    params = rng.normal(size=(2, 3 * 4 * 6)).astype(np.float32)  # K = 4, event (2, 3)
    distribution = likelihoods.DiscretizedLogisticMixture((2, 3), num_components=4)(params)
    assert distribution.batch_shape == [2] and distribution.event_shape == [2, 3]
    parts = params.reshape(2, 3, 4, 2, 3).transpose(0, 1, 3, 4, 2)  # [batch, 3, 2, 3, K]
    base = distribution.distribution
    np.testing.assert_allclose(base.mixture_logits, parts[:, 0])
    np.testing.assert_allclose(base.loc, parts[:, 1])
    np.testing.assert_allclose(base.scale, np.logaddexp(0, parts[:, 2]) + 1e-4, rtol=1e-6)
    x = np.round(rng.uniform(size=(2, 2, 3)) * 255).astype(np.float32) / 255
    expected = _reference_log_prob(x.reshape(-1), parts[:, 1].reshape(-1, 4), base.scale.numpy().reshape(-1, 4),
                                   parts[:, 0].reshape(-1, 4)).reshape(2, 6).sum(-1)
    np.testing.assert_allclose(distribution.log_prob(x), expected, rtol=1e-5)
    assert likelihoods.DiscretizedLogisticMixture.params_size((2, 3), 4) == 72


# -- Both layers: configuration, errors, saving, training -------------------------------------------------------


def test_configs_round_trip_and_bad_arguments_are_refused_naming_them():
    for layer in (likelihoods.IndependentContinuousBernoulli((2, 3), "sample", validate_args=True),
                  likelihoods.DiscretizedLogisticMixture((4, 4, 1), 3, 5, "sample", scale_floor=1e-3, name="p")):
        restored = assert_config_round_trip(layer)
        assert serialized_round_trip(layer).get_config() == layer.get_config() and restored.num_params == layer.num_params
    assert likelihoods.DiscretizedLogisticMixture((4, 4, 1)).get_config()["num_components"] == 5
    with pytest.raises(ValueError, match=r"`num_components` must be an int >= 1; received 0"):
        likelihoods.DiscretizedLogisticMixture((2,), num_components=0)
    for bits in (0, 17, True, 8.0):
        with pytest.raises(ValueError, match=rf"`num_bits` must be an int from 1 to 16; received {bits!r}"):
            likelihoods.DiscretizedLogisticMixture((2,), num_bits=bits)
    with pytest.raises(ValueError, match="scale_floor"):
        likelihoods.DiscretizedLogisticMixture((2,), scale_floor=0.0)
    for conversion in ("mode", "stddev", "variance"):
        with pytest.raises(ValueError, match=rf"cannot be '{conversion}'.*use 'mean' or 'sample'"):
            likelihoods.DiscretizedLogisticMixture((2,), convert_to_tensor_fn=conversion)
    with pytest.raises(ValueError, match=r"needs 30 parameters.*\(event_shape=\(2,\)\).*24 per example"):
        likelihoods.DiscretizedLogisticMixture((2,))(keras.Input((24,)))
    with pytest.raises(ValueError, match="event_shape"):
        likelihoods.IndependentContinuousBernoulli((2, 0))


def test_validate_args_refuses_values_outside_zero_one():
    params = np.zeros((1, 6), np.float32)
    for distribution in (likelihoods.DiscretizedLogisticMixture((2,), 1, validate_args=True)(params),
                         likelihoods.DiscretizedLogisticMixture.new(params, (2,), 1, validate_args=True),
                         likelihoods.IndependentContinuousBernoulli.new(params[:, :2], (2,), validate_args=True)):
        assert np.all(np.isfinite(distribution.log_prob(np.array([[0.0, 1.0]], np.float32))))
        with pytest.raises(tf.errors.InvalidArgumentError):
            distribution.log_prob(np.array([[0.5, 1.2]], np.float32))


def _saved_models():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    y = (np.round(rng.uniform(size=(3, 2, 2, 1)) * 255) / 255).astype(np.float32)
    models = {}
    for name, layer in [("continuous_bernoulli", likelihoods.IndependentContinuousBernoulli((2, 2, 1))),
                        ("discretized", likelihoods.DiscretizedLogisticMixture((2, 2, 1), 3, scale_floor=1e-3))]:
        models[name] = keras.Sequential([keras.Input((4,)), keras.layers.Dense(layer.num_params), layer])
    return models, x, y


def _save_for_a_fresh_process(directory):
    models, x, y = _saved_models()
    np.savez(directory / "data.npz", x=x, y=y)
    expected = {}
    for name, model in models.items():
        model.save(directory / f"{name}.keras")
        distribution = model(x)
        expected[name] = {"log_prob": distribution.log_prob(y).numpy(), "mean": distribution.mean().numpy(),
                          "layer": json.loads(json.dumps(model.layers[-1].get_config()))}
    return expected


fresh_process.register("likelihoods: .keras files", _save_for_a_fresh_process, """
import json, numpy as np, keras
import tfvae.layers.likelihoods  # registers the classes
data, result = np.load(directory / "data.npz"), {}
for name in ["continuous_bernoulli", "discretized"]:
    model = keras.models.load_model(directory / f"{name}.keras")  # no custom_objects
    distribution = model(data["x"])
    result[name] = {"log_prob": distribution.log_prob(data["y"]).numpy(), "mean": distribution.mean().numpy(),
                    "predicted": model.predict(data["x"], verbose=0),
                    "layer": json.loads(json.dumps(model.layers[-1].get_config()))}
""")


def test_keras_file_round_trip_in_a_fresh_process(fresh_process_results):
    expected, restored = fresh_process_results("likelihoods: .keras files")
    assert sorted(restored) == sorted(expected) == ["continuous_bernoulli", "discretized"]
    for name in expected:
        for key in ("log_prob", "mean"):
            np.testing.assert_allclose(restored[name][key], expected[name][key], rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(restored[name]["predicted"], expected[name]["mean"], rtol=1e-5, atol=1e-6)
        assert restored[name]["layer"] == expected[name]["layer"], name


def test_layers_fit_under_xla_lowering_the_nll_and_predict_their_means():
    models, x, y = _saved_models()
    x, y = np.tile(x, (32, 1)), np.tile(y, (32, 1, 1, 1))
    for name, model in models.items():
        model.compile(keras.optimizers.Adam(0.05), loss=NegativeLogLikelihood(), jit_compile=True)
        history = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history["loss"]
        assert np.all(np.isfinite(history)) and history[-1] < history[0] - 1.0, (name, history)
        predicted = model.predict(x[:3], verbose=0)
        np.testing.assert_allclose(predicted, model(x[:3]).mean(), rtol=1e-5, atol=1e-6)
        assert predicted.shape == (3, 2, 2, 1) and np.all((predicted >= 0) & (predicted <= 1))
