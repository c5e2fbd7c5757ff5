"""Training throughput: tfvae against the strongest hand-written Keras 3 + TFP VAE we can write.

    TFDS_DATA_DIR=../shared/data/tensorflow_datasets python scripts/benchmark_throughput.py --repeats 5

Every path trains the MLP of the IWAE paper (784-200-200-50, tanh, diagonal
Gaussian posterior, Bernoulli likelihood, analytic KL, Adam 1e-3, batch 100)
for one epoch of `binarized_mnist` (50,000 images) held in memory, the same
`tf.data` batches for all. The baseline is the keras.io VAE pattern with TFP
and unseeded sampling (`posterior.sample()`), which is what users write: plain,
with XLA (`jit_compile=True`), and with XLA and `steps_per_execution`
(`--steps-per-execution`, 50 by default). tfvae runs as `VAE.compile`'s
defaults leave it and as `tfvae train` runs it (`tfvae.training.build_vae`, XLA,
50 steps per execution, the non-finite stop without keeping weights in memory);
`--diagnose` adds the model keeping its weights at a non-finite step, and
without the stop; `--bfloat16` adds `tfvae train`'s model under Keras'
"mixed_bfloat16" policy, with and without XLA.

Paths are warmed up (traced and compiled), then timed in `--repeats`
interleaved rounds. Prints each path's best epoch in examples per second and
GFLOP/s against a large float32 matmul timed in the same process (the
machine's practical ceiling), and tfvae's ratios to the best baseline two
ways: best epoch against best epoch, and the median over rounds of the ratio
within a round (the paths of one round run seconds apart, so load from
elsewhere on the machine moves both sides of that ratio alike).
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
from tfvae import architectures, data, training

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
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, x):
        x = tf.reshape(x, [-1, PIXELS])
        with tf.GradientTape() as tape:
            loc, raw_scale = tf.split(self.encoder(x), 2, axis=-1)
            posterior = tfd.Independent(tfd.Normal(loc, tf.nn.softplus(raw_scale) + 1e-3), 1)
            z = posterior.sample()
            likelihood = tfd.Independent(tfd.Bernoulli(logits=self.decoder(z), dtype=tf.float32), 1)
            prior = tfd.Independent(tfd.Normal(tf.zeros(LATENT_DIM), tf.ones(LATENT_DIM)), 1)
            loss = tf.reduce_mean(-likelihood.log_prob(x) + tfd.kl_divergence(posterior, prior))
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def paths(steps_per_execution, diagnose, bfloat16=False):
    """`{label: (build function, compile kwargs)}` of every path timed."""
    def hand_written():
        return HandWrittenVAE()

    def tfvae_vae(**kwargs):
        return lambda: tfvae.VAE(architectures.mlp_encoder(IMAGE_SHAPE, LATENT_DIM), architectures.mlp_decoder(LATENT_DIM, IMAGE_SHAPE),
                                 seed=0, **kwargs)

    config = training.TrainingConfig(dataset="binarized_mnist", binarize=None, latent_dim=LATENT_DIM, batch_size=100)
    as_tfvae_train_compiles = {"jit_compile": config.jit_compile_for(), "steps_per_execution": config.steps_per_execution_for(500)}

    chosen = {
        "hand-written": (hand_written, {"jit_compile": False}),
        "hand-written + XLA": (hand_written, {"jit_compile": True}),
        f"hand-written + XLA, {steps_per_execution} steps/call": (hand_written, {"jit_compile": True, "steps_per_execution": steps_per_execution}),
        "tfvae, VAE.compile defaults": (tfvae_vae(), {}),
        "tfvae, as tfvae train runs": (lambda: training.build_vae(config, IMAGE_SHAPE), as_tfvae_train_compiles),
    }
    if diagnose:
        chosen["tfvae, XLA, 50/call, keeping weights"] = (tfvae_vae(), as_tfvae_train_compiles)
        chosen["tfvae, XLA, 50/call, no non-finite stop"] = (tfvae_vae(stop_on_non_finite=False), as_tfvae_train_compiles)
    if bfloat16:
        for label, jit_compile in (("tfvae train, mixed_bfloat16", "auto"), ("tfvae train, mixed_bfloat16, no XLA", False)):
            chosen[label] = (in_policy("mixed_bfloat16", lambda: training.build_vae(config, IMAGE_SHAPE)),
                             {**as_tfvae_train_compiles, "jit_compile": jit_compile})
    return chosen


def in_policy(policy, build):
    """`build`, run with Keras' global dtype policy set to `policy` and then restored."""
    def build_in_policy():
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(policy)
        try:
            return build()
        finally:
            keras.config.set_dtype_policy(previous)
    return build_in_policy


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


def in_memory_batches(data_dir, max_examples, batch_size=100):
    """The training images of `binarized_mnist` as one cached `tf.data` pipeline of batches."""
    splits = data.load("binarized_mnist", batch_size=batch_size, data_dir=data_dir, seed=0, max_examples=max_examples)
    images = np.concatenate([batch.numpy() for batch in splits.epoch_batches(0)])
    batches = tf.data.Dataset.from_tensor_slices(images).batch(batch_size).cache()
    for _ in batches:  # fill the cache, so that no path pays for it
        pass
    return batches, len(images)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the best epoch of each path counts")
    parser.add_argument("--steps-per-execution", type=int, default=50)
    parser.add_argument("--max-examples", type=int, default=None, help="shorter epochs, for a quick check")
    parser.add_argument("--diagnose", action="store_true", help="also time tfvae without its non-finite stop")
    parser.add_argument("--bfloat16", action="store_true", help="also time tfvae under the mixed_bfloat16 policy")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    batches, num_examples = in_memory_batches(args.data_dir, args.max_examples)
    models = {}
    for label, (build, compile_kwargs) in paths(args.steps_per_execution, args.diagnose, args.bfloat16).items():
        keras.utils.set_random_seed(0)
        models[label] = build()
        models[label].compile(optimizer=keras.optimizers.Adam(1e-3), **compile_kwargs)
        models[label].fit(batches.take(2 * args.steps_per_execution), epochs=1, verbose=0)  # warm-up: trace and compile
    seconds = {label: [] for label in models}
    for _ in range(args.repeats):
        for label, model in models.items():
            seconds[label].append(_timed(lambda: model.fit(batches, epochs=1, verbose=0)))
    ceiling = matmul_gflops()
    best = {label: min(times) for label, times in seconds.items()}

    print(f"one epoch of binarized_mnist in memory ({num_examples} examples, batch 100), best of {args.repeats} "
          f"interleaved rounds; float32 matmul ceiling {ceiling:.1f} GFLOP/s")
    print(f"{'path':<40} {'examples/s':>11} {'GFLOP/s':>8} {'of ceiling':>10}")
    speed = {label: num_examples / seconds for label, seconds in best.items()}
    for label, examples_per_second in speed.items():
        gflops = examples_per_second * TRAIN_FLOPS_PER_EXAMPLE / 1e9
        print(f"{label:<40} {examples_per_second:>11.0f} {gflops:>8.2f} {gflops / ceiling:>9.1%}")
    baseline = max((label for label in speed if label.startswith("hand-written")), key=speed.get)
    print(f"best hand-written path: {baseline}")
    print(f"{'tfvae path / best hand-written':<40} {'best epochs':>11} {'median of rounds':>17}")
    for label in speed:
        if label.startswith("tfvae"):
            within_rounds = np.median(np.array(seconds[baseline]) / np.array(seconds[label]))
            print(f"{label:<40} {speed[label] / speed[baseline]:>11.2f} {within_rounds:>17.2f}")
    print(f"XLA / plain, hand-written: {speed['hand-written + XLA'] / speed['hand-written']:.2f}")


if __name__ == "__main__":
    main()
