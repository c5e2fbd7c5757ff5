"""KLDivergenceRegularizer and KLDivergenceAddLoss: exact values, Monte Carlo convergence, training, saving.

Expected values are TFP's closed forms (`tfd.kl_divergence`) on the very
distribution the layer returned, so the checks are exact to float32 rounding;
Monte Carlo estimates are checked against them within five standard errors
computed from the same test points.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests import fresh_process
from tests.helpers import assert_config_round_trip, serialized_round_trip
from tfvae import priors
from tfvae.export import export_model
from tfvae.layers import distribution, independent, kl, kl_prior, variable
from tfvae.losses import NegativeLogLikelihood

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="tests_kl")
def shifted_normal(t):
    """A 2-d prior N(1, 2^2 I), ignoring its (dummy) input: for a Keras-model `distribution_b`."""
    loc = tf.ones([2]) + 0.0 * tf.cast(t, tf.float32)
    return tfd.Independent(tfd.Normal(loc=loc, scale=2.0), reinterpreted_batch_ndims=1)


@keras.saving.register_keras_serializable(package="tests_kl")
def wide_normal():
    """A 2-d prior N(0, 3^2 I): for a function `distribution_b`."""
    return tfd.MultivariateNormalDiag(loc=tf.zeros([2]), scale_diag=tf.fill([2], 3.0))


@keras.saving.register_keras_serializable(package="tests_kl")
def two_samples(d):
    return d.sample(2)


@keras.saving.register_keras_serializable(package="tests_kl")
def unit_normal_loc(t):
    return tfd.Independent(tfd.Normal(loc=t, scale=1.0), reinterpreted_batch_ndims=1)


def _normal_params(batch, event_size, seed):
    return tf.random.stateless_normal([batch, 2 * event_size], seed=[seed, 1])


def _tril_params(batch, event_size, seed):
    size = independent.MultivariateNormalTriL.params_size(event_size)
    return tf.random.stateless_normal([batch, size], seed=[seed, 2])


def _priors_2d():
    """Two-dimensional priors in every accepted form, each with a posterior layer TFP has a closed-form KL against."""
    keras_model = keras.Sequential([distribution.DistributionLambda(shifted_normal)])
    normal, tril = independent.IndependentNormal, independent.MultivariateNormalTriL
    return {
        "prior layer": (priors.StandardNormal(2), normal),
        "Independent(Normal)": (tfd.Independent(tfd.Normal(loc=[0.5, -1.0], scale=[1.5, 0.7]), 1), normal),
        "MultivariateNormalDiag": (tfd.MultivariateNormalDiag(loc=[0.2, 0.1], scale_diag=[2.0, 0.5]), tril),
        "MultivariateNormalTriL": (tfd.MultivariateNormalTriL(loc=[0.0, 1.0], scale_tril=[[1.0, 0.0], [0.3, 0.8]]), tril),
        "Keras model": (keras_model, normal),
        "function": (wide_normal, tril),
    }


def _params(layer_class, batch, seed):
    make = _normal_params if layer_class is independent.IndependentNormal else _tril_params
    return make(batch, 2, seed)


def test_regularizer_adds_weighted_exact_kl_divided_by_the_batch_size():
    batch = 5
    for name, (prior, layer_class) in _priors_2d().items():
        regularizer = kl.KLDivergenceRegularizer(prior, use_exact_kl=True, weight=0.3)
        layer = layer_class(2, activity_regularizer=regularizer)
        posterior = layer(_params(layer_class, batch, 1))
        expected = 0.3 * tf.reduce_sum(tfd.kl_divergence(posterior, kl_prior.distribution_of(prior))) / batch
        assert len(layer.losses) == 1, name
        np.testing.assert_allclose(layer.losses[0], expected, rtol=1e-5, err_msg=f"{name}, {layer_class.__name__}")
    # On a DistributionLambda, as TFP's tests put it.
    prior = tfd.Independent(tfd.Normal(loc=[0.5, -1.0], scale=[1.5, 0.7]), 1)
    layer = distribution.DistributionLambda(unit_normal_loc, activity_regularizer=kl.KLDivergenceRegularizer(prior, use_exact_kl=True))
    posterior = layer(tf.random.stateless_normal([batch, 2], seed=[1, 3]))
    np.testing.assert_allclose(layer.losses[0], tf.reduce_sum(tfd.kl_divergence(posterior, prior)) / batch, rtol=1e-5)


def test_add_loss_adds_weighted_exact_kl_summed_over_the_batch_and_passes_its_input_through():
    batch = 6
    for name, (prior, layer_class) in _priors_2d().items():
        add_loss = kl.KLDivergenceAddLoss(prior, use_exact_kl=True, weight=2.5)
        posterior = layer_class(2)(_params(layer_class, batch, 3))
        assert add_loss(posterior) is posterior
        expected = 2.5 * tf.reduce_sum(tfd.kl_divergence(posterior, kl_prior.distribution_of(prior)))
        assert len(add_loss.losses) == 1
        np.testing.assert_allclose(add_loss.losses[0], expected, rtol=1e-5, err_msg=name)
    # Without a weight: the plain sum; symbolically, the output spec is the input's.
    prior = priors.StandardNormal(3)
    add_loss = kl.KLDivergenceAddLoss(prior, use_exact_kl=True)
    posterior = independent.IndependentNormal(3)(_normal_params(4, 3, 4))
    add_loss(posterior)
    np.testing.assert_allclose(add_loss.losses[0], tf.reduce_sum(tfd.kl_divergence(posterior, prior.distribution())), rtol=1e-5)
    symbolic = keras.Input((3,))
    output = add_loss(symbolic)
    assert output.shape == symbolic.shape and output.dtype == symbolic.dtype


def _log_ratio(posterior, prior, test_points):
    return posterior.log_prob(test_points) - prior.log_prob(test_points)


def test_monte_carlo_kl_uses_the_sampled_conversion_and_converges_to_the_exact_kl():
    """With `convert_to_tensor_fn=lambda d: d.sample(n)` the test points are the conversion itself."""
    num_samples, batch = 20000, 3
    prior = tfd.MultivariateNormalDiag(loc=[0.5, -0.5], scale_diag=[1.2, 0.8])
    regularizer = kl.KLDivergenceRegularizer(prior, test_points_reduce_axis=0, weight=1.0)
    layer = independent.MultivariateNormalTriL(2, convert_to_tensor_fn=lambda d: d.sample(num_samples),
                                               activity_regularizer=regularizer)
    posterior = layer(_tril_params(batch, 2, 5))
    test_points = tf.convert_to_tensor(posterior)  # the cached draw: the one the KL used
    assert test_points.shape == (num_samples, batch, 2)
    log_ratio = _log_ratio(posterior, prior, test_points)  # [num_samples, batch]
    np.testing.assert_allclose(layer.losses[0], tf.reduce_sum(tf.reduce_mean(log_ratio, 0)) / batch, rtol=1e-5)
    per_sample = tf.reduce_mean(log_ratio, axis=1)  # the estimate is the mean of these
    standard_error = float(tf.math.reduce_std(per_sample)) / np.sqrt(num_samples)
    exact = float(tf.reduce_mean(tfd.kl_divergence(posterior, prior)))
    assert abs(float(layer.losses[0]) - exact) < 5 * standard_error, (float(layer.losses[0]), exact, standard_error)

    # KLDivergenceAddLoss's default reduces over every axis: the mean over the samples and the batch.
    add_loss = kl.KLDivergenceAddLoss(prior, test_points_fn=lambda d: d.sample(num_samples, seed=(3, 4)))
    add_loss(posterior)
    log_ratio = _log_ratio(posterior, prior, posterior.sample(num_samples, seed=(3, 4)))
    np.testing.assert_allclose(add_loss.losses[0], tf.reduce_mean(log_ratio), rtol=1e-5)
    assert abs(float(add_loss.losses[0]) - exact) < 5 * standard_error


def test_default_test_points_are_samples_even_where_the_layer_converts_to_its_mean():
    """Under tfvae's "mean" conversion the default draws fresh samples; TFP's convert_to_tensor would not."""
    batch = 4000  # one example repeated: the penalty is the mean of `batch` one-sample estimates
    params = tf.tile(_normal_params(1, 2, 6), [batch, 1])
    prior = tfd.Independent(tfd.Normal(loc=[1.0, -1.0], scale=[0.5, 2.0]), 1)

    layer = independent.IndependentNormal(2, activity_regularizer=kl.KLDivergenceRegularizer(prior))
    posterior = layer(params)
    exact = float(tfd.kl_divergence(posterior, prior)[0])
    log_ratio = _log_ratio(posterior, prior, posterior.sample(batch, seed=(1, 2)))
    standard_error = float(tf.math.reduce_std(log_ratio)) / np.sqrt(batch)
    assert abs(float(layer.losses[0]) - exact) < 5 * standard_error, (float(layer.losses[0]), exact, standard_error)

    at_the_mean = kl.KLDivergenceRegularizer(prior, test_points_fn="convert_to_tensor")
    layer = independent.IndependentNormal(2, activity_regularizer=at_the_mean)
    posterior = layer(params)
    np.testing.assert_allclose(layer.losses[0], _log_ratio(posterior, prior, posterior.mean())[0], rtol=1e-5)
    assert abs(float(layer.losses[0]) - exact) > 20 * standard_error  # not a KL estimate: why it is not the default

    # Under the "sample" conversion the default reads the conversion: the draw the next layers see.
    layer = independent.IndependentNormal(2, convert_to_tensor_fn="sample", activity_regularizer=kl.KLDivergenceRegularizer(prior))
    posterior = layer(params[:7])
    expected = tf.reduce_sum(_log_ratio(posterior, prior, tf.convert_to_tensor(posterior))) / 7
    np.testing.assert_allclose(layer.losses[0], expected, rtol=1e-5)


def test_exact_kl_without_a_closed_form_names_both_distributions():
    mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=[0.0, 0.0]),
                                    tfd.MultivariateNormalDiag(loc=[[-1.0, 0.0], [1.0, 0.0]]))
    layer = independent.MultivariateNormalTriL(2, activity_regularizer=kl.KLDivergenceRegularizer(mixture, use_exact_kl=True))
    with pytest.raises(ValueError, match=r"use_exact_kl=True.*KL\[MultivariateNormalTriL \|\| MixtureSameFamily\].*use_exact_kl=False"):
        layer(_tril_params(2, 2, 7))
    # The Monte Carlo estimate works for the same pair.
    layer = independent.MultivariateNormalTriL(2, activity_regularizer=kl.KLDivergenceRegularizer(mixture))
    layer(_tril_params(2, 2, 7))
    assert np.isfinite(layer.losses[0])


def _regularized_regression(regularizer, layer_class=independent.IndependentNormal):
    inputs = keras.Input((4,))
    params = keras.layers.Dense(layer_class.params_size(2))(inputs)
    outputs = layer_class(2, activity_regularizer=regularizer)(params)
    return keras.Model(inputs, outputs)


def test_fit_loss_is_nll_plus_the_kl_term_and_trains_under_xla():
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = (x[:, :2] + 0.1).astype("float32")
    model = _regularized_regression(kl.KLDivergenceRegularizer(priors.StandardNormal(2), use_exact_kl=True, weight=0.5))
    model.compile(keras.optimizers.Adam(0.05), loss=NegativeLogLikelihood(), jit_compile=True)

    posterior = model(x)
    assert len(model.losses) == 1
    nll = -tf.reduce_mean(posterior.log_prob(y))
    kl_term = 0.5 * tf.reduce_sum(tfd.kl_divergence(posterior, priors.StandardNormal(2).distribution())) / len(x)
    np.testing.assert_allclose(model.losses[0], kl_term, rtol=1e-5)
    loss = model.evaluate(x, y, batch_size=len(x), verbose=0)
    np.testing.assert_allclose(loss, nll + kl_term, rtol=1e-5)

    history = model.fit(x, y, batch_size=8, epochs=8, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0], history
    assert model.predict(x, verbose=0).shape == (16, 2)


def test_trainable_prior_is_trained_through_add_loss_and_refused_by_the_regularizer():
    prior = priors.DiagonalNormal(2)
    with pytest.raises(ValueError, match=r"`distribution_b` 'diagonal_normal' has variables.*KLDivergenceAddLoss"):
        kl.KLDivergenceRegularizer(prior)

    inputs = keras.Input((4,))
    params = keras.layers.Dense(independent.IndependentNormal.params_size(2))(inputs)
    posterior = independent.IndependentNormal(2, convert_to_tensor_fn="sample")(params)
    model = keras.Model(inputs, kl.KLDivergenceAddLoss(prior, weight=1 / 8)(posterior))
    assert {id(v) for v in prior.trainable_variables} <= {id(v) for v in model.trainable_variables}
    assert len(model.trainable_variables) == 2 + 2

    model.compile(keras.optimizers.Adam(0.05), loss=NegativeLogLikelihood(), jit_compile=True)
    x = np.random.default_rng(1).normal(size=(16, 4)).astype("float32")
    y = (x[:, :2] + 3.0).astype("float32")  # far from N(0, I): the prior moves towards the posteriors
    start = prior.loc.numpy().copy()
    history = model.fit(x, y, batch_size=8, epochs=5, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0], history
    assert np.all(prior.loc.numpy() > start), prior.loc.numpy()
    assert model.predict(x, verbose=0).shape == (16, 2)


def test_keras_model_prior_with_variables_is_tracked_by_add_loss_as_in_tfp():
    """TFP's pattern: the prior a Sequential of a VariableLayer and a DistributionLambda, called with 0."""
    prior_model = keras.Sequential([variable.VariableLayer(shape=[2]), distribution.DistributionLambda(unit_normal_loc)])
    with pytest.raises(ValueError, match="has variables"):
        kl.KLDivergenceRegularizer(prior_model)
    add_loss = kl.KLDivergenceAddLoss(prior_model, use_exact_kl=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), independent.IndependentNormal(2), add_loss])
    assert len(model.trainable_variables) == 2 + 1
    posterior = model(np.ones([2, 3], "float32"))
    standard_normal = tfd.Independent(tfd.Normal(tf.zeros(2), 1.0), 1)
    np.testing.assert_allclose(model.losses[0], tf.reduce_sum(tfd.kl_divergence(posterior, standard_normal)), rtol=1e-5)


def test_variables_inside_a_plain_distribution_are_refused():
    for prior in [tfd.Normal(tf.Variable(0.0), 1.0), tfd.Independent(tfd.Normal(keras.Variable([0.0, 0.0]), 1.0), 1)]:
        for make in [kl.KLDivergenceRegularizer, kl.KLDivergenceAddLoss]:
            with pytest.raises(ValueError, match=r"holds variables.*tfvae prior layer"):
                make(prior)


def _round_trip_cases():
    cases = [(kl.KLDivergenceRegularizer(prior, use_exact_kl=True, weight=0.3), layer_class)
             for prior, layer_class in _priors_2d().values()]
    normal = independent.IndependentNormal
    cases += [
        (kl.KLDivergenceRegularizer(priors.StandardNormal(2)), normal),
        (kl.KLDivergenceRegularizer(priors.StandardNormal(2), test_points_reduce_axis=0, test_points_fn=two_samples), normal),
        (kl.KLDivergenceRegularizer(priors.StandardNormal(2), test_points_reduce_axis=(0, 1), test_points_fn="sample"), normal),
        (kl.KLDivergenceRegularizer(priors.StandardNormal(2), test_points_reduce_axis=None, test_points_fn=tf.convert_to_tensor),
         normal),
        (kl.KLDivergenceAddLoss(priors.DiagonalNormal(2), use_exact_kl=True, weight=4, name="kl"), normal),
        (kl.KLDivergenceAddLoss(tfd.Independent(tfd.Normal(tf.zeros(2), 1), 1), test_points_reduce_axis=[0]), normal),
    ]
    return cases


def test_config_and_serialized_round_trips_keep_the_penalty():
    for case, layer_class in _round_trip_cases():
        restored = assert_config_round_trip(case)
        assert serialized_round_trip(case).get_config() == case.get_config()
        if case.use_exact_kl:
            posterior = layer_class(2)(_params(layer_class, 3, 8))
            np.testing.assert_allclose(restored._arguments.penalty(posterior), case._arguments.penalty(posterior), rtol=1e-6,
                                       err_msg=str(case.get_config()))
    # On its layer, through the layer's config.
    layer = independent.IndependentNormal(2, activity_regularizer=kl.KLDivergenceRegularizer(priors.StandardNormal(2), weight=2.0))
    restored = assert_config_round_trip(layer)
    assert isinstance(restored.activity_regularizer, kl.KLDivergenceRegularizer)
    assert restored.activity_regularizer.weight == 2.0


def test_unsavable_arguments_work_in_memory_and_refuse_get_config_naming_the_argument():
    posterior = independent.IndependentNormal(2)(_normal_params(2, 2, 9))
    gamma = tfd.Independent(tfd.Gamma(concentration=[1.0, 2.0], rate=1.0), 1)
    for regularizer, argument in [
        (kl.KLDivergenceRegularizer(priors.StandardNormal(2), test_points_fn=lambda d: d.sample()), "test_points_fn"),
        (kl.KLDivergenceRegularizer(lambda: tfd.MultivariateNormalDiag(tf.zeros(2))), "distribution_b"),
        (kl.KLDivergenceRegularizer(tfd.Independent(tfd.Laplace(tf.zeros(2), 1.0), 1)), "distribution_b"),
    ]:
        assert np.isfinite(regularizer(posterior))
        with pytest.raises(ValueError, match=rf"`{argument}`.*cannot be saved"):
            regularizer.get_config()
    assert np.isfinite(kl.KLDivergenceRegularizer(gamma)(tfd.Independent(tfd.Gamma([2.0, 2.0], 1.0), 1)))


def test_bad_arguments_are_refused_naming_the_argument():
    prior = priors.StandardNormal(2)
    for weight in [-1.0, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match=r"`weight` must be None or a finite number >= 0; received"):
            kl.KLDivergenceRegularizer(prior, weight=weight)
    for weight in ["1", True, [1.0], tf.Variable(1.0)]:
        with pytest.raises(TypeError, match=r"`weight` must be None or a finite number >= 0; received"):
            kl.KLDivergenceAddLoss(prior, weight=weight)
    for distribution_b in [3, "standard_normal", tf.zeros([2]), keras.layers.Dense(2)]:
        with pytest.raises(TypeError, match=r"`distribution_b`"):
            kl.KLDivergenceRegularizer(distribution_b)
    with pytest.raises(TypeError, match=r"`distribution_b` .* must return a tfd.Distribution; it returned"):
        kl.KLDivergenceAddLoss(lambda: tf.zeros([2]))
    with pytest.raises(TypeError, match=r"`use_exact_kl` must be a bool"):
        kl.KLDivergenceRegularizer(prior, use_exact_kl="yes")
    with pytest.raises(TypeError, match=r"`test_points_reduce_axis` must be None"):
        kl.KLDivergenceRegularizer(prior, test_points_reduce_axis=1.5)
    with pytest.raises(ValueError, match=r"`test_points_fn` must be one of \['convert_to_tensor', 'sample', 'sampled'\]"):
        kl.KLDivergenceRegularizer(prior, test_points_fn="mean")
    with pytest.raises(TypeError, match=r"`test_points_fn` must be one of"):
        kl.KLDivergenceAddLoss(prior, test_points_fn=3)
    with pytest.raises(TypeError, match=r"needs the distribution a layer returns; received"):
        kl.KLDivergenceRegularizer(prior)(tf.zeros([2, 2]))


def test_probabilistic_layers_vae_trains():
    """TFP's "Probabilistic Layers VAE" tutorial in miniature: MC KL regularizer on the encoder, Bernoulli decoder."""
    input_shape, encoded_size = (28, 28, 1), 2
    prior = tfd.Independent(tfd.Normal(loc=tf.zeros(encoded_size), scale=1), reinterpreted_batch_ndims=1)
    encoder = keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Flatten(),
        keras.layers.Dense(independent.MultivariateNormalTriL.params_size(encoded_size)),
        independent.MultivariateNormalTriL(encoded_size, convert_to_tensor_fn="sample",
                                           activity_regularizer=kl.KLDivergenceRegularizer(prior, weight=1.0)),
    ])
    decoder = keras.Sequential([
        keras.Input((encoded_size,)),
        keras.layers.Dense(independent.IndependentBernoulli.params_size(input_shape)),
        independent.IndependentBernoulli(input_shape),
    ])
    vae = keras.Model(encoder.inputs[0], decoder(encoder.outputs[0]))
    vae.compile(keras.optimizers.Adam(1e-2), loss=NegativeLogLikelihood(), jit_compile=True)
    x = (np.random.default_rng(2).random((64, *input_shape)) < 0.2).astype("float32")
    history = vae.fit(x, x, batch_size=32, epochs=6, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0] - 50, history
    vae(x[:4])
    assert len(vae.losses) == 1 and np.isfinite(vae.losses[0])
    assert vae.predict(x[:4], verbose=0).shape == (4, *input_shape)


def _save_for_a_fresh_process(directory):
    x = np.random.default_rng(3).normal(size=(6, 4)).astype("float32")
    y = x[:, :2]
    models = {
        "regularized": _regularized_regression(
            kl.KLDivergenceRegularizer(tfd.MultivariateNormalDiag(loc=[0.5, 0.0], scale_diag=[1.0, 2.0]),
                                       use_exact_kl=True, weight=0.5),
            independent.MultivariateNormalTriL),
        "add_loss": keras.Sequential([
            keras.Input((4,)), keras.layers.Dense(independent.IndependentNormal.params_size(2)),
            independent.IndependentNormal(2), kl.KLDivergenceAddLoss(priors.DiagonalNormal(2), use_exact_kl=True)]),
    }
    expected = {}
    for name, model in models.items():
        model.compile(keras.optimizers.Adam(0.05), loss=NegativeLogLikelihood())
        model.fit(x, y, epochs=2, verbose=0)  # the prior's variables leave their start
        output = model(x)
        expected[name] = {"mean": output.mean().numpy(), "stddev": output.stddev().numpy(),
                          "losses": float(sum(model.losses)), "weights": [w.numpy() for w in model.weights]}
        model.save(directory / f"{name}.keras")
        export_model(model, directory / f"{name}_export")  # serves the mean and stddev
    np.save(directory / "x.npy", x)
    return expected, models["add_loss"].layers[-1].distribution_b.loc.numpy()


fresh_process.register("kl: .keras files", _save_for_a_fresh_process, """
import numpy as np, keras
import tfvae.layers.kl  # noqa: F401  (registers the classes)
x = np.load(directory / "x.npy")
result = {}
for name in ["regularized", "add_loss"]:
    model = keras.models.load_model(directory / f"{name}.keras")
    output = model(x)
    result[name] = {"mean": np.asarray(output.mean()), "losses": float(sum(model.losses)),
                    "weights": [np.asarray(w) for w in model.weights]}
""")


fresh_process.register("kl: export", _save_for_a_fresh_process, """
import sys
assert sys.modules["tfvae"] is None and sys.modules["tensorflow_probability"] is None  # importing them fails
import numpy as np, tensorflow as tf
x = tf.constant(np.load(directory / "x.npy"))
result = {}
for name in ["regularized", "add_loss"]:
    served = tf.saved_model.load(str(directory / f"{name}_export")).signatures["serving_default"](x=x)
    result[name] = {key: value.numpy() for key, value in served.items()}
""", without=("tfvae", "tensorflow_probability"))


def test_models_with_the_kl_layers_export_and_serve_without_tfvae_or_tfp(fresh_process_results):
    """A model regularized by KLDivergenceRegularizer and one ending in KLDivergenceAddLoss (a trained prior)."""
    (expected, _), served = fresh_process_results("kl: export")
    for name in ["regularized", "add_loss"]:
        assert set(served[name]) == {"mean", "stddev"}, name
        for key in ["mean", "stddev"]:
            assert served[name][key].shape == (6, 2)
            np.testing.assert_allclose(served[name][key], expected[name][key], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name}/{key}")


def test_models_round_trip_through_keras_files_in_a_fresh_process(fresh_process_results):
    (expected, add_loss_prior_loc), loaded = fresh_process_results("kl: .keras files")
    assert not np.allclose(add_loss_prior_loc, 0.0)
    for name in ["regularized", "add_loss"]:
        np.testing.assert_allclose(loaded[name]["mean"], expected[name]["mean"], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(loaded[name]["losses"], expected[name]["losses"], rtol=1e-5, err_msg=name)
        assert len(loaded[name]["weights"]) == len(expected[name]["weights"])
        for loaded_weight, weight in zip(loaded[name]["weights"], expected[name]["weights"]):
            np.testing.assert_allclose(loaded_weight, weight, rtol=1e-6, err_msg=name)
