"""One-hot categorical outputs: classifiers that return a distribution, and mixtures of them.

    one_hot_categorical                       OneHotCategorical                       d logits
    categorical_mixture_of_one_hot_categorical CategoricalMixtureOfOneHotCategorical  k logits + k d logits

For d classes with logits l (a sample is a one-hot vector x of length d):

    p(x = e_j) = softmax(l)_j,   log p(x) = sum_j x_j log softmax(l)_j

A mixture of k such distributions, with mixture logits a and component
logits l_1, ..., l_k (the layout of `tfvae.layers.mixture`), is again a
categorical distribution:

    p(x = e_j) = sum_k softmax(a)_k softmax(l_k)_j
    log p(x = e_j) = logsumexp_k (log softmax(a)_k + log softmax(l_k)_j)

Conversions (`convert_to_tensor_fn`). `OneHotCategorical` has all of TFP's:
"mean" (the default; the class probabilities softmax(l)), "mode" (the
one-hot most likely class), "sample", "stddev", "variance" (p (1 - p)). The
mixture has "mean" (its class probabilities, as TFP's layer sets it),
"sample", "variance" and "stddev" from `tfd.MixtureSameFamily`, and, beyond
TFP (where a mixture has no mode), "mode": the one-hot most likely class of
the mixture's probabilities. Its distribution also has TFP's `log_mean()`,
the log of the mean, computed with `logsumexp`.

Samples (and "mode") have `sample_dtype`, by default the parameters' float
dtype (so a one-hot sample feeds a network); probabilities are always float.
"""

import functools

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.layers.checks import check_event_size, check_positive_int, check_sample_dtype
from tfvae.layers.distribution import SERIALIZATION_PACKAGE, DistributionLayer, reshape_params, with_validation
from tfvae.layers.mixture import MixtureSameFamily, mixture_parts

tfd = tfp.distributions


def one_hot_categorical(params, event_size, sample_dtype=None):
    """One-hot categorical over `event_size` classes from logits `params: [batch, event_size]`.

    Samples have `sample_dtype`, by default the logits' dtype. Batch shape
    `[batch]`, event shape `[event_size]`.
    """
    logits = reshape_params(params, [event_size])
    return tfd.OneHotCategorical(logits=logits, dtype=sample_dtype or logits.dtype)


class OneHotCategoricalMixture(tfd.MixtureSameFamily):
    """A `tfd.MixtureSameFamily` of one-hot categoricals, with a mode and TFP's `log_mean()`.

    Batch shape `[batch]`, event shape `[d]`; `mean()` is the class
    probabilities `sum_k pi_k softmax(l_k)`, `[batch, d]`.
    """

    def log_mean(self, name="log_mean"):
        """log p(x = e_j) for every class j: `logsumexp_k (log pi_k + log softmax(l_k)_j)`, `[batch, d]`."""
        with tf.name_scope(name):
            log_mixture = tf.math.log_softmax(self.mixture_distribution.logits_parameter(), axis=-1)  # [batch, k]
            log_components = tf.math.log_softmax(self.components_distribution.logits_parameter(), axis=-1)
            return tf.reduce_logsumexp(log_mixture[..., tf.newaxis] + log_components, axis=-2)

    def _mode(self):
        # The most likely class of the mixture, one-hot; ties go to the first, as for tfd.OneHotCategorical.
        log_mean = self.log_mean()
        return tf.one_hot(tf.argmax(log_mean, axis=-1), tf.shape(log_mean)[-1], dtype=self.dtype)


def categorical_mixture_of_one_hot_categorical(params, event_size, num_components, sample_dtype=None):
    """Mixture of k one-hot categoricals over d classes from `params: [batch, k (1 + d)]`.

    k mixture logits, then component 1's d logits, ..., component k's.
    Returns a `OneHotCategoricalMixture` with batch shape `[batch]`, event
    shape `[event_size]`.
    """
    make_components = functools.partial(one_hot_categorical, event_size=event_size, sample_dtype=sample_dtype)
    mixture, components = mixture_parts(params, num_components, make_components)
    return OneHotCategoricalMixture(mixture, components)


_SAMPLE_TYPED = (tfd.Distribution.sample, tfd.Distribution.mode)


class _OneHotLayer(DistributionLayer):
    """Shared by the one-hot layers: `event_size`, `sample_dtype` and the output spec's dtype."""

    def __init__(self, event_size, convert_to_tensor_fn="mean", sample_dtype=None, validate_args=False, **kwargs):
        super().__init__(convert_to_tensor_fn=convert_to_tensor_fn, validate_args=validate_args, **kwargs)
        self.event_size = check_event_size(event_size)
        self.event_shape = (self.event_size,)
        self.sample_dtype = check_sample_dtype(sample_dtype)

    def compute_output_spec(self, inputs):
        if self.convert_to_tensor_fn in _SAMPLE_TYPED and self.sample_dtype is not None:
            return keras.KerasTensor((inputs.shape[0], self.event_size), dtype=self.sample_dtype)
        return super().compute_output_spec(inputs)

    def get_config(self):
        return {**super().get_config(), "event_size": self.event_size, "sample_dtype": self.sample_dtype}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class OneHotCategorical(_OneHotLayer):
    """Categorical over d classes, one-hot: a classifier whose output is a distribution.

    Args:
      event_size: int d, the number of classes.
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor (`predict`, a layer stacked on it): "mean" (the default, the
        class probabilities; TFP draws a "sample"), "mode", "sample",
        "stddev", "variance", or a callable.
      sample_dtype: dtype of samples and of the mode; None: the parameters'
        float dtype, as in TFP.
      validate_args: check parameters and values (one-hot samples) at run
        time (slower).

    Input `[batch, d]` logits l; output a `tfd.OneHotCategorical` with batch
    shape `[batch]`, event shape `[d]`, over the one-hot vectors e_1, ..., e_d:

        p(y = e_j | x) = softmax(l)_j,   log p(y | x) = sum_j y_j log softmax(l)_j

    with mean softmax(l) (the class probabilities) and variance
    softmax(l) (1 - softmax(l)) per class.

    Example:

        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(OneHotCategorical.params_size(3)),
                                  OneHotCategorical(3)])
        model.compile("adam", loss=tfvae.losses.NegativeLogLikelihood())
        x = np.random.normal(size=(256, 2)).astype("float32")
        y = np.eye(3, dtype="float32")[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)]  # [256, 3] one-hot
        model.fit(x, y, epochs=2, verbose=0)
        probabilities = model.predict(x, verbose=0)  # [256, 3], the mean softmax(l)
        assert probabilities.shape == (256, 3) and np.allclose(probabilities.sum(-1), 1, atol=1e-5)
    """

    @staticmethod
    def params_size(event_size, name=None):
        """Parameters per example: one logit per class, `event_size`."""
        return check_event_size(event_size)

    @staticmethod
    def new(params, event_size, dtype=None, validate_args=False, name=None):
        """The distribution for logits `params: [batch, event_size]`, as TFP's `new` (`dtype`: of samples)."""
        event_size = check_event_size(event_size)
        distribution = one_hot_categorical(tf.convert_to_tensor(params), event_size, check_sample_dtype(dtype, argument="dtype"))
        return with_validation(distribution) if validate_args else distribution

    def make_distribution(self, params):
        return one_hot_categorical(params, self.event_size, self.sample_dtype)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class CategoricalMixtureOfOneHotCategorical(_OneHotLayer):
    """Mixture of k one-hot categoricals over d classes, from `k (1 + d)` parameters.

    Args:
      event_size: int d, the number of classes.
      num_components: int k >= 1 (k = 1 is a `OneHotCategorical`, slower).
      convert_to_tensor_fn: what the distribution becomes where Keras needs a
        tensor (`predict`, a layer stacked on it): "mean" (the default, the
        class probabilities; TFP draws a "sample"), "mode", "sample",
        "stddev", "variance", or a callable.
      sample_dtype: dtype of samples and of the mode; None: the parameters'
        float dtype, as in TFP.
      validate_args: check parameters and values (one-hot samples) at run
        time (slower).

    Input `[batch, k (1 + d)]`: k mixture logits a, then each component's d
    logits l_k; output a `OneHotCategoricalMixture` with batch shape
    `[batch]`, event shape `[d]` (the module docstring has the details):

        p(y = e_j | x) = sum_k softmax(a)_k softmax(l_k)_j

    Example:

        model = keras.Sequential([
            keras.Input((2,)),
            keras.layers.Dense(CategoricalMixtureOfOneHotCategorical.params_size(3, 2)),
            CategoricalMixtureOfOneHotCategorical(3, 2),
        ])
        model.compile("adam", loss=tfvae.losses.NegativeLogLikelihood())
        x = np.random.normal(size=(64, 2)).astype("float32")
        y = np.eye(3, dtype="float32")[np.random.randint(3, size=64)]  # [64, 3] one-hot
        model.fit(x, y, epochs=1, verbose=0)
        assert np.allclose(model(x).mean().numpy().sum(-1), 1, atol=1e-5)  # class probabilities
    """

    def __init__(self, event_size, num_components, convert_to_tensor_fn="mean", sample_dtype=None, validate_args=False,
                 **kwargs):
        super().__init__(event_size, convert_to_tensor_fn, sample_dtype, validate_args, **kwargs)
        self.num_components = check_positive_int("num_components", num_components)

    @staticmethod
    def params_size(event_size, num_components, name=None):
        """Parameters per example: `num_components * (1 + event_size)`, as TFP's."""
        return MixtureSameFamily.params_size(num_components, OneHotCategorical.params_size(event_size))

    @staticmethod
    def new(params, event_size, num_components, dtype=None, validate_args=False, name=None):
        """The mixture for `params: [batch, k (1 + d)]`, as TFP's `new` (`dtype`: of samples; TFP ignored it)."""
        event_size = check_event_size(event_size)
        distribution = categorical_mixture_of_one_hot_categorical(
            tf.convert_to_tensor(params), event_size, check_positive_int("num_components", num_components),
            check_sample_dtype(dtype, argument="dtype"))
        return with_validation(distribution) if validate_args else distribution

    @property
    def num_params(self):
        return self.params_size(self.event_size, self.num_components)

    def make_distribution(self, params):
        return categorical_mixture_of_one_hot_categorical(params, self.event_size, self.num_components, self.sample_dtype)

    def get_config(self):
        return {**super().get_config(), "num_components": self.num_components}
