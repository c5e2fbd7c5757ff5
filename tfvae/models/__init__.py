"""Models: `VAE` (`vae.py`), with the metrics it logs (`metrics.py`), its stop at a
non-finite loss (`non_finite.py`) and its seeded latent draws (`sampling.py`)."""

from tfvae.models.metrics import METRIC_NAMES, MeanTerms
from tfvae.models.non_finite import FirstNonFiniteStep, NonFiniteLossError, StopOnNonFiniteLoss
from tfvae.models.sampling import reparameterized_sample
from tfvae.models.vae import VAE

__all__ = ["METRIC_NAMES", "FirstNonFiniteStep", "MeanTerms", "NonFiniteLossError", "StopOnNonFiniteLoss", "VAE",
           "reparameterized_sample"]
