"""Second-moment features of the E-step, and the natural parameters in those features.

A covariance family (:mod:`bayesgmm.core.covariance`) names its features: :class:`FullMoments`
(``x_i x_j`` for ``i <= j``, for full and tied matrices) or :class:`DiagMoments` (``x_i ** 2``,
for diag and spherical variances). The log density of component ``k`` is then linear in the
features: ``x @ linear_k + features(x) @ quadratic_k + constant_k``
(:class:`~bayesgmm.core.parameters.NaturalParams`).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jax import Array

from bayesgmm.core.parameters import NaturalParams


class FullMoments:
    """Second-moment features ``x_i x_j`` for ``i <= j``: ``F = D (D + 1) / 2`` columns."""

    @staticmethod
    def n_features(n_dims: int) -> int:
        return n_dims * (n_dims + 1) // 2

    @staticmethod
    def n_dims_of(n_features: int) -> int:
        """D from the ``D (D + 1) / 2`` columns of an upper triangle."""
        return round((np.sqrt(8 * n_features + 1) - 1) / 2)

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
