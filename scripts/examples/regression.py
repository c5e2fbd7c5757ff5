"""TFP's "Probabilistic Layers Regression" tutorial, cases 1-4, on Keras 3 with tfvae.layers.

    python scripts/examples/regression.py            # the tutorial's budget
    python scripts/examples/regression.py --quick    # what CI runs (tests/test_examples.py)

The tutorial (tensorflow/probability, `tensorflow_probability/examples/jupyter_notebooks/
Probabilistic_Layers_Regression.ipynb`) fits y = w0 x (1 + sin x) + b0 + noise, whose noise scale
s(x) = 3 (0.25 + g(x)^2), g(x) = (x + 20) / 80, grows along x in [-20, 60]:

  1. no uncertainty: Dense(1) -> Normal(loc=t, scale=1). With a fixed scale the maximum-likelihood
     line is the least-squares line, so the learned weights are checked against NumPy's lstsq.
  2. aleatoric: Dense(2) -> Normal(loc, 1e-3 + softplus(0.05 t)). The learned scale should track s(x).
  3. epistemic: DenseVariational(1, posterior_mean_field, prior_trainable, kl_weight=1/n) ->
     Normal(t, 1). Each call draws new weights; the spread of the predicted means is small inside
     the data and grows outside it.
  4. both: DenseVariational(2, ...) -> Normal(loc, 1e-3 + softplus(0.01 t)).

The code is the tutorial's with `tf_keras` -> `keras` and `tfp.layers` -> `tfvae.layers`; the
posterior and prior builders are the tutorial's (VariableLayer + DistributionLambda). One change
Keras 3 needs: the loss `negloglik` is wrapped in `tfvae.losses.DistributionLoss`, because Keras 3
converts the prediction to a tensor before a plain loss function sees it.
`run()` returns the numbers the checks use; `main()` prints them.
"""

import argparse
import json

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae

tfd = tfp.distributions
tfpl = tfvae.layers  # the tutorial's `tfpl`, now Keras 3

W0, B0 = 0.125, 5.0
X_RANGE = (-20.0, 60.0)


def noise_scale(x):
    """The true noise scale s(x) of the tutorial's data."""
    g = (x - X_RANGE[0]) / (X_RANGE[1] - X_RANGE[0])
    return 3 * (0.25 + g**2)


def load_dataset(n=150, n_test=150, seed=43):
    """The tutorial's data: `x: [n, 1]`, `y: [n]`, and a test grid `x_test: [n_test, 1]`."""
    rng = np.random.RandomState(seed)
    x = (X_RANGE[1] - X_RANGE[0]) * rng.rand(n) + X_RANGE[0]
    y = (W0 * x * (1.0 + np.sin(x)) + B0) + rng.randn(n) * noise_scale(x)
    x_test = np.linspace(*X_RANGE, num=n_test)
    return x[:, np.newaxis].astype(np.float32), y.astype(np.float32), x_test[:, np.newaxis].astype(np.float32)


def negloglik(y, distribution):
    """The tutorial's loss: -log p(y | x), one value per example.

    Keras 3 hands a plain loss function a tensor, so it goes in `tfvae.losses.DistributionLoss`.
    """
    return -distribution.log_prob(y)


# The tutorial's posterior and prior over the weights of DenseVariational.
def posterior_mean_field(kernel_size, bias_size=0, dtype=None):
    n = kernel_size + bias_size
    c = np.log(np.expm1(1.0))
    return keras.Sequential([
        tfpl.VariableLayer(2 * n, dtype=dtype),
        tfpl.DistributionLambda(lambda t: tfd.Independent(
            tfd.Normal(loc=t[..., :n], scale=1e-5 + tf.nn.softplus(c + t[..., n:])), reinterpreted_batch_ndims=1)),
    ])


def prior_trainable(kernel_size, bias_size=0, dtype=None):
    n = kernel_size + bias_size
    return keras.Sequential([
        tfpl.VariableLayer(n, dtype=dtype),
        tfpl.DistributionLambda(lambda t: tfd.Independent(tfd.Normal(loc=t, scale=1), reinterpreted_batch_ndims=1)),
    ])


def build_model(case, n):
    """The tutorial's model for `case` (1-4)."""
    if case == 1:
        head = [keras.layers.Dense(1), tfpl.DistributionLambda(lambda t: tfd.Normal(loc=t[..., 0], scale=1))]
    elif case == 2:
        head = [keras.layers.Dense(2), tfpl.DistributionLambda(
            lambda t: tfd.Normal(loc=t[..., 0], scale=1e-3 + tf.math.softplus(0.05 * t[..., 1])))]
    elif case == 3:
        head = [tfpl.DenseVariational(1, posterior_mean_field, prior_trainable, kl_weight=1 / n),
                tfpl.DistributionLambda(lambda t: tfd.Normal(loc=t[..., 0], scale=1))]
    elif case == 4:
        head = [tfpl.DenseVariational(2, posterior_mean_field, prior_trainable, kl_weight=1 / n),
                tfpl.DistributionLambda(lambda t: tfd.Normal(loc=t[..., 0], scale=1e-3 + tf.math.softplus(0.01 * t[..., 1])))]
    else:
        raise ValueError(f"`case` must be 1, 2, 3 or 4; received {case!r}.")
    return keras.Sequential([keras.Input((1,)), *head])


def fit(model, x, y, steps, learning_rate):
    """Full-batch Adam for `steps` steps (the tutorial: 1000 epochs of 150 examples at lr 0.01 to 0.1)."""
    model.compile(keras.optimizers.Adam(learning_rate), loss=tfvae.losses.DistributionLoss(negloglik), steps_per_execution=50,
                  jit_compile=True)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)


def run(quick=False, seed=0):
    """Trains the four cases; returns the numbers that show each behaves as the tutorial says."""
    keras.utils.set_random_seed(seed)
    x, y, x_test = load_dataset()
    n = x.shape[0]
    scale = 3 if quick else 1  # quick: fewer, larger steps
    results = {}

    model = build_model(1, n)
    fit(model, x, y, steps=3000 // scale, learning_rate=0.01 * scale)
    kernel, bias = (w.numpy().ravel()[0] for w in model.layers[0].weights)
    (slope, intercept), *_ = np.linalg.lstsq(np.c_[x, np.ones_like(x)], y, rcond=None)
    results["case1"] = {"slope": float(kernel), "intercept": float(bias), "lstsq_slope": float(slope),
                        "lstsq_intercept": float(intercept)}

    model = build_model(2, n)
    fit(model, x, y, steps=3000 // scale, learning_rate=0.05 * scale)
    learned = model(x_test).stddev().numpy()
    true = noise_scale(x_test[:, 0])
    results["case2"] = {"scale_correlation": float(np.corrcoef(learned, true)[0, 1]),
                        "scale_mean_relative_error": float(np.mean(np.abs(learned - true) / true))}

    for case in (3, 4):
        model = build_model(case, n)
        fit(model, x, y, steps=3000 // scale, learning_rate=0.05 * scale)
        inside, outside = np.array([[20.0]], np.float32), np.array([[150.0]], np.float32)
        means = np.array([[model(point).mean().numpy()[0] for point in (inside, outside)] for _ in range(100)])
        results[f"case{case}"] = {"mean_spread_inside": float(means[:, 0].std()), "mean_spread_outside": float(means[:, 1].std()),
                                  "loss": float(np.mean(negloglik(y, model(x))))}
        if case == 4:
            scales = model(x_test).stddev().numpy()
            results["case4"]["scale_at_start"], results["case4"]["scale_at_end"] = float(scales[0]), float(scales[-1])
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a third of the steps at three times the learning rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, args.seed), indent=2))


if __name__ == "__main__":
    main()
