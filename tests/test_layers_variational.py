"""Bayesian layers: moments against closed forms, KL terms exactly, seeds, saving, export, training.

Moment checks standardize the draws with the closed-form mean and variance,
z = (y - mean) / sqrt(variance), and require |mean(z)| < 5 / sqrt(n) and
|var(z) - 1| < 5 sqrt(2 / n), n the number of independent draws counted
conservatively (draws sharing one weight sample count once per unit).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests import fresh_process
from tests.helpers import assert_config_round_trip, serialized_round_trip
from tfvae.export import export_model
from tfvae.layers import conv_variational, dense_variational, variable, variational, variational_fns
from tfvae.layers.distribution import DistributionLambda
from tfvae.layers.independent import IndependentNormal
from tfvae.losses import NegativeLogLikelihood

tfd = tfp.distributions
DENSE = {
    "reparameterization": variational.DenseReparameterization,
    "local_reparameterization": variational.DenseLocalReparameterization,
    "flipout": variational.DenseFlipout,
}
CONV = {
    "conv1d_reparameterization": conv_variational.Convolution1DReparameterization,
    "conv2d_reparameterization": conv_variational.Convolution2DReparameterization,
    "conv3d_reparameterization": conv_variational.Convolution3DReparameterization,
    "conv1d_flipout": conv_variational.Convolution1DFlipout,
    "conv2d_flipout": conv_variational.Convolution2DFlipout,
    "conv3d_flipout": conv_variational.Convolution3DFlipout,
}
NORMAL_BIAS = {"bias_posterior_fn": variational_fns.default_mean_field_normal_fn(),
               "bias_prior_fn": variational_fns.default_multivariate_normal_fn}
MEAN_TENSORS = {"kernel_posterior_tensor_fn": variational_fns.mean_tensor_fn,
                "bias_posterior_tensor_fn": variational_fns.mean_tensor_fn}


# TFP's "Probabilistic Layers Regression" tutorial builders, written with tfvae.layers.
@keras.saving.register_keras_serializable(package="tfvae_tests")
def tutorial_posterior(kernel_size, bias_size=0, dtype=None):
    n = kernel_size + bias_size
    c = np.log(np.expm1(1.0))
    return keras.Sequential([
        variable.VariableLayer(2 * n, dtype=dtype),
        DistributionLambda(lambda t: tfd.Independent(
            tfd.Normal(loc=t[..., :n], scale=1e-5 + tf.nn.softplus(c + t[..., n:])), reinterpreted_batch_ndims=1)),
    ])


@keras.saving.register_keras_serializable(package="tfvae_tests")
def tutorial_prior(kernel_size, bias_size=0, dtype=None):
    n = kernel_size + bias_size
    return keras.Sequential([
        variable.VariableLayer(n, dtype=dtype),
        DistributionLambda(lambda t: tfd.Independent(tfd.Normal(loc=t, scale=1.0), reinterpreted_batch_ndims=1)),
    ])


def _variables(layer):
    return {w.name: w for w in layer.weights}


def _set_random_weights(layer, seed=0):
    """Every weight set to a known random value; scales spread over [0.05, 1.5]."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        low, high = (-3.0, 1.0) if "scale" in w.name else (-1.0, 1.0)
        w.assign(rng.uniform(low, high, size=w.shape).astype(np.float32))


def _normal_parameters(layer, weight):
    """(loc, scale) of the layer's posterior over `weight`, from its variables (not through the layer)."""
    variables = _variables(layer)
    loc = variables[f"{weight}_posterior_loc"].numpy()
    raw = variables[f"{weight}_posterior_untransformed_scale"].numpy().astype(np.float64)
    return loc, np.log1p(np.exp(raw)) + np.finfo(np.float32).eps


def _kl_to_standard_normal(loc, scale):
    return float(np.sum(-np.log(scale) + (scale**2 + loc**2) / 2 - 0.5))


def _assert_moments(samples, mean, variance, num_independent, units_axis=-1):
    z = (samples - mean) / np.sqrt(variance)
    n = num_independent
    assert abs(z.mean()) < 5 / np.sqrt(n), z.mean()
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n), z.var()
    per_unit = np.moveaxis(z, units_axis, -1).reshape(-1, z.shape[units_axis]).mean(axis=0)
    assert np.max(np.abs(per_unit)) < 5 / np.sqrt(n / z.shape[units_axis]), per_unit


def _draws(layer, x, num_calls):
    call = tf.function(layer.__call__)
    return np.stack([call(x).numpy() for _ in range(num_calls)])


def test_variable_layer_returns_its_activated_variable_whatever_the_input():
    layer = variable.VariableLayer([2, 3], activation="softplus", initializer=keras.initializers.Constant(0.5))
    expected = np.log1p(np.exp(np.full([2, 3], 0.5, np.float32)))
    np.testing.assert_allclose(layer(np.zeros([4, 7], np.float32)), expected, rtol=1e-6)
    np.testing.assert_allclose(layer(np.ones([1, 1], np.float32)), expected, rtol=1e-6)
    assert [w.name for w in layer.trainable_weights] == ["constant"]
    assert variable.VariableLayer(5).compute_output_shape((None, 3)) == (5,)
    assert variable.VariableLayer([]).variable.shape == ()  # a scalar, as TFP's shape=[]
    restored = assert_config_round_trip(layer)
    assert serialized_round_trip(layer).get_config() == layer.get_config()
    np.testing.assert_allclose(restored(np.zeros([1, 1])), expected, rtol=1e-6)


@pytest.mark.parametrize("kind", sorted(DENSE))
def test_dense_output_moments_match_closed_form_for_a_fixed_posterior(kind):
    """mean x @ mu + mu_b and variance x^2 @ sigma^2 + sigma_b^2 per unit."""
    units = 32
    layer = DENSE[kind](units, seed=1, **NORMAL_BIAS)
    x_row = np.array([[1.5, -0.5, 0.0, 2.0, -1.0]], np.float32)
    layer(x_row)
    _set_random_weights(layer)
    kernel_loc, kernel_scale = _normal_parameters(layer, "kernel")
    bias_loc, bias_scale = _normal_parameters(layer, "bias")
    mean = x_row @ kernel_loc + bias_loc
    variance = x_row**2 @ kernel_scale**2 + bias_scale**2
    if kind == "reparameterization":  # one weight draw per call
        samples, independent = _draws(layer, x_row, 300), 300 * units
    else:  # rows decorrelated (flipout) or drawn per row (local), but sharing the call's bias draw
        samples, independent = _draws(layer, np.repeat(x_row, 16, axis=0), 150), 150 * units
    _assert_moments(samples, mean, variance, independent)


@pytest.mark.parametrize("kind", sorted(CONV))
def test_conv_output_moments_match_conv_of_posterior_moments(kind):
    """mean conv(x, mu) + mu_b and variance conv(x^2, sigma^2) + sigma_b^2, for every rank."""
    filters = 16
    layer = CONV[kind](filters, kernel_size=3, padding="same", seed=2, **NORMAL_BIAS)
    image = np.random.default_rng(1).normal(scale=1.5, size=(1, *[5] * CONV[kind].rank, 2)).astype(np.float32)
    layer(image)
    _set_random_weights(layer)
    kernel_loc, kernel_scale = _normal_parameters(layer, "kernel")
    bias_loc, bias_scale = _normal_parameters(layer, "bias")
    mean = keras.ops.conv(image, kernel_loc, padding="same").numpy() + bias_loc
    variance = keras.ops.conv(image**2, (kernel_scale**2).astype(np.float32), padding="same").numpy() + bias_scale**2
    batch = 1 if "reparameterization" in kind else 8
    samples = _draws(layer, np.repeat(image, batch, axis=0), 200)
    _assert_moments(samples, mean, variance, 200 * filters)


@pytest.mark.parametrize("kind", sorted(CONV))
def test_conv_with_posterior_means_is_keras_conv_with_the_means(kind):
    cls = CONV[kind]
    layer = cls(3, kernel_size=2, strides=1, padding="valid", **MEAN_TENSORS, **NORMAL_BIAS)
    x = np.random.default_rng(0).normal(size=(2, *[4] * cls.rank, 2)).astype(np.float32)
    outputs = layer(x)
    _set_random_weights(layer)
    kernel_loc, _ = _normal_parameters(layer, "kernel")
    bias_loc, _ = _normal_parameters(layer, "bias")
    expected = keras.ops.conv(x, kernel_loc, padding="valid").numpy() + bias_loc
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)
    assert outputs.shape == layer.compute_output_shape(x.shape) == (2, *[3] * cls.rank, 3)


def test_channels_first_and_strides_give_keras_output_shapes():
    layer = conv_variational.Convolution2DFlipout(4, 3, strides=2, padding="same", data_format="channels_first")
    x = np.ones([2, 3, 7, 6], np.float32)
    assert layer(x).shape == layer.compute_output_shape(x.shape) == keras.layers.Conv2D(
        4, 3, strides=2, padding="same", data_format="channels_first").compute_output_shape(x.shape)


@pytest.mark.parametrize("kind", sorted(DENSE) + sorted(CONV))
def test_added_losses_are_the_exact_kl_of_kernel_and_bias(kind):
    cls = {**DENSE, **CONV}[kind]
    layer = cls(4, **NORMAL_BIAS) if kind in DENSE else cls(4, kernel_size=2, **NORMAL_BIAS)
    x = np.ones([3, 5] if kind in DENSE else [3, *[5] * cls.rank, 2], np.float32)
    layer(x)
    _set_random_weights(layer, seed=3)
    layer(x)
    expected = [_kl_to_standard_normal(*_normal_parameters(layer, weight)) for weight in ("kernel", "bias")]
    np.testing.assert_allclose([float(loss) for loss in layer.losses], expected, rtol=1e-5)
    np.testing.assert_allclose(
        float(layer.losses[0]), float(tfd.kl_divergence(layer.kernel_posterior, layer.kernel_prior)), rtol=1e-6)


def test_local_reparameterization_gradient_stays_finite_for_an_all_zero_input_row():
    """TFP's tf.sqrt(x^2 @ sigma^2) has an infinite gradient at a zero row (e.g. after a ReLU); ours is finite."""
    layer = variational.DenseLocalReparameterization(3, seed=1)
    x = np.array([[0.0, 0.0], [1.0, -2.0]], np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x))
    gradients = tape.gradient(loss, layer.trainable_variables)
    assert all(np.all(np.isfinite(g)) for g in gradients)
    np.testing.assert_allclose(layer(x)[0], _variables(layer)["bias_posterior_loc"], atol=1e-6)  # x @ W = 0 exactly


def test_default_bias_is_a_point_mass_without_prior_as_in_tfp():
    layer = variational.DenseReparameterization(3)
    layer(np.ones([2, 4], np.float32))
    assert [w.name for w in layer.weights] == [
        "kernel_posterior_loc", "kernel_posterior_untransformed_scale", "bias_posterior_loc"]
    assert isinstance(layer.bias_posterior.distribution, tfd.Deterministic) and layer.bias_prior is None
    assert len(layer.losses) == 1  # the kernel's KL only
    _, scale = _normal_parameters(layer, "kernel")
    assert 0.03 < scale.min() and scale.max() < 0.07  # TFP's softplus(N(-3, 0.1^2)) start


def _dense_variational(kl_use_exact, kl_weight=0.1):
    layer = dense_variational.DenseVariational(
        3, dense_variational.posterior_mean_field, dense_variational.prior_trainable,
        kl_weight=kl_weight, kl_use_exact=kl_use_exact, seed=4)
    inputs = np.concatenate([np.zeros([1, 2]), np.eye(2)]).astype(np.float32)  # rows 0, e_1, e_2
    layer(inputs)
    _set_random_weights(layer, seed=5)
    return layer, inputs


def _dense_variational_kl(layer):
    """KL[q || p] from the variables: q = N(mu_q, (1e-5 + softplus(c + rho))^2), p = N(mu_p, 1)."""
    posterior, prior = layer.posterior, layer.prior
    scale = 1e-5 + np.log1p(np.exp(np.log(np.expm1(1.0)) + posterior.untransformed_scale.numpy().astype(np.float64)))
    difference = posterior.loc.numpy() - prior.loc.numpy()
    return float(np.sum(-np.log(scale) + (scale**2 + difference**2) / 2 - 0.5))


def test_dense_variational_exact_kl_is_kl_weight_times_tfp_kl():
    layer, inputs = _dense_variational(kl_use_exact=True)
    layer(inputs)
    (loss,) = layer.losses
    np.testing.assert_allclose(float(loss), 0.1 * _dense_variational_kl(layer), rtol=1e-5)
    tfp_kl = tfd.kl_divergence(layer.posterior(inputs), layer.prior(inputs))
    np.testing.assert_allclose(float(loss), 0.1 * float(tfp_kl), rtol=1e-6)


def test_dense_variational_estimate_uses_the_weights_of_the_output_and_is_unbiased():
    layer, inputs = _dense_variational(kl_use_exact=False, kl_weight=0.5)
    outputs = layer(inputs).numpy()
    bias = outputs[0]
    weights = np.concatenate([(outputs[1:] - bias).reshape(-1), bias])  # [vec(kernel), bias] of this draw
    posterior, prior = layer.posterior(inputs), layer.prior(inputs)
    expected = 0.5 * float(posterior.log_prob(weights) - prior.log_prob(weights))
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=1e-4, atol=1e-4)

    @tf.function
    def estimate():
        layer(inputs)
        return layer.losses[0]

    estimates = np.array([float(estimate()) for _ in range(400)])
    exact = 0.5 * _dense_variational_kl(layer)
    assert abs(estimates.mean() - exact) < 5 * estimates.std() / np.sqrt(len(estimates)), (estimates.mean(), exact)


def _all_layers_model():
    """Every layer of this module, seeded, in one Functional model `[batch, 6, 6, 2] -> [batch, 1]`.

    The KL terms are scaled by 1/64, one epoch of the fit test's data.
    """
    divergence = variational_fns.ScaledKLDivergence(1 / 64)
    inputs = keras.Input((6, 6, 2))
    x = conv_variational.Convolution2DReparameterization(
        3, 3, activation="relu", kernel_divergence_fn=divergence, seed=1)(inputs)
    x = conv_variational.Convolution2DFlipout(3, 3, kernel_divergence_fn=divergence, bias_divergence_fn=divergence,
                                              seed=2, **NORMAL_BIAS)(x)
    x = keras.layers.Flatten()(x)
    x = variational.DenseFlipout(8, activation="relu", kernel_divergence_fn=divergence, seed=3)(x)
    x = variational.DenseLocalReparameterization(8, activation="relu", kernel_divergence_fn=divergence, seed=4)(x)
    x = variational.DenseReparameterization(4, kernel_divergence_fn=divergence, seed=5)(x)
    x = dense_variational.DenseVariational(
        4, dense_variational.posterior_mean_field, dense_variational.prior_trainable, kl_weight=1 / 64, seed=6)(x)
    outputs = dense_variational.DenseVariational(1, tutorial_posterior, tutorial_prior, kl_weight=1 / 64, seed=7)(x)
    return keras.Model(inputs, outputs)


def _conv_ranks_model():
    """The 1-D and 3-D conv layers (TFP's names), seeded, ending in a Normal: `[batch, 4, 4, 4, 2] -> [batch, 2]`.

    The KL terms are scaled by 1/32, one epoch of the fit test's data.
    """
    divergence = variational_fns.ScaledKLDivergence(1 / 32)
    divergences = {"kernel_divergence_fn": divergence, "bias_divergence_fn": divergence}
    inputs = keras.Input((4, 4, 4, 2))
    x = conv_variational.Conv3DReparameterization(
        3, 2, activation="relu", seed=11, **divergences, **NORMAL_BIAS)(inputs)  # [3, 3, 3, 3]
    x = conv_variational.Conv3DFlipout(2, 3, padding="same", seed=12, **divergences)(x)  # [3, 3, 3, 2]
    x = keras.layers.Reshape((27, 2))(x)
    x = conv_variational.Conv1DReparameterization(3, 3, strides=2, activation="relu", seed=13, **divergences)(x)
    x = conv_variational.Conv1DFlipout(2, 3, seed=14, **divergences, **NORMAL_BIAS)(x)  # [11, 2]
    params = keras.layers.Dense(IndependentNormal.params_size(2))(keras.layers.Flatten()(x))
    return keras.Model(inputs, IndependentNormal(2)(params))


def _save_for_a_fresh_process(directory):
    """Both models saved, as `.keras` files and as SavedModels, before any call; their first outputs."""
    model, conv_model = _all_layers_model(), _conv_ranks_model()
    x = np.random.default_rng(0).normal(size=(5, 6, 6, 2)).astype(np.float32)
    conv_x = np.random.default_rng(1).normal(size=(5, 4, 4, 4, 2)).astype(np.float32)
    # Saved before any call: Keras saves no seed generator state (Dropout's neither), so a
    # loaded model draws from the initial state, as this one does on its first call.
    model.save(directory / "model.keras")
    model.export(directory / "export", verbose=False)
    conv_model.save(directory / "conv_model.keras")
    export_model(conv_model, directory / "conv_export")  # the output is a distribution: its mean and stddev
    np.save(directory / "x.npy", x)
    np.save(directory / "conv_x.npy", conv_x)
    first = model(x).numpy()  # the first draws from the initial seed state
    conv_first = conv_model(conv_x)
    return {"all_layers": first, "conv_mean": conv_first.mean().numpy(), "conv_stddev": conv_first.stddev().numpy(),
            "second_call": model(x).numpy(), "conv_second_call": conv_model(conv_x).mean().numpy()}


fresh_process.register("variational: .keras file", _save_for_a_fresh_process, """
import numpy as np, keras
import tests.test_layers_variational  # registers the tutorial builders
model = keras.models.load_model(directory / "model.keras")
conv = keras.models.load_model(directory / "conv_model.keras")(np.load(directory / "conv_x.npy"))
result = {"all_layers": model(np.load(directory / "x.npy")).numpy(),
          "conv_mean": conv.mean().numpy(), "conv_stddev": conv.stddev().numpy()}
""")
fresh_process.register("variational: export", _save_for_a_fresh_process, """
import sys
assert sys.modules["tfvae"] is None and sys.modules["tensorflow_probability"] is None  # importing them fails
import numpy as np, tensorflow as tf
exported = tf.saved_model.load(str(directory / "export"))  # kept: it owns the variables
conv_exported = tf.saved_model.load(str(directory / "conv_export"))
conv = conv_exported.signatures["serving_default"](x=tf.constant(np.load(directory / "conv_x.npy")))
result = {"all_layers": exported.serve(tf.constant(np.load(directory / "x.npy"))).numpy(),
          "conv_mean": conv["mean"].numpy(), "conv_stddev": conv["stddev"].numpy()}
""", without=("tfvae", "tensorflow_probability"))


def test_keras_file_round_trips_in_a_fresh_process_and_export_loads_without_tfvae_or_tfp(fresh_process_results):
    """Every layer of the module, Conv1D/Conv3D ones in a model ending in a Normal served by `export_model`."""
    expected, keras_out = fresh_process_results("variational: .keras file")
    _, export_out = fresh_process_results("variational: export")
    for out in (keras_out, export_out):
        assert set(out) == {"all_layers", "conv_mean", "conv_stddev"}
        for key, value in out.items():
            np.testing.assert_allclose(value, expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert expected["conv_mean"].shape == expected["conv_stddev"].shape == (5, 2)
    # And the draws do change from call to call.
    assert not np.allclose(expected["second_call"], expected["all_layers"])
    assert not np.allclose(expected["conv_second_call"], expected["conv_mean"])


def test_fit_under_xla_lowers_the_loss_and_moves_every_weight():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 6, 2)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3))[:, None] * 4).astype(np.float32)
    model = _all_layers_model()
    model.compile(keras.optimizers.Adam(0.02), "mse", jit_compile=True)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=16, epochs=10, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    moved = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(moved), [w.path for w, m in zip(model.trainable_weights, moved) if not m]


def test_conv_ranks_fit_with_negative_log_likelihood_under_xla_and_move_every_weight():
    """Conv{1,3}D{Reparameterization,Flipout}: the loss is NLL + their 6 KL terms; fit lowers it."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 4, 4, 4, 2)).astype(np.float32)
    y = np.stack([x.mean(axis=(1, 2, 3, 4)), x[..., 0].mean(axis=(1, 2, 3))], axis=-1).astype(np.float32) * 4
    model = _conv_ranks_model()
    model.compile(keras.optimizers.Adam(0.02), loss=NegativeLogLikelihood(), jit_compile=True)
    model(x[:2])
    assert len(model.losses) == 6  # 4 kernels, 2 biases with a prior
    before = [w.numpy().copy() for w in model.trainable_weights]
    losses = model.fit(x, y, batch_size=16, epochs=8, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    moved = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(moved), [w.path for w, m in zip(model.trainable_weights, moved) if not m]


def test_under_mixed_float16_outputs_are_float16_and_weights_and_kl_terms_float32():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _all_layers_model()
        x = np.random.default_rng(0).normal(size=(4, 6, 6, 2)).astype(np.float32)
        with tf.GradientTape() as tape:
            outputs = model(x)
            loss = tf.reduce_mean(tf.cast(outputs, tf.float32)) + tf.add_n(model.losses)
        gradients = tape.gradient(loss, model.trainable_variables)
    finally:
        keras.config.set_dtype_policy("float32")
    assert outputs.dtype == tf.float16
    assert {loss.dtype for loss in model.losses} == {tf.float32} and len(model.losses) == 8
    assert {w.dtype for w in model.weights} == {"float32"}
    assert all(np.all(np.isfinite(g)) for g in gradients)


def test_model_losses_collect_the_kl_and_evaluate_adds_it_to_the_loss():
    layer = variational.DenseReparameterization(2, **MEAN_TENSORS, **NORMAL_BIAS)  # deterministic outputs
    model = keras.Sequential([keras.Input((3,)), layer])
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    y = np.zeros([8, 2], np.float32)
    model.compile(loss="mse")
    outputs = model(x)
    kl = sum(float(loss) for loss in model.losses)
    assert len(model.losses) == 2 and kl > 0
    mse = float(np.mean((outputs.numpy() - y) ** 2))
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=8, verbose=0), mse + kl, rtol=1e-5)
    kernel_loc, _ = _normal_parameters(layer, "kernel")
    bias_loc, _ = _normal_parameters(layer, "bias")
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel_loc + bias_loc, rtol=1e-5, atol=1e-6)


SEEDED = {
    **DENSE,
    "conv2d_flipout": lambda units, seed: conv_variational.Convolution2DFlipout(units, 2, seed=seed),
    "dense_variational": lambda units, seed: dense_variational.DenseVariational(
        units, dense_variational.posterior_mean_field, dense_variational.prior_standard_normal, seed=seed),
}


@pytest.mark.parametrize("kind", sorted(SEEDED))
def test_a_seeded_layer_repeats_its_draws_also_compiled_with_xla(kind):
    x = np.random.default_rng(0).normal(size=(4, 3, 3, 2) if kind.startswith("conv") else (4, 3)).astype(np.float32)

    def seeded_layer(seed):
        layer = SEEDED[kind](5, seed=seed)
        layer(x)
        _set_random_weights(layer)
        return layer

    def draws(layer):
        call = tf.function(layer.__call__)
        return [call(x).numpy() for _ in range(2)]

    first, second = draws(seeded_layer(7))
    np.testing.assert_array_equal([first, second], draws(seeded_layer(7)))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, draws(seeded_layer(8))[0])

    layer = seeded_layer(7)
    state = layer.seed_generator.state.numpy()
    compiled = tf.function(layer.__call__, jit_compile=True)  # XLA's random streams differ from TF kernels'
    first, second = compiled(x).numpy(), compiled(x).numpy()
    layer.seed_generator.state.assign(state)
    np.testing.assert_array_equal(first, compiled(x).numpy())
    assert not np.array_equal(first, second)


def _predicted(kind):
    """(a seeded layer, its input, its output with every weight at its posterior mean) for the predict test."""
    x_dense = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    if kind == "dense_variational":
        layer = dense_variational.DenseVariational(
            4, dense_variational.posterior_mean_field, dense_variational.prior_trainable, seed=5)

        def at_the_means():
            w = layer.posterior.loc.numpy()
            return x_dense @ w[:12].reshape(3, 4) + w[12:]
        return layer, x_dense, at_the_means
    if kind in DENSE:
        layer = DENSE[kind](4, seed=5, **NORMAL_BIAS)
        x = x_dense
    else:
        layer = CONV[kind](3, kernel_size=2, strides=2, seed=5, **NORMAL_BIAS)
        x = np.random.default_rng(0).normal(size=(5, *[4] * layer.rank, 2)).astype(np.float32)

    def at_the_means():
        kernel_loc, bias_loc = _normal_parameters(layer, "kernel")[0], _normal_parameters(layer, "bias")[0]
        if kind in DENSE:
            return x @ kernel_loc + bias_loc
        return keras.ops.conv(x, kernel_loc, strides=2, padding="valid").numpy() + bias_loc
    return layer, x, at_the_means


@pytest.mark.parametrize("kind", ["flipout", "local_reparameterization", "dense_variational", *sorted(CONV)])
def test_predict_repeats_from_a_seed_state_and_is_the_mean_layer_as_the_scales_vanish(kind):
    """(Under XLA, every layer here is compiled by the fit tests.)"""
    layer, x, at_the_means = _predicted(kind)
    model = keras.Sequential([keras.Input(x.shape[1:]), layer])
    _set_random_weights(layer)  # scales in [0.05, 1.5]
    state = layer.seed_generator.state.numpy()
    first, second = model.predict(x, verbose=0), model.predict(x, verbose=0)
    assert first.shape == model.compute_output_shape(x.shape) and np.all(np.isfinite(first))
    assert not np.allclose(first, second)  # a draw per call
    layer.seed_generator.state.assign(state)
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)  # the same draws from the same seed state
    assert not np.allclose(first, at_the_means(), atol=1e-2)

    for w in layer.weights:  # posterior scales to their floor: float32's eps (1e-5 for DenseVariational)
        if "scale" in w.name:
            w.assign(np.full(w.shape, -40.0, np.float32))
    np.testing.assert_allclose(model.predict(x, verbose=0), at_the_means(), rtol=1e-5, atol=2e-4)


def _config_cases():
    custom = variational_fns.default_mean_field_normal_fn(
        untransformed_scale_initializer=keras.initializers.Constant(-5.0), loc_regularizer="l2")
    return {
        "dense_reparameterization": variational.DenseReparameterization(
            3, activation="relu", kernel_posterior_fn=custom, bias_posterior_fn=None, seed=1),
        "dense_local_reparameterization": variational.DenseLocalReparameterization(
            3, kernel_posterior_tensor_fn=variational_fns.mean_tensor_fn, **NORMAL_BIAS),
        "dense_flipout": variational.DenseFlipout(
            3, kernel_divergence_fn=variational_fns.ScaledKLDivergence(0.5), activity_regularizer="l2", seed=2),
        "conv1d_reparameterization": conv_variational.Conv1DReparameterization(
            2, 3, dilation_rate=2, activation="relu", kernel_divergence_fn=variational_fns.ScaledKLDivergence(0.1),
            seed=4, **NORMAL_BIAS),
        "conv2d_reparameterization": conv_variational.Convolution2DReparameterization(
            2, (3, 2), strides=2, padding="same", kernel_prior_fn=None),
        "conv3d_reparameterization": conv_variational.Conv3DReparameterization(
            2, (1, 2, 3), strides=(1, 2, 1), data_format="channels_first", **MEAN_TENSORS, bias_posterior_fn=None),
        "conv1d_flipout": conv_variational.Conv1DFlipout(4, 2, strides=3, padding="same", activity_regularizer="l2"),
        "conv2d_flipout": conv_variational.Conv2DFlipout(2, [2, 3], bias_divergence_fn=None, seed=5, **NORMAL_BIAS),
        "conv3d_flipout": conv_variational.Convolution3DFlipout(2, 3, dilation_rate=2, data_format="channels_first"),
        "dense_variational": dense_variational.DenseVariational(
            4, tutorial_posterior, dense_variational.prior_standard_normal, kl_weight=0.1, kl_use_exact=True,
            activation="tanh", use_bias=False, seed=3),
        "independent_normal_weights": dense_variational.IndependentNormalWeights(5, trainable_scale=False),
        "variable_layer": variable.VariableLayer(3, regularizer="l1", constraint="non_neg"),
    }


@pytest.mark.parametrize("kind", sorted(_config_cases()))
def test_config_round_trips_through_json_and_keras_serialization(kind):
    layer = _config_cases()[kind]
    restored = assert_config_round_trip(layer)
    assert serialized_round_trip(layer).get_config() == layer.get_config()
    assert type(restored) is type(layer)


def test_divergence_and_posterior_objects_round_trip_their_arguments():
    for fn in (variational_fns.default_mean_field_normal_fn(is_singular=True, loc_constraint="non_neg"),
               variational_fns.default_loc_scale_fn(loc_initializer="ones"),
               variational_fns.ScaledKLDivergence(0.25)):
        assert serialized_round_trip(fn).get_config() == fn.get_config()
    assert serialized_round_trip(variational_fns.kl_divergence_fn) is variational_fns.kl_divergence_fn
    loc, scale = variational_fns.default_loc_scale_fn(loc_initializer="ones")(
        tf.float32, [2], "w", True, lambda **kwargs: keras.Variable(kwargs["initializer"]([2]), name=kwargs["name"]))
    np.testing.assert_allclose(loc, [1.0, 1.0])
    assert np.all((scale > 0.03) & (scale < 0.07))


def test_unregistered_callables_work_but_refuse_to_be_saved_naming_the_argument(tmp_path):
    layer = variational.DenseFlipout(2, kernel_divergence_fn=lambda q, p, _: tfd.kl_divergence(q, p) / 10)
    model = keras.Sequential([keras.Input((3,)), layer])
    model(np.ones([1, 3], np.float32))
    assert len(model.losses) == 1
    with pytest.raises(ValueError, match="`kernel_divergence_fn` must be a function registered"):
        layer.get_config()
    with pytest.raises(ValueError, match="kernel_divergence_fn"):
        model.save(tmp_path / "model.keras")

    def posterior(kernel_size, bias_size=0, dtype=None):
        return dense_variational.IndependentNormalWeights(kernel_size + bias_size)

    layer = dense_variational.DenseVariational(2, posterior, dense_variational.prior_trainable)
    layer(np.ones([1, 3], np.float32))
    with pytest.raises(ValueError, match="`make_posterior_fn` must be a function registered"):
        layer.get_config()


def test_bad_arguments_are_rejected_naming_the_argument():
    cases = [
        (ValueError, "units", lambda: variational.DenseFlipout(0)),
        (ValueError, "seed", lambda: variational.DenseReparameterization(2, seed="a")),
        (TypeError, "kernel_posterior_fn", lambda: variational.DenseReparameterization(2, kernel_posterior_fn=None)),
        (TypeError, "kernel_prior_fn", lambda: variational.DenseReparameterization(2, kernel_prior_fn=3)),
        (ValueError, "filters", lambda: conv_variational.Convolution2DFlipout(0, 3)),
        (ValueError, "kernel_size", lambda: conv_variational.Convolution2DFlipout(2, (3, 3, 3))),
        (ValueError, "padding", lambda: conv_variational.Convolution2DFlipout(2, 3, padding="full")),
        (ValueError, "data_format", lambda: conv_variational.Convolution1DReparameterization(2, 3, data_format="NWC")),
        (ValueError, "dilation_rate", lambda: conv_variational.Convolution2DReparameterization(
            2, 3, strides=2, dilation_rate=2)),
        (ValueError, "kl_weight", lambda: dense_variational.DenseVariational(
            2, dense_variational.posterior_mean_field, dense_variational.prior_trainable, kl_weight=-1.0)),
        (TypeError, "kl_use_exact", lambda: dense_variational.DenseVariational(
            2, dense_variational.posterior_mean_field, dense_variational.prior_trainable, kl_use_exact="yes")),
        (TypeError, "make_prior_fn", lambda: dense_variational.DenseVariational(
            2, dense_variational.posterior_mean_field, None)),
        (ValueError, "size", lambda: dense_variational.IndependentNormalWeights(0)),
        (ValueError, "shape", lambda: variable.VariableLayer([[2, 3]])),
        (ValueError, "weight", lambda: variational_fns.ScaledKLDivergence(-1)),
    ]
    for error, argument, make in cases:
        with pytest.raises(error, match=f"`{argument}`"):
            make()


@pytest.mark.parametrize("kind", sorted(CONV))
def test_conv_arguments_and_input_ranks_are_checked_naming_the_argument(kind):
    cls, rank = CONV[kind], CONV[kind].rank
    cases = [
        ("filters", {"filters": 0}), ("filters", {"filters": 2.0}),
        ("kernel_size", {"kernel_size": (2,) * (rank + 1)}), ("kernel_size", {"kernel_size": 0}),
        ("kernel_size", {"kernel_size": "3"}),
        ("strides", {"strides": 0}), ("strides", {"strides": (1,) * (rank - 1) + (-1,)}),
        ("dilation_rate", {"dilation_rate": (2,) * (rank + 1)}),
        ("dilation_rate", {"strides": 2, "dilation_rate": 2}),
        ("padding", {"padding": "causal"}), ("data_format", {"data_format": "NWC"}), ("seed", {"seed": 1.5}),
    ]
    for argument, kwargs in cases:
        with pytest.raises(ValueError, match=f"`{argument}`"):
            cls(**{"filters": 2, "kernel_size": 2, **kwargs})
    with pytest.raises(TypeError, match="`kernel_prior_fn` must be a callable or None"):
        cls(2, 2, kernel_prior_fn="normal")
    layer = cls(2, 2)
    with pytest.raises(ValueError, match=f"expected ndim={rank + 2}, found ndim={rank + 1}"):
        layer(np.ones([1, *[3] * rank], np.float32))
    layer(np.ones([1, *[3] * rank, 2], np.float32))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 2"):
        layer(np.ones([1, *[3] * rank, 3], np.float32))
    assert getattr(conv_variational, cls.__name__.replace("Convolution", "Conv")) is cls  # TFP's shorter name


def test_estimators_needing_a_normal_posterior_refuse_others_when_built():
    point_mass = variational_fns.default_mean_field_normal_fn(is_singular=True)
    for cls in (variational.DenseFlipout, variational.DenseLocalReparameterization):
        with pytest.raises(TypeError, match="requires `kernel_posterior_fn` to produce a `tfd.Independent"):
            cls(2, kernel_posterior_fn=point_mass)(keras.Input((3,)))
    with pytest.raises(TypeError, match="requires `kernel_posterior_fn`"):
        conv_variational.Convolution2DFlipout(2, 3, kernel_posterior_fn=point_mass)(keras.Input((5, 5, 1)))
    variational.DenseReparameterization(2, kernel_posterior_fn=point_mass)(keras.Input((3,)))  # any distribution


def test_inputs_of_the_wrong_size_are_refused_after_build():
    layer = variational.DenseFlipout(2)
    layer(np.ones([1, 3], np.float32))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(np.ones([1, 4], np.float32))


# Regressions from tests/test_properties.py ---------------------------------------------------------


@pytest.mark.parametrize("value", [b"", "posterior", 3, {"not": "a serialized function"}])
def test_a_kernel_posterior_fn_that_is_not_callable_is_refused_by_name(value):
    # b"" and "posterior" were Keras' "Could not parse config", naming no argument.
    with pytest.raises(TypeError, match="`kernel_posterior_fn` must be a callable"):
        variational.DenseReparameterization(2, kernel_posterior_fn=value)
    with pytest.raises(TypeError, match="`make_posterior_fn` must be a callable"):
        dense_variational.DenseVariational(2, value, dense_variational.prior_trainable)


@pytest.mark.parametrize("make_layer", [lambda: variational.DenseFlipout(2, seed=1),
                                        lambda: dense_variational.DenseVariational(
                                            2, dense_variational.posterior_mean_field, dense_variational.prior_trainable)])
def test_string_inputs_are_refused_by_name(make_layer):
    # Were an UnimplementedError (Cast string to float).
    with pytest.raises(TypeError, match="`inputs` must hold real numbers"):
        make_layer()(np.full([2, 3], "a"))


def test_a_kernel_past_2_to_the_31_values_is_refused_when_built():
    # units=2**30 passes the count check, but a [4, 2**30] kernel is 16 GiB: refused before it is allocated.
    for layer in (variational.DenseFlipout(2**30), dense_variational.DenseVariational(
            2**30, dense_variational.posterior_mean_field, dense_variational.prior_trainable)):
        with pytest.raises(ValueError, match=r"`units` is too large: it makes a tensor of shape \(4, 1073741824\)"):
            layer.build((None, 4))
    with pytest.raises(ValueError, match=r"`units` must be an int <= 2147483647"):
        variational.DenseFlipout(2**31)


@pytest.mark.parametrize("seed", [2**63, -2**63 - 1, "1", 1.0])
def test_seeds_outside_int64_or_not_ints_are_refused_by_name(seed):
    # 2**63 was Keras' "Can't convert Python sequence with out-of-range integer" from its SeedGenerator.
    with pytest.raises(ValueError, match=r"`seed` must be None or an int in \[-2\*\*63, 2\*\*63\)"):
        variational.DenseFlipout(2, seed=seed)


def test_kl_weight_and_scale_floor_past_float32s_largest_are_refused_by_name():
    # kl_weight=3.4028235677973366e38 built, then its call failed: "Can't convert Python sequence with a value out of
    # range for a double-precision float".
    with pytest.raises(ValueError, match=r"`kl_weight` must be at most 3\.40282e\+38"):
        dense_variational.DenseVariational(2, dense_variational.posterior_mean_field, dense_variational.prior_trainable,
                                           kl_weight=3.4028235677973366e38)
    with pytest.raises(ValueError, match=r"`scale_floor` must be at most 3\.40282e\+38"):
        dense_variational.IndependentNormalWeights(3, scale_floor=1e39)



@pytest.mark.parametrize("make, argument", [
    (lambda value: variational.DenseFlipout(2, activation=value), "activation"),
    (lambda value: conv_variational.Convolution2DReparameterization(2, 3, activation=value), "activation"),
    (lambda value: dense_variational.DenseVariational(2, dense_variational.posterior_mean_field,
                                                      dense_variational.prior_trainable, activation=value), "activation"),
    (lambda value: variational_fns.default_mean_field_normal_fn(loc_initializer=value), "loc_initializer"),
    (lambda value: variational_fns.default_loc_scale_fn(untransformed_scale_regularizer=value),
     "untransformed_scale_regularizer"),
    (lambda value: variational_fns.default_loc_scale_fn(loc_constraint=value), "loc_constraint"),
])
def test_keras_objects_keras_cannot_interpret_are_refused_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}` must be a Keras .*; received 'no_such_thing'"):
        make("no_such_thing")
