"""Moment matching between one component and two (Richardson & Green 1997), for the
moment-matching kernel of the split-merge moves (:mod:`bayesgmm.core.split_merge_kernels`).

:meth:`FullMomentMatching.combine` maps two components to the merged mean and covariance
with equal weights and the auxiliary variables ``(z, V)``; :meth:`~FullMomentMatching.separate`
maps them back with the log-Jacobian of the change of dimension, and
:meth:`~FullMomentMatching.log_auxiliary` is the density of ``(z, V)``. The classes hold
static methods only; :mod:`bayesgmm.core.conjugate`'s families inherit them.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import Array

from bayesgmm.core.conjugate_draws import ComponentDraw, FullDraws
from bayesgmm.core.linalg import cholesky, log_det_from_cholesky, lower_triangular_inverse

_LOG_2 = math.log(2.0)
_LOG_2PI = math.log(2.0 * math.pi)


class FullMomentMatching:
    """Moment matching of components with full covariance matrices."""

    @staticmethod
    def combine(first: ComponentDraw, second: ComponentDraw) -> tuple[Array, Array, Array,
                                                                     Array]:
        """Moment matching with equal weights (Richardson & Green 1997): the merged mean and
        covariance and the auxiliary ``(z, V)`` that :meth:`separate` maps back.

        ``mu = (mu_a + mu_b) / 2``, ``u = (mu_a - mu_b) / 2``, ``M = (S_a + S_b) / 2``,
        ``S = M + u u'``; ``z = L_S^-1 u``, ``V = L_M^-1 (S_a - S_b) / 2 L_M^-T``.
        Shapes: draws of (...) components -> means (..., D), covariances (..., D, D), z
        (..., D), V (..., D, D).
        """
        cov_a = FullDraws.covariances(first.covariance_factor)
        cov_b = FullDraws.covariances(second.covariance_factor)
        mean = 0.5 * (first.means + second.means)
        half_gap = 0.5 * (first.means - second.means)
        middle = 0.5 * (cov_a + cov_b)
        covariance = middle + half_gap[..., :, None] * half_gap[..., None, :]
        root = lower_triangular_inverse(cholesky(covariance))
        inverse_middle = lower_triangular_inverse(cholesky(middle))
        z = jnp.einsum("...ij,...j->...i", root, half_gap)
        v = inverse_middle @ (0.5 * (cov_a - cov_b)) @ jnp.swapaxes(inverse_middle, -1, -2)
        return mean, covariance, z, v

    @staticmethod
    def separate(mean: Array, covariance: Array, z: Array, v: Array
                 ) -> tuple[Array, Array, Array, Array, Array]:
        """The inverse of :meth:`combine`: means and covariances of the two sides and the
        log-Jacobian ``log |d(mu_a, mu_b, S_a, S_b) / d(mu, S, u, V)| = D log 2 + q log 2 +
        (D + 1) / 2 log |M|`` (q = D (D + 1) / 2). Not positive definite where ``|z| >= 1``
        or ``I +- V`` is not (the caller rejects those)."""
        n_dims = mean.shape[-1]
        factor = cholesky(covariance)
        half_gap = jnp.einsum("...ij,...j->...i", factor, z)
        middle = covariance - half_gap[..., :, None] * half_gap[..., None, :]
        root = cholesky(middle)
        spread = root @ v @ jnp.swapaxes(root, -1, -2)
        n_free = n_dims * (n_dims + 1) // 2
        log_jacobian = ((n_dims + n_free) * _LOG_2
                        + 0.5 * (n_dims + 1) * log_det_from_cholesky(root))
        return (mean + half_gap, mean - half_gap, middle + spread, middle - spread,
                log_jacobian)

    @staticmethod
    def log_auxiliary(covariance: Array, z: Array, v: Array, z_scale: float,
                      v_scale: float) -> Array:
        """``log q(u, V)`` of the auxiliary variables of :meth:`separate` in the coordinates
        ``u = L_S z`` (so ``- log |S| / 2``): ``z ~ N(0, z_scale^2 I)``, the free entries of
        symmetric ``V`` (diagonal and above) ``~ N(0, v_scale^2)``."""
        n_dims = z.shape[-1]
        rows, cols = jnp.triu_indices(n_dims)
        free = v[..., rows, cols]
        log_z = (-0.5 * n_dims * (_LOG_2PI + 2.0 * jnp.log(z_scale))
                 - 0.5 * jnp.sum(z * z, axis=-1) / z_scale**2)
        log_v = (-0.5 * free.shape[-1] * (_LOG_2PI + 2.0 * jnp.log(v_scale))
                 - 0.5 * jnp.sum(free * free, axis=-1) / v_scale**2)
        return log_z + log_v - 0.5 * log_det_from_cholesky(cholesky(covariance))

    @staticmethod
    def symmetric(normals: Array) -> Array:
        """A symmetric matrix (..., D, D) whose free entries are the upper triangle of
        ``normals`` (..., D, D)."""
        upper = jnp.triu(normals)
        return upper + jnp.swapaxes(jnp.triu(normals, k=1), -1, -2)


class DiagMomentMatching:
    """Moment matching per feature: diagonal covariances (variances (..., D))."""

    @staticmethod
    def combine(first: ComponentDraw, second: ComponentDraw) -> tuple[Array, Array, Array,
                                                                     Array]:
        """Per-feature moment matching (see :meth:`FullMomentMatching.combine`): means,
        variances, z and V all (..., D)."""
        var_a, var_b = first.covariance_factor**2, second.covariance_factor**2
        mean = 0.5 * (first.means + second.means)
        half_gap = 0.5 * (first.means - second.means)
        middle = 0.5 * (var_a + var_b)
        variance = middle + half_gap**2
        return mean, variance, half_gap / jnp.sqrt(variance), 0.5 * (var_a - var_b) / middle

    @staticmethod
    def separate(mean: Array, variance: Array, z: Array, v: Array
                 ) -> tuple[Array, Array, Array, Array, Array]:
        """Per feature: log-Jacobian ``sum_d log(4 M_d)``."""
        half_gap = jnp.sqrt(variance) * z
        middle = variance - half_gap**2
        log_jacobian = jnp.sum(2.0 * _LOG_2 + jnp.log(jnp.where(middle > 0, middle, jnp.nan)),
                               axis=-1)
        return (mean + half_gap, mean - half_gap, middle * (1.0 + v), middle * (1.0 - v),
                log_jacobian)

    @staticmethod
    def log_auxiliary(variance: Array, z: Array, v: Array, z_scale: float,
                      v_scale: float) -> Array:
        """``log q(u, V)`` per feature (see :meth:`FullMomentMatching.log_auxiliary`)."""
        n_dims = z.shape[-1]
        return (-n_dims * (_LOG_2PI + jnp.log(z_scale) + jnp.log(v_scale))
                - 0.5 * jnp.sum(z * z, axis=-1) / z_scale**2
                - 0.5 * jnp.sum(v * v, axis=-1) / v_scale**2
                - 0.5 * jnp.sum(jnp.log(variance), axis=-1))

    @staticmethod
    def symmetric(normals: Array) -> Array:
        """The diagonal of ``normals`` (..., D, D): one free value per feature."""
        return jnp.diagonal(normals, axis1=-2, axis2=-1)
