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
| `decode` | `z: float32 [B, d]` | `mean: [B, *S]` and the likelihood's parameters (`logits`, or `loc` and `scale`) |
| `reconstruct` | `x: float32 [B, *S]` | `reconstruction: [B, *S]` (mean of p(x\\|z) at the posterior mean) |
| `sample` | `num_samples: int32 []`, `seed: int32 [2]` | `images: [num_samples, *S]` (means of p(x\\|z), z ~ p(z)) |
| `elbo` | `x: float32 [B, *S]`, `seed: int32 [2]` | `elbo`, `reconstruction`, `kl`: float32 [B] |

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


def _likelihood_parameters(likelihood):
    """The tensor parameters of p(x|z)'s per-element distribution, by name."""
    base = getattr(likelihood, "distribution", likelihood)  # unwrap tfd.Independent
    return {
        name: tf.convert_to_tensor(value)
        for name, value in base.parameters.items()
        if tf.is_tensor(value) and value.dtype.is_floating and name != "name"
    }


def serving_functions(vae):
    """The endpoint functions and their input signatures, by signature name."""
    image_shape = tuple(vae.encoder.inputs[0].shape[1:])
    x_spec = tf.TensorSpec([None, *image_shape], tf.float32, name="x")
    seed_spec = tf.TensorSpec([2], tf.int32, name="seed")

    def encode(x):
        posterior = vae.encode(x)
        return {"mean": posterior.mean(), "stddev": posterior.stddev()}

    def decode(z):
        likelihood = vae.decode(z)
        return {"mean": likelihood.mean(), **_likelihood_parameters(likelihood)}

    def reconstruct(x):
        return {"reconstruction": vae.reconstruct(x)}

    def sample(num_samples, seed):
        return {"images": vae.sample(num_samples, seed=seed)}

    def elbo(x, seed):
        terms = vae.elbo_terms(x, seed=seed)
        return {"elbo": terms.elbo, "reconstruction": terms.reconstruction, "kl": terms.kl}

    return {
        "encode": (encode, [x_spec]),
        "decode": (decode, [tf.TensorSpec([None, vae.latent_dim], tf.float32, name="z")]),
        "reconstruct": (reconstruct, [x_spec]),
        "sample": (sample, [tf.TensorSpec([], tf.int32, name="num_samples"), seed_spec]),
        "elbo": (elbo, [x_spec, seed_spec]),
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


def _check_finite_weights(vae):
    bad = [w.path for w in vae.weights if w.dtype.startswith("float") and not np.all(np.isfinite(w.numpy()))]
    if bad:
        raise ValueError(f"Refusing to export a model with non-finite weights in {bad}.")


def export(vae, path, overwrite=False):
    """Writes `vae` as a TF Serving SavedModel at `path`; returns the path.

    Raises:
      FileExistsError: `path` exists and `overwrite` is False (checked first).
      ValueError: the model has NaN or infinite weights.
    """
    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists; pass overwrite=True (--overwrite) to replace it.")
    _check_finite_weights(vae)
    archive = keras.export.ExportArchive()
    archive.track(vae)
    functions = serving_functions(vae)
    for name, (function, input_signature) in functions.items():
        archive.add_endpoint(name, function, input_signature=input_signature)
    # serving_default is what TF Serving calls without a signature name.
    archive.add_endpoint("serving_default", functions["encode"][0], input_signature=functions["encode"][1])

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    previous = path.with_name(f".{path.name}.previous-{os.getpid()}")
    try:
        archive.write_out(str(partial), verbose=False)
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
