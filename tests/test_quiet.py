import os
import pathlib
import subprocess
import sys

import pytest

from tfvae import _quiet

QUIET_FILE = pathlib.Path(__file__).resolve().parents[1] / "tfvae" / "_quiet.py"
STARTUP_LINES = (
    "absl::InitializeLog",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "cuInit",
    "cpu_feature_guard",
)
# Loads tfvae/_quiet.py by path: importing the package would import TensorFlow first.
LOAD_QUIET = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("tfvae_quiet", {str(QUIET_FILE)!r})
quiet = importlib.util.module_from_spec(spec)
spec.loader.exec_module(quiet)
"""


def _run(code, cwd=None, **env):
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLED_DEVICE_TYPES")}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", LOAD_QUIET + code], capture_output=True, text=True, env=environment,
                          cwd=cwd, timeout=300)


def test_tensorflow_starts_without_its_startup_lines_while_real_warnings_still_show():
    result = _run("""
quiet.quiet_tensorflow_startup()
import warnings
import tensorflow as tf
print("sum", tf.reduce_sum(tf.ones(3)).numpy(), [device.device_type for device in tf.config.list_physical_devices()])
warnings.warn("a genuine warning")
print("a genuine error", file=sys.stderr)
iterator = iter(tf.data.Dataset.range(10).cache())
next(iterator)
del iterator  # TensorFlow warns (in C++) that the cache was left incomplete
""")
    assert result.returncode == 0, result.stderr
    assert "sum 3.0" in result.stdout and "'CPU'" in result.stdout
    for line in STARTUP_LINES:
        assert line not in result.stdout + result.stderr
    assert "UserWarning: a genuine warning" in result.stderr and "a genuine error" in result.stderr
    assert "cache_dataset_ops.cc" in result.stderr  # TensorFlow's own warnings still show


def test_a_tensorflow_extension_that_fails_to_load_still_shows_its_error(tmp_path):
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("from tensorflow import _broken\n")
    (fake / "_broken.so").write_text("not a shared library\n")
    result = _run("quiet.quiet_tensorflow_startup()\nimport tensorflow\n", cwd=tmp_path)
    assert result.returncode == 1
    assert "ImportError" in result.stderr and "_broken.so" in result.stderr


def test_settings_the_user_made_are_kept_and_level_zero_filters_nothing():
    result = _run("""
quiet.quiet_tensorflow_startup()
import os
print(os.environ["TF_CPP_MIN_LOG_LEVEL"], os.environ["TF_ENABLED_DEVICE_TYPES"])
print(any(type(finder).__name__ == "_QuietTensorFlowExtensions" for finder in sys.meta_path))
""", TF_CPP_MIN_LOG_LEVEL="0", TF_ENABLED_DEVICE_TYPES="CPU,GPU")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "CPU,GPU", "False"]


def test_without_startup_lines_drops_low_log_lines_and_absl_preamble_and_keeps_all_other_text():
    text = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1795638836.308716   22151 port.cc:153] oneDNN custom operations are on.\n"
        b"I0000 00:00:1795638836.342552   22151 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
        b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n"
        b"W0000 00:00:1795638836.342552   22151 foo.cc:1] a warning\n"
        b"a plain line\n"
        b"E0000 00:00:1795638838.101411   22151 cuda_platform.cc:52] an error\n"
    )
    kept_at_1 = (
        b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n"
        b"W0000 00:00:1795638836.342552   22151 foo.cc:1] a warning\n"
        b"a plain line\n"
        b"E0000 00:00:1795638838.101411   22151 cuda_platform.cc:52] an error\n"
    )
    assert _quiet.without_startup_lines(text, 1) == kept_at_1
    assert _quiet.without_startup_lines(text, 2) == (
        b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n"
        b"a plain line\n"
        b"E0000 00:00:1795638838.101411   22151 cuda_platform.cc:52] an error\n"
    )
    assert _quiet.without_startup_lines(b"plain\n", 3) == b"plain\n"


def test_stderr_is_replayed_filtered_after_a_load_and_whole_after_a_failure(capfd):
    info = b"I0000 00:00:1795638836.308716   22151 port.cc:153] oneDNN custom operations are on.\n"
    with _quiet._stderr_filtered(1):
        os.write(2, info + b"kept\n")
    assert capfd.readouterr().err == "kept\n"
    with pytest.raises(ImportError, match="boom"):
        with _quiet._stderr_filtered(1):
            os.write(2, info + b"why it failed\n")
            raise ImportError("boom")
    assert capfd.readouterr().err == info.decode() + "why it failed\n"


def test_has_accelerator_looks_for_device_nodes_and_device_plugins(tmp_path):
    dev, site = tmp_path / "dev", tmp_path / "site"
    dev.mkdir()
    site.mkdir()
    assert not _quiet.has_accelerator(str(dev), [str(site)])
    for node in ("nvidia0", "kfd", "accel0", "dxg"):
        (dev / node).touch()
        assert _quiet.has_accelerator(str(dev), [str(site)])
        (dev / node).unlink()
    (site / "tensorflow-plugins").mkdir()
    assert _quiet.has_accelerator(str(dev), [str(site)])


def test_cpu_check_refuses_to_filter_on_an_x86_cpu_without_avx(tmp_path, monkeypatch):
    monkeypatch.setattr(_quiet.platform, "machine", lambda: "x86_64")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2\n")
    assert _quiet._cpu_runs_tensorflow(str(cpuinfo))
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 sse4_2\n")
    assert not _quiet._cpu_runs_tensorflow(str(cpuinfo))


STARTUP_LINES = ("oneDNN custom operations", "Could not find cuda drivers", "cuInit", "absl::InitializeLog", "cpu_feature_guard")


@pytest.mark.parametrize("command", [[sys.executable, "-m", "tfvae"], [str(pathlib.Path(sys.executable).with_name("tfvae"))]],
                         ids=["python -m tfvae", "tfvae"])
def test_the_tfvae_command_prints_only_its_own_output(command, tmp_path):
    pretrained = pathlib.Path(__file__).resolve().parents[1] / "saved_models" / "pretrained_mnist_mlp"
    environment = {name: value for name, value in os.environ.items() if name not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLED_DEVICE_TYPES")}
    result = subprocess.run([*command, "sample", "--model", str(pretrained), "-n", "4", "--out", str(tmp_path / "s.png")],
                            capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Wrote {tmp_path / 's.png'}\n"
    assert not [line for line in result.stderr.splitlines() if any(text in line for text in STARTUP_LINES)], result.stderr
