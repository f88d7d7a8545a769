"""The four covariance types of scikit-learn (mclust's ``VVV``, ``EEE``, ``VVI``, ``VII``):
:class:`Full`, :class:`Tied`, :class:`Diag` and :class:`Spherical`, each one
:class:`~bayesgmm.core.covariance_family.CovarianceFamily` object.

Full and tied covariances are D x D matrices with :class:`~bayesgmm.core.moments.FullMoments`
features; diag and spherical ones are variances with
:class:`~bayesgmm.core.moments.DiagMoments` features. The shapes are listed in
:mod:`bayesgmm.core.covariance`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.linalg import solve_triangular

from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.linalg import cholesky
from bayesgmm.core.moments import DiagMoments, FullMoments, elementwise_natural, matrix_natural
from bayesgmm.core.parameters import NaturalParams


def _outer(means: Array) -> Array:
    return means[:, :, None] * means[:, None, :]



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


class MatrixCovariance(CovarianceFamily):
    """Full and tied: covariances are D x D matrices, second moments are the upper triangle."""

    moments = FullMoments
    precision_requirement = "symmetric, positive-definite"
    conjugate_type = "full"

    def valid_precisions(self, precisions: np.ndarray) -> bool:
        n_dims = precisions.shape[-1]
        matrices = precisions.reshape(-1, n_dims, n_dims)
        return bool(np.allclose(matrices, np.swapaxes(matrices, -1, -2))
                    and np.all(np.linalg.eigvalsh(matrices)[:, 0] > 0))

    def component_shape(self, n_dims: int) -> tuple[int, ...]:
        return (n_dims, n_dims)

    def component_covariance(self, matrix: np.ndarray) -> np.ndarray:
        return matrix

    def map_scale_shape(self, n_dims: int) -> tuple[int, ...]:
        return (n_dims, n_dims)

    def map_dof_minimum(self, n_dims: int) -> int:
        return n_dims - 1

    def has_correlations(self, n_dims: int) -> bool:
        return n_dims > 1

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


class ElementwiseCovariance(CovarianceFamily):
    """Diag and spherical: variances only, second moments are the squares."""

    moments = DiagMoments
    precision_requirement = "positive"
    conjugate_type = "diag"

    def valid_precisions(self, precisions: np.ndarray) -> bool:
        return bool(np.all(precisions > 0))

    def clip(self, spread: Array) -> Array:
        # Rounding can make sum x^2 - n mu^2 slightly negative for a collapsed component,
        # which must not produce a NaN precision.
        return jnp.maximum(spread, 0.0)

    def map_scale_shape(self, n_dims: int) -> tuple[int, ...]:
        return ()

    def map_dof_minimum(self, n_dims: int) -> int:
        return 0

    def has_correlations(self, n_dims: int) -> bool:
        return False

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


class Full(MatrixCovariance):
    """Each component has its own general covariance matrix (mclust ``VVV``)."""

    name = "full"

    def parameter_shape(self, n_components, n_dims):
        return (n_components, n_dims, n_dims)

    def per_component(self, cov, factors):
        return cov * factors[:, None, None]

    def pooled_second(self, second):
        return FullMoments.to_matrix(second, FullMoments.n_dims_of(second.shape[-1]))

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


class Tied(MatrixCovariance):
    """All components share one general covariance matrix (mclust ``EEE``)."""

    name = "tied"
    shared_covariance = True

    def parameter_shape(self, n_components, n_dims):
        return (n_dims, n_dims)

    def wishart_share(self, n_components, n_dims):
        return 1.0 / n_components

    def wishart_counts(self, counts):
        return jnp.broadcast_to(jnp.sum(counts) / counts.shape[0], counts.shape)

    def per_component(self, cov, factors):
        return cov * factors[0]

    def pooled_second(self, second):
        return FullMoments.to_matrix(jnp.sum(second, axis=0),
                                     FullMoments.n_dims_of(second.shape[-1]))

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


class Diag(ElementwiseCovariance):
    """Each component has its own diagonal covariance (mclust ``VVI``)."""

    name = "diag"

    def parameter_shape(self, n_components, n_dims):
        return (n_components, n_dims)

    def component_shape(self, n_dims):
        return (n_dims,)

    def component_covariance(self, matrix):
        return np.diagonal(matrix).copy()

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


class Spherical(ElementwiseCovariance):
    """Each component has its own single variance (mclust ``VII``)."""

    name = "spherical"

    def parameter_shape(self, n_components, n_dims):
        return (n_components,)

    def component_shape(self, n_dims):
        return ()

    def component_covariance(self, matrix):
        return float(np.diagonal(matrix).mean())

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
