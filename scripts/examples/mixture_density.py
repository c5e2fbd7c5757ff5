"""A mixture density network (Bishop, 1994) with tfvae.layers.MixtureNormal, on a two-branch target.

    python scripts/examples/mixture_density.py [--quick]

y given x is y = +x or y = -x with equal chance, plus N(0, 0.05^2) noise, x ~ U(0.1, 1). A network
predicting one Gaussian can only learn E[y | x] = 0; a mixture of Gaussians recovers both branches.
The model is TFP's `MixtureSameFamily` docstring network on Keras 3:

    Dense(32, relu) -> Dense(MixtureNormal.params_size(k, [1])) -> MixtureNormal(k, [1])

trained by maximum likelihood (`tfvae.losses.NegativeLogLikelihood`). `run()` returns, at a few
probe points, the means and weights of the mixture's components and the negative log-likelihood of
held-out data beside that of the true conditional density.
"""

import argparse
import json

import keras
import numpy as np
import scipy.stats

import tfvae

NOISE = 0.05


def two_branch_data(n, seed):
    """`x: [n, 1]` and `y: [n, 1]`, y = +-x + noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 1.0, size=(n, 1))
    y = rng.choice([-1.0, 1.0], size=(n, 1)) * x + NOISE * rng.normal(size=(n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def true_negative_log_likelihood(x, y):
    """Mean -log p(y | x) under the true density 0.5 N(x, 0.05^2) + 0.5 N(-x, 0.05^2)."""
    density = 0.5 * scipy.stats.norm.pdf(y, x, NOISE) + 0.5 * scipy.stats.norm.pdf(y, -x, NOISE)
    return float(-np.mean(np.log(density)))


def build_model(num_components=4):
    return keras.Sequential([
        keras.Input((1,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(tfvae.layers.MixtureNormal.params_size(num_components, [1])),
        tfvae.layers.MixtureNormal(num_components, [1]),
    ])


def run(quick=False, seed=0):
    keras.utils.set_random_seed(seed)
    x, y = two_branch_data(4000, seed)
    x_test, y_test = two_branch_data(2000, seed + 1)
    model = build_model()
    model.compile(keras.optimizers.Adam(0.01), loss=tfvae.losses.NegativeLogLikelihood(), jit_compile=True)
    model.fit(x, y, batch_size=100, epochs=15 if quick else 60, verbose=0)
    probes = np.array([[0.3], [0.6], [0.9]], np.float32)
    mixture = model(probes)
    weights = mixture.mixture_distribution.probs_parameter().numpy()  # [probes, k]
    means = mixture.components_distribution.mean().numpy()[..., 0]  # [probes, k]
    branches = []
    for probe, probe_weights, probe_means in zip(probes[:, 0], weights, means):
        upper = probe_weights[probe_means > 0].sum()
        heaviest_up = probe_means[probe_means > 0][np.argmax(probe_weights[probe_means > 0])] if upper > 0 else None
        heaviest_down = probe_means[probe_means <= 0][np.argmax(probe_weights[probe_means <= 0])] if upper < 1 else None
        branches.append({"x": float(probe), "weight_above_zero": float(upper),
                         "upper_branch_mean": None if heaviest_up is None else float(heaviest_up),
                         "lower_branch_mean": None if heaviest_down is None else float(heaviest_down)})
    return {
        "branches": branches,
        "test_nll": float(np.mean(-model(x_test).log_prob(y_test))),
        "true_test_nll": true_negative_log_likelihood(x_test, y_test),
        "single_gaussian_nll": float(-np.mean(scipy.stats.norm.logpdf(y_test, 0.0, np.sqrt(np.mean(y**2))))),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 epochs instead of 60")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, args.seed), indent=2))


if __name__ == "__main__":
    main()
