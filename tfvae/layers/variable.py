"""A layer whose output is a trainable variable, whatever its input (TFP's `layers/variable_input.py`)."""

import keras
import numpy as np
import tensorflow as tf

from tfvae.layers.checks import get_keras_object
from tfvae.layers.distribution import SERIALIZATION_PACKAGE


def _as_shape(shape):
    """`shape` (an int or a sequence of ints >= 0) as a tuple, or ValueError."""
    value = tf.get_static_value(shape) if tf.is_tensor(shape) else shape
    array = np.asarray(value) if value is not None else None
    if array is not None and array.size == 0 and array.ndim == 1:
        return ()  # a scalar variable
    if (array is None or array.ndim > 1 or array.dtype == bool or not np.issubdtype(array.dtype, np.integer)
            or np.any(array < 0)):
        raise ValueError(
            f"`shape` must be an int or a sequence of ints >= 0 known statically (a scalar or a vector); "
            f"received {shape!r}.")
    return tuple(int(d) for d in array.reshape(-1))


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class VariableLayer(keras.layers.Layer):
    """Returns a trainable variable, regardless of its input: `f(x) = activation(c)`.

    The output has the variable's shape `shape` (no batch axis): the values of
    the input are ignored, as in TFP. Its use is a distribution whose
    parameters are trained but depend on nothing, e.g. a weight posterior of
    `DenseVariational` or a learned prior:

        output = activation(c),   c: shape `shape`, initialized by `initializer`

    Args:
      shape: int or sequence of ints, the shape of the variable and the output.
      dtype: the layer's dtype (policy); the variable has its variable dtype.
      activation: Keras activation applied to the variable, default none.
      initializer, regularizer, constraint: of the variable, as for
        `keras.layers.Dense`'s kernel; default `'zeros'`, none, none.
      **kwargs: `keras.layers.Layer`'s, e.g. `name`, `trainable`.

    Example:
      ```python
      import numpy as np, keras, tensorflow_probability as tfp, tfvae
      tfd = tfp.distributions
      trainable_normal = keras.Sequential([
          tfvae.layers.VariableLayer(shape=[2], initializer=keras.initializers.Constant([0.0, np.log(np.expm1(1.0))])),
          tfvae.layers.DistributionLambda(lambda t: tfd.Normal(loc=t[..., 0], scale=keras.ops.softplus(t[..., 1]))),
      ])
      normal = trainable_normal(np.zeros([1, 1]))  # the input is ignored
      assert np.isclose(normal.mean(), 0) and np.isclose(normal.stddev(), 1)  # softplus(log(e - 1)) = 1
      ```
    """

    def __init__(self, shape, dtype=None, activation=None, initializer="zeros", regularizer=None, constraint=None,
                 **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.shape = _as_shape(shape)
        self.activation = get_keras_object("activation", "activation", activation)
        self.initializer = get_keras_object("initializer", "initializer", initializer)
        self.regularizer = get_keras_object("regularizer", "regularizer", regularizer)
        self.constraint = get_keras_object("constraint", "constraint", constraint)
        self._var = self.add_weight(
            name="constant", shape=self.shape, initializer=self.initializer, regularizer=self.regularizer,
            constraint=self.constraint, trainable=self.trainable, autocast=False)

    @property
    def variable(self):
        """The layer's variable (TFP's `_var`)."""
        return self._var

    def build(self, input_shape):
        pass  # the variable is made in the constructor, as in TFP: it does not depend on the input

    def call(self, inputs):
        del inputs  # ignored: the output is the variable
        value = tf.cast(tf.convert_to_tensor(self._var), self.compute_dtype)
        return self.activation(value)

    def compute_output_shape(self, input_shape):
        return self.shape

    def get_config(self):
        return {
            **super().get_config(),
            "shape": list(self.shape),
            "activation": keras.activations.serialize(self.activation) if self.activation else None,
            "initializer": keras.initializers.serialize(self.initializer),
            "regularizer": keras.regularizers.serialize(self.regularizer) if self.regularizer else None,
            "constraint": keras.constraints.serialize(self.constraint) if self.constraint else None,
        }
