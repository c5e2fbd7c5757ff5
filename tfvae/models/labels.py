"""A conditional VAE's labels: checked, and turned into one-hot rows.

A conditional VAE (`tfvae.VAE(..., num_classes=N)`) reads labels as int class
indices `[batch]` or rows `[batch, N]` (one-hot, or class probabilities);
its encoder and decoder take them as float32 one-hot rows.
"""

import types

import keras
import numpy as np
import tensorflow as tf

from tfvae import _backend  # noqa: F401  (selects the TensorFlow backend)


def one_hot_labels(labels, num_classes, x=None, argument="labels"):
    """`labels` as float32 one-hot rows `[batch, num_classes]`.

    `labels`: int class indices `[batch]` in [0, num_classes), or rows
    `[batch, num_classes]` (one-hot, or class probabilities). `x`, if
    given, is the batch the labels go with: its first axis must match.
    Eager values are checked (range; rows >= 0 summing to 1); traced
    tensors (a training step, an export) for shape and dtype only.

    Raises:
      ValueError: naming `argument`, for missing labels or labels not of the
        shapes and values above.
    """
    expected = f"int class indices [batch] in [0, {num_classes}) or one-hot rows [batch, {num_classes}]"
    if labels is None or isinstance(labels, (str, bytes, dict)):
        raise ValueError(f"This VAE is conditional on {num_classes} classes: `{argument}` is required, {expected}; "
                         f"received {type(labels).__name__}.")
    if not tf.is_tensor(labels):
        try:
            labels = tf.convert_to_tensor(labels)
        except (ValueError, TypeError):
            raise ValueError(f"`{argument}` must be {expected}; received {type(labels).__name__}.") from None
    dtype = tf.as_dtype(labels.dtype)
    if labels.shape.rank == 1 and dtype.is_integer:
        if tf.executing_eagerly() and labels.shape[0]:
            low, high = int(tf.reduce_min(labels)), int(tf.reduce_max(labels))
            if low < 0 or high >= num_classes:
                raise ValueError(f"`{argument}` must be class indices in [0, {num_classes}); received "
                                 f"{low if low < 0 else high}.")
        one_hot = tf.one_hot(labels if dtype in (tf.int32, tf.int64) else tf.cast(labels, tf.int32),
                             num_classes, dtype=tf.float32)
    elif (labels.shape.rank == 2 and labels.shape[1] == num_classes
          and (dtype.is_integer or dtype.is_floating or dtype.is_bool)):
        one_hot = tf.cast(labels, tf.float32)
        if tf.executing_eagerly() and labels.shape[0]:
            valid = tf.reduce_all(tf.math.is_finite(one_hot)) and tf.reduce_all(one_hot >= 0)
            if not (valid and float(tf.reduce_max(tf.abs(tf.reduce_sum(one_hot, axis=1) - 1.0))) <= 1e-3):
                raise ValueError(f"`{argument}` rows [batch, {num_classes}] must be one-hot (or class probabilities: "
                                 f">= 0, summing to 1); received e.g. {one_hot.numpy()[0].tolist()}.")
    else:
        hint = ""
        if labels.shape.rank == 1:
            hint = " (cast float class indices to int)"
        elif labels.shape.rank == 2 and labels.shape[1] == 1:
            hint = " (squeeze [batch, 1] class indices to [batch])"
        raise ValueError(f"`{argument}` must be {expected}; received shape {tuple(labels.shape)}, "
                         f"dtype {dtype.name}{hint}.")
    if x is not None and getattr(x, "shape", None) is not None and len(x.shape):
        batch, num_labels = x.shape[0], one_hot.shape[0]
        if batch is not None and num_labels is not None and batch != num_labels:
            raise ValueError(f"`{argument}` must hold one label per example: {batch} examples, received "
                             f"{num_labels} labels.")
    return one_hot


def _prepend(first, rest):
    yield first
    yield from rest


def first_element(data):
    """`(first, data)`: the first element a dataset, PyDataset or generator yields, and `data` to use instead.

    A generator comes back as one that yields `first` first. `(None, data)`
    for arrays and tensors (their labels come as `y`) and for empty sources.
    """
    if isinstance(data, tf.data.Dataset):
        return next(iter(data.take(1)), None), data
    if isinstance(data, keras.utils.PyDataset):
        return (data[0] if data.num_batches else None), data
    if isinstance(data, types.GeneratorType):
        first = next(data, None)
        return first, (data if first is None else _prepend(first, data))
    return None, data


def is_scalar(value):
    """Whether `value` is one number: a Python or NumPy scalar, a 0-d array or a scalar tensor."""
    if tf.is_tensor(value):
        return value.shape.rank == 0
    return isinstance(value, (int, float, np.number, np.bool_)) or isinstance(value, np.ndarray) and value.ndim == 0


def labels_per_image(labels, num_images, num_classes):
    """`sample`'s labels: one int class becomes `[num_images]` copies of it; other labels are returned as they are.

    Raises:
      ValueError: a scalar label of a conditional VAE (`num_classes`) that is
        not an int class.
    """
    if num_classes is None or not is_scalar(labels):
        return labels
    if not (isinstance(labels, (int, np.integer)) and not isinstance(labels, (bool, np.bool_))
            or tf.is_tensor(labels) and labels.dtype.is_integer):
        raise ValueError(f"`labels` must be an int class, int indices [num_images] or one-hot rows "
                         f"[num_images, {num_classes}]; received {labels!r}.")
    return tf.fill(tf.reshape(num_images, [1]), tf.cast(labels, tf.int32))


def check_label_input(model, argument, num_classes):
    """Raises ValueError unless a Functional `model` takes `[input, one_hot]` with `num_classes` wide one-hot rows."""
    model_inputs = getattr(model, "inputs", None)
    if not model_inputs:
        return
    if num_classes is None and len(model_inputs) > 1:
        raise ValueError(f"The `{argument}` takes {len(model_inputs)} inputs ({[tuple(t.shape) for t in model_inputs]}); "
                         "an unconditional VAE's takes one. For a conditional VAE pass num_classes=N.")
    if num_classes is not None and (len(model_inputs) != 2 or model_inputs[1].shape[1:] != (num_classes,)):
        raise ValueError(
            f"With num_classes={num_classes}, the `{argument}` must take two inputs, [{'x' if argument == 'encoder' else 'z'}, "
            f"one_hot] with one_hot [batch, {num_classes}] (e.g. tfvae.architectures builders with num_classes="
            f"{num_classes}); received inputs {[tuple(t.shape) for t in model_inputs]}."
        )
