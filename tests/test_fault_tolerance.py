"""Training killed with SIGKILL resumes from its last checkpoint and finishes."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np

from tests.test_data import DATA_DIR, needs_prepared_data

ENVIRONMENT = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
TRAIN = ["--dataset", "mnist", "--binarize", "dynamic", "--latent-dim", "2", "--batch-size", "20",
         "--max-examples", "400", "--verbose", "2", "--data-dir", str(DATA_DIR)]


def _tfvae(*argv, timeout=300):
    return subprocess.run([sys.executable, "-m", "tfvae", *argv], capture_output=True, text=True, env=ENVIRONMENT, timeout=timeout)


@needs_prepared_data
def test_killed_mid_epoch_resumes_from_the_last_checkpoint_step_and_finishes(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "tfvae", "train", *TRAIN, "--epochs", "3", "--checkpoint-every", "3",
                                "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENVIRONMENT)
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

    resumed = _tfvae("train", "--out", str(out), "--resume", "--data-dir", str(DATA_DIR))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epoch, step = map(int, re.search(r"Resuming at epoch (\d+), step (\d+)", resumed.stderr).groups())
    assert (epoch, step) >= (2, 0)  # from the checkpoint, not from scratch
    assert step % 3 == 0  # a step-checkpoint (or the epoch's end)
    assert (out / "model.keras").is_file()
    assert [row.split(",")[0] for row in (out / "history.csv").read_text().splitlines()[1:]] == ["0", "1", "2"]


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
    training.train(config, sys.argv[1], data_dir=sys.argv[2], verbose=0, callbacks=[KillAfterFirstEpoch()])
    """
)


@needs_prepared_data
def test_killed_right_after_an_epoch_checkpoint_resumes_to_the_uninterrupted_weights(tmp_path):
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_EPOCH, str(tmp_path / "killed"), str(DATA_DIR)],
                            capture_output=True, text=True, env=ENVIRONMENT, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = _tfvae("train", "--out", str(tmp_path / "killed"), "--resume", "--data-dir", str(DATA_DIR))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming at epoch 2, step 0" in resumed.stderr

    uninterrupted = _tfvae("train", *TRAIN, "--epochs", "2", "--out", str(tmp_path / "whole"))
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    resumed_weights = keras.models.load_model(tmp_path / "killed" / "model.keras").get_weights()
    whole_weights = keras.models.load_model(tmp_path / "whole" / "model.keras").get_weights()
    assert len(resumed_weights) == len(whole_weights) >= 10
    for resumed_value, whole_value in zip(resumed_weights, whole_weights):
        np.testing.assert_allclose(resumed_value, whole_value, rtol=1e-6, atol=1e-7)
