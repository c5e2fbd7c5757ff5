"""Keras layers whose output is a `tfd.Distribution`, named as in `tfp.layers`.

    checks.py        argument checks shared by the layers (and the priors and models)
    conversion.py    how a distribution stands in for a tensor (convert_to_tensor_fn)
    distribution.py  the base layer, DistributionLambda, scales, dtypes
    independent.py   IndependentNormal/Bernoulli/Logistic/Poisson/Gaussian, MultivariateNormalTriL
    categorical.py   OneHotCategorical, CategoricalMixtureOfOneHotCategorical
    mixture.py       MixtureSameFamily, MixtureNormal, MixtureLogistic
    kl.py            KLDivergenceRegularizer, KLDivergenceAddLoss
    kl_prior.py      what their prior (distribution_b) may be, and how it is saved
    likelihoods.py   IndependentContinuousBernoulli, DiscretizedLogisticMixture (likelihoods for grey levels)
    variable.py      VariableLayer
    initializers.py  BlockwiseInitializer
    variational_fns.py  the posterior, prior and divergence functions of the Bayesian layers
    variational_base.py  what the Bayesian dense and convolution layers share
    variational.py   DenseReparameterization, DenseLocalReparameterization, DenseFlipout
    conv_variational.py  Convolution{1,2,3}D{Reparameterization,Flipout}
    dense_variational.py DenseVariational and its posterior/prior builders
    masks.py             MADE's masks (make_dense_autoregressive_masks)
    autoregressive.py    AutoregressiveNetwork (MADE), AutoregressiveTransform
    inverse_autoregressive.py  InverseAutoregressiveFlowNormal (an IAF posterior)

See `tfvae.layers.distribution` for the conventions every layer follows
(shapes, the scale transform and its initial value, mixed precision).
"""

from tfvae.layers.checks import _as_event_shape, as_event_shape, check_positive, check_positive_int, check_scale_floor
from tfvae.layers.conversion import CONVERSIONS, TensorCoercible, convertible
from tfvae.layers.distribution import (
    SERIALIZATION_PACKAGE,
    DistributionLambda,
    DistributionLayer,
    MeanConvertibleIndependent,
    MeanConvertibleMultivariateNormalTriL,
    initial_scale,
    initial_scale_initializer,
    resolve_dtype,
    scale_bijector,
    unit_scale_initializer,
)
from tfvae.layers.independent import (
    IndependentBernoulli,
    IndependentGaussian,
    IndependentLogistic,
    IndependentNormal,
    IndependentPoisson,
    MultivariateNormalTriL,
    independent_bernoulli,
    independent_gaussian,
    independent_logistic,
    independent_normal,
    independent_poisson,
    multivariate_normal_tril,
)

from tfvae.layers.autoregressive import AutoregressiveNetwork, AutoregressiveTransform
from tfvae.layers.masks import make_dense_autoregressive_masks
from tfvae.layers.categorical import CategoricalMixtureOfOneHotCategorical, OneHotCategorical
from tfvae.layers.conv_variational import (
    Convolution1DFlipout,
    Convolution1DReparameterization,
    Convolution2DFlipout,
    Convolution2DReparameterization,
    Convolution3DFlipout,
    Convolution3DReparameterization,
)
from tfvae.layers.dense_variational import (
    DenseVariational,
    IndependentNormalWeights,
    posterior_mean_field,
    prior_standard_normal,
    prior_trainable,
)
from tfvae.layers.initializers import BlockwiseInitializer
from tfvae.layers.inverse_autoregressive import InverseAutoregressiveFlowDistribution, InverseAutoregressiveFlowNormal
from tfvae.layers.kl import KLDivergenceAddLoss, KLDivergenceRegularizer
from tfvae.layers.likelihoods import (
    DiscretizedLogisticMixture,
    DiscretizedLogisticMixtureDistribution,
    IndependentContinuousBernoulli,
    discretized_logistic_mixture,
    independent_continuous_bernoulli,
)
from tfvae.layers.mixture import MixtureLogistic, MixtureNormal, MixtureSameFamily
from tfvae.layers.variable import VariableLayer
from tfvae.layers.variational import DenseFlipout, DenseLocalReparameterization, DenseReparameterization
from tfvae.layers.variational_fns import (
    LocScale,
    MeanFieldNormal,
    ScaledKLDivergence,
    default_loc_scale_fn,
    default_mean_field_normal_fn,
    default_multivariate_normal_fn,
    kl_divergence_fn,
)

__all__ = [
    "AutoregressiveNetwork",
    "AutoregressiveTransform",
    "BlockwiseInitializer",
    "CONVERSIONS",
    "CategoricalMixtureOfOneHotCategorical",
    "Convolution1DFlipout",
    "Convolution1DReparameterization",
    "Convolution2DFlipout",
    "Convolution2DReparameterization",
    "Convolution3DFlipout",
    "Convolution3DReparameterization",
    "DenseFlipout",
    "DenseLocalReparameterization",
    "DenseReparameterization",
    "DenseVariational",
    "DiscretizedLogisticMixture",
    "DiscretizedLogisticMixtureDistribution",
    "DistributionLambda",
    "DistributionLayer",
    "IndependentBernoulli",
    "IndependentContinuousBernoulli",
    "IndependentGaussian",
    "IndependentLogistic",
    "IndependentNormal",
    "IndependentNormalWeights",
    "IndependentPoisson",
    "InverseAutoregressiveFlowDistribution",
    "InverseAutoregressiveFlowNormal",
    "KLDivergenceAddLoss",
    "LocScale",
    "MeanFieldNormal",
    "ScaledKLDivergence",
    "KLDivergenceRegularizer",
    "MeanConvertibleIndependent",
    "MeanConvertibleMultivariateNormalTriL",
    "MixtureLogistic",
    "MixtureNormal",
    "MixtureSameFamily",
    "MultivariateNormalTriL",
    "OneHotCategorical",
    "SERIALIZATION_PACKAGE",
    "TensorCoercible",
    "VariableLayer",
    "as_event_shape",
    "check_positive",
    "check_positive_int",
    "check_scale_floor",
    "convertible",
    "default_loc_scale_fn",
    "discretized_logistic_mixture",
    "default_mean_field_normal_fn",
    "default_multivariate_normal_fn",
    "independent_bernoulli",
    "independent_continuous_bernoulli",
    "independent_gaussian",
    "independent_logistic",
    "independent_normal",
    "independent_poisson",
    "kl_divergence_fn",
    "initial_scale",
    "initial_scale_initializer",
    "make_dense_autoregressive_masks",
    "multivariate_normal_tril",
    "posterior_mean_field",
    "prior_standard_normal",
    "prior_trainable",
    "resolve_dtype",
    "scale_bijector",
    "unit_scale_initializer",
]
