"""The conjugate prior for MAP EM, as mclust's ``priorControl()`` / ``defaultPrior``.

Fraley, C. & Raftery, A. E. (2007). Bayesian regularization for normal mixture estimation and
model-based clustering. *Journal of Classification* 24, 155-181.

Per component, ``mu_k | S_k ~ N(mean, S_k / shrinkage)``; ``S_k ~ inverse-Wishart(dof, scale)``
for full and tied covariances, and each variance ``~ inverse-gamma(dof / 2, scale / 2)`` for diag
and spherical ones. The mixing weights have no prior. EM then returns the posterior mode
(MAP) instead of the maximum-likelihood estimate; a component can no longer collapse, because
the prior's scale keeps every covariance away from singular.

mclust's defaults (``prior="default"``), with ``G`` components in ``D`` dimensions:

=========== =====================================================================
shrinkage   0.01
mean        the column means of the data
dof         ``D + 2``
scale       full, tied: ``G^(-2/D)`` times the data covariance;
            diag, spherical: ``G^(-2/D)`` times the mean column variance (a scalar)
=========== =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from bayesgmm.base.io import register_record
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.parameters import ConjugatePrior
from bayesgmm.engine.parallel import multi_process
from bayesgmm.engine.preprocessing import AffineScaling


@register_record
@dataclass(frozen=True)
class MAPPrior:
    """Hyperparameters of the conjugate prior; ``None`` fields take mclust's defaults.

    Parameters
    ----------
    shrinkage : float, default 0.01
        Weight of the prior mean, in pseudo-observations (``kappa``); > 0.
    mean : array (D,), optional
        Prior mean of the component means, in the data's units.
    dof : float, optional
        Degrees of freedom ``nu``; > D - 1 for full/tied, > 0 for diag/spherical.
    scale : array (D, D) for full/tied, float for diag/spherical, optional
        In the data's units (a covariance).
    """

    shrinkage: float = 0.01
    mean: np.ndarray | None = None
    dof: float | None = None
    scale: np.ndarray | float | None = None

    def resolve(self, family: CovarianceFamily, x: np.ndarray, n_components: int,
                scaling: AffineScaling, dtype) -> ConjugatePrior:
        """The prior in internal units for data ``x`` (N, D) and ``n_components``."""
        n_dims = x.shape[1]
        if not self.shrinkage > 0:
            raise ValueError(f"prior shrinkage={self.shrinkage!r} must be > 0")
        mean = np.nanmean(x, axis=0) if self.mean is None else np.asarray(self.mean, float)
        if mean.shape != (n_dims,):
            raise ValueError(f"prior mean has shape {mean.shape}; expected ({n_dims},)")
        dof = n_dims + 2.0 if self.dof is None else float(self.dof)
        minimum = family.map_dof_minimum(n_dims)
        if not dof > minimum:
            raise ValueError(f"prior dof={dof!r} must be > {minimum} for covariance_type="
                             f"{family.name!r}")
        if self.scale is None:
            scale = family.default_prior_scale(data_covariance(x), n_components)
        else:
            scale = np.asarray(self.scale, float)
        expected = family.map_scale_shape(n_dims)
        if scale.shape != expected:
            raise ValueError(f"prior scale has shape {scale.shape}; expected {expected} for "
                             f"covariance_type={family.name!r}")
        if not family.valid_precisions(scale):
            raise ValueError("prior scale must be symmetric positive-definite" if scale.ndim
                             else f"prior scale={float(scale)!r} must be > 0")
        return ConjugatePrior(
            mean=jnp.asarray(scaling.transform(mean), dtype),
            shrinkage=jnp.asarray(self.shrinkage, dtype),
            dof=jnp.asarray(dof, dtype),
            scale=jnp.asarray(scale / scaling.scale**2, dtype))


def resolve_prior(prior, family: CovarianceFamily, x: np.ndarray, n_components: int,
                  scaling: AffineScaling, dtype) -> ConjugatePrior | None:
    """``prior`` argument (None, ``"default"`` or :class:`MAPPrior`) -> internal prior."""
    if prior is None:
        return None
    if isinstance(prior, str) and prior == "default":
        prior = MAPPrior()
    if not isinstance(prior, MAPPrior):
        raise ValueError(f"prior={prior!r} is invalid: use None (maximum likelihood), "
                         "'default' (mclust's defaultPrior) or a bayesgmm.MAPPrior")
    if multi_process():  # its defaults come from the data covariance, known per process
        raise ValueError("a MAP prior is not supported with several JAX processes yet; fit "
                         "with prior=None")
    return prior.resolve(family, x, n_components, scaling, dtype)


def batch_prior(prior: ConjugatePrior | None, n_fits: int) -> ConjugatePrior | None:
    """Repeat a prior along a leading fit axis, as :func:`~bayesgmm.core.em.fit_batch` takes."""
    if prior is None:
        return None
    return ConjugatePrior(*(jnp.broadcast_to(a, (n_fits, *a.shape)) for a in prior))


def data_covariance(x: np.ndarray) -> np.ndarray:
    """Sample covariance (D, D) of ``x`` (N, D); with missing values (NaN), from pairwise
    complete observations, with eigenvalues floored at 1e-6 of the largest so that it stays
    positive-definite (pairwise estimates need not be)."""
    if not np.isnan(x).any():
        return np.atleast_2d(np.cov(x.T))
    import pandas as pd

    cov = pd.DataFrame(x).cov().to_numpy()
    values, vectors = np.linalg.eigh(cov)
    values = np.maximum(values, 1e-6 * values[-1])
    return (vectors * values) @ vectors.T
