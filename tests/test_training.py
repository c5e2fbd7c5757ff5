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
        ("arch", "resnet", r"Unknown `arch` 'resnet'; known: \['conv', 'mlp'\]"),
        ("epochs", -1, r"`epochs` must be an int >= 1; received -1"),
        ("batch_size", 0, r"`batch_size` must be an int >= 1; received 0"),
        ("beta", 0.0, r"`beta` must be a number > 0; received 0.0"),
        ("binarize", "static", r"Unknown `binarize` 'static'"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainingConfig(**{field: value})


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


def test_a_failed_run_gives_ctrl_c_back_to_the_previous_handler(tmp_path, tfds_data_dir):
    def previous_handler(signum, frame):
        pass

    signal.signal(signal.SIGINT, previous_handler)
    try:
        config = TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=2, epochs=2, batch_size=50, max_examples=100)
        with pytest.raises(RuntimeError, match="a callback failed"):
            training.train(config, tmp_path / "run", data_dir=tfds_data_dir, verbose=0, callbacks=[FailAfterFirstEpoch()])
        assert signal.getsignal(signal.SIGINT) is previous_handler
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
