"""Speed of the importance-weighted NLL estimate (`VAE.log_likelihood`), with and without XLA.

    TFDS_DATA_DIR=../shared/data/tensorflow_datasets python scripts/benchmark_evaluation.py

Times L_k (`-k`, 1000 by default) on the first `--num-images` static
binarized MNIST test images (1000), in batches of 100, for the IWAE-paper MLP
(784-200-200-50) and for tfvae's conv VAE (latent size 50), freshly
initialised: the time does not depend on the weights. Each model is timed as
`VAE.log_likelihood` runs it (its chunk function traced without XLA) and, for
the MLP, with that function compiled by XLA, interleaved over `--repeats`
rounds after a warm-up. XLA is not timed for the conv model: XLA's CPU
convolution asked for 90 GB of memory for one chunk of 500 samples of 100
images. Prints seconds, decodes per second, and the projected time of the
paper's evaluation (all 10,000 test images at k = 5000).
"""

import argparse
import time

import numpy as np
import tensorflow as tf

import tfvae
from tfvae import architectures, data
from tfvae.models import vae as vae_module

IMAGE_SHAPE, LATENT_DIM = (28, 28, 1), 50
PAPER_DECODES = 10_000 * 5000


def log_likelihoods(vae, images, k, chunk_function):
    """L_k of `images` in batches of 100, with `chunk_function` as the VAE's chunk estimator."""
    original = vae_module.VAE._chunk_logsumexp
    vae_module.VAE._chunk_logsumexp = chunk_function
    try:
        return np.concatenate([vae.log_likelihood(images[start:start + 100], k=k, seed=(0, start)).numpy()
                               for start in range(0, len(images), 100)])
    finally:
        vae_module.VAE._chunk_logsumexp = original


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, default=1000)
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    splits = data.load("binarized_mnist", batch_size=100, data_dir=args.data_dir, seed=0)
    images = np.concatenate([batch.numpy() for batch in splits.test])[: args.num_images]
    plain = vae_module.VAE._chunk_logsumexp
    xla = tf.function(plain.python_function, reduce_retracing=True, jit_compile=True)
    mlp = tfvae.VAE(architectures.mlp_encoder(IMAGE_SHAPE, LATENT_DIM), architectures.mlp_decoder(LATENT_DIM, IMAGE_SHAPE), seed=0)
    conv = tfvae.VAE(architectures.conv_encoder(IMAGE_SHAPE, LATENT_DIM), architectures.conv_decoder(LATENT_DIM, IMAGE_SHAPE), seed=0)
    paths = {"MLP, as log_likelihood runs": (mlp, plain), "MLP, chunks under XLA": (mlp, xla),
             "conv, as log_likelihood runs": (conv, plain)}
    for vae, chunk_function in paths.values():
        log_likelihoods(vae, images[:100], min(args.k, 200), chunk_function)  # warm-up: trace and compile
    seconds = {label: [] for label in paths}
    for _ in range(args.repeats):
        for label, (vae, chunk_function) in paths.items():
            start = time.perf_counter()
            log_likelihoods(vae, images, args.k, chunk_function)
            seconds[label].append(time.perf_counter() - start)

    decodes = len(images) * args.k
    print(f"L_{args.k} of {len(images)} test images, best of {args.repeats} interleaved rounds")
    print(f"{'path':<32} {'seconds':>8} {'decodes/s':>10} {'10,000 images at k=5000':>24}")
    for label, times in seconds.items():
        rate = decodes / min(times)
        print(f"{label:<32} {min(times):>8.2f} {rate:>10.0f} {PAPER_DECODES / rate / 60:>20.0f} min")
    within_rounds = np.median(np.array(seconds["MLP, as log_likelihood runs"]) / np.array(seconds["MLP, chunks under XLA"]))
    print(f"MLP: XLA speed-up, median of rounds: {within_rounds:.2f}")


if __name__ == "__main__":
    main()
