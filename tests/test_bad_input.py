"""Bad input everywhere: a one-line reason before any work, and nothing changed on disk."""

import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import architectures, cli, export
from tests.mock_data import data_dir_args

IMAGE_SHAPE = (6, 6, 1)


def _vae(**kwargs):
    encoder = architectures.mlp_encoder(IMAGE_SHAPE, 2, hidden_units=(8,))
    decoder = architectures.mlp_decoder(2, IMAGE_SHAPE, hidden_units=(8,))
    vae = tfvae.VAE(encoder, decoder, **kwargs)
    vae.compile(optimizer="adam")
    return vae


def _snapshot(directory):
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in pathlib.Path(directory).rglob("*")}


BINARY = (np.random.default_rng(0).uniform(size=(8, *IMAGE_SHAPE)) > 0.5).astype(np.float32)

MODEL_INPUT_CASES = {
    "wrong image shape": (np.zeros([8, 5, 5, 1], np.float32), r"must have shape \[batch, 6, 6, 1\]; received \(8, 5, 5, 1\)"),
    "flat images": (np.zeros([8, 36], np.float32), r"must have shape \[batch, 6, 6, 1\]; received \(8, 36\)"),
    "strings": (np.full([8, *IMAGE_SHAPE], "a"), "must hold numbers; received dtype string"),
    "grey values for a Bernoulli likelihood": (np.full([8, *IMAGE_SHAPE], 0.5, np.float32), r"outside the Bernoulli likelihood's support \(0 or 1\), e.g. 0.5"),
    "empty dataset": (tf.data.Dataset.from_tensor_slices(np.zeros([0, *IMAGE_SHAPE], np.float32)).batch(4), "dataset `x` is empty"),
    "dataset of the wrong shape": (tf.data.Dataset.from_tensor_slices(np.zeros([8, 4, 4, 1], np.float32)).batch(4), r"received \(4, 4, 4, 1\)"),
}


@pytest.mark.parametrize("case", list(MODEL_INPUT_CASES))
@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_bad_model_input_is_refused_before_any_step(case, method):
    data, message = MODEL_INPUT_CASES[case]
    vae = _vae()
    before = [w.numpy().copy() for w in vae.weights]
    with pytest.raises(ValueError, match=message) as raised:
        getattr(vae, method)(data, verbose=0)
    assert len(str(raised.value).splitlines()) == 1
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, vae.weights))
    assert vae.optimizer.iterations.numpy() == 0


def test_grey_values_train_when_the_user_opts_in():
    vae = _vae(check_support=False)
    vae.fit(np.full([8, *IMAGE_SHAPE], 0.5, np.float32), batch_size=4, verbose=0)
    assert vae.optimizer.iterations.numpy() == 2
    _vae().fit(BINARY, batch_size=4, verbose=0)  # binary data passes the check


def _saved_run(directory):
    """A run directory with a real model, for corrupting."""
    vae = _vae()
    directory.mkdir()
    vae.save(directory / "model.keras")
    (directory / "config.json").write_text(tfvae.training.TrainingConfig(dataset="binarized_mnist", binarize=None).to_json())
    return vae


def _corrupt(path):
    path.write_bytes(b"this is not a zip archive")


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", [_corrupt, _truncate], ids=["corrupt", "truncated"])
def test_unreadable_keras_file_is_a_one_line_error_that_changes_nothing(damage, tmp_path, capsys):
    _saved_run(tmp_path / "run")
    damage(tmp_path / "run" / "model.keras")
    before = _snapshot(tmp_path)
    code = cli.main(["sample", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "samples.png")])
    error = capsys.readouterr().err.strip()
    assert code == cli.EXIT_USAGE
    assert len(error.splitlines()) == 1 and "is not a readable .keras model" in error
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("damage", [_corrupt, _truncate], ids=["corrupt", "truncated"])
def test_unreadable_saved_model_is_a_one_line_error(damage, tmp_path):
    path = _vae().export(tmp_path / "1")
    damage(path / "saved_model.pb")
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match="is not a readable SavedModel") as raised:
        export.load(path)
    assert len(str(raised.value).splitlines()) == 1
    assert _snapshot(tmp_path) == before
    with pytest.raises(ValueError, match="holds no saved_model.pb"):
        export.load(tmp_path / "missing")


def test_out_under_a_file_is_a_one_line_error_that_changes_nothing(tmp_path, tfds_data_dir, capsys):
    (tmp_path / "a_file").write_text("not a directory")
    before = _snapshot(tmp_path)
    code = cli.main(["train", "--dataset", "binarized_mnist", "--epochs", "1", "--max-examples", "100",
                     "--out", str(tmp_path / "a_file" / "run"), *data_dir_args(tfds_data_dir)])
    error = capsys.readouterr().err.strip()
    assert code == cli.EXIT_FAILURE and len(error.splitlines()) == 1 and "a_file" in error
    assert _snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_out_in_a_read_only_directory_is_a_one_line_error(tmp_path, capsys):
    tmp_path.chmod(0o500)
    try:
        code = cli.main(["train", "--dataset", "binarized_mnist", "--epochs", "1", "--out", str(tmp_path / "run")])
    finally:
        tmp_path.chmod(0o700)
    assert code == cli.EXIT_FAILURE and "Permission denied" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux's sysfs, where no one may create folders")
def test_out_on_a_path_even_root_cannot_write_is_a_one_line_error(capsys):
    # Runs whoever runs the tests (root included, for whom the test above is skipped).
    code = cli.main(["train", "--dataset", "binarized_mnist", "--epochs", "1", "--out", "/sys/tfvae-run"])
    error = capsys.readouterr().err.strip()
    assert code == cli.EXIT_FAILURE and len(error.splitlines()) == 1 and "/sys/tfvae-run" in error
    assert not os.path.exists("/sys/tfvae-run")


def test_bernoulli_likelihood_on_grey_pixels_is_refused_by_the_command(tmp_path, capsys):
    code = cli.main(["train", "--dataset", "mnist", "--binarize", "none", "--out", str(tmp_path / "run")])
    assert code == cli.EXIT_USAGE and "needs binary pixels" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_grey_level_likelihoods_refuse_values_outside_zero_to_one_saying_how_to_fix_it():
    from tfvae import inputs, layers

    for likelihood in (layers.IndependentContinuousBernoulli((2,))(np.zeros((1, 2), np.float32)),
                       layers.DiscretizedLogisticMixture((2,))(np.zeros((1, layers.DiscretizedLogisticMixture.params_size((2,))),
                                                                        np.float32))):
        with pytest.raises(ValueError, match=r"outside the \w+ likelihood's support \(.*\[0, 1\]\), e.g. 1.5\. Scale the "
                                             r"data to \[0, 1\], or pass check_support=False"):
            inputs.check_support(np.array([[0.5, 1.5]], np.float32), likelihood)
        inputs.check_support(np.array([[0.0, 1.0]], np.float32), likelihood)  # in the support: no error
