"""Models: `VAE` (`vae.py`), the checks of its constructor's arguments
(`arguments.py`), the metrics it logs (`metrics.py`), its stop at a non-finite
loss (`non_finite.py`), its seeded latent draws (`sampling.py`), a conditional
VAE's labels (`labels.py`), paths through its latent space for figures
(`latent_paths.py`), and the two-layer (hierarchical) encoder, decoder and prior
builders (`hierarchical.py`)."""

from tfvae.models import hierarchical, latent_paths
from tfvae.models.metrics import METRIC_NAMES, MeanTerms
from tfvae.models.non_finite import FirstNonFiniteStep, NonFiniteLossError, StopOnNonFiniteLoss
from tfvae.models.sampling import reparameterized_sample
from tfvae.models.vae import VAE

__all__ = ["METRIC_NAMES", "FirstNonFiniteStep", "MeanTerms", "NonFiniteLossError", "StopOnNonFiniteLoss", "VAE",
           "hierarchical", "latent_paths", "reparameterized_sample"]
