"""Keras layers whose output is a `tfd.Distribution`, named as in `tfp.layers`.

    conversion.py    how a distribution stands in for a tensor (convert_to_tensor_fn)
    distribution.py  the base layer, DistributionLambda, scales, dtypes
    independent.py   IndependentNormal/Bernoulli/Logistic/Poisson/Gaussian, MultivariateNormalTriL

See `tfvae.layers.distribution` for the conventions every layer follows
(shapes, the scale transform and its initial value, mixed precision).
"""

from tfvae.layers.conversion import CONVERSIONS, TensorCoercible, convertible
from tfvae.layers.distribution import (
    SERIALIZATION_PACKAGE,
    DistributionLambda,
    DistributionLayer,
    MeanConvertibleIndependent,
    MeanConvertibleMultivariateNormalTriL,
    _as_event_shape,
    as_event_shape,
    check_positive,
    check_positive_int,
    check_scale_floor,
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

__all__ = [
    "CONVERSIONS",
    "SERIALIZATION_PACKAGE",
    "DistributionLambda",
    "DistributionLayer",
    "IndependentLogistic",
    "IndependentPoisson",
    "TensorCoercible",
    "convertible",
    "independent_logistic",
    "independent_poisson",
    "IndependentBernoulli",
    "IndependentGaussian",
    "IndependentNormal",
    "MeanConvertibleIndependent",
    "MeanConvertibleMultivariateNormalTriL",
    "MultivariateNormalTriL",
    "as_event_shape",
    "check_positive",
    "check_positive_int",
    "check_scale_floor",
    "independent_bernoulli",
    "independent_gaussian",
    "independent_normal",
    "initial_scale",
    "initial_scale_initializer",
    "multivariate_normal_tril",
    "resolve_dtype",
    "scale_bijector",
    "unit_scale_initializer",
]
