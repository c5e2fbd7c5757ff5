"""tfvae: variational autoencoders for Keras 3, with TensorFlow-Probability outputs.

Importing tfvae selects Keras' TensorFlow backend (see `tfvae._backend`) and
registers tfvae's Keras objects, so that `keras.saving.load_model` reads
`.keras` files that hold them.
"""

import os
import sys

if getattr(sys, "argv", None) and (sys.argv[0] == "-m" or os.path.basename(sys.argv[0]) == "tfvae"):
    # The program is the `tfvae` command (`tfvae ...` or `python -m tfvae ...`):
    # keep TensorFlow's start-up notices off its output. Library users see them.
    from tfvae import _quiet

    _quiet.quiet_tensorflow_startup()

from tfvae import _backend  # noqa: E402, F401  (must run before Keras is imported)
from tfvae import architectures, bounds, data, export, inputs, layers, losses, models, priors, seeds  # noqa: E402
from tfvae.models import VAE, NonFiniteLossError  # noqa: E402

__version__ = "0.2.0"

__all__ = ["VAE", "NonFiniteLossError", "architectures", "bounds", "data", "export", "inputs", "layers", "losses", "models", "priors",
           "seeds", "__version__"]
