"""The README's quickstart runs as written, and CI runs the README's test command."""

import ast
import os
import pathlib
import re
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests import fresh_process
from tests.helpers import python_with_data

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _no_files(directory):
    """The README's programs need no files saved first."""


def _quickstart_code():
    section = README.split("## Quickstart", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_quickstart_trains_evaluates_and_saves_the_model_it_reports_on(tmp_path, tfds_data_dir):
    result = subprocess.run(
        python_with_data("-c", _quickstart_code()),  # reads MNIST from TFDS_DATA_DIR, or the tests' fake MNIST
        cwd=tmp_path,
        env={**os.environ, **({"TFDS_DATA_DIR": tfds_data_dir} if tfds_data_dir else {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = ast.literal_eval(re.search(r"\{'elbo': [^}]*\}", result.stdout).group(0))
    assert sorted(printed) == ["elbo", "kl", "loss", "reconstruction"]
    assert printed["loss"] == pytest.approx(-printed["elbo"], rel=1e-6)
    assert printed["elbo"] == pytest.approx(-printed["reconstruction"] - printed["kl"], rel=1e-5)
    # An untrained decoder's Bernoulli(1/2) pixels cost 784 log 2 = 543 nats; one pass more than halves that.
    assert printed["elbo"] > -0.5 * 784 * np.log(2)
    vae = keras.models.load_model(tmp_path / "mnist_vae.keras")
    test_images = tfds.load("mnist", split="test", data_dir=tfds_data_dir).map(
        lambda example: tf.cast(example["image"] > 127, tf.float32)).batch(1000)
    # The KL term is analytic: the saved model is the one evaluated, on the test split.
    assert vae.evaluate(test_images, verbose=0, return_dict=True)["kl"] == pytest.approx(printed["kl"], rel=1e-5)
    assert vae.sample(16).shape == (16, 28, 28, 1)


def _snippet(after, readme=README):
    """The README's first Python block after the words `after`."""
    return re.search(r"```python\n(.*?)```", readme.split(after, 1)[1], re.S).group(1)


def _run_as_written(after):
    """Source for the tests' one fresh process (tests/fresh_process.py): runs `_snippet(after)` as `python -c`
    would from the repository root, in a namespace of its own; `result` is what it printed."""
    return f"""
import contextlib, io, re
code = re.search(r"```python\\n(.*?)```", open("README.md").read().split({after!r}, 1)[1], re.S).group(1)  # _snippet
stdout = io.StringIO()
with contextlib.redirect_stdout(stdout):
    exec(compile(code, "<README>", "exec"), {{"__name__": "__main__"}})
result = stdout.getvalue()
"""


fresh_process.register("readme: serving snippet", _no_files, _run_as_written("From Python, with TensorFlow alone:"),
                       without=("tfvae", "tensorflow_probability"))  # TensorFlow alone
fresh_process.register("readme: migrated tfp.layers program", _no_files,
                       _run_as_written("A `tfp.layers` program, migrated"))


def test_serving_snippet_runs_as_written(fresh_process_results):
    _, printed = fresh_process_results("readme: serving snippet")
    assert "(2, 16) (8, 28, 28, 1)" in printed


def test_ci_runs_the_readme_test_command():
    command = re.search(r"## Tests\n\n    (.+)\n", README).group(1)
    assert command in (ROOT / ".ci" / "run").read_text()


def _maximum_likelihood_noise_at_the_ends(x, y):
    """The stddev at x = -1 and x = 1 of the maximum-likelihood fit of the README's model,
    y ~ N(a x + b, 1e-3 + softplus(c x + d)), found by SciPy: what full-batch training converges to."""
    from scipy import optimize

    x, y = x.astype("float64"), y.astype("float64")

    def negative_log_likelihood(p):
        scale = 1e-3 + np.logaddexp(0.0, p[2] * x + p[3])
        return np.sum(np.log(scale) + 0.5 * ((y - p[0] * x - p[1]) / scale) ** 2)

    a, b, c, d = optimize.minimize(negative_log_likelihood, np.zeros(4), method="BFGS").x
    return 1e-3 + np.logaddexp(0.0, np.array([-c + d, c + d]))


def test_migrated_tfp_layers_program_runs_and_learns_the_growing_noise(fresh_process_results):
    code = _snippet("A `tfp.layers` program, migrated")
    _, printed = fresh_process_results("readme: migrated tfp.layers program")
    learned = [float(v) for v in re.search(r"\[\s*([0-9.e-]+)\s+([0-9.e-]+)\s*\]", printed).groups()]
    data = {"np": np}
    exec("\n".join(line for line in code.splitlines() if line.startswith(("x = ", "y = "))), data)  # its x and y
    expected = _maximum_likelihood_noise_at_the_ends(data["x"][:, 0], data["y"])
    np.testing.assert_allclose(learned, expected, atol=5e-3, err_msg=printed)
    assert expected[1] > 3 * expected[0]  # the data's noise does grow along x (true: 0.1 to 0.5)
