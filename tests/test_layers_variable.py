"""VariableLayer on its own: a learned constant Normal (its maximum-likelihood fit), predict, XLA, saving, export.

The model is TFP's idiom for a distribution whose parameters depend on
nothing: a VariableLayer `t: [2]` feeding a DistributionLambda,
`y ~ N(t[0], softplus(t[1])^2)` for every row. Fitted with
NegativeLogLikelihood its answer is exact: the sample mean and the sample
standard deviation (divided by n) of the targets.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests import fresh_process
from tfvae.export import export_model
from tfvae.layers import variable
from tfvae.layers.distribution import DistributionLambda
from tfvae.losses import NegativeLogLikelihood

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="tfvae_tests_variable")
def constant_normal(inputs):
    """N(t[0], softplus(t[1])^2) for each row of x: `inputs = [x: [batch, ...], t: [2]]`, t from a VariableLayer."""
    x, t = inputs
    rows = tf.ones(tf.shape(x)[:1], t.dtype)
    return tfd.Normal(loc=t[0] * rows, scale=tf.nn.softplus(t[1]) * rows)


def _softplus_inverse(scale):
    return float(np.log(np.expm1(scale)))


def _constant_normal_model(loc=0.0, scale=1.0, **kwargs):
    """`[batch, 1]` (ignored) -> N(loc, scale^2) per row, loc and scale the VariableLayer's."""
    x = keras.Input((1,))
    initializer = keras.initializers.Constant([loc, _softplus_inverse(scale)])
    t = variable.VariableLayer(2, initializer=initializer, name="constant", **kwargs)(x)
    return keras.Model(x, DistributionLambda(constant_normal)([x, t]))


def _loc_and_scale(model):
    loc, raw = model.get_layer("constant").variable.numpy().astype(np.float64)
    return loc, np.log1p(np.exp(raw))


def test_fit_with_negative_log_likelihood_under_xla_finds_the_sample_mean_and_standard_deviation():
    y = np.random.default_rng(0).normal(loc=3.0, scale=0.5, size=64).astype(np.float32)
    mean, std = y.astype(np.float64).mean(), y.astype(np.float64).std()  # the maximum-likelihood N(mean, std^2)
    features = np.zeros([len(y), 1], np.float32)
    model = _constant_normal_model(loc=0.0, scale=1.0)

    # At scale 1 the gradient of the mean NLL in the loc is exactly loc - mean(y): one SGD step of 1 lands on it.
    model.compile(keras.optimizers.SGD(1.0), loss=NegativeLogLikelihood(), jit_compile=True)
    model.fit(features, y, batch_size=len(y), epochs=1, verbose=0)
    np.testing.assert_allclose(_loc_and_scale(model)[0], mean, rtol=1e-6)

    model.compile(keras.optimizers.Adam(0.05), loss=NegativeLogLikelihood(), jit_compile=True)
    steps = 300  # one epoch of the full batch repeated
    model.fit(np.tile(features, [steps, 1]), np.tile(y, steps), batch_size=len(y), epochs=1, shuffle=False, verbose=0)
    loc, scale = _loc_and_scale(model)
    np.testing.assert_allclose([loc, scale], [mean, std], rtol=1e-4)
    minimum = 0.5 * np.log(2 * np.pi * std**2) + 0.5  # the mean NLL at the maximum-likelihood Normal
    np.testing.assert_allclose(model.evaluate(features, y, batch_size=len(y), verbose=0), minimum, rtol=1e-6)


def test_predict_is_the_constant_for_every_row_and_the_bare_layer_compiles_with_xla():
    model = _constant_normal_model(loc=1.5, scale=0.25)
    x = np.random.default_rng(1).normal(size=(10, 1)).astype(np.float32)
    predicted = model.predict(x, batch_size=4, verbose=0)  # three batches; the distribution converts to its mean
    np.testing.assert_array_equal(predicted, np.full([10], 1.5, np.float32))
    normal = model(x)
    np.testing.assert_allclose(normal.stddev(), np.full([10], 0.25), rtol=1e-6)

    layer = variable.VariableLayer([2, 3], activation="softplus", initializer=keras.initializers.Constant(0.5))
    compiled = tf.function(layer, jit_compile=True)
    np.testing.assert_allclose(compiled(x), np.full([2, 3], np.log1p(np.exp(0.5)), np.float32), rtol=1e-6)
    layer.variable.assign(np.full([2, 3], -1.0, np.float32))  # read afresh by the compiled call
    np.testing.assert_allclose(compiled(x), np.full([2, 3], np.log1p(np.exp(-1.0)), np.float32), rtol=1e-6)


def test_bad_arguments_are_refused_naming_the_argument():
    for shape in [-1, 2.5, True, "a", [2, -1], [[2, 3]], None]:
        with pytest.raises(ValueError, match=r"`shape` must be an int or a sequence of ints >= 0"):
            variable.VariableLayer(shape)
    for argument in ["activation", "initializer", "regularizer", "constraint"]:
        with pytest.raises(ValueError, match=f"`{argument}` must be a Keras {argument}: .*; received 'no_such_{argument}'"):
            variable.VariableLayer(2, **{argument: "no_such_" + argument})


def _save_for_a_fresh_process(directory):
    model = _constant_normal_model(regularizer=keras.regularizers.L2(0.01))
    model.get_layer("constant").variable.assign([0.7, _softplus_inverse(2.0)])  # not the initial values
    x = np.random.default_rng(2).normal(size=(4, 1)).astype(np.float32)
    model.save(directory / "model.keras")
    export_model(model, directory / "export")
    np.save(directory / "x.npy", x)
    normal = model(x)
    return {"mean": normal.mean().numpy(), "stddev": normal.stddev().numpy(), "losses": float(sum(model.losses)),
            "weights": [w.numpy() for w in model.weights]}


fresh_process.register("variable: .keras file", _save_for_a_fresh_process, """
import numpy as np, keras
import tests.test_layers_variable  # registers constant_normal
model = keras.models.load_model(directory / "model.keras")
normal = model(np.load(directory / "x.npy"))
result = {"mean": normal.mean().numpy(), "stddev": normal.stddev().numpy(), "losses": float(sum(model.losses)),
          "weights": [np.asarray(w) for w in model.weights]}
""")
fresh_process.register("variable: export", _save_for_a_fresh_process, """
import sys
assert sys.modules["tfvae"] is None and sys.modules["tensorflow_probability"] is None  # importing them fails
import numpy as np, tensorflow as tf
serve = tf.saved_model.load(str(directory / "export")).signatures["serving_default"]
served = serve(x=tf.constant(np.load(directory / "x.npy")))
result = {key: value.numpy() for key, value in served.items()}
""", without=("tfvae", "tensorflow_probability"))


def test_keras_file_round_trips_in_a_fresh_process_and_export_serves_without_tfvae_or_tfp(fresh_process_results):
    expected, loaded = fresh_process_results("variable: .keras file")
    _, served = fresh_process_results("variable: export")
    np.testing.assert_allclose(expected["mean"], np.full([4], 0.7), rtol=1e-6)
    np.testing.assert_allclose(expected["stddev"], np.full([4], 2.0), rtol=1e-6)
    np.testing.assert_allclose(expected["losses"], 0.01 * (0.7**2 + _softplus_inverse(2.0) ** 2), rtol=1e-5)
    assert set(served) == {"mean", "stddev"}
    for key in ["mean", "stddev"]:
        np.testing.assert_array_equal(loaded[key], expected[key], err_msg=key)
        np.testing.assert_array_equal(served[key], expected[key], err_msg=key)
    assert loaded["losses"] == expected["losses"]
    assert len(loaded["weights"]) == len(expected["weights"]) == 1
    np.testing.assert_array_equal(loaded["weights"][0], expected["weights"][0])
