"""Bad flags found by a machine: `tfvae.cli.main` exits with code 2 and one error line, never a traceback.

Every value drawn here is one the command must refuse: out of range (zero,
negative, past 2**31 - 1), not a number, an unknown choice. An oracle
(`accepted`) filters out the values that are valid, since a valid value would
start real work. The refusal may come from argparse (`SystemExit(2)`, usage
then `tfvae train: error: argument --epochs: ...`) or from the library's
validation of the run's config (`main` returns 2 after `tfvae train: error:
...`); either way stderr ends in one line naming the flag, and nothing is
written.
"""

import math
import pathlib
import re

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, settings, strategies as st  # noqa: E402

from tfvae import cli  # noqa: E402
from tfvae.layers.checks import MAX_ELEMENTS
from tests.test_properties import examples  # noqa: E402

# flag -> (dest, the minimum it accepts) for the integer flags of `tfvae train`
TRAIN_INT_FLAGS = {
    "--latent-dim": ("latent_dim", 1), "--epochs": ("epochs", 1), "--batch-size": ("batch_size", 1),
    "--prior-components": ("prior_components", 1), "--early-stopping": ("early_stopping_patience", 1),
    "-k": ("k", 1), "--max-examples": ("max_examples", 1), "--checkpoint-every": ("checkpoint_every", 1),
    "--steps-per-execution": ("steps_per_execution", 1), "--kl-warmup-epochs": ("kl_warmup_epochs", 0),
}
TRAIN_FLOAT_FLAGS = {"--learning-rate": "learning_rate", "--beta": "beta"}
TRAIN_CHOICE_FLAGS = {
    "--dataset": "dataset", "--arch": "arch", "--likelihood": "likelihood", "--lr-schedule": "learning_rate_schedule",
    "--posterior": "posterior", "--prior": "prior", "--pseudo-inputs": "pseudo_inputs", "--objective": "objective",
    "--binarize": "binarize", "--strategy": "strategy", "--verbose": "verbose",
}
# The other commands' flags that a parser alone can refuse, with the arguments each command needs besides.
OTHER_FLAGS = {
    ("evaluate", "--split"): "choice", ("evaluate", "--max-examples"): "int", ("evaluate", "-k"): "int",
    ("evaluate", "--dataset"): "choice", ("sample", "-n"): "int", ("sample", "--seed"): "any_int",
    ("reconstruct", "--num-images"): "int", ("reconstruct", "--split"): "choice",
}

NUMBERS_AS_TEXT = st.one_of(
    st.integers(-2**70, 2**70).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "1.5", "1e3", "0x10", "ten", "nan", "-inf", "inf", "1e400", "--", "-x", "3 4", "1_0", "٣"]),
    st.text(max_size=4),
)


def _as_int(text):
    try:
        return int(text)
    except ValueError:
        return None


def _as_float(text):
    try:
        return float(text)
    except ValueError:
        return None


def accepted(flag, text):
    """Whether `tfvae train` would take `flag text` and start work (the default config otherwise)."""
    if flag in TRAIN_INT_FLAGS:
        dest, minimum = TRAIN_INT_FLAGS[flag]
        value = _as_int(text)
        if value is None or not minimum <= value <= MAX_ELEMENTS:
            return False
        # Flags that the default config refuses whatever their value: --prior-components with the standard
        # normal prior, --kl-warmup-epochs > 0 with the IWAE objective.
        return dest not in ("prior_components",) and not (dest == "kl_warmup_epochs" and value > 0)
    if flag in TRAIN_FLOAT_FLAGS:
        value = _as_float(text)
        if value is None or not value > 0:
            return False
        return value == 1.0 if flag == "--beta" else True  # --learning-rate inf: test_learning_rate_inf_is_refused...
    choices = {action.dest: action.choices for action in _train_parser()._actions}
    dest = TRAIN_CHOICE_FLAGS[flag]
    if dest == "verbose":
        return _as_int(text) in (0, 1, 2)
    return text in choices[dest]


def _train_parser():
    parser = cli.build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command")
    return subparsers.choices["train"]


def _run(argv, capsys):
    """(exit code, stderr) of `cli.main(argv)`, an argparse exit included."""
    try:
        code = cli.main(argv)
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


def _assert_usage_error(code, stderr, command, *names):
    assert code == cli.EXIT_USAGE, (code, stderr)
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and re.match(rf"tfvae( {command})?: error: ", lines[-1]), stderr
    assert any(name in lines[-1] for name in names), f"the error names none of {names}: {lines[-1]}"
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, stderr


def _files(directory):
    return sorted(str(p.relative_to(directory)) for p in pathlib.Path(directory).rglob("*"))


@settings(max_examples=examples(150))
@given(st.data())
def test_train_refuses_every_bad_flag_value_with_exit_code_2_and_one_error_line(tmp_path, capsys, draw):
    flag = draw.draw(st.sampled_from(sorted({**TRAIN_INT_FLAGS, **TRAIN_FLOAT_FLAGS, **TRAIN_CHOICE_FLAGS})), label="flag")
    values = NUMBERS_AS_TEXT if flag not in TRAIN_CHOICE_FLAGS else st.one_of(st.text(max_size=12), NUMBERS_AS_TEXT)
    text = draw.draw(values, label="value")
    assume(not accepted(flag, text))
    if flag == "--learning-rate":
        assume(_as_float(text) is None or not math.isinf(_as_float(text)))
    dest = {**{f: d for f, (d, _) in TRAIN_INT_FLAGS.items()}, **TRAIN_FLOAT_FLAGS, **TRAIN_CHOICE_FLAGS}[flag]
    argv = ["train", "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "no-data"), flag, text]
    code, stderr = _run(argv, capsys)
    _assert_usage_error(code, stderr, "train", flag, f"`{dest}`", dest)
    assert _files(tmp_path) == []


@settings(max_examples=examples(60))
@given(st.data())
def test_other_commands_refuse_bad_flag_values_with_exit_code_2_and_one_error_line(tmp_path, capsys, draw):
    command, flag = draw.draw(st.sampled_from(sorted(OTHER_FLAGS)), label="flag")
    kind = OTHER_FLAGS[command, flag]
    text = draw.draw(NUMBERS_AS_TEXT if kind != "choice" else st.one_of(st.text(max_size=12), NUMBERS_AS_TEXT), label="value")
    value = _as_int(text)
    assume({"int": value is None or value < 1, "any_int": value is None,
            "choice": text not in ("train", "validation", "test", "mnist", "fashion_mnist", "binarized_mnist", "cifar10")}[kind])
    code, stderr = _run([command, "--model", str(tmp_path / "run"), flag, text], capsys)
    _assert_usage_error(code, stderr, command, flag, f"--{flag.lstrip('-')}")
    assert _files(tmp_path) == []


@settings(max_examples=examples(40))
@given(st.lists(st.text(min_size=1, max_size=8).filter(lambda t: t not in ("-h", "--help", "--version")), min_size=0,
                max_size=3))
def test_unknown_commands_and_flags_exit_with_code_2_and_one_error_line(capsys, argv):
    assume(not argv or argv[0] not in cli.COMMANDS)
    assume(not any(a.startswith("--log-level") or a.startswith("--h") or a.startswith("--v") for a in argv))
    code, stderr = _run(argv, capsys)
    _assert_usage_error(code, stderr, r"\w+", "argument", "arguments", "invalid choice", "required", "COMMAND")


def test_infinite_learning_rate_is_refused_by_the_parser(capsys):
    parser = _train_parser()
    for text in ("inf", "1e400", "Infinity"):
        try:
            parser.parse_args(["--learning-rate", text])
        except SystemExit as exit:
            assert exit.code == cli.EXIT_USAGE
        else:
            raise AssertionError(f"--learning-rate {text} was accepted")
