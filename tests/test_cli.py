"""The `tfvae` command end to end, on tiny runs in temporary directories."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import matplotlib.image
import numpy as np
import pytest

from tfvae import cli
from tests.test_data import DATA_DIR, needs_prepared_data

TINY = ["--max-examples", "200", "--batch-size", "50", "--latent-dim", "2", "--verbose", "0", "--data-dir", str(DATA_DIR)]


def _png_size(path):
    return matplotlib.image.imread(path).shape[:2]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    code = cli.main(["train", "--dataset", "binarized_mnist", "--epochs", "2", "--out", str(out), *TINY])
    assert code == cli.EXIT_OK
    return out


@needs_prepared_data
def test_train_writes_model_history_logs_figures_and_table(trained_run, capsys):
    for name in ("model.keras", "config.json", "history.csv", "metrics.json", "samples.png", "reconstructions.png", "latent_space.png", "loss_curves.png"):
        assert (trained_run / name).is_file(), name
    assert any((trained_run / "logs").rglob("events.out.tfevents.*"))
    assert not (trained_run / "checkpoints").exists()
    assert len((trained_run / "history.csv").read_text().splitlines()) == 1 + 2
    assert _png_size(trained_run / "samples.png") == (8 * 29 - 1, 8 * 29 - 1)  # 64 samples, 28 px + 1 px gaps
    assert _png_size(trained_run / "reconstructions.png") == (2 * 29 - 1, 16 * 29 - 1)
    assert _png_size(trained_run / "latent_space.png") == (600, 600)
    assert _png_size(trained_run / "loss_curves.png") == (350, 4 * 400)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["elbo"] < 0 and metrics["examples_per_second"] > 0


@needs_prepared_data
def test_evaluate_prints_elbo_and_its_parts(trained_run, capsys):
    assert cli.main(["evaluate", "--model", str(trained_run), "--split", "validation", "--max-examples", "100", "--data-dir", str(DATA_DIR)]) == 0
    printed = capsys.readouterr().out
    assert "elbo (nats)" in printed and "reconstruction (nats)" in printed and "kl (nats)" in printed


@needs_prepared_data
def test_sample_and_reconstruct_write_pngs_of_the_requested_size(trained_run, tmp_path):
    assert cli.main(["sample", "--model", str(trained_run), "-n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert _png_size(tmp_path / "s.png") == (3 * 29 - 1, 3 * 29 - 1)
    assert cli.main(["reconstruct", "--model", str(trained_run), "-n", "4", "--out", str(tmp_path / "r.png"), "--data-dir", str(DATA_DIR)]) == 0
    assert _png_size(tmp_path / "r.png") == (2 * 29 - 1, 4 * 29 - 1)


@needs_prepared_data
def test_existing_out_is_kept_without_overwrite(trained_run, capsys):
    before = (trained_run / "model.keras").stat().st_mtime_ns
    code = cli.main(["train", "--dataset", "binarized_mnist", "--epochs", "1", "--out", str(trained_run), *TINY])
    assert code == cli.EXIT_FAILURE
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "already exists" in error and "--overwrite" in error
    assert (trained_run / "model.keras").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--epochs", "-3"], "expected an integer >= 1, received -3"),
        (["train", "--dataset", "svhn"], "invalid choice: 'svhn'"),
        (["train", "--arch", "resnet"], "invalid choice: 'resnet'"),
        (["sample"], "the following arguments are required: --model"),
    ],
)
def test_bad_values_are_rejected_before_any_work(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as raised:
        cli.main([*argv, "--out", str(tmp_path / "never")] if argv[0] == "train" else argv)
    assert raised.value.code == cli.EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_missing_model_and_unresumable_out_are_one_line_errors(tmp_path, capsys):
    assert cli.main(["sample", "--model", str(tmp_path)]) == cli.EXIT_FAILURE
    assert "holds no model.keras" in capsys.readouterr().err
    assert cli.main(["train", "--resume", "--out", str(tmp_path / "none")]) == cli.EXIT_FAILURE
    assert "holds no config.json" in capsys.readouterr().err


@needs_prepared_data
def test_ctrl_c_keeps_a_checkpoint_and_resume_finishes(tmp_path):
    out = tmp_path / "interrupted"
    argv = [sys.executable, "-m", "tfvae", "train", "--dataset", "binarized_mnist", "--epochs", "3", "--out", str(out),
            "--max-examples", "3000", "--batch-size", "10", "--latent-dim", "2", "--verbose", "2", "--data-dir", str(DATA_DIR)]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
    try:
        output = []
        deadline = time.monotonic() + 240
        for line in process.stdout:  # wait until the second epoch has started
            output.append(line)
            if line.startswith("Epoch 2/3") or time.monotonic() > deadline:
                break
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        output.append(process.communicate(timeout=120)[0])
    finally:
        process.kill()
    transcript = "".join(output)
    assert process.returncode == cli.EXIT_INTERRUPTED, transcript[-2000:]
    assert "tfvae train --out" in transcript and "--resume" in transcript
    assert (out / "checkpoints" / "checkpoint").is_file() and not (out / "model.keras").exists()
    assert len((out / "history.csv").read_text().splitlines()) in (1 + 1, 1 + 2)  # epoch 1 (and the partial 2nd)

    resumed = subprocess.run([sys.executable, "-m", "tfvae", "train", "--out", str(out), "--resume", "--verbose", "2",
                              "--data-dir", str(DATA_DIR)], capture_output=True, text=True, env=environment, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Epoch 1/" not in resumed.stdout and "Epoch 2/" in resumed.stdout  # continued, not from scratch
    assert re.search(r"Resuming at epoch 2, step [1-9]", resumed.stderr)  # at the interrupted step
    history = (out / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1", "2"]
    assert (out / "model.keras").is_file() and not (out / "checkpoints").exists()


PRETRAINED = pathlib.Path(__file__).resolve().parents[1] / "saved_models" / "pretrained_mnist_mlp"


def test_pretrained_model_samples_with_no_data(tmp_path):
    environment = {**os.environ, "TFDS_DATA_DIR": str(tmp_path / "no_data_here"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-m", "tfvae", "sample", "--model", str(PRETRAINED), "-n", "16",
                             "--out", str(tmp_path / "samples.png")], capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _png_size(tmp_path / "samples.png") == (4 * 29 - 1, 4 * 29 - 1)
    assert (PRETRAINED / "model.keras").stat().st_size < 5 * 2**20


@needs_prepared_data
def test_export_writes_a_saved_model_and_keeps_an_existing_one(trained_run, tmp_path, capsys):
    out = tmp_path / "serving" / "1"
    assert cli.main(["export", "--model", str(trained_run), "--out", str(out)]) == 0
    assert (out / "saved_model.pb").is_file() and "signatures: serving_default, encode" in capsys.readouterr().out
    assert cli.main(["export", "--model", str(trained_run), "--out", str(out)]) == cli.EXIT_FAILURE
    assert "already exists" in capsys.readouterr().err


@needs_prepared_data
def test_evaluate_reports_nll_and_bits_per_dim_of_the_pretrained_model(capsys):
    # 250 examples in batches of 128: the last batch is smaller, so a mean of batch means would differ.
    argv = ["evaluate", "--model", str(PRETRAINED), "-k", "20", "--max-examples", "250", "--data-dir", str(DATA_DIR)]
    assert cli.main(argv) == 0
    output = capsys.readouterr().out
    # The progress bar may leave its last line open, so find the rows anywhere.
    rows = dict(re.findall(r"((?:elbo|reconstruction|kl|NLL, k=20) \(nats\)|NLL \(bits/dim\))\s+(-?[\d.]+)", output))
    assert re.findall(r"nll: ([\d.]+)", output)[-1] == rows["NLL, k=20 (nats)"]  # the bar ends on the table's number
    elbo, nll, bits = float(rows["elbo (nats)"]), float(rows["NLL, k=20 (nats)"]), float(rows["NLL (bits/dim)"])
    assert 60 < nll < -elbo + 1.0  # L_20 is at least about the ELBO (both estimated, so a margin)
    assert bits == pytest.approx(nll / (784 * np.log(2)), abs=1e-4)


@pytest.mark.parametrize("command", ["train", "evaluate", "sample", "reconstruct", "export"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main([command, "--help"])
    assert raised.value.code == 0
    assert f"usage: tfvae {command}" in capsys.readouterr().out
