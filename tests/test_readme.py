"""The README's quickstart runs as written, and CI runs the README's test command."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.test_data import DATA_DIR

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _quickstart_code():
    section = README.split("## Quickstart", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.skipif(DATA_DIR is None, reason="no prepared MNIST; the quickstart would download it")
def test_quickstart_runs_as_written(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _quickstart_code()],
        cwd=tmp_path,
        env={**os.environ, "TFDS_DATA_DIR": DATA_DIR},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'elbo':" in result.stdout
    assert (tmp_path / "mnist_vae.keras").is_file()


def test_serving_snippet_runs_as_written():
    section = README.split("From Python, with TensorFlow alone:", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(2, 16) (8, 28, 28, 1)" in result.stdout


def test_ci_runs_the_readme_test_command():
    command = re.search(r"## Tests\n\n    (.+)\n", README).group(1)
    assert command in (ROOT / ".ci" / "run").read_text()
