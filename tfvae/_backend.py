"""Selects the TensorFlow backend for Keras before Keras is imported.

tfvae's layers return TensorFlow-Probability distributions and its model uses
`tf.distribute`, so it only works on Keras' TensorFlow backend. Importing this
module sets `KERAS_BACKEND=tensorflow` when the user has not chosen a backend,
and refuses to continue when another backend is already selected.
"""

import os

REQUIRED_BACKEND = "tensorflow"

_requested = os.environ.setdefault("KERAS_BACKEND", REQUIRED_BACKEND)
if _requested != REQUIRED_BACKEND:
    raise ImportError(
        f"tfvae needs the Keras backend {REQUIRED_BACKEND!r}, but KERAS_BACKEND="
        f"{_requested!r}. Unset KERAS_BACKEND or set it to {REQUIRED_BACKEND!r} "
        "before importing tfvae."
    )

import keras  # noqa: E402  (must follow the environment check above)

if keras.backend.backend() != REQUIRED_BACKEND:
    raise ImportError(
        f"tfvae needs the Keras backend {REQUIRED_BACKEND!r}, but Keras was "
        f"already imported with the backend {keras.backend.backend()!r}. Import "
        "tfvae before anything imports Keras, or set KERAS_BACKEND=tensorflow."
    )
