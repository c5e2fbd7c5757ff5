"""Keeps TensorFlow's start-up lines off the terminal; call before TensorFlow is imported.

On a machine without a GPU, importing TensorFlow 2.21 and running one op prints

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. You may see ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    I0000 ... cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use ...
    (the first three lines again)
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ...

`TF_CPP_MIN_LOG_LEVEL` alone does not silence them. TensorFlow now logs through
absl, and sets absl's minimum level from that variable only once its code
runs; the oneDNN and CUDA-driver lines come from static initialisers that run
while the shared libraries load (`dlopen`), before that. They come twice
because `_pywrap_profiler_plugin.so` carries its own copy of absl and of those
initialisers; absl prints its "before InitializeLog" preamble once per copy.
The cuInit line is an ERROR, so only level 3, which hides every error, would
drop it.

`quiet_tensorflow_startup()` therefore does three things, each only where
needed and never overriding a value the user set:

1. `TF_CPP_MIN_LOG_LEVEL=1`: TensorFlow drops INFO lines once it runs
   (cpu_feature_guard); warnings and errors still show.
2. `TF_ENABLED_DEVICE_TYPES=CPU`, only on Linux machines with no accelerator
   device node (/dev/nvidia*, /dev/dxg, /dev/kfd, /dev/accel*, /dev/vfio) and
   no TensorFlow device plug-in: TensorFlow then registers no GPU device
   factory, so it never calls cuInit, which could only fail there.
3. While each TensorFlow extension module loads (`dlopen`, a few
   milliseconds each), file descriptor 2 goes to a temporary file; afterwards
   its lines are written to the real stderr, less absl's preamble and the log
   lines below `TF_CPP_MIN_LOG_LEVEL`. If loading raises, everything is
   written back unfiltered. Not done on an x86 CPU without AVX, where
   TensorFlow aborts during that load with a message that must be seen; any
   other abort inside a load (a LOG(FATAL) in a static initialiser, which
   would mean a broken installation) would lose its message.

This module imports nothing from tfvae, and neither TensorFlow nor Keras.
"""

import contextlib
import glob
import importlib.abc
import importlib.machinery
import os
import platform
import re
import sys
import tempfile

# Device nodes of accelerators TensorFlow may use: NVIDIA, WSL2's GPU, ROCm, TPUs.
ACCELERATOR_DEVICE_PATTERNS = ("nvidia*", "dxg", "kfd", "accel*", "vfio")

_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_LOG_LINE = re.compile(rb"([IWEF])\d{4} \d\d:\d\d:\d\d")  # absl's prefix: severity, mmdd hh:mm:ss
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


def quiet_tensorflow_startup():
    """Silences TensorFlow's start-up lines (module doc); call before TensorFlow is imported.

    Does nothing once TensorFlow is imported, and is safe to call twice.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if sys.platform.startswith("linux") and not has_accelerator():
        os.environ.setdefault("TF_ENABLED_DEVICE_TYPES", "CPU")
    min_level = _min_log_level()
    if (
        min_level > 0
        and sys.platform.startswith("linux")
        and _cpu_runs_tensorflow()
        and not any(isinstance(finder, _QuietTensorFlowExtensions) for finder in sys.meta_path)
    ):
        sys.meta_path.insert(0, _QuietTensorFlowExtensions(min_level))


def has_accelerator(dev_dir="/dev", search_path=None):
    """Whether TensorFlow might find a device other than the CPU on this machine.

    True when `dev_dir` holds an accelerator device node
    (`ACCELERATOR_DEVICE_PATTERNS`) or a folder on `search_path` (default
    `sys.path`) holds `tensorflow-plugins`, where pluggable devices live.
    """
    if any(glob.glob(os.path.join(dev_dir, pattern)) for pattern in ACCELERATOR_DEVICE_PATTERNS):
        return True
    folders = sys.path if search_path is None else search_path
    return any(os.path.isdir(os.path.join(folder, "tensorflow-plugins")) for folder in folders if folder)


def _min_log_level():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:  # TensorFlow reads an unparsable level as 0
        return 0


def _cpu_runs_tensorflow(cpuinfo="/proc/cpuinfo"):
    """False on an x86 CPU without AVX, which TensorFlow's wheels need (they abort at load)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    try:
        with open(cpuinfo, "rb") as file:
            flags = next((line for line in file if line.startswith(b"flags")), b"")
    except OSError:
        return False  # cannot tell: keep every line
    return b"avx" in flags.split()


def without_startup_lines(text, min_level):
    """`text` (bytes written to stderr) less absl's preamble and the log lines below `min_level`.

    `min_level` counts like TF_CPP_MIN_LOG_LEVEL: 1 drops INFO lines, 2 also
    WARNING, 3 also ERROR. Lines without absl's log prefix are all kept, even
    right after a dropped log line: better a stray continuation line than a
    hidden message.
    """
    kept = []
    for line in text.splitlines(keepends=True):
        if line.rstrip(b"\r\n") == _ABSL_PREAMBLE:
            continue
        match = _LOG_LINE.match(line)
        if not match or _SEVERITY[match.group(1)] >= min_level:
            kept.append(line)
    return b"".join(kept)


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


@contextlib.contextmanager
def _stderr_filtered(min_level):
    """Holds back what is written to file descriptor 2 inside, then writes it less start-up lines."""
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr to protect
        yield
        return
    capture = tempfile.TemporaryFile()
    os.dup2(capture.fileno(), 2)
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        with contextlib.suppress(OSError, ValueError):
            if sys.stderr is not None:
                sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        text = capture.read()
        capture.close()
        _write_all(2, without_startup_lines(text, min_level) if succeeded else text)


class _QuietExtensionLoader(importlib.machinery.ExtensionFileLoader):
    """Loads an extension module with its start-up lines filtered out of stderr."""

    def __init__(self, fullname, path, min_level):
        super().__init__(fullname, path)
        self._min_level = min_level

    def create_module(self, spec):
        with _stderr_filtered(self._min_level):
            return super().create_module(spec)

    def exec_module(self, module):
        with _stderr_filtered(self._min_level):
            super().exec_module(module)


class _QuietTensorFlowExtensions(importlib.abc.MetaPathFinder):
    """Finds `tensorflow.*` extension modules and loads them with `_QuietExtensionLoader`."""

    def __init__(self, min_level):
        self._min_level = min_level

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("tensorflow."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return None  # the usual finders take it from here
        spec.loader = _QuietExtensionLoader(fullname, spec.origin, self._min_level)
        return spec
