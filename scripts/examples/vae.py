"""TFP's "Probabilistic Layers VAE" example on Keras 3 with tfvae.layers, beside tfvae.VAE.

    TFDS_DATA_DIR=../shared/data/tensorflow_datasets python scripts/examples/vae.py
    python scripts/examples/vae.py --quick      # what CI runs (tests/test_examples.py)

The example (tensorflow/probability, `tensorflow_probability/examples/jupyter_notebooks/
Probabilistic_Layers_VAE.ipynb`) is a plain Keras model: a convolutional encoder ending in
`MultivariateNormalTriL(16, activity_regularizer=KLDivergenceRegularizer(prior))`, whose sample
feeds a deconvolutional decoder ending in `IndependentBernoulli((28, 28, 1))`, trained with
`loss = -log p(x | z)`. The regularizer adds the Monte Carlo KL[q(z|x) || p(z)] at the sampled z,
so `fit` minimises the negative ELBO. Ported with `tf_keras` -> `keras`, `tfp.layers` ->
`tfvae.layers`, and two Keras 3 changes:

- tfvae's layers convert to their mean by default, TFP's to a sample: the encoder's layer says
  `convert_to_tensor_fn="sample"`, or the decoder would see the posterior mean (an autoencoder).
- Keras 3 hands a plain loss function a tensor, so `negloglik` goes in
  `tfvae.losses.DistributionLoss`.

`run()` trains the port and `tfvae.VAE` with the same encoder and decoder networks on the same
images for the same number of steps, and evaluates both with the same bound (`tfvae.VAE.elbo`,
one sample, seeded) on the same test images.
"""

import argparse
import json

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae

tfd = tfp.distributions
tfpl = tfvae.layers
INPUT_SHAPE = (28, 28, 1)


def encoder_network(encoded_size, base_depth, activity_regularizer=None):
    """The example's encoder: `[batch, 28, 28, 1]` images -> q(z|x), a full-covariance Gaussian."""
    conv = dict(kernel_size=5, padding="same", activation=tf.nn.leaky_relu)
    return keras.Sequential([
        keras.Input(INPUT_SHAPE),
        keras.layers.Lambda(lambda x: tf.cast(x, tf.float32) - 0.5),
        keras.layers.Conv2D(base_depth, strides=1, **conv),
        keras.layers.Conv2D(base_depth, strides=2, **conv),
        keras.layers.Conv2D(2 * base_depth, strides=1, **conv),
        keras.layers.Conv2D(2 * base_depth, strides=2, **conv),
        keras.layers.Conv2D(4 * encoded_size, 7, strides=1, padding="valid", activation=tf.nn.leaky_relu),
        keras.layers.Flatten(),
        keras.layers.Dense(tfpl.MultivariateNormalTriL.params_size(encoded_size), activation=None),
        tfpl.MultivariateNormalTriL(encoded_size, convert_to_tensor_fn="sample", activity_regularizer=activity_regularizer),
    ])


def decoder_network(encoded_size, base_depth):
    """The example's decoder: `[batch, encoded_size]` codes -> p(x|z), a Bernoulli per pixel."""
    deconv = dict(kernel_size=5, padding="same", activation=tf.nn.leaky_relu)
    return keras.Sequential([
        keras.Input((encoded_size,)),
        keras.layers.Reshape([1, 1, encoded_size]),
        keras.layers.Conv2DTranspose(2 * base_depth, 7, strides=1, padding="valid", activation=tf.nn.leaky_relu),
        keras.layers.Conv2DTranspose(2 * base_depth, strides=1, **deconv),
        keras.layers.Conv2DTranspose(2 * base_depth, strides=2, **deconv),
        keras.layers.Conv2DTranspose(base_depth, strides=1, **deconv),
        keras.layers.Conv2DTranspose(base_depth, strides=2, **deconv),
        keras.layers.Conv2DTranspose(base_depth, strides=1, **deconv),
        keras.layers.Conv2D(filters=1, kernel_size=5, strides=1, padding="same", activation=None),
        keras.layers.Flatten(),
        tfpl.IndependentBernoulli(INPUT_SHAPE),
    ])


def negloglik(x, rv_x):
    return -rv_x.log_prob(x)


def load_images(num_train, num_test, data_dir=None, seed=0):
    """Dynamically binarized MNIST, as the example: `(train, test)` float32 `[n, 28, 28, 1]`, binarized once."""
    splits = tfvae.data.load("mnist", batch_size=100, binarize="dynamic", data_dir=data_dir, seed=seed,
                             max_examples=max(num_train, num_test))
    def images(batches, n):
        return np.concatenate([(element[0] if splits.has_labels else element).numpy() for element in batches])[:n]
    return images(splits.train, num_train), images(splits.test, num_test)


def run(quick=False, data_dir=None, seed=0):
    """Trains both models; returns their test ELBOs (nats per image) and the settings."""
    encoded_size, base_depth = 16, (8 if quick else 32)
    num_train, num_test, epochs = (2000, 500, 4) if quick else (50000, 10000, 15)
    train, test = load_images(num_train, num_test, data_dir, seed)
    batch_size = 100
    results = {"encoded_size": encoded_size, "base_depth": base_depth, "train_images": len(train),
               "test_images": len(test), "epochs": epochs, "batch_size": batch_size}

    # The port: a plain Keras model; the KL comes from the encoder's activity regularizer.
    keras.utils.set_random_seed(seed)
    prior = tfd.Independent(tfd.Normal(loc=tf.zeros(encoded_size), scale=1), reinterpreted_batch_ndims=1)
    encoder = encoder_network(encoded_size, base_depth, tfpl.KLDivergenceRegularizer(prior, weight=1.0))
    decoder = decoder_network(encoded_size, base_depth)
    port = keras.Model(inputs=encoder.inputs, outputs=decoder(encoder.outputs[0]))
    port.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=tfvae.losses.DistributionLoss(negloglik))
    port.fit(train, train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    # Evaluated as a VAE: tfvae.VAE around the port's own trained networks.
    results["port_test_elbo"] = test_elbo(tfvae.VAE(encoder, decoder, prior=tfvae.priors.StandardNormal(encoded_size)), test)

    # tfvae.VAE with the same networks, the same images and steps.
    keras.utils.set_random_seed(seed)
    vae = tfvae.VAE(encoder_network(encoded_size, base_depth), decoder_network(encoded_size, base_depth),
                    prior=tfvae.priors.StandardNormal(encoded_size))
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
    vae.fit(train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    results["tfvae_test_elbo"] = test_elbo(vae, test)
    results["untrained_test_elbo"] = test_elbo(tfvae.VAE(encoder_network(encoded_size, base_depth),
                                                         decoder_network(encoded_size, base_depth),
                                                         prior=tfvae.priors.StandardNormal(encoded_size)), test)
    return results


def test_elbo(vae, images, seed=(0, 0)):
    """Mean one-sample ELBO of `images`, seeded, in nats."""
    return float(np.mean(np.concatenate([vae.elbo(batch, seed=seed).numpy() for batch in np.array_split(images, 5)])))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 images, 4 epochs, narrower networks")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets directory (default: TFDS_DATA_DIR)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, args.data_dir, args.seed), indent=2))


if __name__ == "__main__":
    main()
