"""Argument checks shared by tfvae's layers (and the priors and models above them).

Each returns the value it accepts (converted where it says) or raises naming
the argument, what it must be and what it received, before any work starts.
"""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf

from tfvae import _backend  # noqa: F401  (selects the TensorFlow backend)

# The most values tfvae lets one tensor or variable of a layer hold: TensorFlow's
# GPU kernels and XLA index tensors with int32, and a bigger one (8 GiB of
# float32) is a typo, not a model. Sizes past it fail with a ValueError naming
# the argument before any memory is asked for, not with an out-of-memory error.
MAX_ELEMENTS = 2**31 - 1


_KERAS_GETTERS = {
    "activation": (keras.activations.get, "'relu'"),
    "initializer": (keras.initializers.get, "'glorot_uniform'"),
    "regularizer": (keras.regularizers.get, "'l2'"),
    "constraint": (keras.constraints.get, "'non_neg'"),
}


def get_keras_object(kind, argument, identifier):
    """Keras' `get` of `kind` ("activation", "initializer", "regularizer" or "constraint") for `identifier`.

    Raises:
      ValueError: naming `argument`, when Keras cannot interpret `identifier`.
    """
    get, example = _KERAS_GETTERS[kind]
    try:
        return get(identifier)
    except (ValueError, TypeError) as error:
        raise ValueError(f"`{argument}` must be a Keras {kind}: a name such as {example}, an object or its config; "
                         f"received {identifier!r}.") from error


def check_num_elements(argument, shape, received=None):
    """Raises ValueError naming `argument` if a tensor of `shape` would hold more than `MAX_ELEMENTS` values."""
    size = math.prod(int(d) for d in shape)
    if size > MAX_ELEMENTS:
        received = shape if received is None else received
        raise ValueError(
            f"`{argument}` is too large: it makes a tensor of shape {tuple(int(d) for d in shape)}, {size} values, "
            f"more than the {MAX_ELEMENTS} (2**31 - 1) a tensor may hold; received {received!r}."
        )
    return size


def as_event_shape(event_shape, argument="event_shape", allow_scalar=False):
    """Returns `event_shape` as a tuple of positive ints, or raises ValueError.

    With `allow_scalar`, `()` (scalar events, `tfp.layers`' default) is accepted too.
    A string, bytes, dict or set is refused (`tuple(b"x")` would read as
    `(120,)`, `tuple({})` as `()`), and so is a shape of more than
    `MAX_ELEMENTS` values.
    """
    is_int = isinstance(event_shape, numbers.Integral) and not isinstance(event_shape, bool)
    try:
        unordered_or_text = isinstance(event_shape, (str, bytes, dict, set, frozenset))
        shape = None if unordered_or_text else (int(event_shape),) if is_int else tuple(event_shape)
    except TypeError:
        shape = None
    if (shape is None or (not shape and not allow_scalar)
            or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in shape)):
        allowed = "a tuple of positive ints (() for scalar events)" if allow_scalar else "a non-empty tuple of positive ints"
        raise ValueError(f"`{argument}` must be a positive int or {allowed}; received {event_shape!r}.")
    shape = tuple(int(d) for d in shape)
    check_num_elements(argument, shape, event_shape)
    return shape


def check_event_size(event_size):
    """`event_size` (an int >= 1, or a tuple of one) as an int, or ValueError naming it: a vector event's size."""
    shape = as_event_shape(event_size, "event_size")
    if len(shape) != 1:
        raise ValueError(f"`event_size` must be one positive int (the size of a vector event); received {event_size!r}.")
    return shape[0]


_as_event_shape = as_event_shape  # the name priors and older code import


# The largest float32: a number argument past it would be infinite in the float32 math it enters.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_float32_range(value, argument):
    """Raises ValueError naming `argument` if the number `value` is larger in magnitude than `FLOAT32_MAX`."""
    if abs(value) > FLOAT32_MAX:
        raise ValueError(f"`{argument}` must be at most {FLOAT32_MAX:.6g} (float32's largest number); received {value!r}.")
    return value


def check_positive(value, argument, expected="a finite number > 0"):
    """Returns `value` as a float, or raises ValueError naming `argument` unless it is a finite number > 0.

    Finite in float32, where it is used: at most `FLOAT32_MAX`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise ValueError(f"`{argument}` must be {expected}; received {value!r}.")
    return float(check_float32_range(value, argument))


def check_positive_int(name, value):
    """Returns `value`, or raises ValueError naming `name` unless it is an int in [1, `MAX_ELEMENTS`] (not a bool).

    Every count tfvae takes (units, components, samples, images, epochs, batch
    sizes) sizes a tensor or a loop; past 2**31 - 1 it is a typo, refused
    before it becomes an out-of-memory error or a loop that never ends.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1; received {value!r}.")
    if value > MAX_ELEMENTS:
        raise ValueError(f"`{name}` must be an int <= {MAX_ELEMENTS} (2**31 - 1); received {value!r}.")
    return value


def check_real_dtype(value, argument):
    """Raises TypeError naming `argument` unless `value` (a tensor or array) holds real numbers or bools.

    Strings cannot be cast to parameters, and complex numbers would lose their
    imaginary part without a word.
    """
    dtype = getattr(value, "dtype", None)
    try:
        dtype = None if dtype is None else tf.as_dtype(dtype)
    except TypeError:
        dtype = None
    if dtype is None or not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
        name = getattr(dtype, "name", None) or type(value).__name__
        raise TypeError(f"`{argument}` must hold real numbers (a float, int or bool dtype); received dtype {name}.")
    return value


def check_sample_dtype(sample_dtype, allow_bool=False, argument="sample_dtype"):
    """The name of `sample_dtype`, or None; raises ValueError unless it names an integer or float dtype.

    A dtype is given by name (`"int32"`), as a `tf.DType` or NumPy dtype, or as
    a type such as `np.float32`; a number is refused (`tf.as_dtype(3)` would
    read it as the enum value of int32). With `allow_bool`, bool too (a
    Bernoulli's samples).
    """
    if sample_dtype is None:
        return None
    dtype = None
    if isinstance(sample_dtype, (str, tf.DType, np.dtype, type)):
        try:
            dtype = tf.as_dtype(sample_dtype)
        except TypeError:
            dtype = None
    if dtype is None or not (dtype.is_integer or dtype.is_floating or (allow_bool and dtype.is_bool)):
        kinds = "an integer, float or bool dtype" if allow_bool else "an integer or float dtype"
        raise ValueError(f"`{argument}` must be None or {kinds}, e.g. 'int32'; received {sample_dtype!r}.")
    return dtype.name


def check_scale_floor(scale_floor):
    """Returns `scale_floor` as a float, or raises ValueError unless it is a finite number > 0."""
    return check_positive(scale_floor, "scale_floor")
