import dataclasses
import json

import pytest

from tfvae import training
from tfvae.training import TrainingConfig


def test_config_round_trips_through_json():
    config = TrainingConfig(dataset="binarized_mnist", binarize=None, arch="conv", latent_dim=8, beta=0.5, max_examples=100)
    assert TrainingConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["arch"] == "conv"


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("dataset", "svhn", r"Unknown `dataset` 'svhn'; known: \['binarized_mnist', 'cifar10', 'fashion_mnist', 'mnist'\]"),
        ("arch", "resnet", r"Unknown `arch` 'resnet'; known: \['conv', 'mlp'\]"),
        ("epochs", -1, r"`epochs` must be an int >= 1; received -1"),
        ("batch_size", 0, r"`batch_size` must be an int >= 1; received 0"),
        ("beta", 0.0, r"`beta` must be a number > 0; received 0.0"),
        ("binarize", "static", r"Unknown `binarize` 'static'"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainingConfig(**{field: value})


def test_binarizing_binary_data_is_rejected():
    with pytest.raises(ValueError, match="binary already"):
        TrainingConfig(dataset="binarized_mnist", binarize="dynamic")


def test_config_json_with_unknown_fields_is_rejected():
    text = json.dumps({**dataclasses.asdict(TrainingConfig()), "colour": "blue"})
    with pytest.raises(ValueError, match=r"Unknown TrainingConfig fields \['colour'\]"):
        TrainingConfig.from_json(text)


def test_run_directory_is_not_replaced_without_overwrite(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        training.prepare_run_directory(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "precious"
    training.prepare_run_directory(tmp_path, overwrite=True)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="Cannot resume"):
        training.prepare_run_directory(tmp_path / "missing", resume=True)
