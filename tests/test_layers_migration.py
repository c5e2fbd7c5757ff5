"""Migrating from `tfp.layers`: every name exists in `tfvae.layers` with TFP's arguments, and README says so."""

import inspect
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow_probability as tfp

import tfvae

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
# TFP's public layer names that tfvae does not port; README's table says why.
NOT_PORTED = {"VariationalGaussianProcess"}
TFP_NAMES = sorted(name for name in dir(tfp.layers)
                   if not name.startswith("_") and not inspect.ismodule(getattr(tfp.layers, name)))
PORTED = [name for name in TFP_NAMES if name not in NOT_PORTED]


def _parameters(function):
    return [name for name, parameter in inspect.signature(function).parameters.items()
            if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)]


def _migration_table():
    """{tfp.layers name: tfvae.layers entry} from README's per-name migration table."""
    section = README.read_text().split("#### Migrating from `tfp.layers`", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            for name in re.findall(r"`(?:tfp\.bijectors\.|weight_norm\.)?(\w+)`", cells[0]):
                rows[name] = cells[1]
    return rows


@pytest.mark.parametrize("name", PORTED)
def test_every_ported_tfp_name_takes_tfps_arguments_in_tfps_order(name):
    tfp_object, tfvae_object = getattr(tfp.layers, name), getattr(tfvae.layers, name)
    tfp_parameters = _parameters(tfp_object.__init__ if inspect.isclass(tfp_object) else tfp_object)
    tfvae_parameters = _parameters(tfvae_object.__init__ if inspect.isclass(tfvae_object) else tfvae_object)
    assert [p for p in tfvae_parameters if p in tfp_parameters] == tfp_parameters  # all of TFP's, in its order


def test_tfps_made_is_a_tfvae_layer_with_the_bijectors_arguments():
    tfp_parameters = _parameters(tfp.bijectors.AutoregressiveNetwork.__init__)
    tfvae_parameters = _parameters(tfvae.layers.AutoregressiveNetwork.__init__)
    assert [p for p in tfvae_parameters if p in tfp_parameters] == tfp_parameters


def test_readme_migration_table_has_a_row_for_every_tfp_layers_name():
    table = _migration_table()
    for name in TFP_NAMES:
        assert name in table, f"README's migration table has no row for tfp.layers.{name}"
        assert (table[name] == "not ported") == (name in NOT_PORTED), (name, table[name])
    assert table["WeightNorm"] == "not ported" and not hasattr(tfvae.layers, "WeightNorm")
    assert table["AutoregressiveNetwork"] == "`AutoregressiveNetwork`"


def test_blockwise_initializer_fills_each_block_from_its_initializer():
    normal = keras.initializers.RandomNormal(stddev=2.0, seed=7)
    initializer = tfvae.layers.BlockwiseInitializer(["zeros", normal, keras.initializers.Constant(-3.0)], [2, 3, 1])
    values = keras.ops.convert_to_numpy(initializer((4, 6)))
    np.testing.assert_array_equal(values[:, :2], 0.0)
    np.testing.assert_array_equal(values[:, 2:5], keras.ops.convert_to_numpy(normal((4, 3))))
    np.testing.assert_array_equal(values[:, 5], -3.0)
    # The same values as TFP's initializer of the same parts (TFP's draws its own noise, so without the random block).
    tfp_values = tfp.layers.BlockwiseInitializer(["zeros", "ones"], [1, 2])([3, 3])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(tfvae.layers.BlockwiseInitializer(["zeros", "ones"], [1, 2])((3, 3))),
                                  tfp_values.numpy())


def test_blockwise_initializer_saves_in_a_layers_keras_file(tmp_path):
    initializer = tfvae.layers.BlockwiseInitializer(["zeros", keras.initializers.Constant(0.5)], [1, 2])
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, kernel_initializer=initializer)])
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras").layers[0].kernel_initializer
    assert isinstance(reloaded, tfvae.layers.BlockwiseInitializer)
    assert reloaded.get_config() == initializer.get_config()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(reloaded((2, 3))), [[0, 0.5, 0.5]] * 2)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(initializers=[], sizes=[]), "`initializers` must be a non-empty list"),
        (dict(initializers=["zeros"], sizes=[1, 2]), "`sizes` must be a list of 1 ints >= 1"),
        (dict(initializers=["zeros", "ones"], sizes=[0, 2]), "`sizes` must be a list of 2 ints >= 1"),
        (dict(initializers=["no_such_initializer"], sizes=[1]), "`initializers` must be a Keras initializer"),
    ],
)
def test_blockwise_initializer_refuses_bad_arguments_by_name(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tfvae.layers.BlockwiseInitializer(**arguments)


def test_blockwise_initializer_refuses_a_shape_whose_last_axis_is_not_the_sum_of_sizes():
    with pytest.raises(ValueError, match=re.escape("The last axis of `shape` must be sum(sizes) = 3; received shape (2, 4)")):
        tfvae.layers.BlockwiseInitializer(["zeros", "ones"], [1, 2])((2, 4))
