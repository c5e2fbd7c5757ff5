"""Training throughput: tfvae against a minimal hand-written Keras 3 + TFP VAE.

    TFDS_DATA_DIR=../shared/data/tensorflow_datasets python scripts/benchmark_throughput.py

Both train the MLP of the IWAE paper (784-200-200-50, tanh, diagonal Gaussian
posterior, Bernoulli likelihood, analytic KL, Adam, batch 100) for one epoch of
`binarized_mnist` (50,000 images) from the same `tf.data` pipeline, each with
and without XLA (`jit_compile`), after a warm-up that compiles the step. The
runs are interleaved over `--repeats` rounds and each path's best epoch counts,
so that load from elsewhere on the machine penalises no path in particular.

Prints examples per second, the tfvae / hand-written ratio (1.0 = as fast) and
the XLA / plain ratio, and the achieved GFLOP/s against a large float32 matmul
timed in the same process (the machine's practical ceiling).
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
from tfvae import architectures, data

tfd = tfp.distributions

IMAGE_SHAPE, LATENT_DIM, HIDDEN = (28, 28, 1), 50, 200
PIXELS = 784
# Multiply-adds of one forward pass: encoder 784-200-200-100 (mean and scale),
# decoder 50-200-200-784. Training costs about three forward passes (forward,
# and two matmuls per layer backward), at 2 FLOPs per multiply-add.
FORWARD_MACS = PIXELS * HIDDEN + HIDDEN * HIDDEN + HIDDEN * 2 * LATENT_DIM + LATENT_DIM * HIDDEN + HIDDEN * HIDDEN + HIDDEN * PIXELS
TRAIN_FLOPS_PER_EXAMPLE = 3 * 2 * FORWARD_MACS


class HandWrittenVAE(keras.Model):
    """The keras.io VAE pattern with TFP: what a user writes without tfvae."""

    def __init__(self):
        super().__init__()
        self.encoder = keras.Sequential([keras.Input((PIXELS,)), keras.layers.Dense(HIDDEN, "tanh"),
                                         keras.layers.Dense(HIDDEN, "tanh"), keras.layers.Dense(2 * LATENT_DIM)])
        self.decoder = keras.Sequential([keras.Input((LATENT_DIM,)), keras.layers.Dense(HIDDEN, "tanh"),
                                         keras.layers.Dense(HIDDEN, "tanh"), keras.layers.Dense(PIXELS)])
        self.seed_generator = keras.random.SeedGenerator(0)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, x):
        x = tf.reshape(x, [-1, PIXELS])
        with tf.GradientTape() as tape:
            loc, raw_scale = tf.split(self.encoder(x), 2, axis=-1)
            posterior = tfd.Independent(tfd.Normal(loc, tf.nn.softplus(raw_scale) + 1e-3), 1)
            z = posterior.sample(seed=tf.cast(self.seed_generator.next(), tf.int32))
            likelihood = tfd.Independent(tfd.Bernoulli(logits=self.decoder(z), dtype=tf.float32), 1)
            prior = tfd.Independent(tfd.Normal(tf.zeros(LATENT_DIM), tf.ones(LATENT_DIM)), 1)
            loss = tf.reduce_mean(-likelihood.log_prob(x) + tfd.kl_divergence(posterior, prior))
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def build(kind, jit_compile):
    if kind == "tfvae":
        model = tfvae.VAE(architectures.mlp_encoder(IMAGE_SHAPE, LATENT_DIM), architectures.mlp_decoder(LATENT_DIM, IMAGE_SHAPE), seed=0)
    else:
        model = HandWrittenVAE()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    return model


def matmul_gflops(size=2048, repeats=10):
    """GFLOP/s of a float32 [size, size] @ [size, size] matmul, best of `repeats`."""
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    matmul = tf.function(lambda a, b: tf.matmul(a, b))
    matmul(a, b).numpy()
    best = min(_timed(lambda: matmul(a, b).numpy()) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best epoch of each path counts")
    parser.add_argument("--max-examples", type=int, default=None, help="shorter epochs, for a quick check")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    splits = data.load("binarized_mnist", batch_size=100, data_dir=args.data_dir, seed=0, max_examples=args.max_examples)
    train = splits.train
    num_examples = splits.num_examples["train"]
    for _ in train:  # fill the cache, so that no path pays for reading the files
        pass

    paths = [(kind, jit) for kind in ("hand-written", "tfvae") for jit in (False, True)]
    models = {}
    for path in paths:
        keras.utils.set_random_seed(0)
        models[path] = build(*path)
        models[path].fit(train.take(20), epochs=1, verbose=0)  # warm-up: trace and compile
    best = {path: float("inf") for path in paths}
    for _ in range(args.repeats):
        for path in paths:
            best[path] = min(best[path], _timed(lambda: models[path].fit(train, epochs=1, verbose=0)))
    ceiling = matmul_gflops()

    print(f"one epoch of binarized_mnist ({num_examples} examples, batch 100), best of {args.repeats}; "
          f"float32 matmul ceiling {ceiling:.1f} GFLOP/s")
    print(f"{'path':<24} {'examples/s':>11} {'GFLOP/s':>8} {'of ceiling':>10}")
    speed = {}
    for kind, jit in paths:
        speed[kind, jit] = num_examples / best[kind, jit]
        gflops = speed[kind, jit] * TRAIN_FLOPS_PER_EXAMPLE / 1e9
        label = f"{kind}{' + XLA' if jit else ''}"
        print(f"{label:<24} {speed[kind, jit]:>11.0f} {gflops:>8.2f} {gflops / ceiling:>9.1%}")
    for jit in (False, True):
        print(f"tfvae / hand-written{' (XLA)' if jit else '      '}: {speed['tfvae', jit] / speed['hand-written', jit]:.2f}")
    for kind in ("hand-written", "tfvae"):
        print(f"XLA / plain, {kind:<12}: {speed[kind, True] / speed[kind, False]:.2f}")


if __name__ == "__main__":
    main()
