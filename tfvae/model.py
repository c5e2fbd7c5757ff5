"""`tfvae.VAE`: a Keras model that trains an encoder and decoder on the ELBO.

    vae = tfvae.VAE(encoder, decoder)          # q(z|x) and p(x|z) Keras models
    vae.compile(optimizer="adam")
    vae.fit(dataset, epochs=10)                # yields x or (x, anything)

The bound itself lives in `tfvae.bounds`; this module only draws the latent
sample, calls the encoder, decoder and prior, and applies gradients.
"""

import copy
import random

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import bounds
from tfvae import export as export_lib
from tfvae.layers import SERIALIZATION_PACKAGE
from tfvae.priors import StandardNormal

METRIC_NAMES = ("loss", "elbo", "reconstruction", "kl")


class MeanTerms(keras.metrics.Metric):
    """Running per-example means of several terms, kept in one variable.

    Logs one mean per name, like a `keras.metrics.Mean` per term, but with a
    single `[num_terms]` total and one count: two variable updates per step
    instead of two per term. With the four ELBO terms this makes a small
    model's training step about 10% faster on CPU
    (scripts/benchmark_throughput.py).
    """

    def __init__(self, names, name="terms", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.names = tuple(names)
        self.total = self.add_variable(shape=(len(self.names),), initializer="zeros", dtype=self.dtype, name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="count")

    def update_state(self, values):
        """Adds one `[batch]` tensor per name, in the order of `names`."""
        values = tf.cast(tf.stack(values), self.dtype)  # [num_terms, batch]
        self.total.assign_add(tf.reduce_sum(values, axis=1))
        self.count.assign_add(tf.cast(tf.shape(values)[1], self.dtype))

    def reset_state(self):
        self.total.assign(tf.zeros_like(self.total))
        self.count.assign(0.0)

    def result(self):
        """`{name: mean}`, the means of the examples seen since the last reset."""
        return dict(zip(self.names, tf.unstack(tf.math.divide_no_nan(self.total, self.count))))

    def get_config(self):
        return {"names": list(self.names), "name": self.name, "dtype": self.dtype}


def _in_multi_worker_mode(strategy):
    """True under a MultiWorkerMirroredStrategy whose cluster has several workers."""
    in_multi_worker_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        in_multi_worker_mode and in_multi_worker_mode()
    )


def _binary(x, elementwise=False):
    values = tf.logical_or(tf.equal(x, 0), tf.equal(x, 1))
    return values if elementwise else tf.reduce_all(values)


def _finite(x, elementwise=False):
    values = tf.math.is_finite(x)
    return values if elementwise else tf.reduce_all(values)


# What data each likelihood family accepts, checked before fit and evaluate.
SUPPORT_CHECKS = {
    tfp.distributions.Bernoulli: (_binary, "0 or 1"),
    tfp.distributions.Normal: (_finite, "finite numbers"),
}
OBJECTIVES = ("elbo", "iwae")


def _latent_dim_of(model, where):
    """The last dimension of a Functional model's first input or output, or None."""
    tensors = getattr(model, where, None)
    if not tensors:
        return None
    return tensors[0].shape[-1]


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class VAE(keras.Model):
    """A variational autoencoder trained by maximising the (beta-)ELBO.

    Args:
      encoder: Keras model mapping `x: [batch, *event_shape]` to q(z|x), a
        distribution with batch shape `[batch]`, event shape `[latent_dim]`.
      decoder: Keras model mapping `z: [batch, latent_dim]` to p(x|z), batch
        shape `[batch]`, event shape `event_shape`.
      prior: a `tfvae.priors.Prior`; defaults to `StandardNormal(latent_dim)`.
      beta: weight > 0 of the KL term in the training loss (1 = the ELBO).
      kl: "auto" (closed form when TFP has one, else Monte Carlo), "analytic"
        (an error when no closed form exists) or "monte_carlo".
      seed: int seeding the latent samples; None draws one from Python's
        `random`, which `keras.utils.set_random_seed` seeds.
      objective: "elbo" (the default) or "iwae", the importance-weighted
        bound L_k of Burda et al. (2015) with k = `num_samples`.
      num_samples: samples z ~ q(z|x) per example and step, k >= 1; with
        the ELBO, its terms average over them.
      check_support: before `fit` and `evaluate`, refuse data outside the
        likelihood's support, e.g. grey values for a Bernoulli likelihood.
        False trains on them anyway (the relaxation some examples use).

    The training loss per example is reconstruction + beta * kl for the
    ELBO and -L_k for IWAE (beta must then be 1). Logged
    metrics, per example in nats: `loss`, `elbo`, `reconstruction`
    (-E_q log p(x|z)) and `kl`. Calling the model on `x` returns the mean
    reconstruction (see `reconstruct`), so `predict` gives reconstructions.
    """

    def __init__(
        self,
        encoder,
        decoder,
        prior=None,
        beta=1.0,
        kl="auto",
        seed=None,
        objective="elbo",
        num_samples=1,
        check_support=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        posterior_dim = _latent_dim_of(encoder, "outputs")
        decoder_dim = _latent_dim_of(decoder, "inputs")
        if posterior_dim is not None and decoder_dim is not None and posterior_dim != decoder_dim:
            raise ValueError(
                f"The encoder's latent size is {posterior_dim} (its output "
                f"{encoder.outputs[0].shape}) but the decoder's is {decoder_dim} (its input "
                f"{decoder.inputs[0].shape}); they must be equal."
            )
        latent_dim = posterior_dim or decoder_dim
        if prior is None:
            if latent_dim is None:
                raise ValueError(
                    "`prior` is required when the latent size cannot be read from a "
                    "Functional encoder or decoder."
                )
            prior = StandardNormal(latent_dim)
        if latent_dim is not None and prior.latent_dim != latent_dim:
            raise ValueError(
                f"The prior's latent_dim is {prior.latent_dim} but the encoder and "
                f"decoder use {latent_dim}."
            )
        if not isinstance(beta, (int, float)) or not beta > 0:
            raise ValueError(f"`beta` must be a number > 0; received {beta!r}.")
        if kl not in bounds.KL_METHODS:
            raise ValueError(f"`kl` must be one of {bounds.KL_METHODS}; received {kl!r}.")
        if objective not in OBJECTIVES:
            raise ValueError(f"`objective` must be one of {OBJECTIVES}; received {objective!r}.")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"`num_samples` must be an int >= 1; received {num_samples!r}.")
        if objective == "iwae" and beta != 1:
            raise ValueError(f"The IWAE objective has no KL weight: `beta` must be 1 with objective='iwae'; received {beta!r}.")
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.latent_dim = prior.latent_dim
        self.beta = float(beta)
        self.kl = kl
        self.objective = objective
        self.num_samples = num_samples
        self.check_support = bool(check_support)
        self.seed = random.randint(0, 2**31 - 1) if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.terms_tracker = MeanTerms(METRIC_NAMES)
        self._kl_method = None
        if getattr(encoder, "inputs", None):
            # Resolve the KL method now, so a bad `kl` fails before training.
            example = tf.zeros([1, *encoder.inputs[0].shape[1:]], encoder.inputs[0].dtype)
            self._resolve_kl_method(self.encode(example))
        self.built = True

    # Public API ---------------------------------------------------------------

    def encode(self, x, training=False):
        """q(z|x) for `x: [batch, *event_shape]`; batch shape `[batch]`."""
        return self.encoder(x, training=training)

    def decode(self, z, training=False):
        """p(x|z) for `z: [batch, latent_dim]`; batch shape `[batch]`."""
        return self.decoder(z, training=training)

    def elbo(self, x, seed=None, num_samples=1):
        """ELBO estimate per example from `num_samples` samples, `[batch]`, in nats."""
        return self.elbo_terms(x, seed=seed, num_samples=num_samples).elbo

    def elbo_terms(self, x, seed=None, num_samples=1, training=False):
        """`tfvae.bounds.ElboTerms` (elbo, reconstruction, kl), each `[batch]`."""
        return self._bound_terms(x, seed, num_samples, training, with_log_weights=False)[0]

    def log_likelihood(self, x, num_samples=5000, chunk_size=100, seed=None):
        """Importance-weighted estimate L_k of log p(x) per example, `[batch]`, in nats.

        The bound of Burda et al. (2015) with k = `num_samples`; a lower bound
        on log p(x) that tightens as k grows. Samples are drawn and decoded
        `chunk_size` at a time, so memory holds `chunk_size * batch` decoded
        images whatever k is.
        """
        for name, value in (("num_samples", num_samples), ("chunk_size", chunk_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1; received {value!r}.")
        x = tf.convert_to_tensor(x)
        seed = tf.cast(self.seed_generator.next() if seed is None else seed, tf.int32)
        chunk_totals = []
        for index, start in enumerate(range(0, num_samples, chunk_size)):
            chunk_seed = tf.random.experimental.stateless_fold_in(seed, index)
            chunk_totals.append(self._chunk_logsumexp(x, chunk_seed, min(chunk_size, num_samples - start)))
        return bounds.importance_weighted_bound_from_chunks(tf.stack(chunk_totals), num_samples)

    @tf.function(reduce_retracing=True)
    def _chunk_logsumexp(self, x, seed, num_samples):
        """logsumexp of the log weights of `num_samples` new samples, `[batch]`."""
        posterior = self.encode(x)
        latent_samples = self._sample_latents(posterior, seed, num_samples)
        log_weights = bounds.log_importance_weights(
            self._log_likelihood_at(x, latent_samples), posterior, self.prior.distribution(), latent_samples
        )
        return tf.reduce_logsumexp(log_weights, axis=0)

    def _bound_terms(self, x, seed, num_samples, training, with_log_weights):
        """ElboTerms of one draw and, if asked, its log importance weights `[num_samples, batch]`.

        The weights cost two more log-densities per sample: only IWAE needs them.
        """
        x = tf.convert_to_tensor(x)
        posterior = self.encode(x, training=training)
        seed = self.seed_generator.next() if seed is None else seed
        latent_samples = self._sample_latents(posterior, seed, num_samples)
        log_likelihood = self._log_likelihood_at(x, latent_samples, training)
        prior = self.prior.distribution()
        terms = bounds.elbo_terms(log_likelihood, posterior, prior, latent_samples, self._resolve_kl_method(posterior))
        if not with_log_weights:
            return terms, None
        return terms, bounds.log_importance_weights(log_likelihood, posterior, prior, latent_samples)

    def _log_likelihood_at(self, x, latent_samples, training=False):
        """log p(x|z) for `latent_samples: [k, batch, latent_dim]`, `[k, batch]`.

        Decodes all k * batch latents in one call of the decoder.
        """
        if latent_samples.shape[0] == 1:  # the common case: no copies of x
            likelihood = self.decode(latent_samples[0], training=training)
            return likelihood.log_prob(tf.cast(x, likelihood.dtype))[tf.newaxis]
        num_samples, batch = tf.shape(latent_samples)[0], tf.shape(latent_samples)[1]
        likelihood = self.decode(tf.reshape(latent_samples, [-1, self.latent_dim]), training=training)
        x = tf.cast(x, likelihood.dtype)
        x_per_sample = tf.broadcast_to(x[tf.newaxis], tf.concat([[num_samples], tf.shape(x)], axis=0))
        x_per_sample = tf.reshape(x_per_sample, tf.concat([[-1], tf.shape(x)[1:]], axis=0))
        return tf.reshape(likelihood.log_prob(x_per_sample), [num_samples, batch])

    def sample(self, num_samples, seed=None, mean=True):
        """Draws `num_samples` images, `[num_samples, *event_shape]`.

        `num_samples` is an int, or a scalar int tensor in traced code.

        z ~ p(z), then the mean of p(x|z) (`mean=True`, e.g. pixel
        probabilities for a Bernoulli likelihood) or a draw x ~ p(x|z).
        """
        if not tf.is_tensor(num_samples) and (not isinstance(num_samples, int) or num_samples < 1):
            raise ValueError(f"`num_samples` must be an int >= 1; received {num_samples!r}.")
        seed = self.seed_generator.next() if seed is None else seed
        prior_seed, likelihood_seed = tf.unstack(tf.random.split(tf.cast(seed, tf.int32)))
        z = self.prior.distribution().sample(num_samples, seed=prior_seed)
        likelihood = self.decode(z)
        return likelihood.mean() if mean else likelihood.sample(seed=likelihood_seed)

    def reconstruct(self, x):
        """The mean of p(x|z) at the posterior mean z, `[batch, *event_shape]`."""
        return self.decode(self.encode(x).mean()).mean()

    def call(self, x, training=False):
        return self.decode(self.encode(x, training=training).mean(), training=training).mean()

    def export(self, filepath, overwrite=False):
        """Writes a TF Serving SavedModel with the `tfvae.export` signatures.

        Replaces `keras.Model.export`: the SavedModel holds the encode, decode,
        reconstruct, sample and elbo signatures and needs neither tfvae nor
        TensorFlow Probability to load. Returns the path written.
        """
        return export_lib.export(self, filepath, overwrite=overwrite)

    # Training -----------------------------------------------------------------

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit`, after checking the first batch (see `check_input`)."""
        self.check_input(x)
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        """`keras.Model.evaluate`, after checking the first batch (see `check_input`)."""
        self.check_input(x)
        return super().evaluate(x, *args, **kwargs)

    def check_input(self, data):
        """Raises ValueError, before any work, if `data` cannot train this model.

        Looks at the first batch of a `tf.data.Dataset` (or all of an array):
        it must not be empty, must be numeric with the encoder's input shape
        after the batch axis, and (with `check_support`) must lie in the
        likelihood's support.
        """
        if data is None:
            return
        if isinstance(data, tf.data.Dataset):
            first = next(iter(data.take(1)), None)
            if first is None:
                raise ValueError("The dataset `x` is empty: it yields no batch.")
            x = self._unpack(first)
        else:
            x = self._unpack(data) if isinstance(data, tuple) else data
        if isinstance(x, dict) or not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise ValueError(f"`x` must be a tensor or array of images; received {type(x).__name__}.")
        expected = tuple(self.encoder.inputs[0].shape[1:]) if getattr(self.encoder, "inputs", None) else None
        received = tuple(x.shape[1:])
        if expected is not None and received != expected:
            raise ValueError(f"`x` must have shape [batch, {', '.join(map(str, expected))}]; received {tuple(x.shape)}.")
        if x.shape[0] == 0:
            raise ValueError("`x` is empty: it holds no example.")
        dtype = tf.as_dtype(x.dtype)
        if not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
            raise ValueError(f"`x` must hold numbers; received dtype {dtype.name}.")
        if self.check_support:
            self._check_support(tf.cast(x, self.compute_dtype))

    def _check_support(self, x):
        likelihood = self.decode(tf.zeros([1, self.latent_dim], self.compute_dtype))
        family = type(getattr(likelihood, "distribution", likelihood))
        for base, (in_support, description) in SUPPORT_CHECKS.items():
            if issubclass(family, base) and not bool(in_support(x)):
                outside = tf.boolean_mask(tf.reshape(x, [-1]), ~tf.reshape(in_support(x, elementwise=True), [-1]))
                raise ValueError(
                    f"`x` holds values outside the {base.__name__} likelihood's support ({description}), e.g. "
                    f"{float(outside[0])}. Binarize the data, or pass check_support=False to train on them anyway."
                )

    @property
    def metrics(self):
        return [self.terms_tracker]

    def _per_example_loss(self, terms, log_weights):
        if self.objective == "iwae":
            return -bounds.importance_weighted_bound(log_weights)
        return terms.reconstruction + self.beta * terms.kl

    def train_step(self, data):
        x = self._unpack(data)
        with tf.GradientTape() as tape:
            terms, log_weights = self._bound_terms(
                x, None, self.num_samples, training=True, with_log_weights=self.objective == "iwae"
            )
            per_example_loss = self._per_example_loss(terms, log_weights)
            # Sum over the local batch divided by the *global* batch size, so that
            # the gradients that tf.distribute sums over replicas are the
            # gradient of the global mean.
            loss = tf.nn.compute_average_loss(per_example_loss)
            if self.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._update_metrics(terms, per_example_loss)

    def test_step(self, data):
        terms, log_weights = self._bound_terms(
            self._unpack(data), None, self.num_samples, training=False, with_log_weights=self.objective == "iwae"
        )
        return self._update_metrics(terms, self._per_example_loss(terms, log_weights))

    def _update_metrics(self, terms, per_example_loss):
        self.terms_tracker.update_state([per_example_loss, terms.elbo, terms.reconstruction, terms.kl])  # METRIC_NAMES
        logs = self.terms_tracker.result()
        if _in_multi_worker_mode(self.distribute_strategy):
            # Keras 3 reduces logs across workers with `reduce(MEAN, axis=0)`,
            # which fails on scalars (tensorflow/tensorflow#72388); one-element
            # logs are averaged over the workers and come back as scalars.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    @staticmethod
    def _unpack(data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return x

    def _resolve_kl_method(self, posterior):
        if self._kl_method is None:
            self._kl_method = bounds.resolve_kl_method(self.kl, posterior, self.prior.distribution())
        return self._kl_method

    @staticmethod
    def _sample_latents(posterior, seed, num_samples=1):
        """Reparameterised z ~ q(z|x), `[num_samples, batch, latent_dim]`.

        Under tf.distribute each replica draws the noise of the whole global
        batch from the shared seed and keeps its own block, so replicas use
        independent noise and a run on N replicas sees exactly the noise of
        a run on one device with the same global batch. (When a final, smaller
        batch is split unevenly, replicas may share some noise values in that
        one step; the estimate stays unbiased.)
        """
        seed = tf.cast(seed, tf.int32)
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return posterior.sample(num_samples, seed=seed)
        samples = posterior.sample([num_samples, context.num_replicas_in_sync], seed=seed)
        return tf.gather(samples, context.replica_id_in_sync_group, axis=1)

    # Serialization ------------------------------------------------------------

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "prior": keras.saving.serialize_keras_object(self.prior),
            "beta": self.beta,
            "kl": self.kl,
            "seed": self.seed,
            "objective": self.objective,
            "num_samples": self.num_samples,
            "check_support": self.check_support,
        }

    @classmethod
    def from_config(cls, config):
        # Keras' deserialization edits nested configs in place; keep the caller's.
        config = copy.deepcopy(config)
        for key in ("encoder", "decoder", "prior"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
