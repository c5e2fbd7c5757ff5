"""`tfvae train --conditional` and the commands on its run, end to end on tiny runs; the README's example."""

import ast
import json
import os
import pathlib
import re
import subprocess

import keras
import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import cli, training
from tfvae.training import run_dir
from tests import mock_data
from tests.helpers import python_with_data
from tests.mock_data import data_dir_args

TINY = ["--max-examples", "200", "--batch-size", "50", "--latent-dim", "2", "--verbose", "0", "--arch", "mlp"]
LEVEL = 1 / 255  # one 8-bit PNG level
TILE = 28  # pixels of an MNIST image; grids put 1 px of white between tiles
NUM_CLASSES = 10
ROOT = pathlib.Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "saved_models" / "pretrained_mnist_mlp"  # an unconditional run


def _png_size(path):
    return matplotlib.image.imread(path).shape[:2]


def _tiles(path, num_rows, num_columns):
    """The `[num_rows * num_columns, 28, 28, 1]` grey tiles of a grid PNG, row by row, in [0, 1]."""
    pixels = matplotlib.image.imread(path)[..., 0]
    return np.stack([
        pixels[row * (TILE + 1) : row * (TILE + 1) + TILE, column * (TILE + 1) : column * (TILE + 1) + TILE, None]
        for row in range(num_rows) for column in range(num_columns)
    ])


def _first_test_batch(run, data_dir, num_images):
    """The first `num_images` test images of a run's dataset and their labels, preprocessed as the run does."""
    splits = training.load_data(training.read_config(run), data_dir, batch_size=num_images, max_examples=num_images)
    images, labels = next(iter(splits.test))
    return images.numpy(), labels.numpy()


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "conditional"
    with mock_data.prepared_or_fake_data() as data_dir:  # as the `tfds_data_dir` fixture, for the whole module
        code = cli.main(["train", "--dataset", "mnist", "--conditional", "--epochs", "2", "--out", str(out), *TINY,
                         *data_dir_args(data_dir)])
    assert code == cli.EXIT_OK
    return out


def test_train_conditional_writes_the_run_with_samples_per_class(conditional_run, tfds_data_dir, capsys):
    assert sorted(path.name for path in conditional_run.iterdir()) == sorted(
        ["config.json", "history.csv", "logs", "metrics.json", "model.keras", *training.FIGURES, *run_dir.CONDITIONAL_FIGURES])
    config = training.read_config(conditional_run)
    assert config.conditional and run_dir.figures_of(config)[-1] == "samples_per_class.png"
    vae, _ = training.load_run(conditional_run)
    assert vae.num_classes == NUM_CLASSES
    # A row per class, each column one z drawn as every class.
    assert _png_size(conditional_run / "samples_per_class.png") == (NUM_CLASSES * 29 - 1, 10 * 29 - 1)
    rows = _tiles(conditional_run / "samples_per_class.png", NUM_CLASSES, 10).reshape(NUM_CLASSES, 10, TILE, TILE, 1)
    for label in range(NUM_CLASSES):
        np.testing.assert_allclose(rows[label], vae.sample(10, seed=0, labels=label), atol=LEVEL, err_msg=f"class {label}")
    np.testing.assert_allclose(_tiles(conditional_run / "samples.png", 8, 8),
                               vae.sample(64, seed=0, labels=np.arange(64) % NUM_CLASSES), atol=LEVEL)
    images, labels = _first_test_batch(conditional_run, tfds_data_dir, 16)
    pairs = _tiles(conditional_run / "reconstructions.png", 2, 16)
    np.testing.assert_array_equal(pairs[:16], images)
    np.testing.assert_allclose(pairs[16:], vae.reconstruct(images, labels=labels), atol=LEVEL)
    # The test ELBO of metrics.json is the saved model's on the labelled test split (analytic KL: exact).
    metrics = training.evaluate(conditional_run, max_examples=200, data_dir=tfds_data_dir, verbose=0)
    assert metrics["kl"] == pytest.approx(json.loads((conditional_run / "metrics.json").read_text())["kl"], rel=1e-5)


def test_sample_draws_the_given_classes_one_grid_or_a_row_each(conditional_run, tmp_path, capsys):
    vae, _ = training.load_run(conditional_run)
    assert cli.main(["sample", "--model", str(conditional_run), "--label", "3", "-n", "4", "--out", str(tmp_path / "3.png")]) == 0
    np.testing.assert_allclose(_tiles(tmp_path / "3.png", 2, 2), vae.sample(4, seed=0, labels=3), atol=LEVEL)
    argv = ["sample", "--model", str(conditional_run), "--label", "0", "1", "7", "-n", "5", "--seed", "2", "--out",
            str(tmp_path / "rows.png")]
    assert cli.main(argv) == 0
    assert _png_size(tmp_path / "rows.png") == (3 * 29 - 1, 5 * 29 - 1)
    rows = _tiles(tmp_path / "rows.png", 3, 5).reshape(3, 5, TILE, TILE, 1)
    for row, label in enumerate((0, 1, 7)):
        np.testing.assert_allclose(rows[row], vae.sample(5, seed=2, labels=label), atol=LEVEL)
    assert "Wrote" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    ([], "conditional on 10 classes: give the classes to draw (0..9)"),
    (["--label", "10"], "`labels` must be class indices in [0, 10); received 10."),
])
def test_sample_without_or_with_a_bad_label_is_a_one_line_error(conditional_run, tmp_path, capsys, argv, message):
    code = cli.main(["sample", "--model", str(conditional_run), *argv, "--out", str(tmp_path / "s.png")])
    assert code == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error
    assert not (tmp_path / "s.png").exists()


def test_an_unconditional_model_refuses_labels(tmp_path, capsys):
    assert cli.main(["sample", "--model", str(PRETRAINED), "--label", "3", "--out", str(tmp_path / "s.png")]) == cli.EXIT_USAGE
    assert "unconditional" in capsys.readouterr().err and not (tmp_path / "s.png").exists()
    with pytest.raises(SystemExit) as raised:
        cli.main(["sample", "--model", str(PRETRAINED), "--label", "-1"])
    assert raised.value.code == cli.EXIT_USAGE and "expected an integer >= 0" in capsys.readouterr().err


def test_evaluate_and_reconstruct_use_the_splits_labels(conditional_run, tfds_data_dir, tmp_path, capsys):
    argv = ["evaluate", "--model", str(conditional_run), "--max-examples", "100", "-k", "4"]
    assert cli.main([*argv, *data_dir_args(tfds_data_dir)]) == cli.EXIT_OK
    output = capsys.readouterr().out
    printed = float(re.search(r"elbo \(nats\)\s+(-?[\d.]+)", output).group(1))
    vae, config = training.load_run(conditional_run)
    expected = training.evaluate(conditional_run, max_examples=100, data_dir=tfds_data_dir, verbose=0)
    assert printed == pytest.approx(expected["elbo"], abs=5e-4)
    # L_4 of log p(x|y), batch i of the run's batch size seeded (seed, i).
    batches = training.load_data(config, tfds_data_dir, max_examples=100).test
    bounds = [vae.log_likelihood(images, k=4, seed=(config.seed, index), labels=labels).numpy()
              for index, (images, labels) in enumerate(batches)]
    nll = float(re.search(r"NLL, k=4 \(nats\)\s+([\d.]+)", output).group(1))
    assert len(bounds) == 2 and nll == pytest.approx(-np.mean(np.concatenate(bounds)), abs=1e-3)

    argv = ["reconstruct", "--model", str(conditional_run), "-n", "4", "--out", str(tmp_path / "r.png")]
    assert cli.main([*argv, *data_dir_args(tfds_data_dir)]) == cli.EXIT_OK
    images, labels = _first_test_batch(conditional_run, tfds_data_dir, 4)
    np.testing.assert_allclose(_tiles(tmp_path / "r.png", 2, 4)[4:], vae.reconstruct(images, labels=labels), atol=LEVEL)
    code = cli.main(["evaluate", "--model", str(conditional_run), "--dataset", "binarized_mnist", *data_dir_args(tfds_data_dir)])
    assert code == cli.EXIT_USAGE and "'binarized_mnist' has none" in capsys.readouterr().err


def test_export_serves_the_runs_model_with_a_label_input(conditional_run, tmp_path, capsys):
    out = tmp_path / "serving" / "1"
    assert cli.main(["export", "--model", str(conditional_run), "--out", str(out)]) == cli.EXIT_OK
    assert "each takes a `label` input" in capsys.readouterr().out
    vae, _ = training.load_run(conditional_run)
    labels = tf.constant([0, 3, 9])
    images = tf.cast(vae.sample(3, seed=1, labels=labels) > 0.5, tf.float32)
    loaded = tfvae.export.load(out)
    served = loaded.signatures["encode"](x=images, label=labels)
    np.testing.assert_allclose(served["mean"], vae.encode(images, labels=labels).mean(), rtol=1e-5, atol=1e-6)
    drawn = loaded.signatures["sample"](label=labels, seed=tf.constant([1, 2]))["images"]
    np.testing.assert_allclose(drawn, vae.sample(3, seed=(1, 2), labels=labels), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "binarized_mnist"], "'binarized_mnist' has none: use a labelled dataset (cifar10, fashion_mnist, mnist)"),
    (["--prior", "vampprior"], "A conditional VAE keeps the prior p(z)"),
])
def test_train_conditional_refuses_unlabelled_data_and_the_vampprior_before_any_work(argv, message, tmp_path, capsys):
    code = cli.main(["train", "--conditional", *argv, "--out", str(tmp_path / "never"), *TINY])
    assert code == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("command, option", [("train", "--conditional"), ("sample", "--label")])
def test_help_explains_the_conditional_options(command, option, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main([command, "--help"])
    assert raised.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert option in help_text.split("options:", 1)[1]
    assert "conditional" in help_text.split(option, 2)[-1][:300]


def test_readme_conditional_example_trains_samples_saves_and_exports(tmp_path, tfds_data_dir):
    section = (ROOT / "README.md").read_text().split("## Conditional VAE", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    result = subprocess.run(
        python_with_data("-c", code + "\nprint('shapes', sevens.shape, one_of_each.shape)"), cwd=tmp_path,
        env={**os.environ, **({"TFDS_DATA_DIR": tfds_data_dir} if tfds_data_dir else {})},
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "shapes (8, 28, 28, 1) (10, 28, 28, 1)" in result.stdout
    printed = ast.literal_eval(re.search(r"\{'elbo': [^}]*\}", result.stdout).group(0))
    assert printed["elbo"] == pytest.approx(-printed["reconstruction"] - printed["kl"], rel=1e-5)
    assert printed["elbo"] > -0.5 * 784 * np.log(2)  # one pass beats Bernoulli(1/2) pixels by far
    vae = keras.models.load_model(tmp_path / "cvae.keras")
    assert vae.num_classes == 10
    assert (tmp_path / "serving" / "cvae" / "1" / "saved_model.pb").is_file()
