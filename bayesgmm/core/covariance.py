"""Covariance families: one object per covariance type, carrying all of that type's formulas.

A family knows, for its parameter shapes,

* which second-moment features the E-step needs (:class:`FullMoments` or :class:`DiagMoments`),
* the M-step from additive sufficient statistics to a covariance (with ``reg_covar``), maximum
  likelihood or MAP under the conjugate prior of Fraley & Raftery (2007),
* the Cholesky factor of the precision and the natural parameters used by the E-step,
* the number of free parameters (for BIC/AIC).

Shapes, with ``K`` components and ``D`` features (the same as scikit-learn):

=========== ============== =====================
type        covariance     precisions_cholesky
=========== ============== =====================
full        (K, D, D)      (K, D, D), upper
tied        (D, D)         (D, D), upper
diag        (K, D)         (K, D)
spherical   (K,)           (K,)
=========== ============== =====================

Adding a covariance type means adding one class here and registering it in :data:`FAMILIES`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.linalg import solve_triangular

from bayesgmm.core.linalg import cholesky


class MixtureParams(NamedTuple):
    """Parameters of a Gaussian mixture (a pytree).

    Attributes
    ----------
    weights : (K,)
    means : (K, D)
    covariances : family-specific shape (see module docstring)
    precisions_cholesky : family-specific shape, ``precision = L @ L.T`` (elementwise square for
        diag/spherical)
    """

    weights: Array
    means: Array
    covariances: Array
    precisions_cholesky: Array


class NaturalParams(NamedTuple):
    """Per-component coefficients such that ``log(w_k N(x | mu_k, S_k)) = x @ linear_k +
    features(x) @ quadratic_k + constant_k``.

    Attributes
    ----------
    linear : (K, D), ``P_k mu_k``
    quadratic : (K, F), coefficients of the second-moment features (``-P/2`` with the
        off-diagonal terms doubled for the full form)
    constant : (K,), ``log w_k - D/2 log(2 pi) + 1/2 log|P_k| - 1/2 mu_k' P_k mu_k``
    """

    linear: Array
    quadratic: Array
    constant: Array


class ConjugatePrior(NamedTuple):
    """Conjugate prior for MAP EM (Fraley & Raftery 2007), in internal units (a pytree).

    ``mu_k | S_k ~ N(mean, S_k / shrinkage)`` and ``S_k ~ inverse-Wishart(dof, scale)`` (full,
    tied), or per-variance inverse-gamma ``(dof / 2, scale / 2)`` (diag, spherical). Mixing
    weights have no prior (as mclust).

    Attributes
    ----------
    mean : (D,)
    shrinkage : () ``kappa``, the prior's weight on the mean in pseudo-observations
    dof : () ``nu``
    scale : (D, D) full/tied, () diag/spherical (mclust's scalar)
    """

    mean: Array
    shrinkage: Array
    dof: Array
    scale: Array


class FullMoments:
    """Second-moment features ``x_i x_j`` for ``i <= j``: ``F = D (D + 1) / 2`` columns."""

    @staticmethod
    def n_features(n_dims: int) -> int:
        return n_dims * (n_dims + 1) // 2

    @staticmethod
    def features(x: Array) -> Array:
        """(..., D) -> (..., D(D+1)/2), in ``np.triu_indices`` order (row-major)."""
        n_dims = x.shape[-1]
        return jnp.concatenate([x[..., i:i + 1] * x[..., i:] for i in range(n_dims)], axis=-1)

    @staticmethod
    def centred_sums(weighted: Array, x: Array, centre: Array) -> Array:
        """``sum_i weighted_ik phi(x_i - centre_k)``: (n, K), (n, D), (K, D) -> (K, F).

        A batched matrix product over components; no (n, K, F) temporary.
        """
        rows, cols = np.triu_indices(x.shape[-1])
        centred = x[None] - centre[:, None]  # (K, n, D)
        scatter = jnp.matmul(jnp.swapaxes(centred * weighted.T[:, :, None], 1, 2), centred)
        return scatter[:, rows, cols]

    @staticmethod
    def to_matrix(second: Array, n_dims: int) -> Array:
        """(..., D(D+1)/2) upper-triangle sums -> (..., D, D) symmetric matrices."""
        rows, cols = np.triu_indices(n_dims)
        upper = jnp.zeros((*second.shape[:-1], n_dims, n_dims), second.dtype)
        upper = upper.at[..., rows, cols].set(second)
        return upper + jnp.swapaxes(upper, -1, -2) - upper * jnp.eye(n_dims, dtype=second.dtype)

    @staticmethod
    def from_matrix(matrix: Array) -> Array:
        """(..., D, D) symmetric second-moment sums -> (..., D(D+1)/2) features."""
        rows, cols = np.triu_indices(matrix.shape[-1])
        return matrix[..., rows, cols]

    @staticmethod
    def quadratic_coefficients(precision: Array) -> Array:
        """(..., D, D) precision -> (..., D(D+1)/2) coefficients of ``-x' P x / 2``."""
        n_dims = precision.shape[-1]
        rows, cols = np.triu_indices(n_dims)
        factor = np.where(rows == cols, -0.5, -1.0).astype(precision.dtype)
        return precision[..., rows, cols] * factor


class DiagMoments:
    """Second-moment features ``x_i ** 2``: ``F = D`` columns."""

    @staticmethod
    def n_features(n_dims: int) -> int:
        return n_dims

    @staticmethod
    def features(x: Array) -> Array:
        """(..., D) -> (..., D)."""
        return x * x

    @staticmethod
    def from_matrix(matrix: Array) -> Array:
        """(..., D, D) second-moment sums -> (..., D) diagonal features."""
        return jnp.diagonal(matrix, axis1=-2, axis2=-1)

    @staticmethod
    def centred_sums(weighted: Array, x: Array, centre: Array) -> Array:
        """``sum_i weighted_ik (x_i - centre_k)**2``: (n, K), (n, D), (K, D) -> (K, D)."""
        centred = x[None] - centre[:, None]  # (K, n, D)
        return jnp.einsum("nk,knd->kd", weighted, centred * centred)


def _outer(means: Array) -> Array:
    return means[:, :, None] * means[:, None, :]


def _dims_from_vech(n_columns: int) -> int:
    """D from the D (D + 1) / 2 columns of an upper triangle."""
    return round((np.sqrt(8 * n_columns + 1) - 1) / 2)


def variance_floor(reg_covar: Array, dtype) -> Array:
    """Smallest variance a repaired covariance may have: ``max(reg_covar, eps)``.

    In internal units (data scaled to unit average variance) ``eps`` keeps precisions finite
    even with ``reg_covar=0``; it only ever applies to a collapsed component.
    """
    return jnp.maximum(reg_covar, jnp.finfo(dtype).eps)


def _safe_cholesky(cov: Array, reg_covar: Array) -> tuple[Array, Array]:
    """Lower Cholesky factor of ``cov`` (..., D, D), never NaN.

    Where the factorisation fails or is singular (a collapsed component whose covariance lost
    positive definiteness to rounding, or ``reg_covar=0``), the covariance is replaced by its
    diagonal, floored at :func:`variance_floor`. Such a component is reported as degenerate by
    the caller.
    """
    eye = jnp.eye(cov.shape[-1], dtype=cov.dtype)
    floor = variance_floor(reg_covar, cov.dtype)
    chol = cholesky(cov)
    pivots = jnp.diagonal(chol, axis1=-2, axis2=-1)
    ok = (jnp.all(jnp.isfinite(chol), axis=(-2, -1))
          & jnp.all(pivots**2 >= floor, axis=-1))[..., None, None]
    diag = jnp.maximum(jnp.diagonal(cov, axis1=-2, axis2=-1), floor)
    cov = jnp.where(ok, cov, diag[..., None] * eye)
    chol = jnp.where(ok, chol, jnp.sqrt(diag)[..., None] * eye)
    return cov, chol


class CovarianceFamily:
    """Formulas shared by every covariance type; subclasses supply the type-specific ones."""

    name: str
    moments: type[FullMoments] | type[DiagMoments]
    #: What a user's ``precisions_init`` must be (scikit-learn's words), checked by
    #: :meth:`valid_precisions` (host arrays in :meth:`parameter_shape`).
    precision_requirement: str

    def parameter_shape(self, n_components: int, n_dims: int) -> tuple[int, ...]:
        """Shape of this type's covariances or precisions as the estimators expose them."""
        raise NotImplementedError

    def valid_precisions(self, precisions: np.ndarray) -> bool:
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
        :func:`_safe_cholesky`)."""
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
        D) matrices of :class:`Mixed`, whose structure is this type's (host-side, numpy)."""
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


def _log_normaliser(log_weights: Array, log_det: Array, mahalanobis_mean: Array,
                    n_dims: int) -> Array:
    return (log_weights - 0.5 * n_dims * math.log(2.0 * math.pi) + log_det
            - 0.5 * mahalanobis_mean)


def matrix_natural(log_weights: Array, means: Array, precision: Array,
                   half_log_det: Array) -> NaturalParams:
    """Natural parameters of K Gaussians with precision matrices (K, D, D), ``half_log_det``
    ``= log |P_k|^(1/2)`` (K,) and log weights (K,), for :class:`FullMoments` features."""
    linear = jnp.einsum("kij,kj->ki", precision, means)
    quadratic = FullMoments.quadratic_coefficients(precision)
    constant = _log_normaliser(log_weights, half_log_det, jnp.sum(linear * means, -1),
                               means.shape[-1])
    return NaturalParams(linear, quadratic, constant)


def elementwise_natural(log_weights: Array, means: Array, precision: Array,
                        half_log_det: Array) -> NaturalParams:
    """:func:`matrix_natural` for diagonal precisions (K, D) and :class:`DiagMoments`."""
    linear = means * precision
    constant = _log_normaliser(log_weights, half_log_det, jnp.sum(linear * means, -1),
                               means.shape[-1])
    return NaturalParams(linear, -0.5 * precision, constant)


class _MatrixCovariance(CovarianceFamily):
    """Full and tied: covariances are D x D matrices, second moments are the upper triangle."""

    moments = FullMoments
    precision_requirement = "symmetric, positive-definite"

    def valid_precisions(self, precisions: np.ndarray) -> bool:
        n_dims = precisions.shape[-1]
        matrices = precisions.reshape(-1, n_dims, n_dims)
        return bool(np.allclose(matrices, np.swapaxes(matrices, -1, -2))
                    and np.all(np.linalg.eigvalsh(matrices)[:, 0] > 0))

    def precisions_cholesky(self, cov: Array, reg_covar: Array) -> tuple[Array, Array]:
        cov, chol = _safe_cholesky(cov, reg_covar)
        eye = jnp.broadcast_to(jnp.eye(cov.shape[-1], dtype=cov.dtype), cov.shape)
        return cov, jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)

    def precisions(self, prec_chol: Array) -> Array:
        return prec_chol @ prec_chol.swapaxes(-1, -2)

    def identity(self, n_dims, dtype):
        return jnp.eye(n_dims, dtype=dtype)

    def default_prior_scale(self, data_cov, n_components):
        return data_cov * n_components ** (-2.0 / data_cov.shape[0])

    def covariances_from_precisions(self, precisions: Array) -> Array:
        return jnp.linalg.inv(precisions)

    def natural_of(self, log_weights: Array, means: Array, prec_chol: Array) -> NaturalParams:
        n_components, n_dims = means.shape
        # Tied parameters (D, D) broadcast to every component.
        precision = jnp.broadcast_to(self.precisions(prec_chol), (n_components, n_dims, n_dims))
        return matrix_natural(log_weights, means, precision,
                              self.half_log_det(prec_chol, n_components, n_dims))

    def half_log_det(self, prec_chol, n_components, n_dims):
        log_det = jnp.sum(jnp.log(jnp.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)
        return jnp.broadcast_to(log_det, (n_components,))


class _ElementwiseCovariance(CovarianceFamily):
    """Diag and spherical: variances only, second moments are the squares."""

    moments = DiagMoments
    precision_requirement = "positive"

    def valid_precisions(self, precisions: np.ndarray) -> bool:
        return bool(np.all(precisions > 0))

    def clip(self, spread: Array) -> Array:
        # Rounding can make sum x^2 - n mu^2 slightly negative for a collapsed component,
        # which must not produce a NaN precision.
        return jnp.maximum(spread, 0.0)

    def default_prior_scale(self, data_cov, n_components):
        n_dims = data_cov.shape[0]
        return np.trace(data_cov) / n_dims * n_components ** (-2.0 / n_dims)

    def precisions_cholesky(self, cov: Array, reg_covar: Array) -> tuple[Array, Array]:
        cov = jnp.maximum(cov, variance_floor(reg_covar, cov.dtype))
        return cov, 1.0 / jnp.sqrt(cov)

    def precisions(self, prec_chol: Array) -> Array:
        return prec_chol**2

    def covariances_from_precisions(self, precisions: Array) -> Array:
        return 1.0 / precisions

    def min_count(self, n_dims: int) -> float:
        return 2.0

    def _per_dim_precision(self, prec_chol: Array, n_dims: int) -> Array:
        raise NotImplementedError

    def natural_of(self, log_weights: Array, means: Array, prec_chol: Array) -> NaturalParams:
        n_dims = means.shape[1]
        per_dim = self._per_dim_precision(prec_chol, n_dims)  # (K, D)
        return elementwise_natural(log_weights, means, per_dim**2,
                                   jnp.sum(jnp.log(per_dim), axis=-1))

    def half_log_det(self, prec_chol, n_components, n_dims):
        return jnp.sum(jnp.log(self._per_dim_precision(prec_chol, n_dims)), axis=-1)


class Full(_MatrixCovariance):
    """Each component has its own general covariance matrix (mclust ``VVV``)."""

    name = "full"

    def parameter_shape(self, n_components, n_dims):
        return (n_components, n_dims, n_dims)

    def per_component(self, cov, factors):
        return cov * factors[:, None, None]

    def pooled_second(self, second):
        return FullMoments.to_matrix(second, _dims_from_vech(second.shape[-1]))

    def pooled_outer(self, weights, vectors):
        return weights[:, None, None] * _outer(vectors)

    def ml_denominator(self, counts, n_dims):
        return counts[:, None, None]

    def map_denominator(self, counts, n_dims, n_active, dof):
        return (dof + counts + n_dims + 2)[:, None, None]

    def _n_cov_parameters(self, n_components, n_dims):
        return n_components * n_dims * (n_dims + 1) / 2.0

    def as_full(self, cov, n_components, n_dims):
        return cov

    def min_count(self, n_dims):
        return float(n_dims + 1)

    def from_full(self, matrices):
        return matrices


class Tied(_MatrixCovariance):
    """All components share one general covariance matrix (mclust ``EEE``)."""

    name = "tied"

    def parameter_shape(self, n_components, n_dims):
        return (n_dims, n_dims)

    def wishart_share(self, n_components, n_dims):
        return 1.0 / n_components

    def wishart_counts(self, counts):
        return jnp.broadcast_to(jnp.sum(counts) / counts.shape[0], counts.shape)

    def per_component(self, cov, factors):
        return cov * factors[0]

    def pooled_second(self, second):
        return FullMoments.to_matrix(jnp.sum(second, axis=0), _dims_from_vech(second.shape[-1]))

    def pooled_outer(self, weights, vectors):
        return jnp.einsum("k,ki,kj->ij", weights, vectors, vectors)

    def ml_denominator(self, counts, n_dims):
        return jnp.sum(counts)

    def map_denominator(self, counts, n_dims, n_active, dof):
        return dof + jnp.sum(counts) + n_dims + 1 + n_active

    def _n_cov_parameters(self, n_components, n_dims):
        return n_dims * (n_dims + 1) / 2.0

    def as_full(self, cov, n_components, n_dims):
        return jnp.broadcast_to(cov, (n_components, *cov.shape))

    def min_count(self, n_dims):
        return 1.0

    def from_full(self, matrices):
        return matrices[..., 0, :, :]


class Diag(_ElementwiseCovariance):
    """Each component has its own diagonal covariance (mclust ``VVI``)."""

    name = "diag"

    def parameter_shape(self, n_components, n_dims):
        return (n_components, n_dims)

    def per_component(self, cov, factors):
        return cov * factors[:, None]

    def pooled_second(self, second):
        return second

    def pooled_outer(self, weights, vectors):
        return weights[:, None] * vectors**2

    def ml_denominator(self, counts, n_dims):
        return counts[:, None]

    def map_denominator(self, counts, n_dims, n_active, dof):
        return (dof + counts + 3)[:, None]

    def identity(self, n_dims, dtype):
        return jnp.ones(n_dims, dtype)

    def _per_dim_precision(self, prec_chol, n_dims):
        return prec_chol

    def _n_cov_parameters(self, n_components, n_dims):
        return n_components * n_dims

    def as_full(self, cov, n_components, n_dims):
        return cov[:, :, None] * jnp.eye(cov.shape[-1], dtype=cov.dtype)

    def from_full(self, matrices):
        return np.diagonal(matrices, axis1=-2, axis2=-1)


class Spherical(_ElementwiseCovariance):
    """Each component has its own single variance (mclust ``VII``)."""

    name = "spherical"

    def parameter_shape(self, n_components, n_dims):
        return (n_components,)

    def wishart_share(self, n_components, n_dims):
        return 1.0 / n_dims

    def per_component(self, cov, factors):
        return cov * factors

    def pooled_second(self, second):
        return jnp.sum(second, axis=-1)

    def pooled_outer(self, weights, vectors):
        return weights * jnp.sum(vectors**2, axis=-1)

    def ml_denominator(self, counts, n_dims):
        return n_dims * counts

    def map_denominator(self, counts, n_dims, n_active, dof):
        return dof + (counts + 1) * n_dims + 2

    def identity(self, n_dims, dtype):
        return jnp.asarray(1.0, dtype)

    def _per_dim_precision(self, prec_chol, n_dims):
        return jnp.broadcast_to(prec_chol[:, None], (prec_chol.shape[0], n_dims))

    def _n_cov_parameters(self, n_components, n_dims):
        return n_components

    def as_full(self, cov, n_components, n_dims):
        return cov[:, None, None] * jnp.eye(n_dims, dtype=cov.dtype)

    def from_full(self, matrices):
        return np.diagonal(matrices, axis1=-2, axis2=-1)[..., 0]


FAMILIES: dict[str, CovarianceFamily] = {
    family.name: family for family in (Full(), Tied(), Diag(), Spherical())
}

#: The types :class:`Mixed` runs, in the order of its ``kind`` codes.
MIXED_KINDS: tuple[str, ...] = ("spherical", "diag", "tied", "full")


class Mixed(_MatrixCovariance):
    """Any of the four types, chosen per fit by a traced code: a whole model-selection sweep
    (every type, K and restart) in one compiled program.

    Every fit carries full (K, D, D) matrices and the full second-moment features, so the
    E-step is the same code for every type; only the M-step differs, and it is each type's own
    formula (:meth:`covariance` evaluates the four families' M-steps on the full statistics
    and keeps the one of ``kind``). A diagonal or spherical fit thus runs on full features
    (45 columns instead of 17 or 10 at D = 8), a price worth one program instead of four: XLA
    compile time, not arithmetic, dominated a sweep on up to 1e5 rows. Its results are
    converted to each type's format by :meth:`CovarianceFamily.from_full`.

    The unbound ``Mixed()`` is the static argument of a compiled program; inside it,
    :meth:`bind` attaches one fit's traced ``kind`` (an index into :data:`MIXED_KINDS`).
    With a prior, ``prior.scale`` is (D, D) for every kind: ``scale * I`` for diag and
    spherical, whose scalar is read back from the diagonal.
    """

    name = "mixed"

    def __init__(self, kind: Array | None = None):
        self.kind = kind

    def bind(self, kind: Array) -> Mixed:
        return Mixed(kind)

    def _families(self) -> list[CovarianceFamily]:
        return [FAMILIES[name] for name in MIXED_KINDS]

    def _choose(self, options: list[Array]) -> Array:
        return jnp.stack(options)[self.kind]

    def covariance(self, counts, means, second, reg_covar, prior=None, offsets=None,
                   n_active=None):
        n_components, n_dims = means.shape
        matrix = FullMoments.to_matrix(second, n_dims)
        options = []
        for family in self._families():
            own_second = second if family.moments is FullMoments else jnp.diagonal(
                matrix, axis1=-2, axis2=-1)
            own_prior = prior
            if prior is not None and family.moments is DiagMoments:
                own_prior = prior._replace(scale=prior.scale[0, 0])
            cov = family.covariance(counts, means, own_second, reg_covar, own_prior, offsets,
                                    n_active)
            options.append(family.as_full(cov, n_components, n_dims))
        return self._choose(options)

    def as_full(self, cov, n_components, n_dims):
        return cov

    def min_count(self, n_dims):
        return self._choose([jnp.asarray(f.min_count(n_dims)) for f in self._families()])

    def _n_cov_parameters(self, n_components, n_dims):
        raise TypeError("a Mixed fit counts its parameters by its kind's family")


def get_family(covariance_type: str) -> CovarianceFamily:
    """The family object for a scikit-learn ``covariance_type`` string."""
    try:
        return FAMILIES[covariance_type]
    except KeyError:
        raise ValueError(
            f"covariance_type={covariance_type!r} is not supported; choose one of "
            f"{sorted(FAMILIES)}"
        ) from None
