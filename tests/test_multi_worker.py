"""Two worker processes on loopback train like one process on the same global batches.

Each worker runs tests/multi_worker_job.py with its own TF_CONFIG (127.0.0.1,
two ports). Bounded in time; the processes are killed whatever happens.
"""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

JOB = pathlib.Path(__file__).with_name("multi_worker_job.py")
ROOT = JOB.parents[1]
TIMEOUT_S = 180


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(out, *args):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, str(JOB), str(out), *args], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(processes):
    try:
        outputs = [process.communicate(timeout=TIMEOUT_S)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]


def test_two_workers_end_with_the_weights_of_a_single_process_run(tmp_path):
    ports = [str(_free_port()), str(_free_port())]
    _finish([_start(tmp_path / "single.npz")])
    _finish([_start(tmp_path / f"worker{index}.npz", "--ports", *ports, "--index", str(index)) for index in (0, 1)])
    single, first, second = (np.load(tmp_path / f"{name}.npz") for name in ("single", "worker0", "worker1"))
    weights = [name for name in single.files if name.startswith("w")]
    assert len(weights) >= 8
    for name in weights:
        np.testing.assert_array_equal(first[name], second[name])  # the workers agree exactly
        np.testing.assert_allclose(first[name], single[name], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first["loss"], single["loss"], rtol=1e-5)
    moved = [not np.allclose(single[name], single[name.replace("w", "initial")]) for name in weights]
    assert sum(moved) >= 6  # the steps really trained
