"""tfvae: variational autoencoders for Keras 3, with TensorFlow-Probability outputs.

Importing tfvae selects Keras' TensorFlow backend (see `tfvae._backend`).
"""

from tfvae import _backend  # noqa: F401  (must run before Keras is used)
from tfvae import architectures, bounds, data, export, layers, losses, priors
from tfvae.model import VAE

__version__ = "0.1.0"

__all__ = ["VAE", "architectures", "bounds", "data", "export", "layers", "losses", "priors", "__version__"]
