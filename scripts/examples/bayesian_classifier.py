"""A Bayesian neural network classifier on MNIST with tfvae.layers.DenseFlipout.

    TFDS_DATA_DIR=../shared/data/tensorflow_datasets python scripts/examples/bayesian_classifier.py
    python scripts/examples/bayesian_classifier.py --quick      # what CI runs (tests/test_examples.py)

After TFP's `examples/bayesian_neural_network.py` (which uses a LeNet-5 of Flipout convolutions), as
a two-layer Flipout MLP on Keras 3: each weight has a Gaussian posterior q(w) = N(mu, sigma^2) and a
N(0, 1) prior; `fit` minimises the negative ELBO per example,

    -E_q[log p(y | x, w)] + KL[q(w) || p(w)] / num_train_examples,

the cross-entropy from Keras plus the layers' KL terms (`ScaledKLDivergence(1 / n)` on each kernel,
added to `model.losses`). Predictions average the softmax over `num_passes` forward passes, each
with fresh weights (`predictive`). `run()` returns the test accuracy of that average and of one
pass, and the mean predictive entropy on MNIST test digits beside that on Fashion-MNIST images the
network never saw: the posterior should be more uncertain on the latter.
"""

import argparse
import json

import keras
import numpy as np

import tfvae


def load(dataset, num_train, num_test, data_dir=None, seed=0):
    """`(x_train, y_train, x_test, y_test)`: grey levels in [0, 1], `[n, 28, 28, 1]`, integer labels."""
    splits = tfvae.data.load(dataset, batch_size=100, data_dir=data_dir, seed=seed, max_examples=max(num_train, num_test))

    def arrays(batches, n):
        images, labels = zip(*[(images.numpy(), labels.numpy()) for images, labels in batches])
        return np.concatenate(images)[:n], np.concatenate(labels)[:n]

    return (*arrays(splits.train, num_train), *arrays(splits.test, num_test))


def build_model(num_train, hidden_units=200, seed=0):
    """Flatten -> DenseFlipout(hidden, relu) -> DenseFlipout(10): logits, KL terms in `model.losses`."""
    divergence = tfvae.layers.ScaledKLDivergence(1 / num_train)
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Flatten(),
        tfvae.layers.DenseFlipout(hidden_units, activation="relu", kernel_divergence_fn=divergence, seed=seed),
        tfvae.layers.DenseFlipout(10, kernel_divergence_fn=divergence, seed=seed + 1),
    ])


def predictive(model, images, num_passes):
    """Mean over `num_passes` stochastic passes of the class probabilities, `[n, 10]`."""
    return np.mean([keras.ops.softmax(model(images)).numpy() for _ in range(num_passes)], axis=0)


def entropy(probabilities):
    return -np.sum(probabilities * np.log(np.clip(probabilities, 1e-12, 1.0)), axis=-1)


def run(quick=False, data_dir=None, seed=0, num_passes=20):
    keras.utils.set_random_seed(seed)
    num_train, num_test, epochs = (3000, 1000, 5) if quick else (50000, 10000, 30)
    x_train, y_train, x_test, y_test = load("mnist", num_train, num_test, data_dir, seed)
    *_, x_unseen, _ = load("fashion_mnist", 1, num_test, data_dir, seed)
    model = build_model(len(x_train), seed=seed)
    model.compile(keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    history = model.fit(x_train, y_train, batch_size=100, epochs=epochs, verbose=0).history["loss"]
    probabilities = predictive(model, x_test, num_passes)
    return {
        "train_images": len(x_train), "test_images": len(x_test), "epochs": epochs,
        "first_loss": history[0], "last_loss": history[-1],
        "kl_per_example": float(sum(float(loss) for loss in model.losses)),
        "accuracy": float(np.mean(np.argmax(probabilities, -1) == y_test)),
        "accuracy_one_pass": float(np.mean(np.argmax(predictive(model, x_test, 1), -1) == y_test)),
        "entropy_mnist": float(np.mean(entropy(probabilities))),
        "entropy_fashion_mnist": float(np.mean(entropy(predictive(model, x_unseen, num_passes)))),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 training images, 5 epochs")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets directory (default: TFDS_DATA_DIR)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, args.data_dir, args.seed), indent=2))


if __name__ == "__main__":
    main()
