"""MADE (AutoregressiveNetwork) and the masked autoregressive flow layer (AutoregressiveTransform).

Structure is checked by gradients: output i may depend on input j only where
input j comes before input i in the input order. Values are checked against
TFP's tf_keras `tfb.AutoregressiveNetwork` with the same weights, and the flow's
density against the change of variables computed by hand in NumPy.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats
from tensorflow_probability.python.bijectors import masked_autoregressive as tfp_masked_autoregressive

from tfvae.layers import masks
from tfvae.layers.autoregressive import AutoregressiveNetwork, AutoregressiveTransform
from tfvae.layers.distribution import DistributionLambda
from tfvae.layers.independent import IndependentNormal
from tfvae.losses import NegativeLogLikelihood
from tests import fresh_process
from tests.helpers import assert_config_round_trip, serialized_round_trip

tfd = tfp.distributions
tfb = tfp.bijectors

ORDERS = ["left-to-right", "right-to-left", [3, 1, 4, 2], "random"]


def _randomize_weights(layer, seed=0):
    """Every weight nonzero, masked positions included: the masks must act in `call`."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])


def _jacobians(made, x, conditional_input=None):
    """d made(x)[b, i, p] / d x[b, j] as `[batch, n, params, n]` (and w.r.t. the conditional input)."""
    x = tf.constant(x)
    conditional_input = None if conditional_input is None else tf.constant(conditional_input)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        if conditional_input is not None:
            tape.watch(conditional_input)
        output = made(x, conditional_input=conditional_input)
    by_x = tape.batch_jacobian(output, x).numpy()
    by_condition = None if conditional_input is None else tape.batch_jacobian(output, conditional_input).numpy()
    return by_x, by_condition


def _depends(jacobian):
    """`[n_out, n_in]`: whether output i depends on input j anywhere in the batch, for any parameter."""
    return np.abs(jacobian).max(axis=(0, 2)) > 0


# ---------------------------------------------------------------- the masks


@pytest.mark.parametrize("input_order", ["left-to-right", "right-to-left", [2, 4, 1, 3]])
def test_masks_equal_tfps(input_order):
    for hidden_units in [[], [3], [6, 5], [2, 9, 4]]:
        for params in [1, 3]:
            ours = masks.make_dense_autoregressive_masks(params, 4, hidden_units, input_order)
            theirs = tfp_masked_autoregressive._make_dense_autoregressive_masks(params, 4, hidden_units, input_order)
            assert len(ours) == len(theirs)
            for mine, tfps in zip(ours, theirs):
                np.testing.assert_array_equal(mine, tfps, err_msg=f"{input_order} {hidden_units} {params}")


def test_random_order_is_a_seeded_permutation_and_its_masks_are_tfps_for_that_order():
    made = AutoregressiveNetwork(2, event_shape=6, hidden_units=[7], input_order="random", seed=5)
    made.build((None, 6))
    assert sorted(made.degrees) == list(range(1, 7))
    again = AutoregressiveNetwork(2, event_shape=6, hidden_units=[7], input_order="random", seed=5)
    again.build((None, 6))
    np.testing.assert_array_equal(again.degrees, made.degrees)
    theirs = tfp_masked_autoregressive._make_dense_autoregressive_masks(2, 6, [7], made.degrees)
    for mine, tfps in zip(made.masks, theirs):
        np.testing.assert_array_equal(mine, tfps)
    # Without a seed one is drawn at construction and kept in the config.
    unseeded = AutoregressiveNetwork(2, input_order="random")
    assert isinstance(unseeded.get_config()["seed"], int)
    assert AutoregressiveNetwork(2).get_config()["seed"] is None


# ---------------------------------------------------------------- the autoregressive property


@pytest.mark.parametrize("input_order", ORDERS, ids=str)
def test_output_i_depends_exactly_on_the_inputs_before_i(input_order):
    made = AutoregressiveNetwork(2, event_shape=4, hidden_units=[8, 8], input_order=input_order, activation="tanh")
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    made(x)
    _randomize_weights(made)
    degrees = made.degrees
    expected_degrees = {"left-to-right": [1, 2, 3, 4], "right-to-left": [4, 3, 2, 1]}.get(
        input_order if isinstance(input_order, str) else None, input_order
    )
    if input_order != "random":
        np.testing.assert_array_equal(degrees, expected_degrees)
    by_x, _ = _jacobians(made, x)
    # Hidden layers at least n - 1 wide hold every degree 1..n-1, so every
    # allowed path exists: dependence is exactly d_j < d_i.
    np.testing.assert_array_equal(_depends(by_x), degrees[np.newaxis, :] < degrees[:, np.newaxis])


def test_random_hidden_degrees_keep_the_property():
    made = AutoregressiveNetwork(
        3, event_shape=5, hidden_units=[6, 4], input_order=[5, 1, 3, 2, 4], hidden_degrees="random", seed=2,
        activation="tanh",
    )
    x = np.random.default_rng(2).normal(size=(4, 5)).astype(np.float32)
    made(x)
    _randomize_weights(made)
    depends = _depends(_jacobians(made, x)[0])
    allowed = made.degrees[np.newaxis, :] < made.degrees[:, np.newaxis]
    assert not np.any(depends & ~allowed)
    assert np.any(depends)


@pytest.mark.parametrize("layers_conditioned", ["all_layers", "first_layer"])
def test_conditional_output_depends_on_condition_and_stays_autoregressive(layers_conditioned):
    made = AutoregressiveNetwork(
        2, event_shape=4, conditional=True, conditional_event_shape=3, conditional_input_layers=layers_conditioned,
        hidden_units=[6], input_order="right-to-left", activation="tanh",
    )
    rng = np.random.default_rng(3)
    x, condition = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    made(x, conditional_input=condition)
    _randomize_weights(made)
    by_x, by_condition = _jacobians(made, x, condition)
    degrees = made.degrees
    np.testing.assert_array_equal(_depends(by_x), degrees[np.newaxis, :] < degrees[:, np.newaxis])
    sees_condition = np.abs(by_condition).max(axis=(0, 2, 3)) > 0  # per output i
    if layers_conditioned == "all_layers":
        assert np.all(sees_condition)
    else:
        # Only through the hidden layer, which the first input in the order
        # (degree 1) does not read: as in TFP.
        np.testing.assert_array_equal(sees_condition, degrees > 1)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("params", [1, 3])
def test_output_shape_is_event_size_by_params(params):
    made = AutoregressiveNetwork(params, event_shape=[5], hidden_units=[4])
    rng = np.random.default_rng(0)
    for leading in [(7,), (), (2, 3)]:
        assert made(rng.normal(size=(*leading, 5)).astype(np.float32)).shape == (*leading, 5, params)
    inputs = keras.Input((5,))
    assert made(inputs).shape == (None, 5, params)
    inferred = AutoregressiveNetwork(params)
    assert inferred(np.zeros((2, 6), np.float32)).shape == (2, 6, params)
    assert inferred.event_shape == [6] and inferred.get_config()["event_shape"] is None


def test_conditional_batch_axes_broadcast_and_work_in_a_functional_model():
    made = AutoregressiveNetwork(2, event_shape=5, conditional=True, conditional_event_shape=2, hidden_units=[4])
    output = made(np.zeros((2, 1, 5), np.float32), conditional_input=np.zeros((3, 2), np.float32))
    assert output.shape == (2, 3, 5, 2)
    x, condition = keras.Input((5,)), keras.Input((2,))
    model = keras.Model([x, condition], made(x, conditional_input=condition))
    assert model.output.shape == (None, 5, 2)
    assert model.predict([np.zeros((4, 5)), np.ones((4, 2))], verbose=0).shape == (4, 5, 2)


# ---------------------------------------------------------------- against TFP


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"use_bias": False, "input_order": "right-to-left"},
        {"conditional": True, "conditional_event_shape": 2},
        {"conditional": True, "conditional_event_shape": 2, "conditional_input_layers": "first_layer"},
    ],
    ids=["plain", "no_bias", "conditional_all_layers", "conditional_first_layer"],
)
def test_equals_tfps_network_with_the_same_weights(options):
    arguments = dict(params=3, event_shape=4, hidden_units=[5, 6], activation="relu", **options)
    theirs = tfb.AutoregressiveNetwork(kernel_initializer="random_normal", bias_initializer="random_normal", **arguments)
    ours = AutoregressiveNetwork(**arguments)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    kwargs = {"conditional_input": rng.normal(size=(6, 2)).astype(np.float32)} if options.get("conditional") else {}
    theirs(x, **kwargs)
    ours(x, **kwargs)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x, **kwargs), theirs(x, **kwargs), rtol=1e-5, atol=1e-6)
    for mine, tfps in zip(ours.masks, theirs._masks):
        np.testing.assert_array_equal(mine, tfps)


def test_kernels_start_at_zero_where_masked_as_in_tfp():
    made = AutoregressiveNetwork(2, event_shape=3, hidden_units=[4], kernel_initializer="ones")
    made.build((None, 3))
    kernels = [w.numpy() for w in made.weights if "kernel" in w.path]
    for kernel, mask in zip(kernels, made.masks):
        np.testing.assert_array_equal(kernel, mask.astype(np.float32))


# ---------------------------------------------------------------- the flow


def test_flow_log_prob_is_base_log_prob_minus_log_scales_by_hand():
    """One masked dense layer, left to right: params = x (W * M) + b, M[j, 2 i + p] = [j < i]."""
    made = AutoregressiveNetwork(2, event_shape=3)
    made.build((None, 3))
    _randomize_weights(made, seed=5)
    kernel, bias = (w * 0.3 for w in made.get_weights())
    made.set_weights([kernel, bias])
    mask = np.repeat(np.triu(np.ones((3, 3)), 1), 2, axis=1)
    x = np.random.default_rng(6).normal(size=(4, 3)).astype(np.float32)
    params = (x.astype(np.float64) @ (kernel * mask) + bias).reshape(4, 3, 2)
    shift, log_scale = params[..., 0], params[..., 1]
    u = (x - shift) * np.exp(-log_scale)
    expected = stats.norm.logpdf(u).sum(-1) - log_scale.sum(-1)

    flow = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [3]), tfb.MaskedAutoregressiveFlow(made))
    np.testing.assert_allclose(flow.log_prob(x), expected, rtol=1e-5)
    np.testing.assert_allclose(flow.bijector.forward(u.astype(np.float32)), x, rtol=1e-4, atol=1e-5)  # n passes

    # The layer, called eagerly on a distribution, builds the same flow.
    layer = AutoregressiveTransform(made)
    base = tfd.MultivariateNormalDiag(loc=tf.zeros([4, 3]))
    transformed = layer(base)
    assert isinstance(transformed.bijector, tfb.MaskedAutoregressiveFlow) and transformed.distribution is base
    assert transformed.batch_shape == [4] and transformed.event_shape == [3]
    np.testing.assert_allclose(transformed.log_prob(x), expected, rtol=1e-5)


@keras.saving.register_keras_serializable(package="tests")
def standard_normal_2d(t):
    """N(0, I_2) with the batch shape of `t: [batch, 0]`."""
    return tfd.MultivariateNormalDiag(loc=tf.zeros(tf.concat([tf.shape(t)[:-1], [2]], axis=0)))


def _banana(n, seed=0):
    """x0 ~ N(0, 2^2), x1 | x0 ~ N(x0^2 / 4, 1): what a left-to-right MAF can fit exactly."""
    rng = np.random.default_rng(seed)
    x0 = 2.0 * rng.normal(size=n)
    return np.stack([x0, x0**2 / 4 + rng.normal(size=n)], axis=-1).astype(np.float32)


def test_maf_trained_by_fit_under_xla_beats_every_gaussian_on_a_banana():
    data = _banana(2000)
    empty = np.zeros((len(data), 0), np.float32)
    model = keras.Sequential([
        keras.Input((0,)),
        DistributionLambda(standard_normal_2d, output_shape=(2,)),
        AutoregressiveTransform(AutoregressiveNetwork(params=2, hidden_units=[32, 32], activation="relu")),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=NegativeLogLikelihood(), jit_compile=True)
    history = model.fit(empty, data, batch_size=100, epochs=12, verbose=0)  # 240 steps
    nll = -float(np.mean(model(empty).log_prob(data)))

    base_nll = -stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(data).mean()  # about 5.8
    best_gaussian_nll = -stats.multivariate_normal(data.mean(0), np.cov(data.T, bias=True)).logpdf(data).mean()  # about 4.1
    true_nll = -(stats.norm(0, 2).logpdf(data[:, 0]) + stats.norm(data[:, 0] ** 2 / 4, 1).logpdf(data[:, 1])).mean()
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert nll < base_nll - 2.0, (nll, base_nll)
    assert nll < best_gaussian_nll - 0.3, (nll, best_gaussian_nll)
    assert nll > true_nll - 0.1, (nll, true_nll)  # a fit, not a bug in the density
    samples = model.predict(empty[:50], verbose=0)  # converts by sampling
    assert samples.shape == (50, 2) and np.all(np.isfinite(samples))


def test_made_is_an_ordinary_keras_layer_that_trains_under_xla_and_predicts():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = np.cumsum(x, axis=1)[:, :, np.newaxis].repeat(2, axis=2) - x[:, :, np.newaxis]  # sums of earlier inputs
    model = keras.Sequential([keras.Input((3,)), AutoregressiveNetwork(2, hidden_units=[8], activation="tanh")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=True)
    history = model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    np.testing.assert_allclose(model.predict(x, verbose=0), model(x), rtol=1e-5, atol=1e-6)


def test_flow_is_float32_under_a_mixed_policy():
    """The MADE computes in float16; the flow layer, like every distribution layer, in float32."""
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = keras.Sequential([
            keras.Input((3,)),
            keras.layers.Dense(IndependentNormal.params_size(2)),
            IndependentNormal(2),
            AutoregressiveTransform(AutoregressiveNetwork(2, hidden_units=[4])),
        ])
        assert model.layers[-1].made.compute_dtype == "float16"
        log_prob = model(np.ones((5, 3), np.float32)).log_prob(np.ones((5, 2), np.float32))
    finally:
        keras.config.set_dtype_policy("float32")
    assert log_prob.dtype == tf.float32 and np.all(np.isfinite(log_prob))


# ---------------------------------------------------------------- configs and saving


CONFIG_CASES = {
    "plain": lambda: AutoregressiveNetwork(2),
    "everything": lambda: AutoregressiveNetwork(
        3, event_shape=4, conditional=True, conditional_event_shape=[2], conditional_input_layers="first_layer",
        hidden_units=(5, 6), input_order=[2, 1, 4, 3], activation="relu", use_bias=False,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.1), bias_initializer="ones",
        kernel_regularizer=keras.regularizers.L2(1e-3), bias_regularizer="l1",
        kernel_constraint=keras.constraints.MaxNorm(2.0), bias_constraint="non_neg", validate_args=True, name="made",
    ),
    "random": lambda: AutoregressiveNetwork(2, event_shape=5, hidden_units=[4], input_order="random", hidden_degrees="random"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_network_config_round_trips_with_the_same_masks(case):
    made = CONFIG_CASES[case]()
    restored = assert_config_round_trip(made)
    assert serialized_round_trip(made).get_config() == made.get_config()
    made.build((None, made.event_shape[0] if made.event_shape else 5))
    restored.build((None, made.event_shape[0]))
    for mine, theirs in zip(made.masks, restored.masks):
        np.testing.assert_array_equal(mine, theirs)


def test_transform_config_round_trips():
    layer = AutoregressiveTransform(CONFIG_CASES["random"](), convert_to_tensor_fn="mode", name="flow")
    restored = assert_config_round_trip(layer)
    assert isinstance(restored.made, AutoregressiveNetwork)
    assert restored.made.get_config() == layer.made.get_config()
    assert serialized_round_trip(layer).get_config() == layer.get_config()


def _save_for_a_fresh_process(directory):
    rng = np.random.default_rng(8)
    # A conditional MADE with random order and degrees: the masks must survive.
    x, condition = keras.Input((5,)), keras.Input((2,))
    made = AutoregressiveNetwork(
        2, event_shape=5, conditional=True, conditional_event_shape=2, hidden_units=[6],
        input_order="random", hidden_degrees="random", activation="tanh", kernel_initializer="random_normal",
    )
    network = keras.Model([x, condition], made(x, conditional_input=condition))
    # A flow whose base distribution depends on the input (tfvae layers only).
    flow = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(IndependentNormal.params_size(2)),
        IndependentNormal(2),
        AutoregressiveTransform(AutoregressiveNetwork(2, hidden_units=[4], activation="relu", kernel_initializer="random_normal")),
    ])
    arrays = {
        "x": rng.normal(size=(4, 5)), "condition": rng.normal(size=(4, 2)),
        "flow_x": rng.normal(size=(4, 3)), "flow_y": rng.normal(size=(4, 2)),
    }
    arrays = {name: value.astype(np.float32) for name, value in arrays.items()}
    arrays["network_out"] = network([arrays["x"], arrays["condition"]]).numpy()
    arrays["flow_log_prob"] = flow(arrays["flow_x"]).log_prob(arrays["flow_y"]).numpy()
    network.save(directory / "network.keras")
    flow.save(directory / "flow.keras")
    np.savez(directory / "arrays.npz", **arrays)
    return arrays


fresh_process.register("autoregressive: .keras files", _save_for_a_fresh_process, """
import keras, numpy as np
import tfvae.layers.autoregressive  # registers the classes
a = np.load(directory / "arrays.npz")
network = keras.models.load_model(directory / "network.keras")
flow = keras.models.load_model(directory / "flow.keras")
result = {"network_out": np.asarray(network([a["x"], a["condition"]])),
          "flow_log_prob": np.asarray(flow(a["flow_x"]).log_prob(a["flow_y"]))}
""")


def test_saved_models_give_the_same_outputs_in_a_fresh_process(fresh_process_results):
    arrays, reloaded = fresh_process_results("autoregressive: .keras files")
    np.testing.assert_allclose(reloaded["network_out"], arrays["network_out"], rtol=1e-6)
    np.testing.assert_allclose(reloaded["flow_log_prob"], arrays["flow_log_prob"], rtol=1e-6)


# ---------------------------------------------------------------- bad arguments


BAD_NETWORK_ARGUMENTS = [
    ({"params": 0}, "`params`"),
    ({"params": 1.5}, "`params`"),
    ({"params": True}, "`params`"),
    ({"event_shape": [2, 3]}, "`event_shape` must describe a rank-1"),
    ({"event_shape": 0}, "`event_shape`"),
    ({"hidden_units": [4, 0]}, "`hidden_units`"),
    ({"hidden_units": [2.5]}, "`hidden_units`"),
    ({"hidden_units": 3}, "`hidden_units`"),
    ({"input_order": "up-and-down"}, "`input_order`.*up-and-down"),
    ({"event_shape": 3, "input_order": [1, 2, 2]}, "permutation of 1..3"),
    ({"event_shape": 3, "input_order": [0, 1, 2]}, "permutation of 1..3"),
    ({"hidden_degrees": "sideways"}, "`hidden_degrees`"),
    ({"conditional": True, "conditional_event_shape": 2}, "`event_shape` must be given"),
    ({"conditional": True, "event_shape": 2}, "`conditional_event_shape` must be given"),
    ({"event_shape": 2, "conditional_event_shape": 2}, "`conditional_event_shape` is only for"),
    ({"event_shape": 2, "conditional": True, "conditional_event_shape": [2, 2]}, "`conditional_event_shape` must describe"),
    ({"conditional_input_layers": "every_layer"}, "`conditional_input_layers`"),
    ({"seed": -1}, "`seed`"),
    ({"activation": "no_such_activation"}, "no_such_activation"),
]


@pytest.mark.parametrize("arguments, match", BAD_NETWORK_ARGUMENTS, ids=lambda v: json.dumps(v) if isinstance(v, dict) else "")
def test_network_rejects_bad_arguments(arguments, match):
    arguments = {"params": 2, **arguments}
    with pytest.raises(ValueError, match=match):
        AutoregressiveNetwork(**arguments)


def test_network_rejects_inputs_that_do_not_fit():
    with pytest.raises(ValueError, match=r"event_shape=\[3\].*last axis should be 3"):
        AutoregressiveNetwork(2, event_shape=3)(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"event_shape=\[3\]"):
        AutoregressiveNetwork(2, event_shape=3)(keras.Input((4,)))
    with pytest.raises(ValueError, match="permutation of 1..3"):
        AutoregressiveNetwork(2, input_order=[2, 1])(np.zeros((2, 3), np.float32))
    conditional = AutoregressiveNetwork(2, event_shape=3, conditional=True, conditional_event_shape=2)
    with pytest.raises(ValueError, match="pass `conditional_input=`"):
        conditional(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"`conditional_input` of shape \[\.\.\., 2\]"):
        conditional(np.zeros((2, 3), np.float32), conditional_input=np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="conditional=False"):
        AutoregressiveNetwork(2)(np.zeros((2, 3), np.float32), conditional_input=np.zeros((2, 2), np.float32))


def test_transform_rejects_bad_arguments():
    with pytest.raises(ValueError, match="2 parameters.*params=1"):
        AutoregressiveTransform(AutoregressiveNetwork(1))
    with pytest.raises(TypeError, match="`made` must be an AutoregressiveNetwork"):
        AutoregressiveTransform(keras.layers.Dense(4))
    with pytest.raises(ValueError, match="must not be conditional"):
        AutoregressiveTransform(AutoregressiveNetwork(2, event_shape=2, conditional=True, conditional_event_shape=1))
    with pytest.raises(TypeError, match="takes no `output_shape`"):
        AutoregressiveTransform(AutoregressiveNetwork(2), output_shape=(2,))
    layer = AutoregressiveTransform(AutoregressiveNetwork(2))
    with pytest.raises(ValueError, match="rank-1 event shape"):
        layer(tfd.Independent(tfd.Normal(tf.zeros([2, 3, 4]), 1.0), reinterpreted_batch_ndims=2))


@pytest.mark.parametrize("argument", ["activation", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                                      "bias_regularizer", "kernel_constraint", "bias_constraint"])
def test_keras_objects_keras_cannot_interpret_are_refused_naming_the_argument(argument):
    with pytest.raises(ValueError, match=f"`{argument}` must be a Keras .*; received 'no_such_thing'"):
        AutoregressiveNetwork(2, event_shape=3, hidden_units=[4], **{argument: "no_such_thing"})
