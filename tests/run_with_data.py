"""Runs a Python command with the tests' data: the prepared directory, or the fake datasets of tests/mock_data.py.

    python tests/run_with_data.py -m tfvae train --dataset mnist ...
    python tests/run_with_data.py -c "import tfvae; ..." ARGS...
    python tests/run_with_data.py script.py ARGS...

As `python -m MODULE`, `python -c CODE` or `python SCRIPT` would, with the same
`sys.argv` and `sys.path[0]`, inside `tests.mock_data.prepared_or_fake_data()`.
With the prepared data there is no mock, and the command runs unchanged; a
subprocess cannot see a test's in-process mock, so tests start commands that
read MNIST-like datasets through this script.
"""

import os
import runpy
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    if not argv or (argv[0] in ("-m", "-c") and len(argv) < 2):
        raise SystemExit("usage: run_with_data.py (-m MODULE | -c CODE | SCRIPT) [ARGS...]")
    kind, target, args = (argv[0], argv[1], argv[2:]) if argv[0] in ("-m", "-c") else ("script", argv[0], argv[1:])
    # What `python -m`, `-c` and SCRIPT put first on the path: the working directory, or the script's folder.
    sys.path[0] = {"-m": os.getcwd(), "-c": "", "script": os.path.dirname(os.path.abspath(target))}[kind]
    if ROOT not in sys.path:
        sys.path.append(ROOT)  # for `tests.mock_data`, after everything the command itself would see
    from tests.mock_data import prepared_or_fake_data

    with prepared_or_fake_data():
        if kind == "-m":
            sys.argv = [target, *args]  # runpy puts the module's path in argv[0], as `python -m` does
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        elif kind == "-c":
            sys.argv = ["-c", *args]
            exec(compile(target, "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        else:
            sys.argv = [target, *args]
            runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
