"""tfvae: variational autoencoders for Keras 3, with TensorFlow-Probability outputs.

Importing tfvae selects Keras' TensorFlow backend (see `tfvae._backend`) and
registers tfvae's Keras objects, so that `keras.saving.load_model` reads
`.keras` files that hold them.
"""

from tfvae import _backend  # noqa: F401  (must run before Keras is imported)
from tfvae import architectures, bounds, data, export, inputs, layers, losses, priors, seeds
from tfvae.model import VAE, NonFiniteLossError

__version__ = "0.2.0"

__all__ = ["VAE", "NonFiniteLossError", "architectures", "bounds", "data", "export", "inputs", "layers", "losses", "priors",
           "seeds", "__version__"]
