"""ONE fresh Python process for the whole session: every `.keras` file, SavedModel and program to run there.

TensorFlow takes about 10 s to start, so the test modules do not each start a
process of their own. At import, a module registers a check:

    fresh_process.register("kl: .keras files", save, LOAD_SCRIPT)

`save(directory)` runs in the test process (seeded as the `seeded` fixture
does): it writes its files under `directory` and returns what the test will
compare with. `LOAD_SCRIPT` is Python source run in the fresh process with
`directory` (a pathlib.Path) defined; it sets `result`, which comes back
pickled (NumPy arrays, lists, dicts; no tfvae object). Several registrations
may share one `save`: it runs once, and their scripts see the same directory.
With `without=("tfvae", "tensorflow_probability")` a script runs before the
fresh process imports either, with importing them made to fail: what an
export must load without.

The session fixture `fresh_process_results` (tests/conftest.py) saves
everything registered and starts one process running every script; where any
collected test asks for it, that happens before the first test, so that the
process runs beside the tests until one needs its results. It is called with a
registered name: `expected, result = fresh_process_results("kl: .keras files")`.
A failed `save` or script fails only the tests that ask for it, with its
traceback.
"""

import pathlib
import pickle
import subprocess
import sys
import traceback

import keras

ROOT = pathlib.Path(__file__).resolve().parents[1]
_REGISTERED = {}  # name -> (save, script, without)

# Runs in the fresh process: argv = jobs.pickle results.pickle; jobs are (name, directory, script, without).
_RUNNER = """
import pathlib, pickle, sys, traceback
jobs_file, results_file = sys.argv[1:3]  # before a job changes sys.argv
with open(jobs_file, "rb") as file:
    jobs = pickle.load(file)
blocked = sorted({module for *_, without in jobs for module in without})
for module in blocked:
    sys.modules[module] = None  # importing it now fails
results = {}
for name, directory, script, without in sorted(jobs, key=lambda job: not job[3]):  # the jobs `without` first
    if not without:
        for module in blocked:
            if sys.modules.get(module, 0) is None:
                del sys.modules[module]
    namespace = {"__name__": "fresh_process", "directory": pathlib.Path(directory)}
    try:
        exec(compile(script, f"<{name}>", "exec"), namespace)
        results[name] = (True, namespace["result"])
    except BaseException:
        results[name] = (False, traceback.format_exc())
with open(results_file, "wb") as file:
    pickle.dump(results, file)
"""


def register(name, save, script, *, without=()):
    """Adds a check (see the module docstring); `without`: module names the script must run without."""
    if name in _REGISTERED and _REGISTERED[name][:2] != (save, script):
        raise ValueError(f"a fresh-process check named {name!r} is already registered")
    _REGISTERED[name] = (save, script, tuple(without))


class Results:
    """What the fresh process gave each registered check: `results(name) -> (expected, result)`.

    The first call waits for the process; until then it runs beside the tests.
    """

    def __init__(self, directory, expected, process):
        self._directory, self._expected, self._process = directory, expected, process
        self._results, self._failure = None, None

    def _wait(self):
        if self._results is not None or self._process is None:
            return
        try:
            returncode = self._process.wait(timeout=600)
        except subprocess.TimeoutExpired:
            self._process.kill()
            returncode = "killed after 600 s"
        self._results = {}
        results_file = self._directory / "results.pickle"
        if returncode != 0 or not results_file.is_file():
            stderr = (self._directory / "stderr.txt").read_text(errors="replace")
            self._failure = f"exit code {returncode}, no {results_file.name}\n{stderr[-5000:]}"
        else:
            with open(results_file, "rb") as file:
                self._results = pickle.load(file)

    def stop(self):
        """Ends the process if it still runs (no test waited for it)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def __call__(self, name):
        assert name in _REGISTERED, f"no fresh-process check named {name!r}"
        saved_ok, expected = self._expected[name]
        assert saved_ok, f"saving for {name!r} failed in the test process:\n{expected}"
        self._wait()
        assert self._failure is None, f"the fresh process failed:\n{self._failure}"
        loaded_ok, result = self._results[name]
        assert loaded_ok, f"{name!r} failed in the fresh process:\n{result}"
        return expected, result


def start(directory):
    """Saves every registered check's files under `directory`, then starts one new process running all their scripts.

    Returns at once with `Results`, whose first call waits for the process.
    """
    directory = pathlib.Path(directory)
    saved = {}  # save function -> (ok, expected or traceback, its directory)
    expected, jobs = {}, []
    for name, (save, script, without) in _REGISTERED.items():
        if save not in saved:
            where = directory / f"{len(saved)}_{save.__module__.rsplit('.', 1)[-1]}"
            where.mkdir(parents=True)
            keras.utils.set_random_seed(1234)  # as the `seeded` fixture starts each test
            try:
                saved[save] = (True, save(where), where)
            except Exception:
                saved[save] = (False, traceback.format_exc(), where)
            keras.backend.clear_session()  # and ends it
        ok, value, where = saved[save]
        expected[name] = (ok, value)
        if ok:
            jobs.append((name, str(where), script, without))
    process = None
    if jobs:
        with open(directory / "jobs.pickle", "wb") as file:
            pickle.dump(jobs, file)
        with open(directory / "stderr.txt", "wb") as stderr:
            process = subprocess.Popen([sys.executable, "-c", _RUNNER, str(directory / "jobs.pickle"),
                                        str(directory / "results.pickle")],
                                       stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT)
    return Results(directory, expected, process)
