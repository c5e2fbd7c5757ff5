"""The published-result models shipped in saved_models/ still give the numbers recorded beside them.

Each was made by `scripts/reproduce.py NAME`, which recorded in its
`metrics.json` the test NLL and a cheap fingerprint, `check_elbo`: the mean
ELBO of the first 500 test images with a fixed seed. Recomputing that here
catches a shipped model that no longer loads or no longer computes what it
did (a changed layer, a changed bound), without the minutes an NLL takes.
"""

import importlib.util
import json
import math
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tests import mock_data
from tfvae import bounds, training

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHIPPED = sorted(path.parent for path in (ROOT / "saved_models").glob("*/metrics.json")
                 if "check_elbo" in json.loads(path.read_text()))


def _reproduce_script():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_shipped_model_has_its_recipe():
    assert SHIPPED and {run_dir.name for run_dir in SHIPPED} <= set(_reproduce_script().RECIPES)


@pytest.mark.parametrize("run_dir", SHIPPED, ids=lambda path: path.name)
def test_shipped_model_recomputes_its_recorded_check_elbo(run_dir, tfds_data_dir):
    reproduce = _reproduce_script()
    metrics = json.loads((run_dir / training.METRICS_FILE).read_text())
    config, k = reproduce.RECIPES[run_dir.name]
    assert training.read_config(run_dir) == config and metrics["k"] == k
    # The NLL is a bound tighter than the ELBO, measured on the whole test set.
    assert metrics["nll"] < -metrics["elbo"] and metrics["test_images"] == 10_000
    assert metrics["bits_per_dim"] == pytest.approx(bounds.bits_per_dim(metrics["nll"], 784))
    assert 0 < metrics["nll_standard_error"] < 1
    vae, _ = training.load_run(run_dir)
    splits = training.load_data(config, tfds_data_dir, max_examples=reproduce.CHECK_IMAGES)
    check = reproduce.check_elbo(vae, splits)
    if mock_data.mocking():
        assert math.isfinite(check)  # other images: only that the model loads and computes
    else:
        assert check == pytest.approx(metrics["check_elbo"], abs=1e-3)


@pytest.mark.parametrize("run_dir", SHIPPED, ids=lambda path: path.name)
def test_shipped_model_has_a_serving_export_that_encodes(run_dir):
    exported = tf.saved_model.load(str(run_dir / "serving" / "1"))
    encoded = exported.signatures["serving_default"](x=tf.zeros([2, 28, 28, 1]))
    assert all(np.all(np.isfinite(value)) for value in encoded.values())
