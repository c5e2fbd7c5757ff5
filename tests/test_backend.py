"""`import tfvae` selects Keras' TensorFlow backend, or refuses another one."""

import os
import subprocess
import sys


def _run(code, **env):
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)


def test_import_selects_tensorflow_backend_when_none_is_set():
    result = _run("import tfvae, keras; print(keras.backend.backend())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "tensorflow"


def test_import_refuses_another_backend_with_a_clear_error():
    result = _run("import tfvae", KERAS_BACKEND="jax")
    assert result.returncode != 0
    assert "tfvae needs the Keras backend 'tensorflow', but KERAS_BACKEND='jax'" in result.stderr
