"""`TrainingConfig`: everything that defines a training run, validated on construction."""

import dataclasses
import json
import math
from typing import Literal, Optional

import keras
import tensorflow as tf

from tfvae import architectures, bounds, data, priors
from tfvae.layers import check_positive_int
from tfvae.models import hierarchical


def check_choice(name, value, choices):
    """Raises ValueError unless `value` is one of `choices`, listing the known ones."""
    if value not in choices:
        known = sorted(choice for choice in choices if choice is not None)
        raise ValueError(f"Unknown `{name}` {value!r}; known: {known}.")


# Architectures with two stochastic layers, z = [z1, z2] (`latent_dim` = d1 + d2, split in halves): their
# builders make the prior too (`tfvae.models.hierarchical.hvae`), with `prior` as p(z2).
TWO_LAYER_ARCHITECTURES = {"hvae": hierarchical.hvae}
ARCHITECTURES = {**architectures.ARCHITECTURES, **TWO_LAYER_ARCHITECTURES}

LEARNING_RATE_SCHEDULES = ("constant", "cosine", "iwae_paper")  # see `TrainingConfig.learning_rate_for`

# Burda et al. (2015, section 5): 3^i epochs at learning rate 0.001 * 10^(-i/7), i = 0..7 (3,280 epochs).
IWAE_PAPER_STAGES = 8


def iwae_paper_schedule(learning_rate, steps_per_epoch):
    """The IWAE paper's schedule from `learning_rate`: `learning_rate * 10^(-i/7)` for 3^i epochs, i = 0..7.

    A step-indexed `keras.optimizers.schedules.PiecewiseConstantDecay`; the
    last rate, `learning_rate / 10`, holds after the 3,280 epochs too.
    """
    epochs_before_stage = [sum(3 ** j for j in range(i + 1)) for i in range(IWAE_PAPER_STAGES - 1)]  # 1, 4, 13, ...
    # Step s (the optimizer's iteration count before it) uses the rate of its stage; Keras' boundaries are
    # inclusive on the left stage's side, so a stage starting at step b has the boundary b - 1.
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=[epochs * steps_per_epoch - 1 for epochs in epochs_before_stage],
        values=[learning_rate * 10 ** (-i / 7) for i in range(IWAE_PAPER_STAGES)],
    )


# Training steps per `tf.function` call when the config does not say: enough to
# hide Keras' per-call overhead (scripts/benchmark_throughput.py), few enough
# that Ctrl-C and the progress bar answer within a fraction of a second.
MAX_STEPS_PER_EXECUTION = 50

def _is_default(strategy):
    """True for None or the default (one-device) strategy; call outside any strategy's scope."""
    return strategy is None or strategy is tf.distribute.get_strategy()


# The number of components of a mixture prior when the config does not say: 500 pseudo-inputs as in the
# VampPrior paper (Tomczak & Welling, 2018); 10 Gaussians, one per MNIST class.
PRIOR_COMPONENTS = {"mixture_of_gaussians": 10, "vampprior": 500}

# What `tfvae train` uses where its command line does not say: the best of the short-budget
# comparison in BENCHMARKS.md (10 epochs of static binarized MNIST, test NLL with k = 1000): the
# VampPrior paper's gated MLP with 40 latents, trained on the IWAE bound with k = 5. A
# `TrainingConfig()` itself keeps the plain VAE (MLP, ELBO), the smallest model.
COMMAND_DEFAULTS = {"arch": "gated_mlp", "latent_dim": 40, "batch_size": 100, "learning_rate": 1e-3,
                    "objective": "iwae", "k": 5}

# Fields renamed since the config was first saved, old name -> new name.
_RENAMED_FIELDS = {"num_samples": "k"}


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Everything that defines a training run; validated on construction.

    `k` is the number of latent samples per example and step (the k of the
    IWAE bound L_k, or the samples the ELBO averages over). `max_examples`
    keeps only the first examples of each split, for smoke runs. With
    `early_stopping_patience` P, training stops once P epochs have passed
    without a better validation ELBO, and the model kept is the one of the
    best epoch (the VampPrior paper's rule, P = 50). `conditional` trains a
    conditional VAE on the dataset's labels (`num_classes`; a labelled
    dataset and a prior p(z) that does not use the encoder). Saved as
    `config.json` in every run directory.
    """

    dataset: str = "mnist"
    binarize: Optional[Literal["dynamic"]] = "dynamic"
    arch: Literal["mlp", "gated_mlp", "conv", "hvae"] = "mlp"
    latent_dim: int = 16
    likelihood: Literal["bernoulli", "gaussian", "normal", "continuous_bernoulli", "discretized_logistic_mixture"] = "bernoulli"
    posterior: Literal["independent_normal", "multivariate_normal_tril", "iaf"] = "independent_normal"
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    learning_rate_schedule: Literal["constant", "cosine", "iwae_paper"] = "constant"  # see `learning_rate_for`
    beta: float = 1.0
    objective: Literal["elbo", "iwae"] = "elbo"
    k: int = 1
    seed: int = 0
    max_examples: Optional[int] = None
    checkpoint_every: Optional[int] = None  # steps; checkpoints also follow each epoch
    jit_compile: Optional[bool] = None  # XLA for train steps; None: `jit_compile_for`
    steps_per_execution: Optional[int] = None  # None: `default_steps_per_execution`
    prior: Literal["standard_normal", "diagonal_normal", "mixture_of_gaussians", "vampprior", "flow"] = "standard_normal"
    prior_components: Optional[int] = None  # mixture components or pseudo-inputs; None: `prior_components_for`
    pseudo_inputs: Literal["random", "data"] = "random"  # where a VampPrior's pseudo-inputs start
    kl_warmup_epochs: int = 0  # the KL weight rises linearly to beta over these epochs (VAE kl_warmup_steps)
    free_bits: float = 0.0  # nats per latent dimension the training loss charges at least (VAE free_bits)
    early_stopping_patience: Optional[int] = None  # epochs without a better validation ELBO before stopping
    conditional: bool = False  # a conditional VAE on the dataset's labels, q(z|x, y) and p(x|z, y)

    def __post_init__(self):
        check_choice("dataset", self.dataset, data.DATASETS)
        check_choice("arch", self.arch, ARCHITECTURES)
        check_choice("likelihood", self.likelihood, architectures.LIKELIHOODS)
        check_choice("posterior", self.posterior, architectures.POSTERIORS)
        check_choice("binarize", self.binarize, data.BINARIZE_CHOICES)
        check_choice("prior", self.prior, priors.PRIORS)
        check_choice("learning_rate_schedule", self.learning_rate_schedule, LEARNING_RATE_SCHEDULES)
        check_choice("pseudo_inputs", self.pseudo_inputs, ("random", "data"))
        if not isinstance(self.conditional, bool):
            raise ValueError(f"`conditional` must be True or False; received {self.conditional!r}.")
        if self.conditional and not data.DATASETS[self.dataset].num_classes:
            labelled = sorted(name for name, source in data.DATASETS.items() if source.num_classes)
            raise ValueError(f"A conditional VAE needs labelled images, and {self.dataset!r} has none: use a labelled "
                             f"dataset ({', '.join(labelled)}), or conditional=False.")
        if self.conditional and self.prior == "vampprior":
            raise ValueError("A conditional VAE keeps the prior p(z); the VampPrior is made from the encoder, which "
                             "would need labels: use another prior, or conditional=False.")
        if self.arch in TWO_LAYER_ARCHITECTURES:
            self._check_two_layers()
        if self.prior_components is not None and self.prior not in PRIOR_COMPONENTS:
            raise ValueError(f"`prior_components` applies to {sorted(PRIOR_COMPONENTS)}, not prior={self.prior!r}.")
        grey = data.DATASETS[self.dataset].max_pixel_value > 1 and self.binarize is None
        if self.likelihood == "bernoulli" and grey:
            raise ValueError(
                f"A Bernoulli likelihood needs binary pixels, but {self.dataset!r} has grey levels and "
                "binarize is none: use binarize='dynamic' or likelihood='gaussian'."
            )
        if self.likelihood in architectures.GREY_LEVEL_LIKELIHOODS and not grey:
            binary = f"binarize={self.binarize!r}" if self.binarize else f"{self.dataset!r} is binary"
            raise ValueError(
                f"likelihood={self.likelihood!r} models grey levels in [0, 1], but {binary}: use a grey dataset "
                "with binarize=None (--binarize none), or likelihood='bernoulli' for binary pixels."
            )
        if self.binarize and data.DATASETS[self.dataset].max_pixel_value == 1:
            raise ValueError(f"binarize={self.binarize!r} does not apply to {self.dataset!r}: it is binary already.")
        check_choice("objective", self.objective, bounds.OBJECTIVES)
        if self.objective == "iwae" and self.beta != 1:
            raise ValueError(f"`beta` must be 1 with objective='iwae' (train on the ELBO, objective='elbo', "
                             f"to weigh the KL term); received {self.beta!r}.")
        for name in ("latent_dim", "epochs", "batch_size", "k"):
            check_positive_int(name, getattr(self, name))
        if isinstance(self.kl_warmup_epochs, bool) or not isinstance(self.kl_warmup_epochs, int) or self.kl_warmup_epochs < 0:
            raise ValueError(f"`kl_warmup_epochs` must be an int >= 0; received {self.kl_warmup_epochs!r}.")
        if isinstance(self.free_bits, bool) or not isinstance(self.free_bits, (int, float)) or not 0 <= self.free_bits < math.inf:
            raise ValueError(f"`free_bits` must be a finite number >= 0; received {self.free_bits!r}.")
        if self.objective == "iwae" and self.free_bits:
            raise ValueError(f"`free_bits` must be 0 with objective='iwae' (free bits act on the ELBO's KL term); "
                             f"received {self.free_bits!r}.")
        if self.objective == "iwae" and self.kl_warmup_epochs:
            raise ValueError(f"`kl_warmup_epochs` must be 0 with objective='iwae' (the IWAE bound has no KL term to "
                             f"warm up; use objective='elbo'); received {self.kl_warmup_epochs!r}.")
        for name in ("max_examples", "checkpoint_every", "steps_per_execution", "early_stopping_patience", "prior_components"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        for name in ("learning_rate", "beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"`{name}` must be a finite number > 0; received {value!r}.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"`seed` must be an int; received {self.seed!r}.")
        if self.jit_compile is not None and not isinstance(self.jit_compile, bool):
            raise ValueError(f"`jit_compile` must be None, True or False; received {self.jit_compile!r}.")
        if self.steps_per_execution and self.checkpoint_every and self.checkpoint_every % self.steps_per_execution:
            raise ValueError(
                f"`checkpoint_every` ({self.checkpoint_every}) must be a multiple of `steps_per_execution` "
                f"({self.steps_per_execution}): Keras runs callbacks only between executions."
            )

    def learning_rate_for(self, steps_per_epoch):
        """Adam's learning rate: `learning_rate`, or with "cosine" a `keras.optimizers.schedules.CosineDecay`
        from `learning_rate` to 0 over all `epochs * steps_per_epoch` steps (Loshchilov & Hutter, 2017, without
        restarts). It reads the optimizer's step count, so a resumed run continues on the same curve;
        resuming with more `epochs` stretches the rest of it. "iwae_paper" is Burda et al.'s
        (`iwae_paper_schedule`), fixed in epochs whatever `epochs` is."""
        if self.learning_rate_schedule == "constant":
            return self.learning_rate
        if self.learning_rate_schedule == "iwae_paper":
            return iwae_paper_schedule(self.learning_rate, steps_per_epoch)
        return keras.optimizers.schedules.CosineDecay(self.learning_rate, decay_steps=self.epochs * steps_per_epoch)

    def num_classes_for(self):
        """The classes a conditional run's VAE conditions on (its dataset's); None for an unconditional run."""
        return data.DATASETS[self.dataset].num_classes if self.conditional else None

    def _check_two_layers(self):
        """Raises ValueError for what a two-layer architecture cannot do."""
        if self.posterior not in hierarchical.POSTERIOR_LAYERS:
            raise ValueError(f"arch={self.arch!r} takes a posterior in {sorted(hierarchical.POSTERIOR_LAYERS)} for each "
                             f"layer; received posterior={self.posterior!r}.")
        if self.conditional:
            raise ValueError(f"arch={self.arch!r} has no conditional variant: use conditional=False, or a one-layer arch.")
        if self.free_bits:
            raise ValueError(f"`free_bits` must be 0 with arch={self.arch!r} (free bits act on a diagonal posterior's "
                             f"KL per dimension); received {self.free_bits!r}.")
        if self.latent_dim < 2:
            raise ValueError(f"`latent_dim` of arch={self.arch!r} is the size of [z1, z2], at least 2; "
                             f"received {self.latent_dim!r}.")

    def prior_components_for(self):
        """`prior_components` when set, else the prior's default (`PRIOR_COMPONENTS`); None for one-piece priors."""
        return self.prior_components or PRIOR_COMPONENTS.get(self.prior)

    def jit_compile_for(self):
        """`jit_compile` when set, else `VAE.compile`'s "auto": XLA on one device (it pays
        there: BENCHMARKS.md), Keras' choice under a strategy with several replicas."""
        return "auto" if self.jit_compile is None else self.jit_compile

    def steps_per_execution_for(self, steps_per_epoch, strategy=None):
        """The training steps per compiled call for epochs of `steps_per_epoch` steps.

        `steps_per_execution` when set (it must divide `steps_per_epoch`), else
        the largest number up to `MAX_STEPS_PER_EXECUTION` that divides both
        `steps_per_epoch` and `checkpoint_every`: Keras runs callbacks only
        between executions, and an execution must not run into the next epoch.
        Under a `tf.distribute` strategy other than the default one, 1: the
        VAE's stop on a non-finite loss synchronises replicas once per step.
        """
        if self.steps_per_execution is None and not _is_default(strategy):
            return 1
        if self.steps_per_execution:
            if steps_per_epoch % self.steps_per_execution:
                raise ValueError(
                    f"`steps_per_execution` ({self.steps_per_execution}) must divide the {steps_per_epoch} steps "
                    "of an epoch: an execution must not run into the next epoch."
                )
            return self.steps_per_execution
        common = math.gcd(steps_per_epoch, self.checkpoint_every or steps_per_epoch)
        return max(d for d in range(1, MAX_STEPS_PER_EXECUTION + 1) if common % d == 0)

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        fields = {_RENAMED_FIELDS.get(name, name): value for name, value in json.loads(text).items()}
        unknown = set(fields) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown TrainingConfig fields {sorted(unknown)}.")
        return cls(**fields)


def load_data(config, data_dir=None, **overrides):
    """The `tfvae.data.Splits` that `config` trains on; `overrides` replace its fields first.

    E.g. `load_data(config, batch_size=16, max_examples=16)` for a few images.
    """
    config = dataclasses.replace(config, **overrides) if overrides else config
    return data.load(
        config.dataset,
        batch_size=config.batch_size,
        binarize=config.binarize,
        data_dir=data_dir,
        seed=config.seed,
        max_examples=config.max_examples,
    )
