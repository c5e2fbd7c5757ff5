"""`tfvae.VAE`: a Keras model that trains an encoder and decoder on the ELBO.

    vae = tfvae.VAE(encoder, decoder)          # q(z|x) and p(x|z) Keras models
    vae.compile(optimizer="adam")
    vae.fit(dataset, epochs=10)                # yields x, (x, y) or (x, y, sample_weight)

A conditional VAE (Sohn et al., 2015; Kingma et al., 2014's M2 with every
label observed) is the same model with `num_classes=N`: the encoder is
q(z|x, y), the decoder p(x|z, y), both Keras models on `[input, one_hot]`,
the prior stays p(z), and the ELBO is the bound on log p(x|y):

    vae = tfvae.VAE(encoder, decoder, num_classes=10)
    vae.fit(images, labels)                    # or a dataset of (x, labels)
    vae.sample(16, labels=7)                   # sixteen sevens

The bound itself lives in `tfvae.bounds`; this module only draws the latent
samples, calls the encoder, decoder and prior, and applies gradients.
"""

import copy

import keras
import tensorflow as tf

from tfvae import bounds, inputs, seeds
from tfvae.layers import SERIALIZATION_PACKAGE, check_positive_int
from tfvae.layers.checks import check_num_elements
from tfvae.models import arguments
from tfvae.models import labels as labels_lib
from tfvae.models.metrics import METRIC_NAMES, MeanTerms
from tfvae.models.non_finite import (
    FirstNonFiniteStep,
    NonFiniteLossError,
    StopOnNonFiniteLoss,
    apply_gradients_while_finite,
    record_non_finite_step,
)
from tfvae.models.sampling import reparameterized_sample


def _is_multi_worker(strategy):
    """True under a MultiWorkerMirroredStrategy whose cluster has several workers."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec()
    return sum(cluster.num_tasks(job) for job in cluster.jobs if job in ("chief", "worker")) > 1


def _target_for_sample_weight(x, y, sample_weight):
    """`y`, or a placeholder target when `sample_weight` comes without one.

    Keras drops the `sample_weight` of arrays passed without `y`; a VAE has no
    target, so it passes zeros (one per example) for Keras to carry the weights.
    """
    if y is None and sample_weight is not None and hasattr(x, "shape"):
        return tf.zeros([x.shape[0]])
    return y


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class VAE(keras.Model):
    """A variational autoencoder trained by maximising the (beta-)ELBO or L_k.

    Args:
      encoder: Keras model mapping `x: [batch, *event_shape]` to q(z|x), a
        distribution with batch shape `[batch]`, event shape `[latent_dim]`.
      decoder: Keras model mapping `z: [batch, latent_dim]` to p(x|z), batch
        shape `[batch]`, event shape `event_shape`.
      prior: a `tfvae.priors.Prior`; defaults to `StandardNormal(latent_dim)`.
      beta: weight > 0 of the KL term in the training loss (1 = the ELBO).
      kl_warmup_steps: int >= 0. With N > 0, the KL weight of training step t
        rises linearly from beta / N to beta over the first N steps
        (`tfvae.bounds.warmed_up_beta`, from the optimizer's step count, so a
        resumed run continues where it was). 0: beta throughout. The ELBO
        objective only.
      free_bits: lambda >= 0 in nats per latent dimension (Kingma et al.,
        2016): the training loss's KL term is sum_j max(lambda, E_batch KL_j)
        (`tfvae.bounds.free_bits_kl`), so that a latent dimension carrying
        less than lambda nats costs lambda and is free to start being used.
        Needs a diagonal Gaussian posterior and prior; the ELBO objective
        only. The logged `kl` and `elbo` stay the true ones. 0: off.
      kl: "auto" (closed form when TFP has one, else Monte Carlo), "analytic"
        (an error when no closed form exists) or "monte_carlo".
      seed: seeds the latent samples of training steps (`seed_generator`) and,
        through a second generator derived from it, of evaluation (`test_step`,
        and `elbo`, `sample`, `log_likelihood` without a seed): None
        (drawn from Python's `random`, which `keras.utils.set_random_seed`
        seeds), an int, a pair of ints or a `keras.random.SeedGenerator`
        (see `tfvae.seeds`).
      objective: "elbo" (the default) or "iwae", the importance-weighted
        bound L_k of Burda et al. (2015).
      k: samples z ~ q(z|x) per example and step, >= 1: the k of L_k, or,
        with the ELBO, the number of samples its terms average over.
      check_support: before `fit` and `evaluate`, refuse data outside the
        likelihood's support, e.g. grey values for a Bernoulli likelihood.
        False trains on them anyway (the relaxation some examples use).
      stop_on_non_finite: `fit` stops after the first step whose loss is NaN
        or infinite, keeps the weights of the last finite step (that step
        applies no update) and raises `NonFiniteLossError` naming the epoch,
        the step and the last finite values. False lets Keras go on.
      keep_finite_weights: with `stop_on_non_finite`, the non-finite step and
        any later one of the same execution leave the weights unchanged, which
        costs 10-30% of a step on one CPU (BENCHMARKS.md). False lets them
        update the weights, as `tfvae train` does: it keeps the last good
        checkpoint instead; the stop and its error are the same.
      num_classes: None, or N >= 2 for a conditional VAE: `encoder` maps
        `[x, one_hot]` to q(z|x, y) and `decoder` `[z, one_hot]` to p(x|z, y),
        `one_hot: [batch, N]` float32; the prior stays p(z). `fit` and
        `evaluate` then read `(x, labels)` (or `(x, labels, sample_weight)`),
        and `encode`, `decode`, `reconstruct`, `elbo`, `elbo_terms`,
        `log_likelihood` (then log p(x|y)) and `sample` take `labels=`:
        int class indices `[batch]` or one-hot rows `[batch, N]` (rows of
        class probabilities, e.g. between two classes, work too). Labels are
        refused by an unconditional VAE, and required by a conditional one.

    The training loss per example is reconstruction + beta * kl (beta
    warmed up, with `kl_warmup_steps`) for the ELBO and -L_k for IWAE (beta must then be 1), weighted by the data's
    sample weights as Keras weighs its losses (`tfvae.bounds.average_loss`).
    Logged metrics, per example in nats: `loss`, `elbo`, `reconstruction`
    (-E_q log p(x|z)) and `kl`, plus any `compile(metrics=...)`, which compare
    the input x with the model's output. Calling the model on `x` returns the
    mean reconstruction (see `reconstruct`), so `predict` gives
    reconstructions.
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
        k=1,
        check_support=True,
        stop_on_non_finite=True,
        keep_finite_weights=True,
        kl_warmup_steps=0,
        free_bits=0.0,
        num_classes=None,
        **kwargs,
    ):
        if "num_samples" in kwargs:  # the name of `k` before tfvae 0.2, in saved configs
            k = kwargs.pop("num_samples")
        super().__init__(**kwargs)
        prior, num_classes = arguments.check_networks(encoder, decoder, prior, num_classes)
        arguments.check_objective(objective, k, beta, kl, kl_warmup_steps, free_bits)
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.num_classes = num_classes
        if hasattr(prior, "bind_encoder"):  # a prior made from the encoder (VampPrior)
            prior.bind_encoder(encoder)
        self.latent_dim = prior.latent_dim
        self.beta = float(beta)
        self.kl_warmup_steps = kl_warmup_steps
        self.free_bits = float(free_bits)
        self.kl = kl
        self.objective = objective
        self.k = k
        self.check_support = arguments.check_bool("check_support", check_support)
        self.stop_on_non_finite = arguments.check_bool("stop_on_non_finite", stop_on_non_finite)
        self.keep_finite_weights = arguments.check_bool("keep_finite_weights", keep_finite_weights)
        if isinstance(seed, keras.random.SeedGenerator):
            self.seed_generator = seed
            self.seed = seed.get_config()["seed"]
        else:
            self.seed = seeds.as_int(seed)
            self.seed_generator = keras.random.SeedGenerator(self.seed)
        # Evaluation draws its own seeds: validation, `evaluate`, `elbo` or
        # `sample` between training steps leave the training noise unchanged.
        self.evaluation_seed_generator = keras.random.SeedGenerator(seeds.as_int((self.seed, 1)))
        self.non_finite_guard = FirstNonFiniteStep()
        self._has_compiled_metrics = False
        self._kl_method = None
        # Stochastic layers whose KL terms are logged apart (`kl_z1`, ...): those of a posterior and prior with
        # `log_prob_parts` (two-layer chains, `tfvae.layers.latent_chain`); none for one layer.
        self.kl_layers = ()
        if getattr(encoder, "inputs", None):
            # Resolve the KL method now, so a bad `kl` (or free bits on a posterior without them) fails before training.
            example = tf.zeros([1, *encoder.inputs[0].shape[1:]], encoder.inputs[0].dtype)
            posterior = self._encode(example, self._example_one_hot())
            self._resolve_kl_method(posterior)
            if self.free_bits:
                bounds.kl_per_dimension(posterior, prior.distribution())  # raises unless both are diagonal
            if hasattr(posterior, "log_prob_parts") and hasattr(prior.distribution(), "log_prob_parts"):
                self.kl_layers = tuple(posterior.log_prob_parts(posterior.sample(seed=(0, 0))))
        self.terms_tracker = MeanTerms(METRIC_NAMES + tuple(f"kl_{name}" for name in self.kl_layers))
        self.built = True

    # Public API ---------------------------------------------------------------

    @property
    def kl_method(self):
        """How the KL term is computed: "analytic" or "monte_carlo" (`kl` resolved)."""
        return self._kl_method

    @property
    def input_shape_per_example(self):
        """The encoder's input shape after the batch axis, or None if unknown."""
        return tuple(self.encoder.inputs[0].shape[1:]) if getattr(self.encoder, "inputs", None) else None

    def encode(self, x, training=False, labels=None):
        """q(z|x) for `x: [batch, *event_shape]` (q(z|x, y) given `labels`); batch shape `[batch]`."""
        return self._encode(x, self.one_hot_labels(labels, x), training)

    def decode(self, z, training=False, labels=None):
        """p(x|z) for `z: [batch, latent_dim]` (p(x|z, y) given `labels`); batch shape `[batch]`."""
        return self._decode(z, self.one_hot_labels(labels, z), training)

    def _encode(self, x, one_hot, training=False):
        """q(z|x), or q(z|x, y) for float32 `one_hot: [batch, num_classes]` (None when unconditional)."""
        # Keras refuses a list mixing arrays and tensors: the labels are a tensor, so x becomes one.
        return self.encoder(x if one_hot is None else [tf.convert_to_tensor(x), one_hot], training=training)

    def _decode(self, z, one_hot, training=False):
        """p(x|z), or p(x|z, y) for float32 `one_hot: [batch, num_classes]` (None when unconditional)."""
        return self.decoder(z if one_hot is None else [tf.convert_to_tensor(z), one_hot], training=training)

    def _example_one_hot(self):
        """Class 0's one-hot row `[1, num_classes]` for one example's trial call; None when unconditional."""
        return None if self.num_classes is None else tf.one_hot([0], self.num_classes)

    def one_hot_labels(self, labels, x=None, argument="labels"):
        """`labels` as float32 one-hot rows `[batch, num_classes]`; None for an unconditional VAE.

        See `tfvae.models.labels.one_hot_labels` for what `labels` may be and
        what is checked; `x`, if given, is the batch they go with.

        Raises:
          ValueError: labels given to an unconditional VAE, missing for a
            conditional one, or not valid labels.
        """
        if self.num_classes is None:
            if labels is not None:
                raise ValueError(f"This VAE is unconditional (num_classes=None): `{argument}` must be None; received "
                                 f"{type(labels).__name__}. Build it with num_classes=N to condition on labels.")
            return None
        return labels_lib.one_hot_labels(labels, self.num_classes, x, argument)

    def elbo(self, x, seed=None, k=1, labels=None):
        """ELBO estimate per example from k samples, `[batch]`, in nats (a bound on log p(x|y) given `labels`)."""
        return self.elbo_terms(x, seed=seed, k=k, labels=labels).elbo

    def elbo_terms(self, x, seed=None, k=1, training=False, labels=None):
        """`tfvae.bounds.ElboTerms` (elbo, reconstruction, kl) from k samples, each `[batch]`.

        `seed` follows `tfvae.seeds`; None draws from the model's generator.
        `labels` (a conditional VAE's): see `one_hot_labels`.
        """
        check_positive_int("k", k)
        x = self._checked_images(x)
        one_hot = self.one_hot_labels(labels, x)
        self._check_samples_fit("k", k, x)
        return self._bound_terms(x, seeds.stateless(seed, self.evaluation_seed_generator), k, training, with_log_weights=False,
                                 one_hot=one_hot)[0]

    def log_likelihood(self, x, k=5000, chunk_size=100, seed=None, labels=None):
        """Importance-weighted estimate L_k of log p(x) per example, `[batch]`, in nats.

        The bound of Burda et al. (2015); a lower bound on log p(x) that
        tightens as k grows. Samples are drawn and decoded `chunk_size` at a
        time, so memory holds `chunk_size * batch` decoded images whatever k
        is. `seed` follows `tfvae.seeds`; chunk i uses the seed folded with i.
        With `labels` (a conditional VAE), the bound on log p(x|y).
        """
        check_positive_int("k", k)
        check_positive_int("chunk_size", chunk_size)
        x = self._checked_images(x)
        one_hot = self.one_hot_labels(labels, x)
        self._check_samples_fit("chunk_size", min(chunk_size, k), x)
        seed = seeds.stateless(seed, self.evaluation_seed_generator)
        chunk_totals = []
        for index, start in enumerate(range(0, k, chunk_size)):
            chunk_seed = tf.random.experimental.stateless_fold_in(seed, index)
            chunk_totals.append(self._chunk_logsumexp(x, chunk_seed, min(chunk_size, k - start), one_hot))
        return bounds.importance_weighted_bound_from_chunks(tf.stack(chunk_totals), k)

    @tf.function(reduce_retracing=True)
    def _chunk_logsumexp(self, x, seed, chunk_size, one_hot=None):
        """`bounds.chunk_logsumexp` of the log weights of `chunk_size` new samples, `[batch]`."""
        posterior = self._encode(x, one_hot)
        latent_samples = self._sample_latents(posterior, seed, chunk_size)
        log_weights = bounds.log_importance_weights(
            self._log_likelihood_at(x, latent_samples, one_hot=one_hot), posterior, self.prior.distribution(), latent_samples
        )
        return bounds.chunk_logsumexp(log_weights)

    def sample(self, num_images, seed=None, mean=True, labels=None):
        """Draws `num_images` images, `[num_images, *event_shape]`.

        `num_images` is an int, or a scalar int tensor in traced code. `seed`
        follows `tfvae.seeds`. z ~ p(z), then the mean of p(x|z)
        (`mean=True`, e.g. pixel probabilities for a Bernoulli likelihood) or
        a draw x ~ p(x|z). A conditional VAE draws from p(x|z, y) for
        `labels`: one int class for all images, or per image int indices
        `[num_images]` or one-hot rows `[num_images, num_classes]`.
        """
        arguments.check_num_images(num_images, self._image_shape())
        one_hot = self.one_hot_labels(labels_lib.labels_per_image(labels, num_images, self.num_classes))
        if one_hot is not None and not tf.is_tensor(num_images) and one_hot.shape[0] not in (None, num_images):
            raise ValueError(f"`labels` must hold one label per image: num_images={num_images}, received "
                             f"{one_hot.shape[0]} labels.")
        seed = seeds.stateless(seed, self.evaluation_seed_generator)
        prior_seed, likelihood_seed = tf.unstack(tf.random.split(seed))
        z = reparameterized_sample(self.prior.distribution(), [num_images], prior_seed)
        likelihood = self._decode(z, one_hot)
        return likelihood.mean() if mean else likelihood.sample(seed=likelihood_seed)

    def reconstruct(self, x, labels=None):
        """The mean of p(x|z) (p(x|z, y) given `labels`) at the posterior mean z, `[batch, *event_shape]`."""
        x = self._checked_images(x)
        one_hot = self.one_hot_labels(labels, x)
        return self._decode(self._encode(x, one_hot).mean(), one_hot).mean()

    def _image_shape(self):
        """The shape of one image p(x|z) draws, as far as it is known: the decoder's output, else the encoder's input."""
        outputs = getattr(self.decoder, "outputs", None)
        shape = tuple(outputs[0].shape[1:]) if outputs else self.input_shape_per_example
        return tuple(d for d in (shape or ()) if d is not None)

    def _checked_images(self, x):
        """`x: [batch, *event_shape]` as a tensor, after `check_input`'s checks of one batch.

        Eager values must also be finite: a NaN image has no ELBO. Traced
        tensors (in a tf.function or an export) are checked for shape and dtype only.
        """
        if x is None or isinstance(x, (dict, str, bytes)):
            raise ValueError(f"`x` must be a tensor or array of images; received {type(x).__name__}.")
        if not tf.is_tensor(x):
            try:
                x = tf.convert_to_tensor(x)
            except (ValueError, TypeError):
                raise ValueError(f"`x` must be a tensor or array of images; received {type(x).__name__}.") from None
        inputs.check_batch(x, self.input_shape_per_example)
        inputs.check_finite(x)
        return x

    def _check_samples_fit(self, argument, num_samples, x):
        """Raises ValueError naming `argument` if `num_samples` decoded copies of `x` would be too large a tensor."""
        if x.shape.is_fully_defined():
            check_num_elements(argument, (num_samples, *x.shape), num_samples)

    def call(self, x, training=False):
        """The mean reconstruction of `x`; a conditional VAE is called on `(x, labels)`."""
        if self.num_classes is None:
            return self.decode(self.encode(x, training=training).mean(), training=training).mean()
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise ValueError(f"A conditional VAE (num_classes={self.num_classes}) is called on (x, labels); received "
                             f"{type(x).__name__}.")
        images, labels = x
        one_hot = self.one_hot_labels(labels, images)
        return self._decode(self._encode(images, one_hot, training).mean(), one_hot, training).mean()

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Writes a TF Serving SavedModel with the `tfvae.export` signatures; returns its path.

        `keras.Model.export`'s signature. Only `format="tf_saved_model"` is
        supported: the SavedModel holds the encode, decode, reconstruct, sample
        and elbo signatures and needs neither tfvae nor TensorFlow Probability
        to load. `input_signature`, if given, is one `tf.TensorSpec` of the
        images `x` (e.g. with a fixed batch size for a TPU). The keyword
        `overwrite=True` replaces an existing export.
        """
        if format != "tf_saved_model":
            raise ValueError(f"`format` must be 'tf_saved_model' for a VAE (its signatures use TensorFlow ops); received {format!r}.")
        overwrite = kwargs.pop("overwrite", False)
        if kwargs:
            raise TypeError(f"VAE.export got unexpected keyword arguments {sorted(kwargs)}.")
        from tfvae import export as export_lib  # export sits below model: it uses the VAE's methods

        return export_lib.export(self, filepath, overwrite=overwrite, verbose=True if verbose is None else verbose,
                                 input_signature=input_signature)

    # Training -----------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None, **kwargs):
        """`keras.Model.compile`. The loss is the model's own bound: `loss` must be None.

        `jit_compile="auto"` (the default) compiles the steps with XLA on one
        device, CPUs included, where Keras would not (see `_xla_pays`).

        `metrics` and `weighted_metrics` compare the input x (the target) with
        the model's output, the mean reconstruction.
        """
        for name, value in (("loss", loss), ("loss_weights", loss_weights)):
            if value is not None:
                raise ValueError(
                    f"A VAE trains on its own bound (objective={self.objective!r}, beta={self.beta}); "
                    f"`{name}` must be None; received {value!r}."
                )
        if kwargs.get("jit_compile", "auto") == "auto" and not kwargs.get("run_eagerly"):
            kwargs["jit_compile"] = self._xla_pays()
        super().compile(optimizer=optimizer, metrics=metrics, weighted_metrics=weighted_metrics, **kwargs)
        self._has_compiled_metrics = bool(metrics or weighted_metrics)

    def _xla_pays(self):
        """What `jit_compile="auto"` means for a VAE: XLA on one device, else Keras' choice.

        Keras' "auto" leaves XLA off on CPUs. For a VAE it pays there: the MLP
        of the IWAE paper trains 1.8x faster with it and a conv VAE as fast
        (scripts/benchmark_throughput.py, BENCHMARKS.md). Under a strategy
        with several replicas the choice stays Keras' (XLA on accelerators
        only), and layers that declare `supports_jit=False` keep it off, as
        in Keras.
        """
        # `_flatten_layers` is Keras' own walk over nested layers (its "auto" uses it too).
        if self.distribute_strategy.num_replicas_in_sync > 1 or not all(
            layer.supports_jit for layer in self._flatten_layers()
        ):
            return "auto"
        return True

    def compile_from_config(self, config):
        """Compiles as `compile` did before saving (Keras calls this when loading)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, *args, callbacks=None, validation_data=None, **kwargs):
        """`keras.Model.fit`, after checking the first batches (see `check_input`).

        Raises:
          NonFiniteLossError: a step's loss was NaN or infinite and
            `stop_on_non_finite` is set; the weights are those of the last
            finite step.
        """
        x = self.check_input(x, labels=y)
        y = _target_for_sample_weight(x, y, kwargs.get("sample_weight"))
        if isinstance(validation_data, tuple):
            self.check_input(validation_data[0], labels=validation_data[1] if len(validation_data) > 1 else None)
        elif validation_data is not None:
            validation_data = self.check_input(validation_data)
        callbacks = list(callbacks or [])
        stop = StopOnNonFiniteLoss(self.non_finite_guard) if self.stop_on_non_finite else None
        if stop is not None:
            callbacks.insert(0, stop)  # first, so that later callbacks see stop_training set
        history = super().fit(x, y, *args, callbacks=callbacks, validation_data=validation_data, **kwargs)
        if stop is not None and stop.failure:
            raise NonFiniteLossError(stop.failure)
        return history

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, after checking the first batch (see `check_input`)."""
        x = self.check_input(x, labels=y)
        return super().evaluate(x, _target_for_sample_weight(x, y, kwargs.get("sample_weight")), *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict` (mean reconstructions), after checking the first batch's shape.

        A conditional VAE predicts from `(x, labels)`: a pair of arrays, or a
        dataset of such pairs.
        """
        return super().predict(self.check_input(x, support=False), *args, **kwargs)

    def predict_step(self, data):
        if self.num_classes is None:
            return super().predict_step(data)
        # Arrays `(x, labels)` arrive as x; a dataset's `(x, labels)` batches as x and y.
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x if y is None else (x, y), training=False)

    def check_input(self, data, support=None, labels=None):
        """Raises ValueError, before any work, if `data` cannot go through this model.

        `data` is anything `keras.Model.fit` accepts. Its first batch must not
        be empty, must be numeric with the encoder's input shape after the
        batch axis, and (with `check_support`, or `support=True`) must lie in
        the likelihood's support and be finite; `support=False` (`predict`)
        checks finiteness alone. A conditional VAE also needs valid labels
        (see `one_hot_labels`): `labels` (`fit`'s `y`, with arrays), or the
        second element of a tuple `data` or of its first batch. Returns
        `data`, or for a generator an equivalent generator that still yields
        the batch looked at.
        """
        if data is None:
            raise ValueError("`x` is required: images `[batch, *event_shape]`, a dataset or a generator of them; received None.")
        x, data = inputs.peek(data)
        likelihood = None
        if self.check_support if support is None else support:
            likelihood = self._decode(tf.zeros([1, self.latent_dim], self.prior.compute_dtype), self._example_one_hot())
        inputs.check_batch(x, self.input_shape_per_example, likelihood)
        if likelihood is not None or support is False:
            # NaN has no reconstruction either (`predict`); `check_support=False` lets `fit` meet it
            # (and the non-finite stop).
            inputs.check_finite(x)
        if self.num_classes is not None:
            data = self._check_labels_of(data, x, labels)
        return data

    def _check_labels_of(self, data, x, labels):
        """`check_input`'s label checks; returns `data` (a generator re-made to yield its first batch again)."""
        if labels is None and isinstance(data, tuple) and len(data) > 1:
            labels = data[1]
        if labels is None:
            first, data = labels_lib.first_element(data)
            if isinstance(first, (tuple, list)):
                _, labels, _ = keras.utils.unpack_x_y_sample_weight(tuple(first))
        if labels is None:
            raise ValueError(
                f"This VAE is conditional on {self.num_classes} classes: it trains and evaluates on (x, labels), e.g. "
                f"vae.fit(images, labels) or a dataset of (images, labels); received images without labels."
            )
        self.one_hot_labels(labels, x)
        return data

    @property
    def metrics(self):
        return [self.terms_tracker, *self._compiled_metrics()]

    def _compiled_metrics(self):
        # Keras keeps `compile(metrics=...)` in the private `_compile_metrics`;
        # read here only (tests/test_model.py checks it exists).
        compiled = getattr(self, "_compile_metrics", None)
        return [compiled] if compiled is not None and self._has_compiled_metrics else []

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        one_hot = self.one_hot_labels(y, x) if self.num_classes is not None else None  # labels: a conditional VAE's y
        with tf.GradientTape() as tape:
            terms, log_weights, free_bits_kl = self._bound_terms(
                x, self.seed_generator.next(), self.k, training=True, with_log_weights=self.objective == "iwae",
                with_free_bits=bool(self.free_bits), one_hot=one_hot,
            )
            beta = self.beta
            if self.kl_warmup_steps:
                beta = bounds.warmed_up_beta(self.beta, self.optimizer.iterations, self.kl_warmup_steps)
            loss_terms = terms if free_bits_kl is None else terms._replace(kl=free_bits_kl)
            per_example_loss = bounds.per_example_loss(self.objective, loss_terms, log_weights, beta)
            loss = bounds.average_loss(per_example_loss, sample_weight)
            if self.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        if self.stop_on_non_finite:
            apply_now = record_non_finite_step(self, loss)
        if self.stop_on_non_finite and self.keep_finite_weights:
            apply_gradients_while_finite(self, gradients, apply_now)
        else:
            self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._update_metrics(x, terms, per_example_loss, sample_weight, training=True, one_hot=one_hot)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        one_hot = self.one_hot_labels(y, x) if self.num_classes is not None else None
        terms, log_weights, _ = self._bound_terms(
            x, self.evaluation_seed_generator.next(), self.k, training=False, with_log_weights=self.objective == "iwae",
            one_hot=one_hot,
        )
        per_example_loss = bounds.per_example_loss(self.objective, terms, log_weights, self.beta)
        return self._update_metrics(x, terms, per_example_loss, sample_weight, training=False, one_hot=one_hot)

    def _update_metrics(self, x, terms, per_example_loss, sample_weight, training, one_hot=None):
        self.terms_tracker.update_state(
            [per_example_loss, terms.elbo, terms.reconstruction, terms.kl,  # METRIC_NAMES, then each layer's KL
             *(terms.kl_by_layer[name] for name in self.kl_layers)], sample_weight
        )
        if self._compiled_metrics():
            reconstruction = self(x if one_hot is None else (x, one_hot), training=training)
            logs = self.compute_metrics(x, tf.cast(x, reconstruction.dtype), reconstruction, sample_weight)
        else:
            logs = self.terms_tracker.result()
        if _is_multi_worker(self.distribute_strategy):
            # Keras 3 reduces logs across workers with `reduce(MEAN, axis=0)`,
            # which fails on scalars (tensorflow/tensorflow#72388); one-element
            # logs are averaged over the workers and come back as scalars.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def _bound_terms(self, x, seed, k, training, with_log_weights, with_free_bits=False, one_hot=None):
        """`(terms, log_weights, free_bits_kl)` of k samples: their ElboTerms, and the rest if asked (else None).

        `seed` is a stateless int32 `[2]` seed. The log importance weights
        `[k, batch]` cost two more log-densities per sample: only IWAE needs
        them. `free_bits_kl` `[batch]` is the training loss's KL term under
        free bits (`bounds.free_bits_kl`); the terms keep the true KL.
        `one_hot: [batch, num_classes]`: a conditional VAE's labels, else None.
        """
        x = tf.convert_to_tensor(x)
        posterior = self._encode(x, one_hot, training)
        latent_samples = self._sample_latents(posterior, seed, k)
        log_likelihood = self._log_likelihood_at(x, latent_samples, training, one_hot)
        prior = self.prior.distribution()
        terms = bounds.elbo_terms(log_likelihood, posterior, prior, latent_samples, self._resolve_kl_method(posterior),
                                  by_layer=bool(self.kl_layers))
        free_bits_kl = (bounds.free_bits_kl(bounds.kl_per_dimension(posterior, prior), self.free_bits)
                        if with_free_bits else None)
        if not with_log_weights:
            return terms, None, free_bits_kl
        return terms, bounds.log_importance_weights(log_likelihood, posterior, prior, latent_samples), free_bits_kl

    def _log_likelihood_at(self, x, latent_samples, training=False, one_hot=None):
        """log p(x|z) (log p(x|z, y) with `one_hot`) for `latent_samples: [k, batch, latent_dim]`, `[k, batch]`.

        Decodes all k * batch latents in one call of the decoder.
        """
        if latent_samples.shape[0] == 1:  # the common case: no copies of x
            likelihood = self._decode(latent_samples[0], one_hot, training)
            return likelihood.log_prob(tf.cast(x, likelihood.dtype))[tf.newaxis]
        k, batch = tf.shape(latent_samples)[0], tf.shape(latent_samples)[1]
        # Latents come sample-major, [k * batch]: the labels repeat once per sample, as x does below.
        one_hot_per_sample = None if one_hot is None else tf.tile(one_hot, tf.stack([k, 1]))
        likelihood = self._decode(tf.reshape(latent_samples, [-1, self.latent_dim]), one_hot_per_sample, training)
        x = tf.cast(x, likelihood.dtype)
        x_per_sample = tf.broadcast_to(x[tf.newaxis], tf.concat([[k], tf.shape(x)], axis=0))
        x_per_sample = tf.reshape(x_per_sample, tf.concat([[-1], tf.shape(x)[1:]], axis=0))
        return tf.reshape(likelihood.log_prob(x_per_sample), [k, batch])

    def _resolve_kl_method(self, posterior):
        if self._kl_method is None:
            self._kl_method = bounds.resolve_kl_method(self.kl, posterior, self.prior.distribution())
        return self._kl_method

    @staticmethod
    def _sample_latents(posterior, seed, k=1):
        """Reparameterised z ~ q(z|x), `[k, batch, latent_dim]`.

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
            return reparameterized_sample(posterior, [k], seed)
        samples = reparameterized_sample(posterior, [k, context.num_replicas_in_sync], seed)
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
            "k": self.k,
            "check_support": self.check_support,
            "stop_on_non_finite": self.stop_on_non_finite,
            "keep_finite_weights": self.keep_finite_weights,
            "kl_warmup_steps": self.kl_warmup_steps,
            "free_bits": self.free_bits,
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_config(cls, config):
        # Keras' deserialization edits nested configs in place; keep the caller's.
        config = copy.deepcopy(config)
        for key in ("encoder", "decoder", "prior"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
