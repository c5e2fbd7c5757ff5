"""Training killed with SIGKILL resumes from its last checkpoint and finishes."""

import os
import re
import signal
import subprocess
import textwrap
import time

import keras
import numpy as np

from tfvae import training
from tests.helpers import python_with_data
from tests.mock_data import data_dir_args

ENVIRONMENT = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
TRAIN = ["--dataset", "mnist", "--binarize", "dynamic", "--latent-dim", "2", "--batch-size", "20",
         "--max-examples", "400", "--verbose", "2"]


def _tfvae(*argv, timeout=300):
    """`tfvae ARGV...` in a subprocess, with the tests' data (the prepared directory or the fake datasets)."""
    return subprocess.run(python_with_data("-m", "tfvae", *argv), capture_output=True, text=True, env=ENVIRONMENT,
                          timeout=timeout)


def test_killed_mid_epoch_resumes_from_the_last_checkpoint_step_to_the_uninterrupted_weights(tmp_path, tfds_data_dir):
    out = tmp_path / "run"
    argv = python_with_data("-m", "tfvae", "train", *TRAIN, *data_dir_args(tfds_data_dir), "--epochs", "3",
                            "--checkpoint-every", "3", "--out", str(out))
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENVIRONMENT)
    try:
        deadline = time.monotonic() + 240
        for line in process.stdout:  # the first epoch is done and checkpointed
            if line.startswith("Epoch 2/3") or time.monotonic() > deadline:
                break
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "model.keras").exists()

    resumed = _tfvae("train", "--out", str(out), "--resume", *data_dir_args(tfds_data_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epoch, step = map(int, re.search(r"Resuming at epoch (\d+), step (\d+)", resumed.stderr).groups())
    assert (epoch, step) >= (2, 0)  # from the checkpoint, not from scratch
    assert step % 3 == 0  # a step-checkpoint (or the epoch's end)
    assert [row.split(",")[0] for row in (out / "history.csv").read_text().splitlines()[1:]] == ["0", "1", "2"]
    # The steps lost since the checkpoint were done again on the same batches with the same latent samples.
    training.train(training.read_config(out), tmp_path / "whole", data_dir=tfds_data_dir, verbose=0)
    _assert_same_weights(out / "model.keras", tmp_path / "whole" / "model.keras")


def _assert_same_weights(path, expected_path):
    weights, expected = (keras.models.load_model(p).get_weights() for p in (path, expected_path))
    assert len(weights) == len(expected) >= 10
    for value, expected_value in zip(weights, expected):
        np.testing.assert_allclose(value, expected_value, rtol=1e-6, atol=1e-7)


KILL_AFTER_FIRST_EPOCH = textwrap.dedent(
    """
    import os, signal, sys
    import keras
    from tfvae import training

    class KillAfterFirstEpoch(keras.callbacks.Callback):  # runs after tfvae's checkpoint callback
        def on_epoch_end(self, epoch, logs=None):
            os.kill(os.getpid(), signal.SIGKILL)

    config = training.TrainingConfig(dataset="mnist", binarize="dynamic", latent_dim=2, batch_size=20,
                                     max_examples=400, epochs=2)
    training.train(config, sys.argv[1], data_dir=sys.argv[2] or None, verbose=0, callbacks=[KillAfterFirstEpoch()])
    """
)


def test_killed_right_after_an_epoch_checkpoint_resumes_to_the_uninterrupted_weights(tmp_path, tfds_data_dir):
    killed = subprocess.run(python_with_data("-c", KILL_AFTER_FIRST_EPOCH, str(tmp_path / "killed"), tfds_data_dir or ""),
                            capture_output=True, text=True, env=ENVIRONMENT, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = _tfvae("train", "--out", str(tmp_path / "killed"), "--resume", *data_dir_args(tfds_data_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming at epoch 2, step 0" in resumed.stderr

    training.train(training.read_config(tmp_path / "killed"), tmp_path / "whole", data_dir=tfds_data_dir, verbose=0)
    _assert_same_weights(tmp_path / "killed" / "model.keras", tmp_path / "whole" / "model.keras")


def _no_space():
    return OSError(28, "No space left on device")


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint_says_so_and_resumes(tmp_path, tfds_data_dir, monkeypatch):
    """ENOSPC part-way through the second checkpoint: the first stays the latest and loadable, and resume finishes."""
    import pathlib

    import pytest
    import tensorflow as tf

    config = training.TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=2, epochs=2, batch_size=50,
                                     max_examples=200, checkpoint_every=2, steps_per_execution=1)
    out = tmp_path / "run"
    real_write = tf.train.Checkpoint._write  # what tf.train.CheckpointManager.save calls
    writes = []

    def second_write_fails(self, file_prefix, options=None):
        writes.append(file_prefix)
        if len(writes) == 1:
            return real_write(self, file_prefix, options=options)
        pathlib.Path(f"{file_prefix}.index").write_bytes(b"half an index")  # what a full disk leaves
        raise _no_space()

    with monkeypatch.context() as patch:
        patch.setattr(tf.train.Checkpoint, "_write", second_write_fails)
        with pytest.raises(OSError, match=r"Could not write the checkpoint to resume at epoch 2, step 0 in .*checkpoints.*\(No space "
                                          r"left on device\); the previous checkpoint, ckpt-1, is kept.*--resume"):
            training.train(config, out, data_dir=tfds_data_dir, verbose=0)
    checkpoints = out / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == ["checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(checkpoints)))  # intact and readable
    assert any("step_in_epoch" in name for name in reader.get_variable_to_shape_map())
    assert not (out / "model.keras").exists()

    summary = training.train(None, out, data_dir=tfds_data_dir, resume=True, verbose=0)  # the disk has room again
    assert summary["epochs_done"] == 2 and (out / "model.keras").is_file()


def test_a_failed_model_write_keeps_the_previous_model_and_says_so(tmp_path, monkeypatch):
    import pathlib

    import pytest

    from tfvae.training import run_dir

    vae = training.build_vae(training.TrainingConfig(latent_dim=2), (28, 28, 1))
    path = tmp_path / "model.keras"
    run_dir.save_model_atomically(vae, path)
    saved_bytes = path.read_bytes()

    def half_written_model(self, filepath, *args, **kwargs):
        pathlib.Path(filepath).write_bytes(b"PK half a zip")
        raise _no_space()

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save", half_written_model)
        with pytest.raises(OSError, match=r"Could not write the model to .*model.keras.*No space left on device.*the "
                                          r"previous model there is kept"):
            run_dir.save_model_atomically(vae, path)
        with pytest.raises(OSError, match=r"Could not write the model to .*other.keras.*nothing was written"):
            run_dir.save_model_atomically(vae, tmp_path / "other.keras")
    assert path.read_bytes() == saved_bytes and keras.models.load_model(path) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]  # no partial files
