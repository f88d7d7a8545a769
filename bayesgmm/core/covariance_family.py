"""The covariance family interface: the formulas every covariance type shares, and the
per-type ones each type states (:mod:`bayesgmm.core.covariance_types`).

Callers never branch on a type's name: every fact that differs between types (shapes, the
M-step's pooling, the priors' conventions) is a method or attribute of the family object.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array

from bayesgmm.core.moments import DiagMoments, FullMoments
from bayesgmm.core.parameters import ConjugatePrior, MixtureParams, NaturalParams


class CovarianceFamily:
    """Formulas shared by every covariance type; subclasses supply the type-specific ones."""

    name: str
    moments: type[FullMoments] | type[DiagMoments]
    #: What a user's ``precisions_init`` must be (scikit-learn's words), checked by
    #: :meth:`valid_precisions` (host arrays in :meth:`parameter_shape`).
    precision_requirement: str
    #: Whether all components share one covariance (tied): per-component quantities of the
    #: covariance, such as the Wishart degrees of freedom, are then one value repeated.
    shared_covariance: bool = False
    #: The covariance type of the Bayesian (conjugate) mixture with this type's structure, a
    #: key of :data:`~bayesgmm.core.conjugate.CONJUGATE_FAMILIES`: 'full' for full and tied
    #: (correlations), 'diag' for diag and spherical (variances per feature).
    conjugate_type: str

    def parameter_shape(self, n_components: int, n_dims: int) -> tuple[int, ...]:
        """Shape of this type's covariances or precisions as the estimators expose them."""
        raise NotImplementedError

    def valid_precisions(self, precisions: np.ndarray) -> bool:
        """Whether host values in this type's format (precisions, or a covariance such as a
        prior's scale: the requirement is the same) are :attr:`precision_requirement`."""
        raise NotImplementedError

    def component_shape(self, n_dims: int) -> tuple[int, ...]:
        """Shape of one component's covariance in this type's format, as the variational
        prior's ``covariance_prior``: (D, D) full and tied, (D,) diag, () spherical."""
        raise NotImplementedError

    def component_covariance(self, matrix: np.ndarray) -> np.ndarray | float:
        """A (D, D) covariance matrix in :meth:`component_shape` (host-side): the matrix itself
        (full, tied), its diagonal (diag) or its mean variance (spherical)."""
        raise NotImplementedError

    def map_scale_shape(self, n_dims: int) -> tuple[int, ...]:
        """Shape of the MAP prior's ``scale`` (:class:`ConjugatePrior`): (D, D) for the
        inverse-Wishart of full and tied, () for the inverse-gamma of diag and spherical."""
        raise NotImplementedError

    def map_dof_minimum(self, n_dims: int) -> int:
        """The MAP prior's degrees of freedom must exceed this: ``D - 1`` (inverse-Wishart),
        0 (inverse-gamma)."""
        raise NotImplementedError

    def has_correlations(self, n_dims: int) -> bool:
        """Whether the covariances have off-diagonal terms, correlations between the ``n_dims``
        features, to estimate (full and tied, with more than one feature)."""
        raise NotImplementedError

    def covariance(self, counts: Array, means: Array, second: Array, reg_covar: Array,
                   prior: ConjugatePrior | None = None, offsets: Array | None = None,
                   n_active: Array | None = None) -> Array:
        """M-step covariance from weighted sums: ``spread / denominator + reg_covar``.

        Maximum likelihood: ``spread`` is the within-component scatter ``W`` (pooled as the type
        requires) and ``denominator`` the effective count. MAP (Fraley & Raftery 2007): ``spread
        = scale + W + kappa n_k / (kappa + n_k) d_k d_k'`` with ``d_k = xbar_k - prior.mean``,
        over the posterior-mode denominator of :meth:`map_denominator`.

        Parameters
        ----------
        counts : (K,) effective counts ``n_k``
        means : (K, D) component means relative to the origin of ``second``
        second : (K, F) weighted sums of the second-moment features about that origin
        reg_covar : scalar added to the diagonal
        prior : :class:`ConjugatePrior` or None for maximum likelihood
        offsets : (K, D) ``xbar_k - prior.mean`` (with a prior)
        n_active : number of components in use (tied MAP only; defaults to K)
        """
        n_dims = means.shape[1]
        spread = self.pooled_second(second) - self.pooled_outer(counts, means)
        if prior is None:
            spread = self.clip(spread)
            denominator = self.ml_denominator(counts, n_dims)
        else:
            kappa = prior.shrinkage * counts / (prior.shrinkage + counts)
            spread = (self.clip(spread) + self.pooled_outer(kappa, offsets)
                      + prior.scale)
            n_active = counts.shape[0] if n_active is None else n_active
            denominator = self.map_denominator(counts, n_dims, n_active, prior.dof)
        return spread / denominator + reg_covar * self.identity(n_dims, spread.dtype)

    def pooled_second(self, second: Array) -> Array:
        """Second-moment sums (K, F) in this type's covariance format."""
        raise NotImplementedError

    def pooled_outer(self, weights: Array, vectors: Array) -> Array:
        """``sum_k weights_k v_k v_k'`` (K,), (K, D) in this type's covariance format."""
        raise NotImplementedError

    def clip(self, spread: Array) -> Array:
        """Remove rounding below zero where the format allows (variances)."""
        return spread

    def ml_denominator(self, counts: Array, n_dims: int) -> Array:
        raise NotImplementedError

    def map_denominator(self, counts: Array, n_dims: int, n_active, dof: Array) -> Array:
        """Posterior-mode denominators (Fraley & Raftery 2007, Table 2)."""
        raise NotImplementedError

    def identity(self, n_dims: int, dtype) -> Array:
        """The covariance format's identity, to add ``reg_covar``."""
        raise NotImplementedError

    def default_prior_scale(self, data_cov: np.ndarray, n_components: int) -> np.ndarray:
        """mclust's ``defaultPrior`` scale: ``G^(-2/D)`` times the data covariance (full, tied)
        or times the mean column variance (diag, spherical)."""
        raise NotImplementedError

    def precisions_cholesky(self, cov: Array, reg_covar: Array) -> tuple[Array, Array]:
        """Return ``(cov, L)`` with ``precision = L L'``; ``cov`` may be repaired (see
        ``covariance_types._safe_cholesky``)."""
        raise NotImplementedError

    def natural(self, params: MixtureParams) -> NaturalParams:
        """Coefficients for the E-step's matrix-product form of the log densities."""
        return self.natural_of(jnp.log(params.weights), params.means,
                               params.precisions_cholesky)

    def natural_of(self, log_weights: Array, means: Array, prec_chol: Array) -> NaturalParams:
        """:meth:`natural` of Gaussians (``means`` (K, D), precision Cholesky factors in this
        type's shape) with any per-component log offsets ``log_weights`` (K,)."""
        raise NotImplementedError

    def half_log_det(self, prec_chol: Array, n_components: int, n_dims: int) -> Array:
        """``log |P_k|^(1/2)`` (K,) from the precision Cholesky factors (tied: repeated)."""
        raise NotImplementedError

    def wishart_update(self, counts: Array, means: Array, second: Array, reg_covar: Array,
                       prior: ConjugatePrior) -> tuple[Array, Array]:
        """The variational update of the components' Wishart factor (Bishop 2006, eq. 10.62;
        scikit-learn's ``BayesianGaussianMixture``, including its ``diag``/``spherical``
        and ``tied`` conventions).

        With ``S_k`` the maximum-likelihood covariance (plus ``reg_covar``) of component
        ``k``, ``d_k = xbar_k - prior.mean`` and ``beta_k = prior.shrinkage + n_k``::

            scale_k = prior.scale + share * (m_k S_k + n_k prior.shrinkage / beta_k * d_k d_k')

        in this type's format, where ``m_k`` is the count behind ``S_k`` (full, diag: ``n_k``;
        spherical: ``D n_k`` summed over features; tied: ``sum_k n_k``, pooled) and ``share``
        spreads it (1; spherical ``1/D``; tied ``1/K``). The degrees of freedom are
        ``prior.dof + n_k`` (tied: ``prior.dof + sum_k n_k / K``).

        Parameters
        ----------
        counts : (K,) effective counts (with scikit-learn's ``10 eps``)
        means : (K, D) ``xbar_k`` about the origin of ``second``
        second : (K, F) weighted sums of the second-moment features about that origin
        prior : :class:`ConjugatePrior` (``scale`` in this type's covariance format)

        Returns
        -------
        covariances : ``scale_k / dof_k`` in this type's format (scikit-learn's
            ``covariances_``: the inverse of the expected precision)
        dof : (K,) (tied: one value repeated)
        """
        n_components, n_dims = means.shape
        scatter = self.clip(self.pooled_second(second) - self.pooled_outer(counts, means))
        scatter = scatter + (self.ml_denominator(counts, n_dims) * reg_covar
                             * self.identity(n_dims, means.dtype))
        kappa = prior.shrinkage * counts / (prior.shrinkage + counts)
        scale = prior.scale + self.wishart_share(n_components, n_dims) * (
            scatter + self.pooled_outer(kappa, means - prior.mean))
        dof = prior.dof + self.wishart_counts(counts)
        return self.per_component(scale, 1.0 / dof), dof

    def wishart_share(self, n_components: int, n_dims: int) -> float:
        """The factor ``share`` of :meth:`wishart_update`."""
        return 1.0

    def wishart_counts(self, counts: Array) -> Array:
        """(K,) counts added to the Wishart degrees of freedom."""
        return counts

    def per_component(self, cov: Array, factors: Array) -> Array:
        """``cov`` (this type's format) times per-component ``factors`` (K,) (tied: the
        first)."""
        raise NotImplementedError

    def n_parameters(self, n_components: int, n_dims: int) -> int:
        """Free parameters of the mixture (weights, means and covariances), as scikit-learn."""
        return int(self._n_cov_parameters(n_components, n_dims) + n_dims * n_components
                   + n_components - 1)

    def _n_cov_parameters(self, n_components: int, n_dims: int) -> float:
        raise NotImplementedError

    def as_full(self, cov: Array, n_components: int, n_dims: int) -> Array:
        """Covariances as (K, D, D) matrices."""
        raise NotImplementedError

    def min_count(self, n_dims: int) -> float:
        """Smallest effective component size that can support this covariance estimate."""
        raise NotImplementedError

    def from_full(self, matrices: np.ndarray) -> np.ndarray:
        """This type's format (covariances or precision Cholesky factors) from the (..., K, D,
        D) matrices of :class:`~bayesgmm.core.covariance.Mixed`, whose structure is this
        type's (host-side, numpy)."""
        raise NotImplementedError

    def precisions(self, prec_chol: Array) -> Array:
        """Precision matrices (scikit-learn's ``precisions_``) from their Cholesky factors.
        Array methods only, so numpy in gives numpy out: a fitted model's attribute needs no
        compiled program."""
        raise NotImplementedError

    def covariances_from_precisions(self, precisions: Array) -> Array:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __hash__(self) -> int:
        return hash(type(self))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)
