"""Bad input found by a machine: hypothesis draws it, tfvae must refuse it clearly or handle it correctly.

Each property draws arguments with hypothesis (random shapes and dtypes, NaN and
infinities, empty and huge values, wrong types) and accepts exactly two outcomes:

- a ValueError or TypeError whose message names the argument, raised before any work;
- a correct result: a layer whose config round-trips and whose output has the
  right shape and finite values, a finite loss, a pipeline of images in [0, 1].

Anything else fails: a TensorFlow error (`tf.errors.*`), an AttributeError or
RecursionError from deep inside, an out-of-memory error, NaN. Where the rule for
a valid value is simple, an oracle (`is_count`, `is_shape`, ...) says which
outcome is due, so that a bad value silently accepted fails too.

The examples are derandomized (the "tfvae" profile in tests/conftest.py): CI
sees the same ones on every run. A longer random search, locally:

    TFVAE_PROPERTY_EXAMPLES=10 pytest tests/test_properties*.py --hypothesis-profile=tfvae-search

This file: layers, priors, losses, bounds, data; tests/test_properties_model.py:
`tfvae.VAE` and the export; tests/test_properties_cli.py: the command line.
"""

import json
import math
import numbers
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from tfvae import bounds, data, losses, priors  # noqa: E402
from tfvae.layers import (  # noqa: E402
    categorical,
    checks,
    dense_variational,
    distribution,
    independent,
    mixture,
    variational,
)

tfd = tfp.distributions
MAX_ELEMENTS = checks.MAX_ELEMENTS


def examples(count):
    """`count` examples, times TFVAE_PROPERTY_EXAMPLES (default 1) for a longer local search."""
    return max(1, round(count * float(os.environ.get("TFVAE_PROPERTY_EXAMPLES", "1"))))


# The outcome rules ------------------------------------------------------------


def names(message, argument):
    """Whether `message` names `argument`: in backticks, or (for names of 3+ letters) as a word."""
    if len(argument) <= 2:
        return f"`{argument}`" in message
    return re.search(rf"`{re.escape(argument)}`|\b{re.escape(argument)}\b", message, re.IGNORECASE) is not None


def assert_names(error, arguments):
    message = str(error)
    assert any(names(message, argument) for argument in arguments), (
        f"{type(error).__name__} names none of {arguments}: {message}")


def refused_or_result(call, arguments, check=None):
    """`call()`'s result, checked by `check`, or None after a ValueError/TypeError naming one of `arguments`.

    Any other exception propagates and fails the property.
    """
    arguments = (arguments,) if isinstance(arguments, str) else tuple(arguments)
    try:
        result = call()
    except (ValueError, TypeError) as error:
        assert_names(error, arguments)
        return None
    if check is not None:
        check(result)
    return result


def refused(call, arguments, errors=(ValueError, TypeError)):
    """Asserts that `call()` raises one of `errors` naming one of `arguments`; returns the error."""
    arguments = (arguments,) if isinstance(arguments, str) else tuple(arguments)
    with pytest.raises(errors) as raised:
        call()
    assert_names(raised.value, arguments)
    return raised.value


def expect(valid, call, arguments, check=None):
    """`call()` succeeds (and passes `check`) when `valid`, else raises a ValueError/TypeError naming `arguments`."""
    if valid:
        result = call()
        if check is not None:
            check(result)
        return result
    return refused(call, arguments)


# Strategies -------------------------------------------------------------------

# Counts and sizes: small valid ones, zero, negative, and huge (past 2**31 - 1, refused before any
# memory is asked for). Sizes just under the limit are valid and would allocate gigabytes: not drawn.
SIZES = st.one_of(st.integers(-3, 5), st.integers(min_value=2**31, max_value=2**70), st.integers(max_value=-2**40))
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
WRONG_TYPES = st.one_of(
    st.none(), st.booleans(), st.text(max_size=3), st.binary(max_size=3), st.lists(st.integers(-2, 3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(-1, 1), max_size=1),
    st.sampled_from([object(), np.int64(2), np.float32(0.5), np.bool_(True), np.array([1, 2]), 1 + 2j]),
)
ANYTHING = st.one_of(SIZES, FLOATS, WRONG_TYPES, st.tuples(SIZES), st.lists(SIZES, max_size=4), st.tuples(SIZES, SIZES))
DTYPES = st.one_of(st.sampled_from(["int32", "float16", "float32", "float64", "bool", "string", "complex64", "variant",
                                    "int33", tf.int64, tf.float32, np.float32, np.int8, np.dtype("float64"), 3, 1, True]),
                   WRONG_TYPES)


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_count(value):
    """What `check_positive_int` accepts: a Python int in [1, 2**31 - 1]."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ELEMENTS


def is_shape(value, allow_scalar=False):
    """What `as_event_shape` accepts: a positive int, or a sequence of them, of at most 2**31 - 1 values."""
    if isinstance(value, (str, bytes, dict)) or value is None:
        return False
    shape = (value,) if is_int(value) else tuple(value) if hasattr(value, "__iter__") else None
    if shape is None or (not shape and not allow_scalar) or not all(is_int(d) and d > 0 for d in shape):
        return False
    return math.prod(int(d) for d in shape) <= MAX_ELEMENTS


FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_positive_float(value):
    """What `check_positive` accepts: a real number in (0, float32's largest], not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and 0 < value <= FLOAT32_MAX


def is_sample_dtype(value, allow_bool=False):
    if value is None:
        return True
    if not isinstance(value, (str, tf.DType, np.dtype, type)):
        return False
    try:
        dtype = tf.as_dtype(value)
    except TypeError:
        return False
    return dtype.is_integer or dtype.is_floating or (allow_bool and dtype.is_bool)


def is_seed(value):
    """What the layers' and priors' `seed` takes: None or an int that fits in int64, as Keras' seeds do."""
    return value is None or isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63


def is_bool(value):
    return isinstance(value, bool)


def _one_int(shape):
    """Whether a valid shape (see `is_shape`) has one dimension: an int, or a sequence of one."""
    return is_int(shape) or len(tuple(shape)) == 1


# Distribution layers: constructor arguments ----------------------------------

# (layer factory of one argument, the argument's name, its oracle or None, values to draw it from)
LAYER_ARGUMENTS = {
    "IndependentNormal.event_shape": (independent.IndependentNormal, "event_shape", lambda v: is_shape(v, True), ANYTHING),
    "IndependentNormal.scale_floor": (lambda v: independent.IndependentNormal(2, scale_floor=v), "scale_floor",
                                      is_positive_float, st.one_of(FLOATS, WRONG_TYPES)),
    "IndependentNormal.convert_to_tensor_fn": (
        lambda v: independent.IndependentNormal(2, convert_to_tensor_fn=v), "convert_to_tensor_fn", None,
        st.one_of(st.sampled_from(["mean", "mode", "sample", "stddev", "variance", "median", "", "Mean",
                                   tfd.Distribution.mean, {"class_name": "function"}]), WRONG_TYPES)),
    "IndependentNormal.validate_args": (lambda v: independent.IndependentNormal(2, validate_args=v), "validate_args",
                                        is_bool, ANYTHING),
    "IndependentBernoulli.event_shape": (independent.IndependentBernoulli, "event_shape", lambda v: is_shape(v, True), ANYTHING),
    "IndependentBernoulli.sample_dtype": (lambda v: independent.IndependentBernoulli(3, sample_dtype=v), "sample_dtype",
                                          lambda v: is_sample_dtype(v, allow_bool=True), DTYPES),
    "IndependentLogistic.scale_floor": (lambda v: independent.IndependentLogistic(2, scale_floor=v), "scale_floor",
                                        is_positive_float, st.one_of(FLOATS, WRONG_TYPES)),
    "IndependentPoisson.event_shape": (independent.IndependentPoisson, "event_shape", lambda v: is_shape(v, True), ANYTHING),
    "IndependentGaussian.event_shape": (independent.IndependentGaussian, "event_shape", is_shape, ANYTHING),
    "IndependentGaussian.scale": (lambda v: independent.IndependentGaussian(2, scale=v), "scale",
                                  lambda v: v is None or is_positive_float(v), st.one_of(FLOATS, WRONG_TYPES)),
    "MultivariateNormalTriL.event_size": (independent.MultivariateNormalTriL, "event_size",
                                          lambda v: is_shape(v) and _one_int(v), ANYTHING),
    "OneHotCategorical.event_size": (categorical.OneHotCategorical, "event_size", lambda v: is_shape(v) and _one_int(v),
                                     ANYTHING),
    "OneHotCategorical.sample_dtype": (lambda v: categorical.OneHotCategorical(3, sample_dtype=v), "sample_dtype",
                                       is_sample_dtype, DTYPES),
    "CategoricalMixtureOfOneHotCategorical.num_components": (
        lambda v: categorical.CategoricalMixtureOfOneHotCategorical(3, v), "num_components", is_count, ANYTHING),
    "MixtureNormal.num_components": (mixture.MixtureNormal, "num_components", is_count, ANYTHING),
    "MixtureNormal.event_shape": (lambda v: mixture.MixtureNormal(2, v), "event_shape", lambda v: is_shape(v, True), ANYTHING),
    "MixtureLogistic.convert_to_tensor_fn": (
        lambda v: mixture.MixtureLogistic(2, convert_to_tensor_fn=v), "convert_to_tensor_fn", None,
        st.one_of(st.sampled_from(["mean", "mode", "sample", "stddev", "variance", "median"]), WRONG_TYPES)),
    "MixtureSameFamily.component_layer": (lambda v: mixture.MixtureSameFamily(2, v), "component_layer", None,
                                          st.one_of(WRONG_TYPES, st.just(keras.layers.Dense(2)))),
    "DistributionLambda.make_distribution_fn": (distribution.DistributionLambda, "make_distribution_fn", callable, ANYTHING),
    "DenseFlipout.units": (variational.DenseFlipout, "units", is_count, ANYTHING),
    "DenseFlipout.seed": (lambda v: variational.DenseFlipout(2, seed=v), "seed", is_seed, ANYTHING),
    "DenseFlipout.activation": (lambda v: variational.DenseFlipout(2, activation=v), "activation", None,
                                st.one_of(st.sampled_from(["relu", "tanh", "nope", ""]), WRONG_TYPES)),
    "DenseReparameterization.kernel_posterior_fn": (
        lambda v: variational.DenseReparameterization(2, kernel_posterior_fn=v), "kernel_posterior_fn", None, WRONG_TYPES),
    "DenseVariational.units": (lambda v: dense_variational.DenseVariational(
        v, dense_variational.posterior_mean_field, dense_variational.prior_trainable), "units", is_count, ANYTHING),
    "DenseVariational.kl_weight": (lambda v: dense_variational.DenseVariational(
        2, dense_variational.posterior_mean_field, dense_variational.prior_trainable, kl_weight=v), "kl_weight",
        lambda v: v is None or (isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                                and 0 <= v <= FLOAT32_MAX), st.one_of(FLOATS, WRONG_TYPES)),
    "DenseVariational.make_posterior_fn": (lambda v: dense_variational.DenseVariational(
        2, v, dense_variational.prior_trainable), "make_posterior_fn", callable, WRONG_TYPES),
    "DenseVariational.use_bias": (lambda v: dense_variational.DenseVariational(
        2, dense_variational.posterior_mean_field, dense_variational.prior_trainable, use_bias=v), "use_bias", is_bool,
        ANYTHING),
}


def _check_layer(layer):
    """A constructed layer is correct: its config round-trips, and a small one maps inputs to finite outputs."""
    config = layer.get_config() if not isinstance(layer, distribution.DistributionLambda) else None
    if config is not None:
        json.dumps(config)  # JSON-serializable, as a .keras file needs
        assert type(layer).from_config(config).get_config() == config
    if isinstance(layer, distribution.DistributionLayer) and hasattr(layer, "event_shape"):
        if layer.num_params is None or layer.num_params > 4096:
            return
        output = tf.convert_to_tensor(layer(np.zeros([2, layer.num_params], np.float32)))
        assert tuple(output.shape) == (2, *layer.event_shape)
        assert np.all(np.isfinite(output.numpy()))
    elif isinstance(layer, (variational.DenseFlipout, dense_variational.DenseVariational)) and layer.units <= 64:
        output = layer(np.ones([2, 3], np.float32))
        assert tuple(output.shape) == (2, layer.units) and np.all(np.isfinite(output.numpy()))


@settings(max_examples=examples(200))
@given(st.data())
def test_layer_constructor_arguments_are_refused_by_name_or_make_a_working_layer(draw):
    factory, argument, oracle, values = LAYER_ARGUMENTS[draw.draw(st.sampled_from(sorted(LAYER_ARGUMENTS)), label="case")]
    value = draw.draw(values, label=argument)
    if oracle is None:
        refused_or_result(lambda: factory(value), argument, _check_layer)
    else:
        expect(oracle(value), lambda: factory(value), argument, _check_layer)


# Distribution layers: inputs ---------------------------------------------------

CALLED_LAYERS = {
    "IndependentNormal(2)": lambda: independent.IndependentNormal(2),
    "IndependentBernoulli((2, 2))": lambda: independent.IndependentBernoulli((2, 2)),
    "IndependentLogistic(())": lambda: independent.IndependentLogistic(),
    "IndependentPoisson(3)": lambda: independent.IndependentPoisson(3),
    "IndependentGaussian(3)": lambda: independent.IndependentGaussian(3),
    "MultivariateNormalTriL(2)": lambda: independent.MultivariateNormalTriL(2),
    "OneHotCategorical(3)": lambda: categorical.OneHotCategorical(3),
    "MixtureNormal(2, 1)": lambda: mixture.MixtureNormal(2, 1),
    "DenseFlipout(2)": lambda: variational.DenseFlipout(2, seed=1),
    "DenseVariational(2)": lambda: dense_variational.DenseVariational(
        2, dense_variational.posterior_mean_field, dense_variational.prior_trainable, seed=1),
}
INPUT_DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.uint8, np.bool_, np.complex64, np.str_])


@st.composite
def arrays(draw, shapes=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6), dtypes=INPUT_DTYPES,
           elements=None):
    """Arrays of any of `dtypes` and `shapes`; floats include NaN, infinities and huge values, or `elements`."""
    dtype = np.dtype(draw(dtypes))
    if dtype.kind == "U":
        # NumPy drops trailing NUL characters, which hypothesis refuses as a lossy element.
        text = st.text(st.characters(exclude_characters="\x00"), max_size=2)
        return draw(hnp.arrays(np.dtype("<U2"), draw(shapes), elements=text))
    if elements is not None and dtype.kind == "f":
        return draw(hnp.arrays(dtype, draw(shapes), elements=elements))
    return draw(hnp.arrays(dtype, draw(shapes)))


def _finite_and_moderate(array):
    """Whether `array` holds real numbers in [-30, 30]: parameters whose distributions have finite means."""
    return array.dtype.kind in "fiub" and np.all(np.isfinite(array.astype(np.float64))) and np.all(np.abs(array) <= 30)


@settings(max_examples=examples(120))
@given(st.sampled_from(sorted(CALLED_LAYERS)), arrays())
def test_layer_inputs_of_any_shape_and_dtype_are_refused_by_name_or_give_outputs_of_the_right_shape(name, inputs):
    layer = CALLED_LAYERS[name]()

    def check(output):
        output = tf.convert_to_tensor(output)
        if inputs.ndim >= 1 and hasattr(layer, "event_shape"):
            assert tuple(output.shape) == (inputs.shape[0], *layer.event_shape)
        elif inputs.ndim >= 1:
            assert tuple(output.shape) == (*inputs.shape[:-1], layer.units)
        if _finite_and_moderate(inputs):
            assert np.all(np.isfinite(output.numpy())), output

    refused_or_result(lambda: layer(inputs), ("inputs", "input"), check)


# Priors --------------------------------------------------------------------------

PRIOR_ARGUMENTS = {
    "StandardNormal.latent_dim": (priors.StandardNormal, "latent_dim", lambda v: is_shape(v) and _one_int(v), ANYTHING),
    "DiagonalNormal.latent_dim": (priors.DiagonalNormal, "latent_dim", lambda v: is_shape(v) and _one_int(v), ANYTHING),
    "DiagonalNormal.scale_floor": (lambda v: priors.DiagonalNormal(2, scale_floor=v), "scale_floor", is_positive_float,
                                   st.one_of(FLOATS, WRONG_TYPES)),
    "MixtureOfGaussians.num_components": (lambda v: priors.MixtureOfGaussians(3, v), "num_components", is_count, ANYTHING),
    "MixtureOfGaussians.seed": (lambda v: priors.MixtureOfGaussians(2, 2, seed=v), "seed", is_seed,
                                st.one_of(ANYTHING, st.integers(-2**64, 2**64))),
    "VampPrior.num_pseudo_inputs": (lambda v: priors.VampPrior(2, v, (2, 2, 1)), "num_pseudo_inputs",
                                    lambda v: is_count(v) and v * 4 <= MAX_ELEMENTS, ANYTHING),
    "VampPrior.input_shape": (lambda v: priors.VampPrior(2, 3, v), "input_shape", lambda v: is_shape(v) and (
        math.prod(int(d) for d in np.atleast_1d(np.asarray(v, dtype=object))) * 3 <= MAX_ELEMENTS), ANYTHING),
    "get_prior.name": (lambda v: priors.get_prior(v, 2), "name",
                       lambda v: isinstance(v, str) and v in ("standard_normal", "diagonal_normal"),
                       st.one_of(st.sampled_from(["standard_normal", "diagonal_normal", "vamp", "Standard_Normal", ""]),
                                 WRONG_TYPES)),
}


def _check_prior(prior):
    json.dumps(prior.get_config())
    if isinstance(prior, priors.VampPrior):
        refused(prior.distribution, "encoder")  # it needs the VAE's encoder
        return
    if prior.latent_dim > 4096:
        return
    log_prob = prior.distribution().log_prob(np.zeros([4, prior.latent_dim], np.float32))
    assert tuple(log_prob.shape) == (4,) and np.all(np.isfinite(log_prob.numpy()))


@settings(max_examples=examples(100))
@given(st.data())
def test_prior_arguments_are_refused_by_name_or_make_a_prior_with_finite_densities(draw):
    factory, argument, oracle, values = PRIOR_ARGUMENTS[draw.draw(st.sampled_from(sorted(PRIOR_ARGUMENTS)), label="case")]
    value = draw.draw(values, label=argument)
    expect(oracle(value), lambda: factory(value), argument, _check_prior)


# Losses ----------------------------------------------------------------------------

TARGETS = st.one_of(arrays(shapes=st.just((3, 2))), arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)),
                    WRONG_TYPES)
SAMPLE_WEIGHTS = st.one_of(st.none(), arrays(shapes=st.sampled_from([(), (3,), (3, 1)])),
                           arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)), FLOATS, WRONG_TYPES)


@settings(max_examples=examples(100))
@given(st.sampled_from(["normal", "bernoulli", "poisson"]), TARGETS, SAMPLE_WEIGHTS)
def test_negative_log_likelihood_refuses_bad_targets_and_weights_by_name_or_is_a_number(family, y_true, sample_weight):
    params = np.zeros([3, 4 if family == "normal" else 2], np.float32)
    predicted = {"normal": independent.IndependentNormal(2), "bernoulli": independent.IndependentBernoulli(2),
                 "poisson": independent.IndependentPoisson(2)}[family](params)
    loss = losses.NegativeLogLikelihood()

    def check(value):
        assert value.shape == () and not np.isnan(value.numpy()), value
        y, weights = np.asarray(y_true), np.asarray(1.0 if sample_weight is None else sample_weight)
        in_support = family != "poisson" or np.all(y >= 0)
        if _finite_and_moderate(y) and _finite_and_moderate(weights) and in_support:
            assert np.isfinite(value.numpy()), value

    refused_or_result(lambda: loss(y_true, predicted, sample_weight=sample_weight), ("y_true", "sample_weight"), check)


# Bounds ------------------------------------------------------------------------------

@settings(max_examples=examples(60))
@given(st.sampled_from(["bits_per_dim", "warmed_up_beta", "importance_weighted_bound_from_chunks"]), ANYTHING)
def test_bound_helpers_refuse_counts_that_are_not_positive_ints_by_name(function, value):
    calls = {
        "bits_per_dim": (lambda: bounds.bits_per_dim(100.0, value), "num_dimensions"),
        "warmed_up_beta": (lambda: bounds.warmed_up_beta(1.0, 3, value), "warmup_steps"),
        "importance_weighted_bound_from_chunks": (
            lambda: bounds.importance_weighted_bound_from_chunks(tf.zeros([1, 2]), value), "k"),
    }
    call, argument = calls[function]
    expect(is_count(value), call, argument, lambda result: np.all(np.isfinite(np.asarray(result))))


# Data ----------------------------------------------------------------------------------

DATA_ARGUMENTS = {
    "batch_size": (lambda v: is_int(v) and 1 <= v <= MAX_ELEMENTS, ANYTHING),  # a batch past the data: the whole split
    "binarize": (lambda v: v is None or isinstance(v, str) and v == "dynamic",
                 st.one_of(st.sampled_from(["dynamic", "static", "Dynamic", "none", ""]), WRONG_TYPES)),
    # 10 images, 1 held out for test: validation may take up to 8 of them.
    "validation_fraction": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and 0 <= v < 1
                            and round(10 * v) <= 8,
                            st.one_of(FLOATS, WRONG_TYPES, st.floats(0, 0.45))),
    "seed": (None, st.one_of(ANYTHING, st.tuples(st.integers(-5, 5), st.integers(-5, 5)))),
}


@settings(max_examples=examples(80))
@given(st.data())
def test_from_array_arguments_are_refused_by_name_or_give_batches_of_images_in_the_unit_interval(draw):
    argument = draw.draw(st.sampled_from(sorted(DATA_ARGUMENTS)), label="argument")
    oracle, values = DATA_ARGUMENTS[argument]
    value = draw.draw(values, label=argument)
    images = np.random.default_rng(0).integers(0, 256, size=[10, 2, 2, 1], dtype=np.uint8)

    def check(splits):
        batch = next(iter(splits.train))
        assert batch.shape[1:] == (2, 2, 1) and 1 <= batch.shape[0] <= splits.num_examples["train"]
        assert np.all((batch.numpy() >= 0) & (batch.numpy() <= 1))

    call = lambda: data.from_array(images, **{argument: value})  # noqa: E731
    if oracle is None:
        refused_or_result(call, argument, check)
    else:
        expect(oracle(value), call, argument, check)


@settings(max_examples=examples(80))
@given(arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4),
              dtypes=st.sampled_from([np.uint8, np.float32, np.float64, np.int64, np.bool_, np.str_])),
       st.one_of(st.none(), arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=2, max_side=12),
                                   dtypes=st.sampled_from([np.int64, np.float32, np.str_, np.bool_]))))
def test_from_array_refuses_images_and_labels_it_cannot_serve_by_name(images, labels):
    def check(splits):
        batch = next(iter(splits.train))
        images_batch = batch[0] if splits.has_labels else batch
        assert np.all((images_batch.numpy() >= 0) & (images_batch.numpy() <= 1))

    refused_or_result(lambda: data.from_array(images, labels=labels, validation_fraction=0, test_fraction=0),
                      ("images", "labels", "validation_fraction", "test_fraction"), check)


@settings(max_examples=examples(60))
@given(st.data())
def test_load_refuses_bad_names_batch_sizes_max_examples_and_binarize_values_before_reading_data(draw):
    argument = draw.draw(st.sampled_from(["name", "batch_size", "binarize", "max_examples", "download"]), label="argument")
    value = draw.draw(ANYTHING if argument != "binarize" else DATA_ARGUMENTS["binarize"][1], label=argument)
    arguments = {"name": "mnist", "data_dir": "/nonexistent/tfvae-data", "download": False, argument: value}
    valid = {"name": lambda v: isinstance(v, str) and v in data.DATASETS,
             "batch_size": DATA_ARGUMENTS["batch_size"][0],
             "binarize": DATA_ARGUMENTS["binarize"][0],
             "max_examples": lambda v: v is None or is_int(v) and v >= 1,
             "download": lambda v: isinstance(v, (bool, np.bool_)) and not v}[argument](value)
    assume(not (argument == "download" and isinstance(value, (bool, np.bool_)) and value))  # True goes to the network
    if valid:  # the arguments pass; the missing data directory is what stops it, with the documented error
        with pytest.raises(data.DatasetUnavailableError):
            data.load(**arguments)
    else:
        refused(lambda: data.load(**arguments), argument)


@pytest.fixture
def image_folder(tmp_path):
    for index in range(3):
        (tmp_path / f"{index}.png").write_bytes(tf.io.encode_png(np.full([4, 4, 1], 40 * index, np.uint8)).numpy())
    return tmp_path


@settings(max_examples=examples(40))
@given(st.data())
def test_from_image_folder_refuses_bad_directories_sizes_and_color_modes_by_name(image_folder, draw):
    argument = draw.draw(st.sampled_from(["directory", "image_size", "color_mode"]), label="argument")
    # Never an existing folder: "." would read the working directory's images.
    not_a_folder = st.one_of(WRONG_TYPES, st.sampled_from(["", " ", "/nonexistent/tfvae", str(image_folder / "0.png")]))
    values = {"directory": not_a_folder.filter(lambda v: not (isinstance(v, (str, bytes)) and str(v).strip() and os.path.isdir(v))),
              "image_size": st.one_of(ANYTHING, st.tuples(st.integers(-2, 6), st.integers(-2, 6))),
              "color_mode": st.one_of(st.sampled_from(["grayscale", "rgb", "rgba", "RGB"]), WRONG_TYPES)}[argument]
    value = draw.draw(values, label=argument)
    arguments = {"directory": image_folder, "image_size": (2, 2), "validation_fraction": 0, "test_fraction": 0, argument: value}
    valid = {"directory": lambda v: False,
             "image_size": lambda v: isinstance(v, (tuple, list, np.ndarray)) and len(v) == 2
                                     and all(is_int(d) and 0 < d <= 2**15 for d in v),
             "color_mode": lambda v: isinstance(v, str) and v in ("grayscale", "rgb")}[argument](value)

    def check(splits):
        assert splits.num_examples["train"] == 3 and splits.image_shape[-1] in (1, 3)

    expect(valid, lambda: data.from_image_folder(**arguments), argument, check)
