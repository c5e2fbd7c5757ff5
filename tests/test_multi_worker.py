"""Two worker processes on loopback train like one process on the same global batches.

Each worker runs tests/multi_worker_job.py, or the `tfvae train` command, with
its own TF_CONFIG (127.0.0.1, two ports). Bounded in time; the processes are
killed whatever happens.
"""

import dataclasses
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np

from tfvae import training
from tests.helpers import python_with_data
from tests.mock_data import data_dir_args

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
    """Waits for the processes to succeed; returns their outputs."""
    try:
        outputs = [process.communicate(timeout=TIMEOUT_S)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    return outputs


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


# The plain MLP VAE on the ELBO, not the command's defaults: the tolerances below are that model's
# (summation order differs between two workers and one process).
TRAIN = ["train", "--strategy", "multi_worker", "--arch", "mlp", "--objective", "elbo", "-k", "1",
         "--dataset", "mnist", "--binarize", "dynamic", "--latent-dim", "2",
         "--batch-size", "20", "--max-examples", "400", "--epochs", "3", "--checkpoint-every", "3", "--verbose", "2"]


def _start_worker(index, ports, scratch, *argv):
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]}, "task": {"type": "worker", "index": index}}
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
                   "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(scratch)}
    return subprocess.Popen(python_with_data("-m", "tfvae", *argv), env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_killed_worker_stops_the_other_and_both_resume_to_the_single_process_weights(tmp_path, tfds_data_dir):
    out, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    ports = [_free_port(), _free_port()]
    chief, worker = (_start_worker(index, ports, scratch, *TRAIN, *data_dir_args(tfds_data_dir), "--out", str(out))
                     for index in (0, 1))
    try:
        deadline = time.monotonic() + TIMEOUT_S
        for line in worker.stdout:  # the first epoch is done and checkpointed
            if line.startswith("Epoch 2/3") or time.monotonic() > deadline:
                break
        time.sleep(0.5)
        worker.send_signal(signal.SIGKILL)
        chief_output = chief.communicate(timeout=TIMEOUT_S)[0]  # the survivor notices and stops
    finally:
        for process in (chief, worker):
            process.kill()
            process.wait()
    assert worker.returncode == -signal.SIGKILL
    assert chief.returncode == 1, chief_output[-3000:]
    assert "tfvae train: error: A worker stopped:" in chief_output and "task:1" in chief_output
    assert "Restart every worker with resume=True (--resume)" in chief_output
    assert not (out / "model.keras").exists() and (out / "checkpoints").is_dir()

    ports = [_free_port(), _free_port()]
    resumed = [_start_worker(index, ports, scratch, "train", "--resume", "--out", str(out), "--strategy", "multi_worker",
                             *data_dir_args(tfds_data_dir), "--verbose", "2") for index in (0, 1)]
    outputs = _finish(resumed)
    for output in outputs:
        epoch, step = map(int, re.search(r"Resuming at epoch (\d+), step (\d+)", output).groups())
        assert (epoch, step) >= (2, 0) and step % 3 == 0  # from a checkpoint, not from scratch
    assert "the chief (worker 0) wrote" in outputs[1]
    assert sorted(path.name for path in out.iterdir()) == sorted(
        ["config.json", "history.csv", "logs", "metrics.json", "model.keras", *training.FIGURES])
    assert [row.split(",")[0] for row in (out / "history.csv").read_text().splitlines()[1:]] == ["0", "1", "2"]
    # Worker 1 checkpoints privately in a temporary folder; only the killed one's remains.
    assert len(list(scratch.glob("tfvae-worker-*"))) == 1

    # The workers ran without XLA ("auto" under MultiWorkerMirroredStrategy on CPUs), and TensorFlow's stateless
    # random ops draw other numbers under XLA: the one-process run must not use it either to see the same samples.
    config = dataclasses.replace(training.read_config(out), jit_compile=False)
    training.train(config, tmp_path / "single", data_dir=tfds_data_dir, verbose=0)
    resumed_weights = keras.models.load_model(out / "model.keras").get_weights()
    single_weights = keras.models.load_model(tmp_path / "single" / "model.keras").get_weights()
    assert len(resumed_weights) == len(single_weights) >= 10
    for resumed_value, single_value in zip(resumed_weights, single_weights):
        np.testing.assert_allclose(resumed_value, single_value, rtol=1e-3, atol=1e-4)


def test_sigterm_to_one_worker_checkpoints_every_worker_at_one_step_and_both_resume_there(tmp_path, tfds_data_dir):
    out, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    ports = [_free_port(), _free_port()]
    workers = [_start_worker(index, ports, scratch, *TRAIN, *data_dir_args(tfds_data_dir), "--out", str(out))
               for index in (0, 1)]
    try:
        deadline = time.monotonic() + TIMEOUT_S
        for line in workers[1].stdout:
            if line.startswith("Epoch 2/3") or time.monotonic() > deadline:
                break
        time.sleep(0.2)
        workers[1].send_signal(signal.SIGTERM)  # the chief is not told: TensorFlow's handler tells it
        outputs = [process.communicate(timeout=TIMEOUT_S)[0] for process in workers]
    finally:
        for process in workers:
            process.kill()
            process.wait()
    stops = []
    for process, output in zip(workers, outputs):
        assert process.returncode == 143, output[-3000:]  # 128 + SIGTERM, as for one process
        assert "A worker received SIGTERM: stopped at epoch" in output
        stops.append(tuple(map(int, re.search(r"Interrupted at epoch (\d+), step (\d+); checkpoint saved", output).groups())))
    assert stops[0] == stops[1], stops  # both at one step (any step: multi-worker executions are one step long)
    assert not (out / "model.keras").exists()

    ports = [_free_port(), _free_port()]
    resumed = [_start_worker(index, ports, scratch, "train", "--resume", "--out", str(out), "--strategy", "multi_worker",
                             *data_dir_args(tfds_data_dir), "--verbose", "2") for index in (0, 1)]
    for output in _finish(resumed):
        assert tuple(map(int, re.search(r"Resuming at epoch (\d+), step (\d+)", output).groups())) == stops[0]
    assert [row.split(",")[0] for row in (out / "history.csv").read_text().splitlines()[1:]] == ["0", "1", "2"]
    assert (out / "model.keras").exists()


FAILING_JOB = pathlib.Path(__file__).with_name("failing_worker_job.py")
LINGER_S = 120  # how long the failed worker's process stays alive: far longer than the bound below
STOP_BOUND_S = 20  # README, "When things go wrong": the other workers stop within seconds (measured: under 1 s)


def test_a_worker_that_raises_stops_the_other_within_seconds_naming_it_and_both_resume(tmp_path, tfds_data_dir):
    out, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    ports = [_free_port(), _free_port()]
    workers = []
    for index, extra in ((0, []), (1, ["--fail-at-epoch", "1", "--linger", str(LINGER_S)])):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]}, "task": {"type": "worker", "index": index}}
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
                       "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(scratch)}
        workers.append(subprocess.Popen(
            python_with_data(str(FAILING_JOB), str(out), *data_dir_args(tfds_data_dir), *extra),
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    survivor, failed = workers
    try:
        survivor_output = survivor.communicate(timeout=TIMEOUT_S)[0]
        failed.kill()  # it would linger for LINGER_S more
        failed_output = failed.communicate(timeout=30)[0]
    finally:
        for process in workers:
            process.kill()
            process.wait()
    failed_at = float(re.search(r"failed at ([0-9.]+)", failed_output).group(1))
    stopped_at, error = re.search(r"stopped at ([0-9.]+): (.*)", survivor_output).groups()
    assert float(stopped_at) - failed_at < STOP_BOUND_S, survivor_output[-3000:]
    assert error.startswith("WorkerLostError: A worker stopped:")
    assert "worker 1 failed: RuntimeError: a bug in worker 1's callback" in error
    assert "Restart every worker with resume=True (--resume)" in error
    assert "stopped at" in failed_output and "RuntimeError" in failed_output

    ports = [_free_port(), _free_port()]
    resumed = [_start_worker(index, ports, scratch, "train", "--resume", "--out", str(out), "--strategy", "multi_worker",
                             *data_dir_args(tfds_data_dir), "--verbose", "2") for index in (0, 1)]
    for output in _finish(resumed):
        epoch, step = map(int, re.search(r"Resuming at epoch (\d+), step (\d+)", output).groups())
        assert (epoch, step) >= (1, 0)  # from the checkpoint after the first epoch, not from scratch
    assert [row.split(",")[0] for row in (out / "history.csv").read_text().splitlines()[1:]] == ["0", "1"]


def test_tensorflow_still_offers_the_private_call_that_reports_a_failure_to_the_cluster():
    from tensorflow.python.eager import context

    assert callable(context.context().report_error_to_cluster)
