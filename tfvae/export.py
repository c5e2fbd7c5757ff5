"""SavedModels for TF Serving that run without tfvae or TensorFlow Probability.

    tfvae.export.export(vae, "serving/vae/1")

The SavedModel (tag `serve`) tracks only the model's variables and traced
endpoints (through `keras.export.ExportArchive`), never the Keras model
itself: tracking the model would save TFP type specs of the layers' outputs,
and loading would then need TFP. Every endpoint returns plain tensors.

Signatures (method `tensorflow/serving/predict`; `B` is a free batch size,
`d` the latent size, `*S` the image shape):

| signature | inputs | outputs |
|---|---|---|
| `serving_default`, `encode` | `x: float32 [B, *S]` | `mean`, `stddev`: float32 [B, d] (posterior) |
| `decode` | `z: float32 [B, d]` | `mean: [B, *S]` and the likelihood's parameters (`logits`; or `loc` and `scale`; or `mixture_logits`, `loc`, `scale`: [B, *S, K] for a discretized logistic mixture) |
| `reconstruct` | `x: float32 [B, *S]` | `reconstruction: [B, *S]` (mean of p(x\\|z) at the posterior mean) |
| `sample` | `num_images: int32 []`, `seed: int32 [2]` | `images: [num_images, *S]` (means of p(x\\|z), z ~ p(z)) |
| `elbo` | `x: float32 [B, *S]`, `seed: int32 [2]` | `elbo`, `reconstruction`, `kl`: float32 [B] |

A conditional VAE (`num_classes=N`) has the same signatures and outputs, each
with one more input, `label: int32 [B]`, the class of each row (0..N-1); its
`sample` takes `label` and `seed` alone, drawing one image per label
(`images: [B, *S]`, means of p(x|z, y), z ~ p(z)). A request whose labels lie
outside 0..N-1, or whose `label` has another batch size than `x` or `z`,
fails naming `label`.

Every input's shape is checked when a request runs: a request of the wrong
shape fails with "Shape of tensor x [...] is not compatible with expected
shape [...]", naming the input, before any other op (TF Serving's C++ loader
does not check fed shapes against the signature itself).

The export is atomic: it is written to a temporary directory beside `path`
and renamed into place, so a failed or interrupted export leaves nothing at
`path`.
"""

import os
import pathlib
import shutil

import keras
import numpy as np
import tensorflow as tf

SIGNATURE_NAMES = ("serving_default", "encode", "decode", "reconstruct", "sample", "elbo")
LABEL_INPUT = "label"  # a conditional VAE's class input, int32 [B], on every signature


def _likelihood_parameters(likelihood):
    """The tensor parameters of p(x|z)'s per-element distribution, by name.

    `[B, *S]` each, or `[B, *S, K]` for the K components of a mixture per
    element (`tfvae.layers.DiscretizedLogisticMixture`).
    """
    base = getattr(likelihood, "distribution", likelihood)  # unwrap tfd.Independent
    return {
        name: tf.convert_to_tensor(value)
        for name, value in base.parameters.items()
        if tf.is_tensor(value) and value.dtype.is_floating and name != "name"
    }


def _images_spec(vae, input_signature):
    """The `x` spec: `[None, *image_shape]` float32, or the one `input_signature` gives."""
    image_shape = tuple(vae.encoder.inputs[0].shape[1:])
    default = tf.TensorSpec([None, *image_shape], tf.float32, name="x")
    if input_signature is None:
        return default
    spec = input_signature[0] if isinstance(input_signature, (list, tuple)) and len(input_signature) == 1 else input_signature
    if (not isinstance(spec, tf.TensorSpec) or spec.dtype != tf.float32 or spec.shape.rank != 1 + len(image_shape)
            or tuple(spec.shape[1:]) != image_shape):
        raise ValueError(
            f"`input_signature` must be one tf.TensorSpec of float32 images of shape [batch, {', '.join(map(str, image_shape))}] "
            f"(batch fixed or None); received {input_signature!r}."
        )
    return tf.TensorSpec(spec.shape, tf.float32, name="x")


def _checked(tensor, spec):
    """`tensor`, after checking at run time that its shape fits `spec` (the error names it)."""
    return tf.ensure_shape(tensor, spec.shape, name=f"check_{spec.name}_shape")


def _checked_labels(label, num_classes, rows=None):
    """`label: int32 [B]` after run-time checks that fail naming it: its shape, values in [0, num_classes), and
    (given `rows`, the `x` or `z` it goes with) one label per row. Compiled away under XLA, which drops asserts."""
    label = tf.ensure_shape(label, [None], name=f"check_{LABEL_INPUT}_shape")
    checks = [
        tf.debugging.assert_non_negative(label, message=f"`{LABEL_INPUT}` must be class indices in [0, {num_classes})"),
        tf.debugging.assert_less(label, num_classes, message=f"`{LABEL_INPUT}` must be class indices in [0, {num_classes})"),
    ]
    if rows is not None:
        checks.append(tf.debugging.assert_equal(tf.shape(label)[0], tf.shape(rows)[0],
                                                message=f"`{LABEL_INPUT}` must hold one class per row of the other input"))
    with tf.control_dependencies(checks):
        return tf.identity(label)


def serving_functions(vae, input_signature=None):
    """The endpoint functions and their input signatures, by signature name."""
    if getattr(vae, "num_classes", None) is not None:
        return _conditional_serving_functions(vae, input_signature)
    x_spec = _images_spec(vae, input_signature)
    z_spec = tf.TensorSpec([None, vae.latent_dim], tf.float32, name="z")
    num_images_spec = tf.TensorSpec([], tf.int32, name="num_images")
    seed_spec = tf.TensorSpec([2], tf.int32, name="seed")

    def encode(x):
        posterior = vae.encode(_checked(x, x_spec))
        return {"mean": posterior.mean(), "stddev": posterior.stddev()}

    def decode(z):
        likelihood = vae.decode(_checked(z, z_spec))
        return {"mean": likelihood.mean(), **_likelihood_parameters(likelihood)}

    def reconstruct(x):
        return {"reconstruction": vae.reconstruct(_checked(x, x_spec))}

    def sample(num_images, seed):
        return {"images": vae.sample(_checked(num_images, num_images_spec), seed=_checked(seed, seed_spec))}

    def elbo(x, seed):
        terms = vae.elbo_terms(_checked(x, x_spec), seed=_checked(seed, seed_spec))
        return {"elbo": terms.elbo, "reconstruction": terms.reconstruction, "kl": terms.kl}

    return {
        "encode": (encode, [x_spec]),
        "decode": (decode, [z_spec]),
        "reconstruct": (reconstruct, [x_spec]),
        "sample": (sample, [num_images_spec, seed_spec]),
        "elbo": (elbo, [x_spec, seed_spec]),
    }


def _conditional_serving_functions(vae, input_signature=None):
    """`serving_functions` of a conditional VAE: each signature also takes `label: int32 [B]`."""
    x_spec = _images_spec(vae, input_signature)
    z_spec = tf.TensorSpec([None, vae.latent_dim], tf.float32, name="z")
    seed_spec = tf.TensorSpec([2], tf.int32, name="seed")
    images_label_spec = tf.TensorSpec(x_spec.shape[:1], tf.int32, name=LABEL_INPUT)  # x's batch size, fixed or not
    label_spec = tf.TensorSpec([None], tf.int32, name=LABEL_INPUT)

    def labelled(rows, spec, label):
        rows = _checked(rows, spec)
        return rows, _checked_labels(label, vae.num_classes, rows)

    def encode(x, label):
        x, label = labelled(x, x_spec, label)
        posterior = vae.encode(x, labels=label)
        return {"mean": posterior.mean(), "stddev": posterior.stddev()}

    def decode(z, label):
        z, label = labelled(z, z_spec, label)
        likelihood = vae.decode(z, labels=label)
        return {"mean": likelihood.mean(), **_likelihood_parameters(likelihood)}

    def reconstruct(x, label):
        x, label = labelled(x, x_spec, label)
        return {"reconstruction": vae.reconstruct(x, labels=label)}

    def sample(label, seed):
        label = _checked_labels(label, vae.num_classes)
        return {"images": vae.sample(tf.shape(label)[0], seed=_checked(seed, seed_spec), labels=label)}

    def elbo(x, label, seed):
        x, label = labelled(x, x_spec, label)
        terms = vae.elbo_terms(x, seed=_checked(seed, seed_spec), labels=label)
        return {"elbo": terms.elbo, "reconstruction": terms.reconstruction, "kl": terms.kl}

    return {
        "encode": (encode, [x_spec, images_label_spec]),
        "decode": (decode, [z_spec, label_spec]),
        "reconstruct": (reconstruct, [x_spec, images_label_spec]),
        "sample": (sample, [label_spec, seed_spec]),
        "elbo": (elbo, [x_spec, images_label_spec, seed_spec]),
    }


def load(path):
    """Loads an exported SavedModel, with a one-line error if it is missing or corrupt."""
    path = pathlib.Path(path)
    if not (path / "saved_model.pb").is_file():
        raise ValueError(f"{str(path)!r} holds no saved_model.pb: not a SavedModel directory.")
    try:
        return tf.saved_model.load(str(path))
    except Exception as error:  # protobuf, checkpoint and op errors all mean "unreadable"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{str(path)!r} is not a readable SavedModel ({type(error).__name__}: {reason[:200]}).") from error


def _check_finite_weights(model, argument):
    bad = [w.path for w in model.weights if w.dtype.startswith("float") and not np.all(np.isfinite(w.numpy()))]
    if bad:
        raise ValueError(f"Refusing to export `{argument}`: it has non-finite weights in {bad}.")


def _checked_path(path, overwrite):
    """`path` as a `pathlib.Path` a SavedModel can be written to; raises before any work.

    Raises:
      TypeError: `path` is not a str or `os.PathLike`, or `overwrite` not a bool.
      ValueError: `path` is empty.
      FileExistsError: `path` exists and `overwrite` is False.
      NotADirectoryError: a file stands where a folder of `path` must be
        (an OSError, as the file system's own error would be).
    """
    if not isinstance(overwrite, bool):
        raise TypeError(f"`overwrite` must be True or False; received {overwrite!r}.")
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or pathlib.Path of the SavedModel folder; received {path!r}.")
    if not str(path).strip():
        raise ValueError(f"`path` must name the SavedModel folder; received {path!r}.")
    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"`path` {str(path)!r} already exists; pass overwrite=True (--overwrite) to replace it.")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"`path` {str(path)!r} lies under {str(parent)!r}, which is a file, not a folder.")
            break
    return path


def export(vae, path, overwrite=False, verbose=False, input_signature=None):
    """Writes `vae` as a TF Serving SavedModel at `path`; returns the path.

    Args:
      verbose: print the signatures written, as `keras.Model.export` does.
      input_signature: None, or one `tf.TensorSpec` of the images `x`.

    Raises (all before anything is written):
      FileExistsError: `path` exists and `overwrite` is False (checked first).
      NotADirectoryError, TypeError, ValueError: `path` lies under a file,
        is not a path or is empty; `vae` is not a `tfvae.VAE`.
      ValueError: the model has NaN or infinite weights, or `input_signature`
        does not describe the model's images.
    """
    path = _checked_path(path, overwrite)
    if not all(hasattr(vae, name) for name in ("encoder", "decoder", "prior", "elbo_terms")):
        raise TypeError(f"`vae` must be a tfvae.VAE (for other Keras models use export_model); received {type(vae).__name__}.")
    functions = serving_functions(vae, input_signature)
    _check_finite_weights(vae, "vae")
    archive = keras.export.ExportArchive()
    # No archive.track(vae): the endpoints track the variables they use, and tracking the model too
    # would save every weight a second time (the Keras variables beside their tf.Variable copies).
    for name, (function, input_signature) in functions.items():
        archive.add_endpoint(name, function, input_signature=input_signature)
    # serving_default is what TF Serving calls without a signature name.
    archive.add_endpoint("serving_default", functions["encode"][0], input_signature=functions["encode"][1])

    return _write_atomically(archive, path, verbose)


def _write_atomically(archive, path, verbose):
    """Writes `archive` to a temporary directory beside `path`, then renames it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    previous = path.with_name(f".{path.name}.previous-{os.getpid()}")
    try:
        archive.write_out(str(partial), verbose=verbose)
        if path.exists():
            path.rename(previous)
        partial.rename(path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        if previous.exists():
            if path.exists():
                shutil.rmtree(previous)
            else:  # the final rename failed: put the old export back
                previous.rename(path)
    return path


def _input_specs(model):
    """One `tf.TensorSpec` per model input, batch axis free: named as the `keras.Input`, else `x` (`x0`, `x1`, ...)."""
    inputs = model.inputs
    specs = []
    for index, tensor in enumerate(inputs):
        name = tensor.name
        if not name or name.startswith("keras_tensor") or name.startswith("input_layer"):
            name = "x" if len(inputs) == 1 else f"x{index}"
        specs.append(tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype, name=name))
    return specs


def _statistics_of(output, name, statistics):
    """The serving outputs for one model output: the statistics of a distribution, or the tensor itself."""
    import tensorflow_probability as tfp  # only while tracing; the SavedModel does not need it

    if not isinstance(output, tfp.distributions.Distribution):
        return {name or "output": tf.convert_to_tensor(output)}
    prefix = f"{name}_" if name else ""
    results = {}
    for statistic in statistics:
        try:
            results[prefix + statistic] = getattr(output, statistic)()
        except NotImplementedError as error:
            raise ValueError(
                f"`statistics` asks for {statistic!r}, which {type(output).__name__} does not implement; "
                f"pass statistics= without it (received {tuple(statistics)!r})."
            ) from error
    return results


STATISTICS = ("mean", "stddev", "variance", "mode", "sample")  # "sample": a fresh draw per request


def export_model(model, path, statistics=("mean", "stddev"), overwrite=False, verbose=False):
    """Writes a Keras model whose outputs are distributions or tensors as a TF Serving SavedModel.

    For models built from tfvae's layers (a VAE has `export`). One signature,
    `serving_default`: inputs as the model's inputs (`x: [B, ...]` for one
    unnamed input, else the `keras.Input` names), outputs the `statistics` of
    each distribution output (`mean`, `stddev`, `variance`, `mode`, or
    `sample`, a fresh draw per request; prefixed `NAME_` for a dict output
    `NAME`) and each tensor output as it is. The SavedModel runs
    without tfvae or TFP, and the write is atomic, as for `export`.

    Raises (all before anything is written):
      FileExistsError: `path` exists and `overwrite` is False.
      NotADirectoryError, TypeError, ValueError: `path` lies under a file,
        is not a path or is empty; `model` is not a keras.Model with inputs.
      ValueError: a statistic not in `STATISTICS` or not implemented by an
        output's distribution, or non-finite weights.
    """
    path = _checked_path(path, overwrite)
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        hint = " (a tfvae.VAE has its own export: vae.export(path))" if hasattr(model, "elbo_terms") else ""
        raise TypeError(
            f"`model` must be a Functional or Sequential keras.Model with known inputs{hint}; received {type(model).__name__}."
        )
    if not isinstance(statistics, (str, list, tuple)):
        raise ValueError(f"`statistics` must be a non-empty subset of {STATISTICS}; received {statistics!r}.")
    statistics = (statistics,) if isinstance(statistics, str) else tuple(statistics)
    unknown = [statistic for statistic in statistics if not isinstance(statistic, str) or statistic not in STATISTICS]
    if not statistics or unknown:
        raise ValueError(f"`statistics` must be a non-empty subset of {STATISTICS}; received {statistics!r}.")
    _check_finite_weights(model, "model")
    specs = _input_specs(model)

    def serve(*inputs):
        outputs = model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
        if isinstance(outputs, dict):
            return {key: value for name in outputs for key, value in _statistics_of(outputs[name], name, statistics).items()}
        if isinstance(outputs, (list, tuple)):
            return {key: value for index, output in enumerate(outputs)
                    for key, value in _statistics_of(output, f"output_{index}", statistics).items()}
        return _statistics_of(outputs, None, statistics)

    archive = keras.export.ExportArchive()
    archive.add_endpoint("serving_default", serve, input_signature=specs)
    return _write_atomically(archive, path, verbose)
