"""Keras layers whose output is a `tfd.Distribution`, named as in `tfp.layers`.

    distribution.py  the base layer, mean conversion, scales, dtypes
    independent.py   IndependentNormal/Bernoulli/Gaussian, MultivariateNormalTriL

See `tfvae.layers.distribution` for the conventions every layer follows
(shapes, the scale transform and its initial value, mixed precision).
"""

from tfvae.layers.distribution import (
    SERIALIZATION_PACKAGE,
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
    IndependentNormal,
    MultivariateNormalTriL,
    independent_bernoulli,
    independent_gaussian,
    independent_normal,
    multivariate_normal_tril,
)

__all__ = [
    "SERIALIZATION_PACKAGE",
    "DistributionLayer",
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
