"""The priors of :class:`~bayesgmm.VariationalGaussianMixture`, as scikit-learn's
``BayesianGaussianMixture`` states them: the user's settings, their checks, their defaults from
the data, and the prior in the internal units of the compiled fit (with :func:`bound_shift`,
the lower bound's change from those units back to the data's).

Weights have a Dirichlet-process (stick-breaking) or a finite Dirichlet prior of concentration
``weight_concentration_prior``; components are Normal-Wishart: ``Lambda_k ~
Wishart(degrees_of_freedom_prior, covariance_prior^-1)``, ``mu_k | Lambda_k ~ N(mean_prior,
(mean_precision_prior Lambda_k)^-1)``. ``covariance_prior`` is in the covariance type's format
for one component (:meth:`~bayesgmm.core.covariance_family.CovarianceFamily.component_shape`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from bayesgmm.base.validation import is_real, require
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.parameters import ConjugatePrior
from bayesgmm.core.variational_updates import VariationalPrior
from bayesgmm.engine.preprocessing import AffineScaling

WEIGHT_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


@dataclass(frozen=True)
class PriorSettings:
    """scikit-learn's prior parameters, by its names; ``None`` takes the default from the data.

    Attributes
    ----------
    weight_concentration_prior_type : one of :data:`WEIGHT_PRIOR_TYPES`
    weight_concentration_prior : float > 0 or None (``1 / n_components``)
    mean_precision_prior : float > 0 or None (1)
    mean_prior : (D,) or None (the data mean)
    degrees_of_freedom_prior : float > D - 1 or None (D)
    covariance_prior : one component's covariance in the type's format, or None (the data
        covariance in that format, ``ddof=1``)
    """

    weight_concentration_prior_type: str = "dirichlet_process"
    weight_concentration_prior: float | None = None
    mean_precision_prior: float | None = None
    mean_prior: np.ndarray | None = None
    degrees_of_freedom_prior: float | None = None
    covariance_prior: np.ndarray | float | None = None

    @classmethod
    def of(cls, estimator) -> PriorSettings:
        """The settings given to ``estimator`` (an object with these attributes)."""
        return cls(**{field.name: getattr(estimator, field.name) for field in fields(cls)})

    @classmethod
    def fitted(cls, estimator) -> PriorSettings:
        """The resolved settings of a fitted ``estimator``: its ``*_prior_`` attributes."""
        names = [field.name for field in fields(cls)]
        return cls(getattr(estimator, names[0]),
                   *(getattr(estimator, f"{name}_") for name in names[1:]))

    @property
    def stick_breaking(self) -> bool:
        """Whether the weights have the Dirichlet-process prior."""
        return self.weight_concentration_prior_type == "dirichlet_process"

    def check(self) -> None:
        """The checks that need no data (a ValueError naming the parameter)."""
        require(self, self.weight_concentration_prior_type in WEIGHT_PRIOR_TYPES,
                "weight_concentration_prior_type", f"choose one of {WEIGHT_PRIOR_TYPES}")
        for name in ("weight_concentration_prior", "mean_precision_prior"):
            value = getattr(self, name)
            require(self, value is None or (is_real(value) and value > 0), name,
                    "it must be a number > 0 or None")
        require(self, self.degrees_of_freedom_prior is None
                or is_real(self.degrees_of_freedom_prior), "degrees_of_freedom_prior",
                "it must be a number or None")

    # Each ``resolved_*`` method is scikit-learn's default and check of one prior, in the
    # order scikit-learn resolves them.
    def resolved_weight_concentration(self, n_components: int) -> float:
        """``weight_concentration_prior_``: ``1 / n_components`` by default."""
        if self.weight_concentration_prior is None:
            return 1.0 / n_components
        return float(self.weight_concentration_prior)

    def resolved_mean_precision(self) -> float:
        """``mean_precision_prior_``: 1 by default."""
        return 1.0 if self.mean_precision_prior is None else float(self.mean_precision_prior)

    def resolved_mean(self, mean: np.ndarray) -> np.ndarray:
        """``mean_prior_`` (D,): the data's ``mean`` (D,) by default, else D finite numbers."""
        if self.mean_prior is None:
            return mean
        n_dims = mean.shape[0]
        prior = np.array(self.mean_prior, dtype=np.float64).reshape(-1)
        if prior.shape != (n_dims,) or not np.all(np.isfinite(prior)):
            raise ValueError(f"mean_prior must be {n_dims} finite numbers; got shape "
                             f"{np.shape(self.mean_prior)}")
        return prior

    def resolved_dof(self, n_dims: int) -> float:
        """``degrees_of_freedom_prior_``: ``n_dims`` by default, else > ``n_dims - 1``."""
        if self.degrees_of_freedom_prior is None:
            return float(n_dims)
        if self.degrees_of_freedom_prior > n_dims - 1.0:
            return float(self.degrees_of_freedom_prior)
        raise ValueError(f"The parameter 'degrees_of_freedom_prior' should be greater than "
                         f"{n_dims - 1}, but got {self.degrees_of_freedom_prior:.3f}.")

    def resolved_covariance(self, family: CovarianceFamily,
                            covariance: np.ndarray) -> np.ndarray | float:
        """``covariance_prior_`` in ``family``'s format for one component: by default the
        data's sample ``covariance`` (D, D) in that format, else checked as the family
        requires (a float for spherical)."""
        if self.covariance_prior is None:
            return family.component_covariance(covariance)
        prior = np.array(self.covariance_prior, dtype=np.float64)
        expected = family.component_shape(covariance.shape[0])
        if prior.shape != expected:
            raise ValueError(f"covariance_prior has shape {prior.shape}; expected {expected} "
                             f"for covariance_type={family.name!r}")
        if not family.valid_precisions(prior):
            raise ValueError(f"'{family.name} covariance_prior' should be "
                             f"{family.precision_requirement}")
        return prior if prior.ndim else float(prior)

    def internal(self, scaling: AffineScaling, dtype) -> VariationalPrior:
        """The resolved prior (:meth:`fitted`) in internal units (``(x - center) / scale``)."""
        components = ConjugatePrior(
            mean=np.asarray(scaling.transform(self.mean_prior), dtype),
            shrinkage=np.asarray(self.mean_precision_prior, dtype),
            dof=np.asarray(self.degrees_of_freedom_prior, dtype),
            scale=np.asarray(np.asarray(self.covariance_prior) / scaling.scale**2, dtype))
        return VariationalPrior(components, np.asarray(self.weight_concentration_prior, dtype),
                                np.asarray(self.stick_breaking))


def bound_shift(dof, n_dims: int, log_scale: float) -> np.ndarray:
    """What to add to a lower bound computed in internal units (``x / s``, ``log_scale = log
    s``) to get the one in the data's units: each Wishart normaliser's ``log |W_k|`` differs
    by ``D log s``, weighted by ``dof_k``. ``dof`` (..., K) -> (...) float64."""
    return -n_dims * log_scale * np.sum(np.asarray(dof, np.float64), axis=-1)
