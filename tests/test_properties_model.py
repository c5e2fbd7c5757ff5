"""Bad input found by a machine, for `tfvae.VAE` and the export: refused by name, or a correct result.

The rules and strategies are tests/test_properties.py's. A refused call must
also leave the model and the disk as they were: no step taken, no weight
changed, no file written.
"""

import math
import pathlib

import numpy as np
import pytest
import tensorflow as tf

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import tfvae  # noqa: E402
from tfvae import architectures, export, priors  # noqa: E402
from tfvae.layers import independent  # noqa: E402
from tests.test_properties import (  # noqa: E402
    ANYTHING,
    FLOAT32_MAX,
    FLOATS,
    SIZES,
    WRONG_TYPES,
    arrays,
    examples,
    expect,
    is_count,
    refused,
    refused_or_result,
)

IMAGE_SHAPE = (2, 2, 1)
LATENT_DIM = 2


def _encoder_and_decoder():
    return (architectures.mlp_encoder(IMAGE_SHAPE, LATENT_DIM, hidden_units=(4,)),
            architectures.mlp_decoder(LATENT_DIM, IMAGE_SHAPE, hidden_units=(4,)))


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


def _snapshot(directory):
    return sorted((str(p.relative_to(directory)), p.stat().st_size) for p in pathlib.Path(directory).rglob("*"))


BINARY = (np.random.default_rng(0).uniform(size=(4, *IMAGE_SHAPE)) > 0.5).astype(np.float32)


@pytest.fixture(scope="module")
def vae():
    """One compiled VAE for the properties that do not train it (each test's examples share it)."""
    model = tfvae.VAE(*_encoder_and_decoder(), seed=1)
    model.compile(optimizer="adam")
    return model

# The constructor ------------------------------------------------------------------

VAE_ARGUMENTS = {
    "beta": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= FLOAT32_MAX,
             st.one_of(FLOATS, WRONG_TYPES, SIZES)),
    "kl": (lambda v: isinstance(v, str) and v in ("auto", "analytic", "monte_carlo"),
           st.one_of(st.sampled_from(["auto", "analytic", "monte_carlo", "Auto", "exact", ""]), WRONG_TYPES)),
    "objective": (lambda v: isinstance(v, str) and v in ("elbo", "iwae"),
                  st.one_of(st.sampled_from(["elbo", "iwae", "ELBO", "vae", ""]), WRONG_TYPES)),
    "k": (is_count, ANYTHING),
    "kl_warmup_steps": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, ANYTHING),
    "check_support": (lambda v: isinstance(v, (bool, np.bool_)), ANYTHING),
    "stop_on_non_finite": (lambda v: isinstance(v, (bool, np.bool_)), ANYTHING),
    "keep_finite_weights": (lambda v: isinstance(v, (bool, np.bool_)), ANYTHING),
    "seed": (None, st.one_of(ANYTHING, st.tuples(st.integers(-9, 9), st.integers(-9, 9)))),
    "prior": (None, st.one_of(WRONG_TYPES, st.sampled_from(["standard_normal", 3]),
                              st.integers(1, 4).map(priors.StandardNormal))),
    "encoder": (None, st.one_of(WRONG_TYPES, st.just(independent.IndependentNormal(LATENT_DIM)))),
    "decoder": (None, WRONG_TYPES),
}


@settings(max_examples=examples(60))
@given(st.data())
def test_vae_constructor_arguments_are_refused_by_name_or_make_a_vae_with_a_finite_elbo(draw):
    encoder, decoder = _encoder_and_decoder()
    argument = draw.draw(st.sampled_from(sorted(VAE_ARGUMENTS)), label="argument")
    oracle, values = VAE_ARGUMENTS[argument]
    value = draw.draw(values, label=argument)
    arguments = {"encoder": encoder, "decoder": decoder, argument: value}

    def check(vae):
        elbo = vae.elbo(BINARY, k=1)
        assert tuple(elbo.shape) == (4,) and np.all(np.isfinite(elbo.numpy()))
        assert vae.kl_method in ("analytic", "monte_carlo")  # resolved at construction, or (any encoder) at first use

    call = lambda: tfvae.VAE(**arguments)  # noqa: E731
    if oracle is None:
        refused_or_result(call, argument, check)
    else:
        expect(oracle(value), call, argument, check)


# The methods' inputs --------------------------------------------------------------

IMAGES = st.one_of(
    arrays(shapes=st.tuples(st.integers(0, 3)).map(lambda batch: (*batch, *IMAGE_SHAPE))),  # the right shape, any values
    hnp.arrays(np.float32, st.integers(1, 3).map(lambda batch: (batch, *IMAGE_SHAPE)), elements=st.sampled_from([0.0, 1.0])),
    arrays(shapes=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3)),  # any shape
    WRONG_TYPES,
)


def _binary(x):
    return isinstance(x, np.ndarray) and x.dtype.kind in "fiub" and x.size and np.all((x == 0) | (x == 1))


@settings(max_examples=examples(60))
@given(st.sampled_from(["elbo", "log_likelihood", "reconstruct", "predict", "evaluate"]), IMAGES)
def test_vae_methods_refuse_bad_images_by_name_or_give_finite_results_of_the_right_shape(vae, method, x):
    calls = {
        "elbo": lambda: vae.elbo(x, k=2),
        "log_likelihood": lambda: vae.log_likelihood(x, k=3, chunk_size=2),
        "reconstruct": lambda: vae.reconstruct(x),
        "predict": lambda: vae.predict(x, verbose=0),
        "evaluate": lambda: vae.evaluate(x, verbose=0, return_dict=True),
    }

    def check(result):
        if method == "evaluate":
            assert _binary(x) and all(np.isfinite(value) for value in result.values()), result
            return
        result = np.asarray(result)
        expected = (x.shape[0],) if method in ("elbo", "log_likelihood") else (x.shape[0], *IMAGE_SHAPE)
        assert result.shape == expected
        # elbo() and log_likelihood() do not check the likelihood's support (fit and evaluate do): values far
        # outside it may give an infinite bound, never NaN.
        moderate = np.all(np.abs(x.astype(np.float64)) <= 1e6)
        assert np.all(np.isfinite(result)) if moderate or method in ("reconstruct", "predict") else not np.any(np.isnan(result))
        if method in ("reconstruct", "predict"):
            assert np.all((result >= 0) & (result <= 1))

    refused_or_result(calls[method], "x", check)


@settings(max_examples=examples(12))
@given(st.one_of(IMAGES, st.just(BINARY)))
def test_fit_refuses_bad_images_before_any_step_or_trains_to_finite_weights(x):
    vae = tfvae.VAE(*_encoder_and_decoder(), seed=1)
    vae.compile(optimizer="adam")
    before = _weights(vae)
    if refused_or_result(lambda: vae.fit(x, batch_size=2, epochs=1, verbose=0), "x") is None:
        assert vae.optimizer.iterations.numpy() == 0
        assert all(np.array_equal(b, w) for b, w in zip(before, _weights(vae)))
    else:
        assert _binary(x), "fit trained on images outside a Bernoulli likelihood's support"
        assert vae.optimizer.iterations.numpy() == math.ceil(len(x) / 2)
        assert all(np.all(np.isfinite(w)) for w in _weights(vae))


def _int_outside_int64(value):
    return isinstance(value, int) and not -2**63 <= value < 2**63


@settings(max_examples=examples(40))
@given(st.sampled_from(["sample.num_images", "elbo.k", "log_likelihood.chunk_size", "sample.seed"]),
       st.one_of(ANYTHING, st.sampled_from([tf.constant(3), tf.constant(-1), tf.constant(2.0), tf.constant([2])])))
def test_vae_counts_and_seeds_are_refused_by_name_or_give_finite_images(vae, case, value):
    method, argument = case.split(".")
    assume(not (argument == "seed" and _int_outside_int64(value)))  # test_int_seed_outside_int64_is_refused_by_name
    calls = {
        "sample.num_images": lambda: vae.sample(value),
        "elbo.k": lambda: vae.elbo(BINARY, k=value),
        "log_likelihood.chunk_size": lambda: vae.log_likelihood(BINARY, k=2, chunk_size=value),
        "sample.seed": lambda: vae.sample(2, seed=value),
    }

    def check(result):
        result = result.numpy()
        assert np.all(np.isfinite(result))
        if method == "sample":
            assert result.shape[1:] == IMAGE_SHAPE and np.all((result >= 0) & (result <= 1))

    if argument in ("k", "chunk_size") or (argument == "num_images" and not tf.is_tensor(value)):
        expect(is_count(value), calls[case], argument, check)
    else:
        refused_or_result(calls[case], argument, check)


# The export -------------------------------------------------------------------------

SIGNATURES = st.builds(
    tf.TensorSpec,
    st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(0, 3)), max_size=5)),
    st.sampled_from([tf.float32, tf.float64, tf.int32, tf.string]),
)


def _valid_signature(spec):
    spec = spec[0] if isinstance(spec, (list, tuple)) and len(spec) == 1 else spec
    return (isinstance(spec, tf.TensorSpec) and spec.dtype == tf.float32 and spec.shape.rank == 4
            and tuple(spec.shape[1:]) == IMAGE_SHAPE)


@settings(max_examples=examples(50))
@given(st.data())
def test_export_refuses_bad_paths_signatures_and_statistics_by_name_and_writes_nothing(vae, tmp_path, draw):
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "existing").mkdir(exist_ok=True)
    model = vae.encoder
    case = draw.draw(st.sampled_from(["export.path", "export.input_signature", "export.overwrite", "export.vae",
                                      "export_model.statistics", "export_model.path", "export_model.model"]), label="case")
    function, argument = case.split(".")
    # No other text: a relative path would be written into the working directory.
    paths = st.one_of(WRONG_TYPES.filter(lambda v: not isinstance(v, str)),
                      st.sampled_from(["", " ", str(tmp_path / "a_file" / "1"), str(tmp_path / "existing"),
                                       tmp_path / "a_file" / "sub" / "1", tmp_path / "existing"]))
    values = {
        "path": paths,
        "input_signature": st.one_of(SIGNATURES, st.lists(SIGNATURES, min_size=2, max_size=2), WRONG_TYPES),
        "overwrite": st.one_of(WRONG_TYPES, SIZES).filter(lambda v: not isinstance(v, bool)),
        "vae": st.one_of(WRONG_TYPES, st.just(model)),
        "statistics": st.one_of(WRONG_TYPES, st.lists(st.sampled_from(["mean", "median", "", "Mean", None, 3]), max_size=3),
                                st.sampled_from(["median", "", "modes"])),
        "model": st.one_of(WRONG_TYPES, st.just(vae)),
    }[argument]
    value = draw.draw(values, label=argument)
    if argument == "input_signature":
        assume(value is not None and not _valid_signature(value))  # None: the default signature
    if argument == "statistics":
        assume(not (isinstance(value, list) and value and all(s == "mean" for s in value)))
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"  # a fresh path each example: one wrongly written stays apart
    arguments = {"export": {"vae": vae, "path": out}, "export_model": {"model": model, "path": out}}
    arguments = {**arguments[function], argument: value}
    before = _snapshot(tmp_path)
    errors = (ValueError, TypeError, FileExistsError, NotADirectoryError)  # the last two: what the file system says
    refused(lambda: getattr(export, function)(**arguments), argument, errors)
    assert _snapshot(tmp_path) == before


def test_int_seed_outside_int64_is_refused_by_name(vae):
    for seed in (2**63, -2**63 - 1, 2**70):
        refused(lambda: vae.sample(2, seed=seed), "seed")
