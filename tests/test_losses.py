import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import layers, training
from tfvae.losses import DistributionLoss, NegativeLogLikelihood
from tests.helpers import assert_config_round_trip, serialized_round_trip

tfd = tfp.distributions


def _normal(loc, scale):
    raw_scale = np.log(np.expm1(np.asarray(scale, np.float32) - 1e-3))
    return layers.IndependentNormal(1)(np.stack([loc, raw_scale], axis=1).astype(np.float32))


def test_reductions_and_sample_weight_match_hand_computation():
    distribution = _normal([0.0, 1.0], [1.0, 2.0])
    y = np.array([[0.5], [0.0]], np.float32)
    per_example = -distribution.log_prob(y).numpy()
    np.testing.assert_allclose(NegativeLogLikelihood(reduction="none")(y, distribution), per_example, rtol=1e-6)
    np.testing.assert_allclose(NegativeLogLikelihood()(y, distribution), per_example.mean(), rtol=1e-6)
    np.testing.assert_allclose(NegativeLogLikelihood(reduction="sum")(y, distribution), per_example.sum(), rtol=1e-6)
    weighted = NegativeLogLikelihood()(y, distribution, sample_weight=np.array([2.0, 0.0]))
    np.testing.assert_allclose(weighted, 2 * per_example[0] / 2, rtol=1e-6)


def test_rejects_targets_without_event_axis_and_unknown_reduction():
    distribution = _normal([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"y_true.*\[batch, \*event_shape\]"):
        NegativeLogLikelihood()(tf.constant([0.5, 0.0]), distribution)
    with pytest.raises(ValueError, match="reduction"):
        NegativeLogLikelihood(reduction="mean_over_everything")


def test_config_round_trips():
    loss = NegativeLogLikelihood(reduction="sum", name="nll")
    assert_config_round_trip(loss)
    restored = serialized_round_trip(loss)
    assert isinstance(restored, NegativeLogLikelihood) and restored.get_config() == loss.get_config()


TARGET_SHAPE_ERROR = r"`y_true` must have shape \[batch, \*event_shape\] = "
SAMPLE_WEIGHT_ERROR = r"`sample_weight` must be a scalar, \[batch\] or \[batch, 1\] with batch "


def test_refuses_targets_whose_shape_differs_from_batch_and_event_shape():
    distribution = _normal(np.zeros(64), np.ones(64))
    for y_shape in [(64, 3), (32, 1), (64, 1, 1), (64,)]:  # (64, 3) would broadcast to a finite, meaningless loss
        received = ", ".join(map(str, y_shape))
        with pytest.raises(ValueError, match=TARGET_SHAPE_ERROR + rf"\[64, 1\].*received shape \[{received}\]"):
            NegativeLogLikelihood()(np.zeros(y_shape, np.float32), distribution)


def test_accepts_batch_targets_for_a_distribution_with_scalar_events():
    distribution = tfd.Normal(loc=[0.0, 1.0, 2.0], scale=[1.0, 2.0, 0.5])
    y = np.array([0.5, 0.0, 2.5], np.float32)
    np.testing.assert_allclose(
        NegativeLogLikelihood(reduction="none")(y, distribution), -distribution.log_prob(y), rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"y_true.*\[3\].*received shape \[3, 1\]"):
        NegativeLogLikelihood()(y[:, None], distribution)


def test_sample_weight_of_every_accepted_shape_scales_each_example():
    distribution = _normal([0.0, 1.0, 2.0], [1.0, 2.0, 0.5])
    y = np.array([[0.5], [0.0], [2.5]], np.float32)
    per_example = -distribution.log_prob(y).numpy()
    weights = np.array([0.5, 0.0, 3.0], np.float32)
    expected = (weights * per_example).sum() / 3  # divided by the batch size, not by the weights' sum
    loss = NegativeLogLikelihood()
    for sample_weight in (weights, weights[:, None], tf.constant(weights)):
        np.testing.assert_allclose(loss(y, distribution, sample_weight=sample_weight), expected, rtol=1e-6)
    np.testing.assert_allclose(loss(y, distribution, sample_weight=2.0), 2 * per_example.mean(), rtol=1e-6)
    np.testing.assert_allclose(
        NegativeLogLikelihood(reduction="none")(y, distribution, sample_weight=weights),
        weights * per_example,
        rtol=1e-6,
    )
    for bad in (np.ones(2), np.ones([3, 2]), np.ones([1, 3])):
        received = ", ".join(map(str, bad.shape))
        with pytest.raises(ValueError, match=SAMPLE_WEIGHT_ERROR + rf"3; received shape \[{received}\]"):
            loss(y, distribution, sample_weight=bad)


def _regression_model():
    return keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(layers.IndependentNormal.params_size(2)), layers.IndependentNormal(2)]
    )


def test_fit_and_evaluate_with_correct_shapes_give_the_mean_nll():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3)).astype(np.float32)
    y = rng.normal(size=(12, 2)).astype(np.float32)
    weights = rng.uniform(size=12).astype(np.float32)
    model = _regression_model()
    model.compile(optimizer="adam", loss=NegativeLogLikelihood())
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    per_example = -model(x).log_prob(y).numpy()
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=12, verbose=0), per_example.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        model.evaluate(x, y, sample_weight=weights, batch_size=12, verbose=0),
        (weights * per_example).mean(),
        rtol=1e-5,
    )


def test_fit_refuses_targets_of_the_wrong_event_shape():
    x = np.zeros([8, 3], np.float32)
    model = _regression_model()
    model.compile(optimizer="adam", loss=NegativeLogLikelihood())
    # Keras traces with the batch size known (4) or not (None).
    with pytest.raises(ValueError, match=TARGET_SHAPE_ERROR + r"\[(None|4), 2\].*received shape \[(None|4), 3\]"):
        model.fit(x, np.zeros([8, 3], np.float32), batch_size=4, verbose=0)


def test_mean_over_replicas_matches_one_device():
    """Under MirroredStrategy the loss is divided by the replicas, as Keras' own losses are."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)

    def fit_one_step():
        model = _regression_model()
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=NegativeLogLikelihood())
        model.set_weights(initial)
        evaluated = model.evaluate(x, y, batch_size=8, verbose=0)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return evaluated, model.get_weights()

    initial = _regression_model().get_weights()
    one_device = fit_one_step()
    # make_strategy: a second raw MirroredStrategy in one process collides with the first (tensorflow#62790).
    with training.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]).scope():
        two_replicas = fit_one_step()
    np.testing.assert_allclose(two_replicas[0], one_device[0], rtol=1e-5)
    for replicated, single in zip(two_replicas[1], one_device[1]):
        np.testing.assert_allclose(replicated, single, rtol=1e-5, atol=1e-6)


def test_heteroscedastic_regression_recovers_noise_scale():
    """A Sequential model ending in IndependentNormal learns sigma(x) within 10%."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(4000, 1)).astype(np.float32)
    true_scale = lambda x: 0.1 + 0.2 * (x + 1)  # noqa: E731  0.1 at x=-1, 0.5 at x=1
    y = (1.5 * x + true_scale(x) * rng.normal(size=x.shape)).astype(np.float32)
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(layers.IndependentNormal.params_size(1)),
            layers.IndependentNormal(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=NegativeLogLikelihood())
    model.fit(x, y, batch_size=200, epochs=40, verbose=0)
    probe = np.array([[-0.75], [-0.25], [0.25], [0.75]], np.float32)
    learned_scale = model(probe).stddev().numpy()
    np.testing.assert_allclose(learned_scale, true_scale(probe), rtol=0.10)
    # predict gives the mean, which tracks 1.5 x.
    np.testing.assert_allclose(model.predict(probe, verbose=0), 1.5 * probe, atol=0.1)


@keras.saving.register_keras_serializable(package="tfvae_tests")
def negloglik(y, rv_y):
    return -rv_y.log_prob(y)


def test_distribution_loss_hands_the_function_the_distribution_as_tfp_layers_did():
    """Keras 3 would give a plain loss function a tensor; `tfp.layers`' `lambda y, rv_y: -rv_y.log_prob(y)` goes in DistributionLoss."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = rng.normal(size=(64, 2)).astype(np.float32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), layers.IndependentNormal(2)])
    wrapped, reference = DistributionLoss(negloglik), NegativeLogLikelihood()
    np.testing.assert_allclose(wrapped(y, model(x)), reference(y, model(x)), rtol=1e-6)
    np.testing.assert_allclose(wrapped(y, model(x), sample_weight=np.arange(64.0)),
                               reference(y, model(x), sample_weight=np.arange(64.0)), rtol=1e-6)
    model.compile("adam", loss=wrapped)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(float(reference(y, model(x))), rel=1e-5)
    restored = serialized_round_trip(wrapped)
    assert restored.fn is negloglik and restored.name == "negloglik"
    anonymous = DistributionLoss(lambda y, d: -d.log_prob(y))
    assert anonymous.name == "distribution_loss"  # "<lambda>" is no TF name scope
    np.testing.assert_allclose(anonymous(y, model(x)), reference(y, model(x)), rtol=1e-6)
    with pytest.raises(ValueError, match="cannot be saved: its `fn`.*not registered"):
        anonymous.get_config()
    with pytest.raises(TypeError, match="`fn` must be a callable"):
        DistributionLoss("nll")


# Regressions from tests/test_properties.py ---------------------------------------------------------


def test_targets_and_weights_that_are_not_real_numbers_are_refused_by_name():
    # Strings were an UnimplementedError (Cast string to float); complex numbers lost their imaginary part.
    distribution = layers.IndependentNormal(2)(np.zeros([3, 4], np.float32))
    loss = NegativeLogLikelihood()
    with pytest.raises(TypeError, match="`y_true` must hold real numbers"):
        loss(np.full([3, 2], "a"), distribution)
    with pytest.raises(TypeError, match="`y_true` must hold real numbers"):
        loss(np.zeros([3, 2], np.complex64), distribution)
    with pytest.raises(TypeError, match="`sample_weight` must hold real numbers"):
        loss(np.zeros([3, 2], np.float32), distribution, sample_weight=np.full([3], "a"))
    with pytest.raises(TypeError, match="`y_true` must be a tensor or array of numbers"):
        loss(None, distribution)


def test_nan_targets_and_weights_are_refused_by_name_when_called_eagerly():
    distribution = layers.IndependentNormal(2)(np.zeros([3, 4], np.float32))
    loss = NegativeLogLikelihood()
    with pytest.raises(ValueError, match="`y_true` holds NaN or infinite values"):
        loss(np.full([3, 2], np.nan, np.float32), distribution)
    with pytest.raises(ValueError, match="`sample_weight` holds NaN or infinite values, e.g. inf"):
        loss(np.zeros([3, 2], np.float32), distribution, sample_weight=np.array([1.0, np.inf, 1.0]))


def test_a_zero_weight_leaves_out_an_example_with_an_infinite_loss():
    # 0 * inf was NaN: the target 1.28e19 has -log p = inf in float32.
    distribution = layers.IndependentNormal(2)(np.zeros([3, 4], np.float32))
    y_true = np.zeros([3, 2], np.float32)
    y_true[0, 0] = 1.28e19
    value = NegativeLogLikelihood()(y_true, distribution, sample_weight=np.array([0.0, 1.0, 1.0], np.float32))
    expected = NegativeLogLikelihood(reduction="sum")(y_true[1:], layers.IndependentNormal(2)(np.zeros([2, 4], np.float32))) / 3
    np.testing.assert_allclose(value, expected, rtol=1e-6)
