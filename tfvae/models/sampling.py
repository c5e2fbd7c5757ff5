"""Seeded, reparameterised draws from TFP distributions, fast under XLA."""

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import _backend  # noqa: F401  (selects the TensorFlow backend)

tfd = tfp.distributions


def reparameterized_sample(distribution, sample_shape, seed):
    """Draws `[*sample_shape, *batch_shape, *event_shape]` from `distribution` with a stateless seed.

    For Gaussians (`tfd.Normal`, `tfd.Independent` of one, and
    `tfd.MultivariateNormalLinearOperator` such as `MultivariateNormalTriL`)
    the standard normal noise is drawn here with TensorFlow's Philox
    algorithm, then moved by loc + scale * noise, exactly as TFP's own
    `sample` does. TFP asks for the "auto_select" algorithm, which on the CPU
    is Philox too (the same values without XLA) but under XLA compiles to a
    generator that made a whole training step of the IWAE-paper MLP about
    twice as slow (scripts/benchmark_throughput.py). Other families use their
    own `sample`.
    """
    sample_shape = tf.cast(sample_shape, tf.int32)
    gaussian = distribution.distribution if isinstance(distribution, tfd.Independent) else distribution
    if isinstance(gaussian, tfd.Normal):
        noise = _philox_normal(tf.concat([sample_shape, gaussian.batch_shape_tensor()], 0), seed, gaussian.dtype)
        return noise * gaussian.scale + gaussian.loc
    if isinstance(distribution, tfd.MultivariateNormalLinearOperator):
        shape = tf.concat([sample_shape, distribution.batch_shape_tensor(), distribution.event_shape_tensor()], 0)
        noise = _philox_normal(shape, seed, distribution.dtype)
        return distribution.scale.matvec(noise) + distribution.loc
    return distribution.sample(sample_shape, seed=seed)


def _philox_normal(shape, seed, dtype):
    return tf.random.stateless_normal(shape, seed=seed, dtype=dtype, alg="philox")
