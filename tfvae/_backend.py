"""Selects the TensorFlow backend for Keras, without importing Keras.

tfvae's layers return TensorFlow-Probability distributions and its model uses
`tf.distribute`, so it only works on Keras' TensorFlow backend. Importing this
module sets `KERAS_BACKEND=tensorflow` when the user has not chosen a backend
(Keras reads it when it is first imported), and refuses to continue when
another backend is selected, or Keras was already imported with one.
"""

import os
import sys

REQUIRED_BACKEND = "tensorflow"

_requested = os.environ.setdefault("KERAS_BACKEND", REQUIRED_BACKEND)
if _requested != REQUIRED_BACKEND:
    raise ImportError(
        f"tfvae needs the Keras backend {REQUIRED_BACKEND!r}, but KERAS_BACKEND="
        f"{_requested!r}. Unset KERAS_BACKEND or set it to {REQUIRED_BACKEND!r} "
        "before importing tfvae."
    )

if "keras" in sys.modules and sys.modules["keras"].backend.backend() != REQUIRED_BACKEND:
    raise ImportError(
        f"tfvae needs the Keras backend {REQUIRED_BACKEND!r}, but Keras was "
        f"already imported with the backend {sys.modules['keras'].backend.backend()!r}. Import "
        "tfvae before anything imports Keras, or set KERAS_BACKEND=tensorflow."
    )
