import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import architectures, priors, training
from tests.helpers import assert_config_round_trip

IMAGE_SHAPE = (6, 6, 1)


def _binary_images(num_examples, seed=0):
    """Two noisy prototypes, so a model can learn structure in a few steps."""
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(size=(2, *IMAGE_SHAPE)) > 0.5
    flips = rng.uniform(size=(num_examples, *IMAGE_SHAPE)) < 0.05
    return (prototypes[rng.integers(0, 2, num_examples)] ^ flips).astype(np.float32)


def _vae(latent_dim=2, posterior="independent_normal", **kwargs):
    encoder = architectures.mlp_encoder(IMAGE_SHAPE, latent_dim, hidden_units=(16,), posterior=posterior)
    decoder = architectures.mlp_decoder(latent_dim, IMAGE_SHAPE, hidden_units=(16,))
    return tfvae.VAE(encoder, decoder, **kwargs)


def test_logged_metrics_are_exactly_loss_elbo_reconstruction_kl_per_example():
    vae = _vae(beta=2.0)
    vae.compile(optimizer="adam", jit_compile=False)  # TFP's eager `sample` below draws the CPU kernel's noise
    x = _binary_images(8)
    seed = vae.evaluation_seed_generator.state.numpy().copy()  # the seed the next evaluation step draws
    logs = vae.evaluate(x, batch_size=8, verbose=0, return_dict=True)
    assert sorted(logs) == ["elbo", "kl", "loss", "reconstruction"]

    posterior = vae.encoder(x)
    z = posterior.sample(seed=tf.cast(seed, tf.int32))
    reconstruction = -vae.decoder(z).log_prob(x).numpy()
    loc, scale = posterior.mean().numpy(), posterior.stddev().numpy()
    kl = 0.5 * np.sum(loc**2 + scale**2 - 1 - np.log(scale**2), axis=1)
    np.testing.assert_allclose(logs["reconstruction"], reconstruction.mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["kl"], kl.mean(), rtol=1e-4)
    np.testing.assert_allclose(logs["elbo"], -(reconstruction + kl).mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], (reconstruction + 2.0 * kl).mean(), rtol=1e-5)


@pytest.mark.parametrize("yields", ["x", "x_and_label"])
def test_training_on_a_dataset_raises_the_elbo(yields):
    x = _binary_images(512)
    dataset = tf.data.Dataset.from_tensor_slices(x if yields == "x" else (x, np.zeros(len(x))))
    vae = _vae()
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = vae.evaluate(dataset.batch(512), verbose=0, return_dict=True)["elbo"]
    vae.fit(dataset.batch(32), epochs=3, verbose=0)
    after = vae.evaluate(dataset.batch(512), verbose=0, return_dict=True)["elbo"]
    assert after > before + 5.0  # nats per example; 36 binary pixels start near -25


def test_xla_compiled_training_trains():
    x = _binary_images(256)
    vae = _vae()
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
    history = vae.fit(x, batch_size=32, epochs=3, verbose=0).history
    assert vae.jit_compile
    assert history["elbo"][-1] > history["elbo"][0] + 3.0


def test_seeded_runs_give_identical_weights():
    x = _binary_images(64)

    def train():
        keras.utils.set_random_seed(7)
        vae = _vae()
        vae.compile(optimizer="adam")
        vae.fit(x, batch_size=16, epochs=2, verbose=0)
        return vae.get_weights()

    first, second = train(), train()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_latent_size_mismatch_names_both_sizes():
    encoder = architectures.mlp_encoder(IMAGE_SHAPE, 3, hidden_units=(8,))
    decoder = architectures.mlp_decoder(5, IMAGE_SHAPE, hidden_units=(8,))
    with pytest.raises(ValueError, match=r"encoder's latent size is 3 .* decoder's is 5"):
        tfvae.VAE(encoder, decoder)
    with pytest.raises(ValueError, match=r"prior's latent_dim is 4"):
        tfvae.VAE(encoder, architectures.mlp_decoder(3, IMAGE_SHAPE, hidden_units=(8,)), prior=priors.StandardNormal(4))


def test_invalid_beta_and_kl_are_rejected():
    with pytest.raises(ValueError, match="`beta` must be a number > 0; received -1"):
        _vae(beta=-1)
    with pytest.raises(ValueError, match="`kl` must be one of"):
        _vae(kl="exact")


def test_kl_method_follows_the_distributions():
    assert _vae(kl="auto").kl_method == "analytic"
    assert _vae(posterior="multivariate_normal_tril", kl="auto").kl_method == "monte_carlo"
    with pytest.raises(ValueError, match="kl='analytic'.*no closed-form KL"):
        _vae(posterior="multivariate_normal_tril", kl="analytic")


def test_monte_carlo_kl_model_trains():
    x = _binary_images(256)
    vae = _vae(posterior="multivariate_normal_tril")
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = vae.fit(x, batch_size=32, epochs=3, verbose=0).history
    assert history["elbo"][-1] > history["elbo"][0] + 3.0


def test_trainable_prior_trains_with_the_model():
    vae = _vae(prior=priors.DiagonalNormal(2))
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [w.numpy().copy() for w in vae.prior.trainable_weights]
    vae.fit(_binary_images(64), batch_size=16, epochs=1, verbose=0)
    assert all(np.any(b != w.numpy()) for b, w in zip(before, vae.prior.trainable_weights))
    assert len(vae.trainable_weights) == len(vae.encoder.trainable_weights) + len(vae.decoder.trainable_weights) + 2


def test_public_methods_return_documented_shapes():
    vae = _vae()
    x = _binary_images(5)
    assert vae.encode(x).batch_shape == [5] and vae.encode(x).event_shape == [2]
    assert vae.decode(np.zeros([3, 2], np.float32)).event_shape == IMAGE_SHAPE
    assert vae.elbo(x).shape == (5,)
    assert vae.reconstruct(x).shape == (5, *IMAGE_SHAPE)
    np.testing.assert_allclose(vae.predict(x, verbose=0), vae.reconstruct(x), rtol=1e-6)
    images = vae.sample(4, seed=(1, 2))
    assert images.shape == (4, *IMAGE_SHAPE) and np.all((images >= 0) & (images <= 1))
    np.testing.assert_array_equal(images, vae.sample(4, seed=(1, 2)))
    binary = vae.sample(4, seed=(1, 2), mean=False).numpy()
    assert set(np.unique(binary)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="`num_images` must be an int >= 1; received 0"):
        vae.sample(0)


def test_vae_config_round_trips():
    vae = _vae(beta=0.5, kl="monte_carlo", seed=3, prior=priors.DiagonalNormal(2))
    restored = assert_config_round_trip(vae)
    assert (restored.beta, restored.kl, restored.seed) == (0.5, "monte_carlo", 3)
    assert isinstance(restored.prior, priors.DiagonalNormal)
    json.dumps(vae.get_config())


def test_elbo_with_several_samples_averages_them():
    vae = _vae(kl="analytic")
    x = _binary_images(4)
    seed = tf.constant([3, 1])
    terms = vae.elbo_terms(x, seed=seed, k=5)
    posterior = vae.encoder(x)
    z = posterior.sample(5, seed=seed).numpy()  # [5, 4, 2]
    log_likelihoods = np.stack([vae.decoder(z[s]).log_prob(x).numpy() for s in range(5)])
    np.testing.assert_allclose(terms.reconstruction, -log_likelihoods.mean(axis=0), rtol=1e-5)


def test_iwae_gradient_is_finite_and_the_objective_trains():
    x = _binary_images(256)
    vae = _vae(objective="iwae", k=5)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(vae.log_likelihood(x[:32], k=5, chunk_size=5, seed=(1, 2)))
    gradients = tape.gradient(loss, vae.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g)) for g in gradients)
    history = vae.fit(x, batch_size=32, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 3.0
    # -L_k <= -ELBO: the IWAE loss is below the ELBO loss.
    assert all(loss <= -elbo + 1e-3 for loss, elbo in zip(history["loss"], history["elbo"]))


def test_iwae_and_k_are_validated_and_serialized():
    with pytest.raises(ValueError, match="`objective` must be one of"):
        _vae(objective="vi")
    with pytest.raises(ValueError, match="`k` must be an int >= 1; received 0"):
        _vae(k=0)
    with pytest.raises(ValueError, match="`beta` must be 1 with objective='iwae'"):
        _vae(objective="iwae", beta=0.5)
    restored = assert_config_round_trip(_vae(objective="iwae", k=4))
    assert (restored.objective, restored.k) == ("iwae", 4)


def test_mean_terms_averages_each_term_over_all_examples_and_resets():
    tracker = tfvae.models.MeanTerms(("a", "b"))
    tracker.update_state([tf.constant([1.0, 2.0, 3.0]), tf.constant([0.0, 0.0, 3.0])])
    tracker.update_state([tf.constant([6.0]), tf.constant([-1.0])])  # batches of unequal size
    result = {name: float(value) for name, value in tracker.result().items()}
    assert result == {"a": 3.0, "b": 0.5}
    tracker.reset_state()
    assert {name: float(value) for name, value in tracker.result().items()} == {"a": 0.0, "b": 0.0}


# Keras conformance -------------------------------------------------------------


def _batches(x, batch_size):
    return [x[start:start + batch_size] for start in range(0, len(x), batch_size)]


class _ImagesSequence(keras.utils.PyDataset):
    def __init__(self, x, batch_size):
        super().__init__()
        self.x, self.batch_size = x, batch_size

    def __len__(self):
        return len(_batches(self.x, self.batch_size))

    def __getitem__(self, index):
        return (_batches(self.x, self.batch_size)[index],)


def _sources(x, batch_size):
    """The same batches as every kind of input `keras.Model.fit` accepts."""
    return {
        "array": lambda: x,
        "tf.data": lambda: tf.data.Dataset.from_tensor_slices(x).batch(batch_size),
        "PyDataset": lambda: _ImagesSequence(x, batch_size),
        "generator": lambda: ((batch,) for batch in _batches(x, batch_size)),
    }


@pytest.mark.parametrize("source", ["array", "PyDataset", "generator"])
def test_fit_evaluate_and_predict_take_every_input_keras_takes_and_peeking_consumes_nothing(source):
    x = _binary_images(64)
    initial = _vae(seed=1).get_weights()

    def trained(make):
        vae = _vae(seed=1)
        vae.set_weights(initial)
        vae.compile(optimizer=keras.optimizers.SGD(0.1))
        vae.fit(make(), epochs=1, verbose=0, shuffle=False, **({"batch_size": 16} if make is sources["array"] else {}))
        return vae

    sources = _sources(x, 16)
    vae, reference = trained(sources[source]), trained(sources["tf.data"])
    for a, b in zip(vae.get_weights(), reference.get_weights()):  # the same four batches, the peeked one included
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(vae.get_weights(), initial))
    kwargs = {"batch_size": 16} if source == "array" else {}
    evaluated = vae.evaluate(sources[source](), verbose=0, return_dict=True, **kwargs)
    np.testing.assert_allclose(evaluated["kl"], reference.evaluate(sources["tf.data"](), verbose=0, return_dict=True)["kl"], rtol=1e-6)
    np.testing.assert_allclose(vae.predict(sources[source](), verbose=0, **kwargs), vae.reconstruct(x), rtol=1e-5, atol=1e-6)


def test_bad_generator_input_is_refused_naming_x_before_any_step():
    vae = _vae()
    vae.compile(optimizer="adam")
    wrong = ((np.zeros((4, 5, 5, 1), np.float32),) for _ in range(2))
    with pytest.raises(ValueError, match=r"`x` must have shape \[batch, 6, 6, 1\]; received \(4, 5, 5, 1\)"):
        vae.fit(wrong, verbose=0)
    with pytest.raises(ValueError, match="generator `x` is empty"):
        vae.fit((batch for batch in []), verbose=0)
    assert int(vae.optimizer.iterations.numpy()) == 0


def test_zero_sample_weights_leave_the_weights_unchanged():
    x = _binary_images(32)
    vae = _vae()
    vae.compile(optimizer="adam")
    before = vae.get_weights()
    vae.fit(x, sample_weight=np.zeros(32, np.float32), batch_size=8, epochs=1, verbose=0)
    assert int(vae.optimizer.iterations.numpy()) == 4
    for a, b in zip(before, vae.get_weights()):
        np.testing.assert_array_equal(a, b)


def _sgd_step(weights, x, sample_weight):
    """The change of the weights after one SGD step on `x` (one batch) with `sample_weight`."""
    vae = _vae(seed=2)
    vae.set_weights(weights)
    vae.compile(optimizer=keras.optimizers.SGD(0.1))
    vae.fit(x, sample_weight=np.asarray(sample_weight, np.float32), batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    return [after - before for after, before in zip(vae.get_weights(), weights)]


def test_sample_weight_scales_each_examples_loss_as_keras_does():
    """Loss = sum_i w_i loss_i / batch: weight 2 counts an example twice, weights add."""
    x = _binary_images(2)
    weights = _vae(seed=2).get_weights()
    first_once, second_once = _sgd_step(weights, x, [1, 0]), _sgd_step(weights, x, [0, 1])
    first_twice, both = _sgd_step(weights, x, [2, 0]), _sgd_step(weights, x, [2, 1])
    assert any(np.abs(step).max() > 1e-4 for step in first_once)
    for once, twice, other, together in zip(first_once, first_twice, second_once, both):
        np.testing.assert_allclose(twice, 2 * once, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(together, 2 * once + other, rtol=1e-4, atol=1e-7)


def test_sample_weight_weighs_the_metrics_like_repeated_examples():
    x = _binary_images(2)
    vae = _vae()
    vae.compile()
    weighted = vae.evaluate(x, sample_weight=np.array([2.0, 1.0], np.float32), batch_size=2, verbose=0, return_dict=True)
    repeated = vae.evaluate(x[[0, 0, 1]], batch_size=3, verbose=0, return_dict=True)
    np.testing.assert_allclose(weighted["kl"], repeated["kl"], rtol=1e-6)  # the KL is exact: no sampling
    as_dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(2), np.array([1.0, 0.0], np.float32))).batch(2)
    only_first = vae.evaluate(as_dataset, verbose=0, return_dict=True)  # weights as the third element
    np.testing.assert_allclose(only_first["kl"], vae.evaluate(x[:1], verbose=0, return_dict=True)["kl"], rtol=1e-6)


def test_compiled_metrics_compare_x_with_the_reconstruction_and_a_loss_is_refused():
    x = _binary_images(16)
    vae = _vae()
    vae.compile(optimizer="adam", metrics=["mse"], weighted_metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
    logs = vae.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    reconstruction = vae.reconstruct(x).numpy()
    np.testing.assert_allclose(logs["mse"], np.mean((x - reconstruction) ** 2), rtol=1e-5)
    np.testing.assert_allclose(logs["mae"], np.mean(np.abs(x - reconstruction)), rtol=1e-5)
    assert {"mse", "mae", "loss", "elbo"} <= set(vae.fit(x, batch_size=8, verbose=0).history)
    with pytest.raises(ValueError, match="trains on its own bound.*`loss` must be None; received 'mse'"):
        vae.compile(optimizer="adam", loss="mse")
    assert hasattr(vae, "_compile_metrics")  # the private Keras attribute VAE._compiled_metrics reads


def test_the_internal_tensorflow_api_of_the_non_finite_stop_still_exists():
    assert callable(tf.__internal__.distribute.strategy_supports_no_merge_call)


def test_compiled_metrics_survive_save_and_load(tmp_path):
    vae = _vae()
    vae.compile(optimizer="adam", metrics=["mse"])
    vae.save(tmp_path / "vae.keras")
    loaded = keras.models.load_model(tmp_path / "vae.keras")
    assert "mse" in loaded.evaluate(_binary_images(8), verbose=0, return_dict=True)


# One seed convention -------------------------------------------------------------


def test_every_seed_argument_takes_none_an_int_a_pair_or_a_seed_generator():
    vae = _vae(seed=keras.random.SeedGenerator(9))
    assert vae.seed == 9 and assert_config_round_trip(vae).seed == 9
    x = _binary_images(3)
    np.testing.assert_array_equal(vae.sample(8, seed=3), vae.sample(8, seed=(3, 0)))
    np.testing.assert_array_equal(vae.elbo(x, seed=4), vae.elbo(x, seed=np.array([4, 0])))
    np.testing.assert_array_equal(vae.log_likelihood(x, k=3, seed=5), vae.log_likelihood(x, k=3, seed=tf.constant([5, 0])))
    generator = keras.random.SeedGenerator(1)
    first, second = vae.sample(2, seed=generator), vae.sample(2, seed=generator)
    assert not np.allclose(first, second)  # a generator gives a new seed each call
    np.testing.assert_array_equal(first, vae.sample(2, seed=keras.random.SeedGenerator(1)))
    assert vae.sample(2).shape == (2, *IMAGE_SHAPE)  # None: the model's own generator
    for bad in ("3", 1.5, (1, 2, 3), True):
        with pytest.raises(ValueError, match=r"`seed` must be None, an int, a pair of ints or a keras.random.SeedGenerator"):
            vae.sample(2, seed=bad)


# Non-finite losses -------------------------------------------------------------


def _poisoned(x, index):
    x = x.copy()
    x[index] = np.nan
    return x


@pytest.mark.parametrize("jit_compile, steps_per_execution", [(False, 1), (True, 1), (False, 4)])
def test_fit_stops_at_the_first_non_finite_step_and_keeps_the_weights_of_the_last_finite_one(jit_compile, steps_per_execution):
    x = _poisoned(_binary_images(64), 8 * 2 + 3)  # in step 3 of each epoch (batches of 8)
    initial = _vae(seed=4).get_weights()

    def compiled():
        vae = _vae(seed=4, check_support=False)
        vae.set_weights(initial)
        vae.compile(optimizer="adam", jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        return vae

    vae = compiled()
    with pytest.raises(tfvae.NonFiniteLossError) as raised:
        vae.fit(x, batch_size=8, epochs=2, verbose=0, shuffle=False)
    message = str(raised.value)
    assert "Non-finite loss at epoch 1, step 3 (optimizer step 3): " in message and "loss=nan" in message
    # With 4 steps per execution, Keras reports logs only after steps 4 and 8: none was finite.
    assert ("Last finite values: none" if steps_per_execution > 1 else "Last finite values: elbo=") in message
    finite_only = compiled()
    finite_only.fit(x[:16], batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(vae.get_weights(), finite_only.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_non_finite_stop_can_be_turned_off():
    vae = _vae(check_support=False, stop_on_non_finite=False)
    vae.compile(optimizer="adam")
    vae.fit(_poisoned(_binary_images(32), 9), batch_size=8, epochs=1, verbose=0, shuffle=False)  # no error: Keras goes on
    assert int(vae.optimizer.iterations.numpy()) == 4
    assert not all(np.all(np.isfinite(w)) for w in vae.get_weights())
    assert assert_config_round_trip(vae).stop_on_non_finite is False


def test_non_finite_stop_under_a_mirrored_strategy_keeps_finite_weights():
    strategy = training.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    with strategy.scope():
        vae = _vae(check_support=False)
        vae.compile(optimizer="adam")
    with pytest.raises(tfvae.NonFiniteLossError, match="epoch 1, step 2"):
        vae.fit(_poisoned(_binary_images(32), 13), batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert int(vae.optimizer.iterations.numpy()) == 1
    assert all(np.all(np.isfinite(w)) for w in vae.get_weights())


def test_evaluation_between_fits_leaves_the_training_noise_unchanged():
    x = _binary_images(32)
    initial = _vae(seed=6).get_weights()

    def trained(evaluate_between):
        vae = _vae(seed=6)
        vae.set_weights(initial)
        vae.compile(optimizer="adam")
        vae.fit(x, batch_size=8, epochs=1, verbose=0, shuffle=False, validation_data=x[:8])
        if evaluate_between:
            vae.evaluate(x, verbose=0)
            vae.sample(3), vae.elbo(x), vae.log_likelihood(x[:2], k=3)
        vae.fit(x, batch_size=8, epochs=1, verbose=0, shuffle=False)
        return vae.get_weights()

    for a, b in zip(trained(False), trained(True)):
        np.testing.assert_array_equal(a, b)


def test_without_keeping_finite_weights_the_stop_and_its_error_are_the_same():
    vae = _vae(check_support=False, keep_finite_weights=False)
    vae.compile(optimizer="adam")
    with pytest.raises(tfvae.NonFiniteLossError, match=r"Non-finite loss at epoch 1, step 2 \(optimizer step 2\)"):
        vae.fit(_poisoned(_binary_images(32), 9), batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert int(vae.optimizer.iterations.numpy()) == 2  # stopped there; that step updated the weights
    assert assert_config_round_trip(vae).keep_finite_weights is False


def test_compile_defaults_to_xla_on_one_device_and_keeps_an_explicit_choice():
    vae = _vae()
    vae.compile(optimizer="adam")
    assert vae.jit_compile is True
    vae.compile(optimizer="adam", jit_compile=False)
    assert vae.jit_compile is False
    vae.compile(optimizer="adam", run_eagerly=True)
    assert vae.jit_compile is False
    with training.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]).scope():
        mirrored = _vae()
        mirrored.compile(optimizer="adam")
    assert mirrored.jit_compile is False  # Keras' "auto": no XLA on CPUs under a strategy
    no_jit = _vae()
    no_jit.decoder.layers[-2].supports_jit = False  # a layer that says it does not compile
    no_jit.compile(optimizer="adam")
    assert no_jit.jit_compile is False


def test_kl_warmup_step_equals_a_step_with_the_warmed_up_beta():
    # Step 0 of a 4-step warm-up from beta = 2 uses beta = 2 / 4: the same SGD update as beta = 0.5.
    x = _binary_images(8)
    warming = _vae(seed=3, beta=2.0, kl_warmup_steps=4)
    fixed = _vae(seed=3, beta=0.5)
    fixed.set_weights(warming.get_weights())
    for vae in (warming, fixed):
        vae.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        vae.fit(x, batch_size=8, epochs=1, verbose=0)
    for a, b in zip(warming.get_weights(), fixed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert tfvae.VAE.from_config(warming.get_config()).kl_warmup_steps == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [({"kl_warmup_steps": -1}, r"`kl_warmup_steps` must be an int >= 0; received -1"),
     ({"kl_warmup_steps": 2.5}, r"`kl_warmup_steps` must be an int >= 0; received 2.5"),
     ({"kl_warmup_steps": 3, "objective": "iwae"}, r"`kl_warmup_steps` must be 0 with objective='iwae'; received 3")],
)
def test_bad_kl_warmup_is_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _vae(**kwargs)


# Regressions from tests/test_properties_model.py ---------------------------------------------------


def test_constructor_arguments_of_the_wrong_type_are_refused_by_name():
    encoder = architectures.mlp_encoder(IMAGE_SHAPE, 2, hidden_units=(4,))
    decoder = architectures.mlp_decoder(2, IMAGE_SHAPE, hidden_units=(4,))
    cases = [  # each was accepted, or an AttributeError / "truth value of an array is ambiguous"
        (dict(prior=0), TypeError, "`prior` must be None or a tfvae.priors.Prior"),
        (dict(encoder=None), TypeError, "`encoder` must be a Keras model"),
        (dict(decoder="decoder"), TypeError, "`decoder` must be a Keras model"),
        (dict(beta=float("inf")), ValueError, "`beta` must be finite"),
        (dict(beta=1e300), ValueError, r"`beta` must be at most 3\.40282e\+38"),  # inf in the float32 loss
        (dict(check_support="no"), TypeError, "`check_support` must be True or False"),
        (dict(stop_on_non_finite=None), TypeError, "`stop_on_non_finite` must be True or False"),
        (dict(kl=np.array([1, 2])), ValueError, "`kl` must be one of"),
        (dict(objective=["elbo"]), ValueError, "`objective` must be one of"),
        (dict(k=2**31), ValueError, r"`k` must be an int <= 2147483647"),
    ]
    for arguments, error, message in cases:
        with pytest.raises(error, match=message):
            tfvae.VAE(**{"encoder": encoder, "decoder": decoder, **arguments})
    assert tfvae.VAE(encoder, decoder, check_support=np.bool_(False)).check_support is False


@pytest.mark.parametrize("method", ["predict", "evaluate", "fit"])
def test_none_instead_of_images_is_refused_by_name(method):
    # Was Keras' KeyError 'pop from an empty set'.
    vae = _vae()
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError, match="`x` is required"):
        getattr(vae, method)(None, verbose=0)


BAD_IMAGES = {  # what elbo, log_likelihood and reconstruct received unchecked
    "strings": (np.full([2, *IMAGE_SHAPE], "a"), r"`x` must hold numbers; received dtype string"),  # UnimplementedError
    "complex": (np.ones([2, *IMAGE_SHAPE], np.complex64), "`x` must hold numbers"),  # the imaginary part was dropped
    "wrong shape": (np.zeros([2, 5, 5, 1], np.float32), r"`x` must have shape \[batch, 6, 6, 1\]"),  # InvalidArgumentError
    "NaN": (np.full([2, *IMAGE_SHAPE], np.nan, np.float32), "`x` holds NaN or infinite values"),  # NaN results
    "past float32": (np.full([2, *IMAGE_SHAPE], 1e300), "`x` holds NaN or infinite values"),  # inf once cast
    "None": (None, "`x` must be a tensor or array of images"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
@pytest.mark.parametrize("method", ["elbo", "log_likelihood", "reconstruct"])
def test_bound_and_reconstruction_methods_refuse_bad_images_by_name(method, case):
    x, message = BAD_IMAGES[case]
    vae = _vae()
    call = {"elbo": lambda: vae.elbo(x), "log_likelihood": lambda: vae.log_likelihood(x, k=2),
            "reconstruct": lambda: vae.reconstruct(x)}[method]
    with pytest.raises(ValueError, match=message):
        call()


def test_predict_refuses_nan_images_by_name():
    vae = _vae()
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"`x` holds NaN or infinite values \(in float32\), e\.g\. nan"):
        vae.predict(np.full([2, *IMAGE_SHAPE], np.nan, np.float32), verbose=0)


def test_sample_refuses_counts_too_large_for_one_tensor_by_name():
    # sample(10**12) asked TensorFlow for a [10**12, 6, 6, 1] tensor and hung or ran out of memory.
    vae = _vae()
    with pytest.raises(ValueError, match=r"`num_images` must be an int <= 2147483647"):
        vae.sample(10**12)
    with pytest.raises(ValueError, match=r"`num_images` is too large: it makes a tensor of shape \(100000000, 6, 6, 1\)"):
        vae.sample(10**8)
    with pytest.raises(ValueError, match="`num_images` must be an int >= 1; received -1"):
        vae.sample(tf.constant(-1))
    with pytest.raises(ValueError, match="`num_images` must be an int or a scalar int tensor"):
        vae.sample(tf.constant(2.0))
    assert vae.sample(tf.constant(3)).shape == (3, *IMAGE_SHAPE)


def test_free_bits_charge_lambda_per_quiet_dimension_in_the_loss_and_log_the_true_kl():
    x = _binary_images(32)
    vae = _vae(latent_dim=3, free_bits=100.0)  # above every dimension's KL: each costs exactly lambda
    vae.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = vae.fit(x, batch_size=32, epochs=1, verbose=0).history  # one step
    assert logs["loss"][0] == pytest.approx(logs["reconstruction"][0] + 3 * 100.0, rel=1e-5)
    assert logs["elbo"][0] == pytest.approx(-(logs["reconstruction"][0] + logs["kl"][0]), rel=1e-5)  # the true KL
    assert logs["kl"][0] < 100.0
    assert assert_config_round_trip(_vae(latent_dim=3, free_bits=0.25)).free_bits == 0.25


def test_free_bits_need_the_elbo_a_diagonal_posterior_and_a_number():
    with pytest.raises(ValueError, match=r"`free_bits` must be 0 with objective='iwae'; received 0.5"):
        _vae(objective="iwae", free_bits=0.5)
    for bad in (-1.0, float("inf"), "1", True):
        with pytest.raises(ValueError, match=r"`free_bits` must be a finite number >= 0"):
            _vae(free_bits=bad)
    with pytest.raises(ValueError, match=r"Free bits need the KL of each latent dimension: `posterior` must be a diagonal"):
        _vae(latent_dim=2, posterior="multivariate_normal_tril", free_bits=0.5)  # at construction, before any work
