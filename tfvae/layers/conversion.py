"""How a distribution stands in for a tensor: `convert_to_tensor_fn`.

Keras needs a tensor where a model's output feeds `predict`, a built-in loss
or metric (`"mse"`, `"mae"`), or a layer stacked on a distribution layer. A
distribution returned by a tfvae layer converts itself with the layer's
`convert_to_tensor_fn`, as in `tfp.layers`:

    tf.convert_to_tensor(distribution) == convert_to_tensor_fn(distribution)

The function is one of the names `"mean"`, `"mode"`, `"sample"`, `"stddev"`,
`"variance"` (or the methods `tfd.Distribution.mean`, ... that `tfp.layers`
takes), or any callable from a distribution to a tensor; a layer that must be
saved needs a name or a callable registered with
`keras.saving.register_keras_serializable`.

One distribution object converts once per graph: two layers reading a
`"sample"` conversion of the same distribution read the same draw, as in
`tfp.layers`.

How. The conversion must live on the distribution's class, not on the
instance, because Keras' `predict` loop rebuilds a distribution from its type
spec (its class and tensors) when it leaves a `tf.function`. So
`convertible(distribution, fn)` returns the same distribution rebuilt as an
instance of a subclass of its class that converts with `fn`; TFP's
distribution metaclass gives each such subclass its own type spec.
"""

import functools
import types

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import _backend  # noqa: F401  (selects the TensorFlow backend)

tfd = tfp.distributions

# The conversions known by name, in tfp.layers' terms.
CONVERSIONS = {
    "mean": tfd.Distribution.mean,
    "mode": tfd.Distribution.mode,
    "sample": tfd.Distribution.sample,
    "stddev": tfd.Distribution.stddev,
    "variance": tfd.Distribution.variance,
}
_NAMES = {function: name for name, function in CONVERSIONS.items()}


def resolve_convert_to_tensor_fn(identifier):
    """The callable `distribution -> tensor` that `identifier` names.

    Args:
      identifier: a name in `CONVERSIONS`, one of `tfd.Distribution.mean`,
        `.mode`, `.sample`, `.stddev`, `.variance` (functions or properties),
        a serialized registered function (a dict, as `get_config` writes it),
        or any callable taking a distribution.

    Raises:
      ValueError: an unknown name. TypeError: anything else not callable.
    """
    if isinstance(identifier, str):
        if identifier not in CONVERSIONS:
            raise ValueError(
                f"`convert_to_tensor_fn` must be one of {sorted(CONVERSIONS)} or a callable; received {identifier!r}."
            )
        return CONVERSIONS[identifier]
    if isinstance(identifier, dict):
        try:
            function = keras.saving.deserialize_keras_object(identifier)
        except (ValueError, TypeError, KeyError):
            function = None
        if isinstance(function, dict) or not callable(function):
            # Not a function that `get_config` wrote (deserializing it returns
            # the dict itself, or fails).
            raise TypeError(
                f"`convert_to_tensor_fn` must be one of {sorted(CONVERSIONS)}, a callable, or a registered function "
                f"as serialized by get_config; received the dict {identifier!r}."
            )
        return resolve_convert_to_tensor_fn(function)
    if isinstance(identifier, property):
        identifier = identifier.fget
    if not callable(identifier):
        raise TypeError(
            f"`convert_to_tensor_fn` must be one of {sorted(CONVERSIONS)} or a callable taking a distribution; "
            f"received {identifier!r} of type {type(identifier).__name__}."
        )
    return identifier


def serialize_convert_to_tensor_fn(function):
    """What `get_config` stores for `function`: its name, or Keras' serialization of a registered callable.

    Raises:
      ValueError: `function` is neither a known conversion nor registered
        with `keras.saving.register_keras_serializable` (a lambda, say), so a
        saved model could not rebuild it.
    """
    if function in _NAMES:
        return _NAMES[function]
    if is_registered(function):
        return keras.saving.serialize_keras_object(function)
    raise ValueError(
        f"`convert_to_tensor_fn`={function!r} cannot be saved: use one of {sorted(CONVERSIONS)}, or a function "
        "registered with @keras.saving.register_keras_serializable()."
    )


def is_registered(obj):
    """Whether `obj` is registered with `keras.saving.register_keras_serializable`, so a config can name it."""
    return keras.saving.get_registered_object(keras.saving.get_registered_name(obj)) is obj


class TensorCoercible:
    """Mixin: `tf.convert_to_tensor(distribution)` gives `convert_to_tensor_fn(distribution)`.

    A subclass sets the class attribute `convert_to_tensor_fn`.
    """

    convert_to_tensor_fn = staticmethod(tfd.Distribution.mean)

    def _converted(self):
        """The conversion, computed once per graph (and once in eager mode)."""
        graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
        cached = self.__dict__.get("_tfvae_converted")
        if cached is not None and cached[0] is graph:
            return cached[1]
        value = tf.convert_to_tensor(type(self).convert_to_tensor_fn(self))
        self.__dict__["_tfvae_converted"] = (graph, value)
        return value

    def __tf_tensor__(self, dtype=None, name=None):
        return tf.convert_to_tensor(self._converted(), dtype=dtype, name=name)

    def numpy(self):
        """The conversion as a NumPy array (eager only), as `model.predict` expects."""
        return self._converted().numpy()

    def __array__(self, dtype=None, copy=None):
        # Keras converts a layer's positional input through `convert_to_tensor`
        # only when it has `__array__`; TF then uses `__tf_tensor__` (graphs
        # included), so a layer stacked on a distribution receives its conversion.
        return np.asarray(self.numpy(), dtype=dtype)


def convertible(distribution, convert_to_tensor_fn="mean"):
    """`distribution`, rebuilt so that it converts to a tensor with `convert_to_tensor_fn`.

    Returns `distribution` itself when it already converts that way.
    """
    function = resolve_convert_to_tensor_fn(convert_to_tensor_fn)
    if getattr(type(distribution), "convert_to_tensor_fn", None) is function:
        return distribution
    return _convertible_class(type(distribution), function)(**distribution.parameters)


@functools.lru_cache(maxsize=None)
def _convertible_class(distribution_class, function):
    """The subclass of `distribution_class` that converts with `function` (one per pair)."""
    bases = (distribution_class,) if issubclass(distribution_class, TensorCoercible) else (TensorCoercible, distribution_class)
    base_name = distribution_class.__name__
    for prefix in ("MeanConvertible", "Convertible"):
        base_name = base_name.removeprefix(prefix)
    name = f"{_NAMES[function].capitalize()}Convertible{base_name}" if function in _NAMES else f"Convertible{base_name}"
    return types.new_class(name, bases, exec_body=lambda namespace: namespace.update(
        convert_to_tensor_fn=staticmethod(function), __module__=__name__))
