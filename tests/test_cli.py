"""The `tfvae` command end to end, on tiny runs in temporary directories."""

import concurrent.futures
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
import tensorflow as tf

import tfvae
from tfvae import architectures, cli, training
from tests import mock_data
from tests.helpers import python_with_data
from tests.mock_data import data_dir_args

TINY = ["--max-examples", "200", "--batch-size", "50", "--latent-dim", "2", "--verbose", "0"]
# What `tfvae train --dataset binarized_mnist --epochs 2 *TINY` runs.
TINY_CONFIG = training.TrainingConfig(**{**training.COMMAND_DEFAULTS, "dataset": "binarized_mnist", "binarize": None,
                                         "latent_dim": 2, "epochs": 2, "batch_size": 50, "max_examples": 200})
LEVEL = 1 / 255  # one 8-bit PNG level
TILE = 28  # pixels of an MNIST image; grids put 1 px of white between tiles


def _png_size(path):
    return matplotlib.image.imread(path).shape[:2]


def _tiles(path, num_rows, num_columns):
    """The `[num_rows * num_columns, 28, 28, 1]` grey tiles of a grid PNG, row by row, in [0, 1]."""
    pixels = matplotlib.image.imread(path)[..., 0]  # grey: the R, G and B channels are equal
    return np.stack([
        pixels[row * (TILE + 1) : row * (TILE + 1) + TILE, column * (TILE + 1) : column * (TILE + 1) + TILE, None]
        for row in range(num_rows) for column in range(num_columns)
    ])


def _first_test_images(run, data_dir, num_images):
    """The first `num_images` test images of a run's dataset, preprocessed as the run does."""
    config = training.read_config(run)
    splits = training.load_data(config, data_dir, batch_size=num_images, max_examples=num_images)
    element = next(iter(splits.test))
    return (element[0] if splits.has_labels else element).numpy()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    with mock_data.prepared_or_fake_data() as data_dir:  # as the `tfds_data_dir` fixture, for the whole module
        code = cli.main(["train", "--dataset", "binarized_mnist", "--epochs", "2", "--out", str(out), *TINY,
                         *data_dir_args(data_dir)])
    assert code == cli.EXIT_OK
    return out


def test_train_writes_exactly_the_run_files_with_the_config_it_ran(trained_run):
    assert sorted(path.name for path in trained_run.iterdir()) == sorted(
        ["config.json", "history.csv", "logs", "metrics.json", "model.keras", *training.FIGURES])
    assert any((trained_run / "logs").rglob("events.out.tfevents.*"))
    assert training.read_config(trained_run) == TINY_CONFIG


def test_history_has_a_row_per_epoch_ending_on_the_saved_models_validation_kl(trained_run, tfds_data_dir):
    header, *rows = (trained_run / "history.csv").read_text().splitlines()
    assert header.split(",") == ["epoch", "elbo", "kl", "loss", "reconstruction",
                                 "val_elbo", "val_kl", "val_loss", "val_reconstruction"]
    history = [dict(zip(header.split(","), map(float, row.split(",")))) for row in rows]
    assert [row["epoch"] for row in history] == [0, 1]
    for row in history:
        for prefix in ("", "val_"):
            # The command's default objective is L_5, which is at least the mean ELBO of its 5 samples.
            assert row[f"{prefix}loss"] <= -row[f"{prefix}elbo"] + 1e-3
            assert row[f"{prefix}elbo"] == pytest.approx(-row[f"{prefix}reconstruction"] - row[f"{prefix}kl"], rel=1e-5)
    # The KL term is analytic: the validation pass after the last epoch saw the saved weights.
    validation = training.evaluate(trained_run, split="validation", max_examples=200, data_dir=tfds_data_dir, verbose=0)
    assert history[-1]["val_kl"] == pytest.approx(validation["kl"], rel=1e-5)


def test_metrics_are_the_saved_models_test_elbo_and_the_runs_throughput(trained_run, tfds_data_dir):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert {key: metrics[key] for key in ("chief", "epochs_done", "interrupted")} == {
        "chief": True, "epochs_done": 2, "interrupted": False}
    assert metrics["examples_per_second"] == pytest.approx(2 * 200 / metrics["wall_time_s"], rel=1e-9)
    test = training.evaluate(trained_run, split="test", max_examples=200, data_dir=tfds_data_dir, verbose=0)
    assert metrics["kl"] == pytest.approx(test["kl"], rel=1e-5)  # analytic: the same weights on the same images
    assert metrics["elbo"] == pytest.approx(-metrics["reconstruction"] - metrics["kl"], rel=1e-5)
    # The reconstruction term draws one latent sample per image, and the run drew them with its seed generator
    # moved on by the validation passes, a state model.keras does not keep: the run's ELBO must lie within the
    # spread of the saved model's estimates on the same 200 images under other seeds.
    vae, config = training.load_run(trained_run)
    images = np.concatenate(list(training.load_data(config, tfds_data_dir).test))  # binarized_mnist: no labels
    estimates = [float(np.mean(vae.elbo(images, seed=(seed, 0)))) for seed in range(20)]
    assert abs(metrics["elbo"] - np.mean(estimates)) < 5 * np.std(estimates)


def test_figures_show_the_models_samples_and_its_reconstructions_of_the_first_test_images(trained_run, tfds_data_dir):
    assert _png_size(trained_run / "latent_space.png") == (600, 600)
    assert _png_size(trained_run / "loss_curves.png") == (350, 4 * 400)  # loss, elbo, kl, reconstruction
    assert _png_size(trained_run / "samples.png") == (8 * 29 - 1, 8 * 29 - 1)  # 64 samples, 28 px + 1 px gaps
    assert _png_size(trained_run / "reconstructions.png") == (2 * 29 - 1, 16 * 29 - 1)
    vae, _ = training.load_run(trained_run)
    np.testing.assert_allclose(_tiles(trained_run / "samples.png", 8, 8), vae.sample(64, seed=0), atol=LEVEL)
    images = _first_test_images(trained_run, tfds_data_dir, 16)
    pairs = _tiles(trained_run / "reconstructions.png", 2, 16)
    np.testing.assert_array_equal(pairs[:16], images)
    np.testing.assert_allclose(pairs[16:], vae.reconstruct(images), atol=LEVEL)


def test_evaluate_prints_the_elbo_and_its_parts_on_the_requested_split(trained_run, tfds_data_dir, capsys):
    argv = ["evaluate", "--model", str(trained_run), "--split", "validation", "--max-examples", "100"]
    assert cli.main([*argv, *data_dir_args(tfds_data_dir)]) == cli.EXIT_OK
    printed = dict(re.findall(r"(elbo|reconstruction|kl) \(nats\)\s+(-?[\d.]+)", capsys.readouterr().out))
    expected = training.evaluate(trained_run, split="validation", max_examples=100, data_dir=tfds_data_dir, verbose=0)
    assert sorted(printed) == ["elbo", "kl", "reconstruction"]
    for name, value in printed.items():
        assert float(value) == pytest.approx(expected[name], abs=5e-4)  # printed to 3 decimals
    test = training.evaluate(trained_run, split="test", max_examples=100, data_dir=tfds_data_dir, verbose=0)
    assert abs(test["kl"] - expected["kl"]) > 1e-3  # another split gives other numbers


def test_sample_draws_the_models_samples_for_its_seed(trained_run, tmp_path):
    vae, _ = training.load_run(trained_run)
    assert cli.main(["sample", "--model", str(trained_run), "-n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert _png_size(tmp_path / "s.png") == (3 * 29 - 1, 3 * 29 - 1)
    np.testing.assert_allclose(_tiles(tmp_path / "s.png", 3, 3), vae.sample(9, seed=0), atol=LEVEL)  # seed 0 by default
    assert cli.main(["sample", "--model", str(trained_run), "-n", "9", "--seed", "7", "--out", str(tmp_path / "7.png")]) == 0
    np.testing.assert_allclose(_tiles(tmp_path / "7.png", 3, 3), vae.sample(9, seed=7), atol=LEVEL)
    assert np.abs(_tiles(tmp_path / "7.png", 3, 3) - _tiles(tmp_path / "s.png", 3, 3)).max() > 0.1


def test_reconstruct_puts_the_first_test_images_above_their_reconstructions(trained_run, tfds_data_dir, tmp_path):
    argv = ["reconstruct", "--model", str(trained_run), "-n", "4", "--out", str(tmp_path / "r.png")]
    assert cli.main([*argv, *data_dir_args(tfds_data_dir)]) == 0
    assert _png_size(tmp_path / "r.png") == (2 * 29 - 1, 4 * 29 - 1)
    vae, _ = training.load_run(trained_run)
    images = _first_test_images(trained_run, tfds_data_dir, 4)
    pairs = _tiles(tmp_path / "r.png", 2, 4)
    np.testing.assert_array_equal(pairs[:4], images)
    np.testing.assert_allclose(pairs[4:], vae.reconstruct(images), atol=LEVEL)


def test_existing_out_is_kept_without_overwrite(trained_run, tfds_data_dir, capsys):
    before = (trained_run / "model.keras").stat().st_mtime_ns
    code = cli.main(["train", "--dataset", "binarized_mnist", "--epochs", "1", "--out", str(trained_run), *TINY,
                     *data_dir_args(tfds_data_dir)])
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
        (["train", "--kl-warmup-epochs", "-1"], "expected an integer >= 0, received -1"),
        (["train", "--early-stopping", "0"], "expected an integer >= 1, received 0"),
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


def _interrupt_and_resume(signal_number, out, data_dir):
    """Starts `tfvae train`, sends `signal_number` once the second of 3 epochs starts, then resumes the run.

    Returns `(return code, transcript, history rows after the interruption, files after it, resumed run)`.
    """
    argv = python_with_data(
        "-m", "tfvae", "train", "--dataset", "binarized_mnist", "--epochs", "3", "--out", str(out), "--max-examples", "3000",
        "--batch-size", "10", "--latent-dim", "2", "--verbose", "2", *data_dir_args(data_dir))
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
    try:
        output = []
        deadline = time.monotonic() + 240
        for line in process.stdout:  # wait until the second epoch has started
            output.append(line)
            if line.startswith("Epoch 2/3") or time.monotonic() > deadline:
                break
        # At once: training stops at the end of the running execution (up to 50 of the epoch's 300 steps).
        process.send_signal(signal_number)
        output.append(process.communicate(timeout=120)[0])
    finally:
        process.kill()
    history = (out / "history.csv").read_text().splitlines() if (out / "history.csv").is_file() else []
    files = {"checkpoint": (out / "checkpoints" / "checkpoint").is_file(), "model.keras": (out / "model.keras").exists()}
    resumed = subprocess.run(python_with_data("-m", "tfvae", "train", "--out", str(out), "--resume", "--verbose", "2",
                                              *data_dir_args(data_dir)),
                             capture_output=True, text=True, env=environment, timeout=240)
    return process.returncode, "".join(output), history, files, resumed


@pytest.fixture(scope="module")
def interrupted_runs(tmp_path_factory):
    """`{signal: (out, what _interrupt_and_resume returned)}` for Ctrl+C and SIGTERM, the two runs side by side.

    Each run is two processes (TensorFlow starts in each), so the two signals' runs go at once, in threads.
    """
    directory = tmp_path_factory.mktemp("interrupted")
    with mock_data.prepared_or_fake_data() as data_dir:  # as the `tfds_data_dir` fixture, for the whole module
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = {signal_number: pool.submit(_interrupt_and_resume, signal_number,
                                                  directory / signal_number.name / "interrupted", data_dir)
                       for signal_number in (signal.SIGINT, signal.SIGTERM)}
            return {signal_number: (directory / signal_number.name / "interrupted", future.result())
                    for signal_number, future in futures.items()}


@pytest.mark.parametrize("signal_number, exit_code", [(signal.SIGINT, cli.EXIT_INTERRUPTED), (signal.SIGTERM, cli.EXIT_TERMINATED)],
                         ids=["ctrl_c", "sigterm"])
def test_ctrl_c_or_sigterm_keeps_a_checkpoint_and_resume_finishes(signal_number, exit_code, interrupted_runs):
    out, (returncode, transcript, history, files, resumed) = interrupted_runs[signal_number]
    assert returncode == exit_code, transcript[-2000:]
    assert f"Interrupted ({signal.Signals(signal_number).name})" in transcript
    assert f"Continue with: tfvae train --out {out} --resume" in transcript
    assert files["checkpoint"] and not files["model.keras"]
    assert len(history) in (1 + 1, 1 + 2)  # epoch 1 (and the partial 2nd)

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


def test_export_writes_a_saved_model_serving_the_runs_encoder_and_keeps_an_existing_one(trained_run, tmp_path, capsys):
    out = tmp_path / "serving" / "1"
    assert cli.main(["export", "--model", str(trained_run), "--out", str(out)]) == 0
    assert "signatures: serving_default, encode" in capsys.readouterr().out
    vae, _ = training.load_run(trained_run)
    images = tf.cast(vae.sample(8, seed=1) > 0.5, tf.float32)
    served = tfvae.export.load(out).signatures["encode"](x=images)
    posterior = vae.encode(images)
    np.testing.assert_allclose(served["mean"], posterior.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served["stddev"], posterior.stddev(), rtol=1e-5, atol=1e-6)
    before = (out / "saved_model.pb").stat().st_mtime_ns
    assert cli.main(["export", "--model", str(trained_run), "--out", str(out)]) == cli.EXIT_FAILURE
    assert "already exists" in capsys.readouterr().err
    assert (out / "saved_model.pb").stat().st_mtime_ns == before


def test_evaluate_reports_nll_and_bits_per_dim_of_the_pretrained_model(tfds_data_dir, capsys):
    # 250 examples in batches of 128: the last batch is smaller, so a mean of batch means would differ.
    argv = ["evaluate", "--model", str(PRETRAINED), "-k", "20", "--max-examples", "250", *data_dir_args(tfds_data_dir)]
    assert cli.main(argv) == 0
    output = capsys.readouterr().out
    # The progress bar may leave its last line open, so find the rows anywhere.
    rows = dict(re.findall(r"((?:elbo|reconstruction|kl|NLL, k=20) \(nats\)|NLL \(bits/dim\))\s+(-?[\d.]+)", output))
    assert re.findall(r"nll: ([\d.]+)", output)[-1] == rows["NLL, k=20 (nats)"]  # the bar ends on the table's number
    elbo, nll, bits = float(rows["elbo (nats)"]), float(rows["NLL, k=20 (nats)"]), float(rows["NLL (bits/dim)"])
    expected = training.evaluate(PRETRAINED, k=20, max_examples=250, data_dir=tfds_data_dir, verbose=0)
    assert nll == pytest.approx(expected["nll"], abs=5e-5) and elbo == pytest.approx(expected["elbo"], abs=5e-4)
    assert nll < -elbo + 1.0  # L_20 is at least about the ELBO (both estimated, so a margin)
    assert bits == pytest.approx(nll / (784 * np.log(2)), abs=1e-4)
    if not mock_data.mocking():
        assert 60 < nll < 120  # what an MLP VAE reaches on MNIST


@pytest.mark.parametrize("likelihood", architectures.GREY_LEVEL_LIKELIHOODS)
def test_train_with_a_grey_level_likelihood_learns_grey_mnist_under_xla(likelihood, tmp_path, tfds_data_dir, capsys):
    out = tmp_path / likelihood
    code = cli.main(["train", "--dataset", "mnist", "--likelihood", likelihood, "--epochs", "2", "--out", str(out), *TINY,
                     *data_dir_args(tfds_data_dir)])
    assert code == cli.EXIT_OK
    vae, config = training.load_run(out)
    assert (config.likelihood, config.binarize) == (likelihood, None)  # --binarize auto keeps the grey levels
    assert vae.jit_compile is True  # the compile configuration it trained with
    losses = [float(row.split(",")[3]) for row in (out / "history.csv").read_text().splitlines()[1:]]
    assert np.all(np.isfinite(losses)) and losses[1] < losses[0], losses
    printed = capsys.readouterr().out
    rows = dict(re.findall(r"^  (\S.*?)\s{2,}(\S+)$", printed, flags=re.M))
    metrics = json.loads((out / "metrics.json").read_text())
    if likelihood in architectures.DISCRETE_GREY_LEVEL_LIKELIHOODS:
        # The -ELBO bounds the discrete NLL from above: bits per dimension of 784 8-bit grey levels.
        assert float(rows["test -ELBO (bits/dim)"]) == pytest.approx(-metrics["elbo"] / (784 * np.log(2)), abs=1e-4)
        assert 0 < float(rows["test -ELBO (bits/dim)"]) < 8  # below uniform levels' 8 bits
    else:
        assert not any("bits/dim" in name for name in rows)


def test_train_help_names_every_likelihood(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    start = help_text.rindex("--likelihood {")  # in the options, after the usage line
    likelihood_help = help_text[start:help_text.index("--epochs", start)]
    for name in architectures.LIKELIHOODS:
        assert likelihood_help.count(name) >= 2, name  # among the choices, and explained


@pytest.mark.parametrize("command", ["train", "evaluate", "sample", "reconstruct", "export"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main([command, "--help"])
    assert raised.value.code == 0
    assert f"usage: tfvae {command}" in capsys.readouterr().out


def test_version_is_the_packages(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["--version"])
    assert raised.value.code == 0
    assert capsys.readouterr().out.strip() == f"tfvae {tfvae.__version__}"
