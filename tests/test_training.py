import dataclasses
import json
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import architectures, training
from tfvae.training import TrainingConfig


def test_config_round_trips_through_json():
    config = TrainingConfig(dataset="binarized_mnist", binarize=None, arch="conv", latent_dim=8, beta=0.5, max_examples=100)
    assert TrainingConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["arch"] == "conv"


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("dataset", "svhn", r"Unknown `dataset` 'svhn'; known: \['binarized_mnist', 'cifar10', 'fashion_mnist', 'mnist'\]"),
        ("arch", "resnet", r"Unknown `arch` 'resnet'; known: \['conv', 'gated_mlp', 'hvae', 'mlp'\]"),
        ("kl_warmup_epochs", -1, r"`kl_warmup_epochs` must be an int >= 0; received -1"),
        ("early_stopping_patience", 0, r"`early_stopping_patience` must be an int >= 1; received 0"),
        ("epochs", -1, r"`epochs` must be an int >= 1; received -1"),
        ("batch_size", 0, r"`batch_size` must be an int >= 1; received 0"),
        ("beta", 0.0, r"`beta` must be a finite number > 0; received 0.0"),
        ("binarize", "static", r"Unknown `binarize` 'static'"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainingConfig(**{field: value})


@pytest.mark.parametrize("likelihood", architectures.GREY_LEVEL_LIKELIHOODS)
def test_grey_level_likelihoods_need_grey_levels_and_say_how_to_get_them(likelihood):
    config = TrainingConfig(dataset="fashion_mnist", binarize=None, likelihood=likelihood)
    assert TrainingConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match=rf"likelihood='{likelihood}' models grey levels in \[0, 1\], but binarize='dynamic': "
                                         r"use a grey dataset with binarize=None \(--binarize none\), or likelihood='bernoulli'"):
        TrainingConfig(dataset="mnist", likelihood=likelihood)
    with pytest.raises(ValueError, match=rf"likelihood='{likelihood}' models grey levels .* but 'binarized_mnist' is binary"):
        TrainingConfig(dataset="binarized_mnist", binarize=None, likelihood=likelihood)


def test_binarizing_binary_data_is_rejected():
    with pytest.raises(ValueError, match="binary already"):
        TrainingConfig(dataset="binarized_mnist", binarize="dynamic")


def test_config_json_with_unknown_fields_is_rejected():
    text = json.dumps({**dataclasses.asdict(TrainingConfig()), "colour": "blue"})
    with pytest.raises(ValueError, match=r"Unknown TrainingConfig fields \['colour'\]"):
        TrainingConfig.from_json(text)


def test_run_directory_is_not_replaced_without_overwrite(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        training.prepare_run_directory(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "precious"
    training.prepare_run_directory(tmp_path, overwrite=True)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="Cannot resume"):
        training.prepare_run_directory(tmp_path / "missing", resume=True)


class PoisonWeights(keras.callbacks.Callback):
    """Sets the encoder's first kernel to NaN after a given batch of a given epoch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current_epoch = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current_epoch, batch) == (self.epoch, self.batch):
            kernel = self.model.encoder.trainable_weights[0]
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, tfds_data_dir):
    config = TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=2, epochs=3, batch_size=50, max_examples=200,
                            steps_per_execution=1)  # PoisonWeights acts after one given step
    with pytest.raises(training.NonFiniteLossError) as raised:
        training.train(config, tmp_path, data_dir=tfds_data_dir, verbose=0, callbacks=[PoisonWeights(epoch=1, batch=1)])
    message = str(raised.value)
    assert "epoch 2, step 3 (optimizer step 7)" in message and "loss=nan" in message
    assert "Last finite values: elbo=" in message and "checkpoint at epoch 2, step 0 is kept" in message
    assert not (tmp_path / "model.keras").exists()
    # The kept checkpoint holds finite weights from the end of epoch 1: resuming works.
    summary = training.train(None, tmp_path, data_dir=tfds_data_dir, resume=True, verbose=0)
    assert summary["epochs_done"] == 3 and np.isfinite(summary["elbo"])


def test_mirrored_strategies_made_one_after_another_train_models_of_different_sizes():
    # Without distinct collective keys the second fit fails with "Shape
    # mismatch in the collective instance 100" (tensorflow/tensorflow#62790).
    x = (np.random.default_rng(0).uniform(size=(8, 4, 4, 1)) > 0.5).astype(np.float32)
    for hidden_units in ((8,), (12, 6)):
        strategy = training.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
        with strategy.scope():
            vae = tfvae.VAE(architectures.mlp_encoder((4, 4, 1), 2, hidden_units=hidden_units),
                            architectures.mlp_decoder(2, (4, 4, 1), hidden_units=hidden_units), seed=1)
            vae.compile(optimizer=keras.optimizers.Adam(0.01))
        history = vae.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), epochs=1, verbose=0).history
        assert np.isfinite(history["loss"][0])


def test_tpu_strategy_without_a_tpu_says_how_to_name_one(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(ValueError, match=r"Found no TPU for `strategy` 'tpu' \(.*\)\. Set TPU_NAME to the TPU's name"):
        training.make_strategy("tpu")


def test_train_runs_under_a_mirrored_strategy_with_the_global_batch(tmp_path, tfds_data_dir):
    strategy = training.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    config = TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=2, epochs=1, batch_size=50, max_examples=200)
    summary = training.train(config, tmp_path, data_dir=tfds_data_dir, verbose=0, strategy=strategy)
    assert np.isfinite(summary["elbo"])
    vae, _ = training.load_run(tmp_path)
    assert all(np.all(np.isfinite(w)) for w in vae.get_weights())
    with pytest.raises(ValueError, match=r"Unknown `strategy` 'horovod'; known: \['default', 'mirrored', 'multi_worker', 'tpu'\]"):
        training.make_strategy("horovod")


class FailAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("a callback failed")


def test_a_failed_run_gives_ctrl_c_and_sigterm_back_to_the_previous_handlers(tmp_path, tfds_data_dir):
    def previous_handler(signum, frame):
        pass

    signal.signal(signal.SIGINT, previous_handler)
    signal.signal(signal.SIGTERM, previous_handler)
    try:
        config = TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=2, epochs=2, batch_size=50, max_examples=100)
        with pytest.raises(RuntimeError, match="a callback failed"):
            training.train(config, tmp_path / "run", data_dir=tfds_data_dir, verbose=0, callbacks=[FailAfterFirstEpoch()])
        assert signal.getsignal(signal.SIGINT) is previous_handler and signal.getsignal(signal.SIGTERM) is previous_handler
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_a_run_that_fails_before_writing_leaves_no_run_directory(tmp_path):
    config = TrainingConfig(dataset="cifar10", latent_dim=2, epochs=1, max_examples=10)
    with pytest.raises(tfvae.data.DatasetUnavailableError):
        training.train(config, tmp_path / "run", data_dir=str(tmp_path / "no_data"), verbose=0)
    assert not (tmp_path / "run").exists()


def test_legacy_configs_with_num_samples_still_load():
    fields = {**dataclasses.asdict(TrainingConfig(objective="iwae", k=5))}
    fields["num_samples"] = fields.pop("k")
    assert TrainingConfig.from_json(json.dumps(fields)).k == 5


def test_the_private_tensorflow_attribute_tfvae_relies_on_still_exists():
    # training/strategies.py sets it to keep MirroredStrategies apart (tensorflow#62790).
    assert isinstance(tf.distribute.MirroredStrategy._collective_key_base, int)


class _ScriptedValidation(keras.callbacks.Callback):
    """Sets the weights to the epoch's number and reports a scripted validation ELBO, before KeepBestValidation."""

    def __init__(self, elbos):
        super().__init__()
        self.elbos = elbos

    def on_epoch_end(self, epoch, logs=None):
        self.model.set_weights([np.full_like(w, epoch) for w in self.model.get_weights()])
        logs["val_elbo"] = self.elbos[epoch]


def test_keep_best_validation_stops_after_patience_and_restores_the_best_epoch(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    keep_best = training.KeepBestValidation(tmp_path / "best.weights.h5", patience=2)
    elbos = [-10.0, -9.0, -9.5, -9.2, -8.0, -7.0]  # best at epoch 1; epochs 2 and 3 are not better
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=len(elbos), verbose=0,
              callbacks=[_ScriptedValidation(elbos), keep_best])
    assert keep_best.stopped_epoch == 3 and int(keep_best.best_epoch) == 1 and float(keep_best.best_elbo) == -9.0
    keep_best.restore_best()
    assert all(np.all(w == 1) for w in model.get_weights())
    # After a resume the best weights come from the file the chief wrote.
    resumed = training.KeepBestValidation(tmp_path / "best.weights.h5", patience=2)
    resumed.set_model(model)
    resumed.best_epoch.assign(1)
    model.set_weights([np.full_like(w, 7) for w in model.get_weights()])
    resumed.restore_best()
    assert all(np.all(w == 1) for w in model.get_weights())


def test_keep_best_validation_needs_validation_data(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="needs the validation ELBO"):
        model.fit(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0,
                  callbacks=[training.KeepBestValidation(tmp_path / "best.weights.h5", patience=1)])


def test_early_stopping_keeps_the_best_epoch_and_kl_warmup_reaches_beta(tmp_path, tfds_data_dir):
    config = TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=2, epochs=6, batch_size=50, max_examples=200,
                            learning_rate=0.01, kl_warmup_epochs=2, early_stopping_patience=1)
    summary = training.train(config, tmp_path, data_dir=tfds_data_dir, verbose=0)
    history = training.read_history(tmp_path)
    validation = history["val_elbo"]
    best = int(np.argmax(validation))
    assert summary["best_epoch"] == best + 1 and summary["best_validation_elbo"] == pytest.approx(validation[best])
    # It stops at the first epoch that is not better than the best before it (patience 1), or at the end.
    not_better = [epoch for epoch in range(1, len(validation)) if validation[epoch] <= max(validation[:epoch])]
    assert summary["epochs_done"] == len(validation) == (not_better[0] + 1 if not_better else 6)
    # KL weight 1/2 over epoch 1, 1 from epoch 2 on: the training loss is reconstruction + beta_t * kl.
    loss, reconstruction, kl = (np.array(history[name]) for name in ("loss", "reconstruction", "kl"))
    assert loss[0] < reconstruction[0] + kl[0]
    if len(validation) > 2:
        np.testing.assert_allclose(loss[2:], reconstruction[2:] + kl[2:], rtol=1e-5)
    assert tfvae.models.VAE.from_config(training.load_run(tmp_path)[0].get_config()).kl_warmup_steps == 2 * 4


def test_build_vae_makes_the_configured_prior():
    from tfvae import priors
    for name, expected_type, size_attribute, size in [
        ("standard_normal", priors.StandardNormal, None, None),
        ("mixture_of_gaussians", priors.MixtureOfGaussians, "num_components", 10),
        ("vampprior", priors.VampPrior, "num_pseudo_inputs", 500),
    ]:
        vae = training.build_vae(TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=2, prior=name), (28, 28, 1))
        assert type(vae.prior) is expected_type
        if size_attribute:
            assert getattr(vae.prior, size_attribute) == size
    with pytest.raises(ValueError, match=r"`prior_components` applies to \['mixture_of_gaussians', 'vampprior'\], not prior='standard_normal'"):
        TrainingConfig(prior_components=3)
    with pytest.raises(ValueError, match=r"Unknown `prior` 'laplace'"):
        TrainingConfig(prior="laplace")


def test_vampprior_run_starts_its_pseudo_inputs_at_the_first_training_images(tmp_path, tfds_data_dir):
    config = TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=2, epochs=1, batch_size=50, max_examples=100,
                            prior="vampprior", prior_components=7, pseudo_inputs="data", learning_rate=1e-9)
    summary = training.train(config, tmp_path, data_dir=tfds_data_dir, verbose=0)
    vae, _ = training.load_run(tmp_path)
    first = training.first_training_images(training.load_data(config, tfds_data_dir), 7)
    # A learning rate of 1e-9 leaves them where they started (Adam's first steps move by about 1e-9).
    np.testing.assert_allclose(vae.prior.pseudo_inputs.numpy(), first, atol=1e-6)
    assert np.isfinite(summary["elbo"]) and vae.kl_method == "monte_carlo"


def test_full_covariance_posterior_from_the_config_trains(tmp_path, tfds_data_dir):
    config = TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=3, epochs=1, batch_size=50, max_examples=100,
                            posterior="multivariate_normal_tril")
    summary = training.train(config, tmp_path, data_dir=tfds_data_dir, verbose=0)
    vae, _ = training.load_run(tmp_path)
    posterior = vae.encode(np.zeros((2, 28, 28, 1), "float32"))
    assert type(posterior).__name__ == "MeanConvertibleMultivariateNormalTriL" and posterior.event_shape == [3]
    assert np.isfinite(summary["elbo"]) and vae.kl_method == "monte_carlo"  # TFP has no closed form against Independent(Normal)
    with pytest.raises(ValueError, match=r"Unknown `posterior` 'flow'"):
        TrainingConfig(posterior="flow")


def test_cosine_schedule_decays_to_zero_over_the_run_and_is_saved_with_the_model(tmp_path, tfds_data_dir):
    config = TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=2, epochs=2, batch_size=50, max_examples=200,
                            learning_rate=0.01, learning_rate_schedule="cosine")
    schedule = config.learning_rate_for(steps_per_epoch=4)
    np.testing.assert_allclose([float(schedule(step)) for step in (0, 4, 8)], [0.01, 0.005, 0.0], atol=1e-9)
    assert TrainingConfig().learning_rate_for(4) == 1e-3
    with pytest.raises(ValueError, match=r"Unknown `learning_rate_schedule` 'step'"):
        TrainingConfig(learning_rate_schedule="step")
    training.train(config, tmp_path, data_dir=tfds_data_dir, verbose=0)
    vae, saved = training.load_run(tmp_path)
    assert saved == config and int(vae.optimizer.iterations) == 8  # 2 epochs of 4 steps: the end of the curve
    assert float(vae.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)


def test_the_iwae_papers_schedule_holds_each_rate_for_3_to_the_i_epochs(tmp_path, tfds_data_dir):
    schedule = TrainingConfig(learning_rate_schedule="iwae_paper").learning_rate_for(steps_per_epoch=10)
    stage_starts = np.cumsum([0] + [3 ** i for i in range(7)]) * 10  # steps: epochs 0, 1, 4, 13, ..., 1093
    for i, start in enumerate(stage_starts):
        expected = 1e-3 * 10 ** (-i / 7)  # Burda et al. (2015): 0.001 * 10^(-i/7)
        assert float(schedule(int(start))) == pytest.approx(expected, rel=1e-6)
        if i:
            assert float(schedule(int(start) - 1)) == pytest.approx(1e-3 * 10 ** (-(i - 1) / 7), rel=1e-6)
    assert float(schedule(3280 * 10 + 5)) == pytest.approx(1e-4, rel=1e-6)  # the last rate holds
    # A run of 2 epochs of 4 steps ends in the second stage (epochs 1 to 3), and saves the schedule.
    config = TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=2, epochs=2, batch_size=50,
                            max_examples=200, learning_rate=0.01, learning_rate_schedule="iwae_paper")
    training.train(config, tmp_path, data_dir=tfds_data_dir, verbose=0)
    vae, _ = training.load_run(tmp_path)
    assert int(vae.optimizer.iterations) == 8
    assert float(vae.optimizer.learning_rate) == pytest.approx(0.01 * 10 ** (-1 / 7), rel=1e-6)


def test_the_flow_prior_is_built_from_the_config():
    from tfvae import priors, training

    vae = training.build_vae(TrainingConfig(prior="flow", latent_dim=3, seed=4), (28, 28, 1))
    assert isinstance(vae.prior, priors.FlowPrior) and vae.prior.seed == 4 and vae.prior.latent_dim == 3


def test_free_bits_reach_the_vae_and_are_checked_in_the_config():
    from tfvae import training

    assert training.build_vae(TrainingConfig(objective="elbo", k=1, free_bits=0.5), (28, 28, 1)).free_bits == 0.5
    with pytest.raises(ValueError, match=r"`free_bits` must be 0 with objective='iwae'"):
        TrainingConfig(objective="iwae", free_bits=0.5)
    with pytest.raises(ValueError, match=r"`free_bits` must be a finite number >= 0; received -1"):
        TrainingConfig(free_bits=-1)
