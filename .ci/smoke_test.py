"""Smoke test of an installed tfvae, run by .ci/run with each Python other than the full suite's.

    VENV/bin/python .ci/smoke_test.py

With the interpreter it runs under (a fresh virtual environment holding the
built wheel): the package imports from that environment, not from this
source tree; `tfvae --version` is `tfvae.__version__`; `tfvae train` trains
one epoch on 300 images (the prepared data, or the tests' fake data where
it is absent: tests/run_with_data.py); `tfvae export` writes a SavedModel;
a process that cannot import tfvae or TensorFlow Probability loads it and
encodes, reconstructs and samples. Exits non-zero with the failing step's
output.
"""

import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for tests.mock_data only; this process never imports tfvae
from tests.mock_data import data_dir_args, mocking, prepared_data_dir  # noqa: E402
RUN_WITH_DATA = str(ROOT / "tests" / "run_with_data.py")
TFVAE = str(pathlib.Path(sys.executable).parent / "tfvae")  # the console script the wheel installed

LOAD_WITHOUT_TFVAE = """
import sys
for name in ("tfvae", "tensorflow_probability"):
    sys.modules[name] = None  # importing them now fails
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
x = tf.cast(tf.random.stateless_uniform([3, 28, 28, 1], seed=[1, 2]) < 0.5, tf.float32)
encoded = model.signatures["serving_default"](x=x)
reconstructed = model.signatures["reconstruct"](x=x)
sampled = model.signatures["sample"](num_images=tf.constant(4), seed=tf.constant([0, 1]))
assert all(tf.reduce_all(tf.math.is_finite(t)) for out in (encoded, reconstructed, sampled) for t in out.values())
print(sorted(model.signatures), {name: t.shape.as_list() for name, t in sampled.items()})
"""


def run(*command, cwd):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode:
        sys.exit(f"smoke test failed: {' '.join(command)}\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout.strip()


def main():
    python = sys.version.split()[0]
    with tempfile.TemporaryDirectory() as scratch:  # outside the source tree: only the installed package imports
        where = run(sys.executable, "-c", "import tfvae; print(tfvae.__version__, tfvae.__file__)", cwd=scratch)
        version, path = where.split(" ", 1)
        if pathlib.Path(path).resolve().parent == ROOT / "tfvae" or "site-packages" not in pathlib.Path(path).parts:
            sys.exit(f"smoke test failed: tfvae imported from the source tree ({path}), not the installed wheel")
        reported = run(TFVAE, "--version", cwd=scratch)
        if reported != f"tfvae {version}":
            sys.exit(f"smoke test failed: `tfvae --version` says {reported!r}; tfvae.__version__ is {version!r}")
        run_dir, export_dir = os.path.join(scratch, "run"), os.path.join(scratch, "serving", "vae", "1")
        run(sys.executable, RUN_WITH_DATA, "-m", "tfvae", "train", "--dataset", "binarized_mnist", "--max-examples", "300",
            "--batch-size", "50", "--epochs", "1", "--latent-dim", "2", "--out", run_dir, "--verbose", "2",
            *data_dir_args(None if mocking() else prepared_data_dir()), cwd=scratch)
        run(TFVAE, "export", "--model", run_dir, "--out", export_dir, cwd=scratch)
        loaded = run(sys.executable, "-c", LOAD_WITHOUT_TFVAE, export_dir, cwd=scratch)
    print(f"smoke test passed on Python {python}: tfvae {version} from {path}; export loads without tfvae: {loaded}")


if __name__ == "__main__":
    main()
