"""The checks of `tfvae.VAE`'s constructor arguments, made before any layer is called.

Each check raises with the argument's name, what it must be and what it
received (TypeError for a wrong kind of object, ValueError for a wrong value).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tfvae import bounds
from tfvae.architectures import check_num_classes
from tfvae.layers import check_positive_int
from tfvae.layers.checks import check_float32_range, check_num_elements
from tfvae.models import labels as labels_lib
from tfvae.priors import StandardNormal


def check_bool(argument, value):
    """Returns `value` as a bool, or raises TypeError naming `argument` unless it is one (NumPy's included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{argument}` must be True or False; received {value!r}.")
    return bool(value)


def latent_dim_of(model, where):
    """The last dimension of a Functional model's first `where` ("inputs" or "outputs"), or None."""
    tensors = getattr(model, where, None)
    if not tensors:
        return None
    return tensors[0].shape[-1]


def check_networks(encoder, decoder, prior, num_classes):
    """Checks the encoder, decoder, prior and `num_classes` together; returns `(prior, num_classes)`.

    The encoder's latent size (its output's last axis) and the decoder's (its
    input's) must agree, and the prior's must equal them. A missing prior
    becomes `StandardNormal(latent_dim)`, which needs a Functional encoder or
    decoder to read `latent_dim` from. A conditional VAE (`num_classes`)
    needs encoder and decoder with a label input, and a prior that is p(z).
    """
    for argument, model in (("encoder", encoder), ("decoder", decoder)):
        if not isinstance(model, keras.layers.Layer):
            raise TypeError(
                f"`{argument}` must be a Keras model (or layer) that returns a distribution; "
                f"received {model!r} of type {type(model).__name__}."
            )
    if prior is not None and not (callable(getattr(prior, "distribution", None)) and hasattr(prior, "latent_dim")):
        raise TypeError(
            f"`prior` must be None or a tfvae.priors.Prior (e.g. tfvae.priors.StandardNormal(latent_dim)); "
            f"received {prior!r} of type {type(prior).__name__}."
        )
    num_classes = check_num_classes(num_classes)
    labels_lib.check_label_input(encoder, "encoder", num_classes)
    labels_lib.check_label_input(decoder, "decoder", num_classes)
    if num_classes is not None and hasattr(prior, "bind_encoder"):
        raise ValueError(f"A conditional VAE (num_classes={num_classes}) keeps the prior p(z); a prior made from the "
                         f"encoder (the VampPrior) would need labels for its pseudo-inputs: received {type(prior).__name__}.")
    posterior_dim = latent_dim_of(encoder, "outputs")
    decoder_dim = latent_dim_of(decoder, "inputs")
    if posterior_dim is not None and decoder_dim is not None and posterior_dim != decoder_dim:
        raise ValueError(
            f"The encoder's latent size is {posterior_dim} (its output "
            f"{encoder.outputs[0].shape}) but the decoder's is {decoder_dim} (its input "
            f"{decoder.inputs[0].shape}); they must be equal."
        )
    latent_dim = posterior_dim or decoder_dim
    if prior is None:
        if latent_dim is None:
            raise ValueError("`prior` is required when the latent size cannot be read from a Functional encoder or decoder.")
        prior = StandardNormal(latent_dim)
    if latent_dim is not None and prior.latent_dim != latent_dim:
        raise ValueError(f"The prior's latent_dim is {prior.latent_dim} but the encoder and decoder use {latent_dim}.")
    return prior, num_classes


def check_objective(objective, k, beta, kl, kl_warmup_steps, free_bits):
    """Checks the training objective's arguments (see `tfvae.VAE`) alone and together.

    beta: a finite number > 0; kl: one of `bounds.KL_METHODS`; objective: one of
    `bounds.OBJECTIVES`; k: an int >= 1; kl_warmup_steps: an int >= 0;
    free_bits: a finite number >= 0. The IWAE bound has no KL term, so it
    takes beta = 1, no warm-up and no free bits.
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
        raise ValueError(f"`beta` must be a number > 0; received {beta!r}.")
    if not math.isfinite(beta):
        raise ValueError(f"`beta` must be finite (an infinite KL weight gives an infinite loss); received {beta!r}.")
    check_float32_range(beta, "beta")
    if not isinstance(kl, str) or kl not in bounds.KL_METHODS:
        raise ValueError(f"`kl` must be one of {bounds.KL_METHODS}; received {kl!r}.")
    if not isinstance(objective, str) or objective not in bounds.OBJECTIVES:
        raise ValueError(f"`objective` must be one of {bounds.OBJECTIVES}; received {objective!r}.")
    check_positive_int("k", k)
    if objective == "iwae" and beta != 1:
        raise ValueError(f"The IWAE objective has no KL weight: `beta` must be 1 with objective='iwae'; received {beta!r}.")
    if isinstance(kl_warmup_steps, bool) or not isinstance(kl_warmup_steps, int) or kl_warmup_steps < 0:
        raise ValueError(f"`kl_warmup_steps` must be an int >= 0; received {kl_warmup_steps!r}.")
    if isinstance(free_bits, bool) or not isinstance(free_bits, (int, float)) or not 0 <= free_bits < math.inf:
        raise ValueError(f"`free_bits` must be a finite number >= 0 (nats per latent dimension); received {free_bits!r}.")
    if objective == "iwae" and free_bits:
        raise ValueError(f"Free bits apply to the ELBO's KL term: `free_bits` must be 0 with objective='iwae'; "
                         f"received {free_bits!r}.")
    if objective == "iwae" and kl_warmup_steps:
        raise ValueError(
            f"The IWAE objective has no KL weight to warm up: `kl_warmup_steps` must be 0 with objective='iwae'; "
            f"received {kl_warmup_steps!r}."
        )


def check_num_images(num_images, image_shape):
    """Checks `sample`'s `num_images`: an int >= 1, or a scalar int tensor (>= 1 when eager), whose images fit in memory.

    `image_shape` is one image's shape as far as it is known.
    """
    if tf.is_tensor(num_images):
        if num_images.shape.rank != 0 or not num_images.dtype.is_integer:
            raise ValueError(f"`num_images` must be an int or a scalar int tensor; received {num_images!r}.")
        if not tf.executing_eagerly():
            return
    check_positive_int("num_images", int(num_images) if tf.is_tensor(num_images) else num_images)
    check_num_elements("num_images", (int(num_images), *image_shape), num_images)
