"""Exact EM for data missing at random: per-block conditional Gaussians.

A row with observed coordinates ``o`` and missing ``m`` has, under component ``k``, the marginal
density ``N(x_o | mu_o, S_oo)`` (the E-step's responsibilities) and, given ``x_o``, the
conditional ``x_m | x_o ~ N(mu_m + S_mo S_oo^-1 (x_o - mu_o), S_mm - S_mo S_oo^-1 S_om)``
(the M-step's expected sufficient statistics; Ghahramani & Jordan 1994).

Static shapes without a loop over patterns
    Rows are sorted by missingness pattern on the host and packed into blocks whose rows all
    share one pattern (:func:`bayesgmm.engine.preprocessing.to_pattern_blocks`); each block
    carries its observed mask ``o`` (D,). Every formula is written with D x D matrices and that
    mask:

    * ``S' = (o o') * S + diag(1 - o)`` has ``det S' = det S_oo``, and ``P = S'^-1 - diag(1 - o)``
      is ``S_oo^-1`` embedded with zero rows and columns for ``m``. With ``P`` in place of the
      precision, the exponential-family form of :mod:`bayesgmm.core.stats` (``features @ eta' +
      c``, ``n_obs`` instead of ``D`` in the normalising constant) gives the marginal log
      densities, whatever the (zero-filled) values in the missing coordinates are.
    * ``A = diag(o) + diag(1 - o) S P`` and ``b = mu - A (o * mu)`` give the conditional mean
      ``E[x | x_o, k] = A x + b``, and ``C = ((1 - o)(1 - o)') * (S - S P S)`` its covariance.

    The block's raw sums ``(n_k, sum r x, sum r x x')`` then become the expected complete-data
    sums ``(n_k, A s + n b, A Q A' + A s b' + b s' A' + n b b' + n C)``, which feed the
    ordinary M-step of every covariance type. So the number of distinct patterns never enters a
    shape, memory does not grow with it, and a block with no missing value reduces exactly to
    the complete-data E-step (``A = I``, ``b = 0``, ``C = 0``). The price is K Cholesky
    factorisations of D x D matrices per block and padding of each pattern's rows to whole
    blocks (:func:`~bayesgmm.engine.preprocessing.to_pattern_blocks` chooses the block size).

The features of missing-data blocks are always the full second moments ``vech(x x')``
(:class:`~bayesgmm.core.moments.FullMoments`), whatever the covariance type: the conditional
second moments of a diagonal model are not diagonal once a coordinate is imputed from others
(they are for the diag model's own components, but the raw sums are needed in full for ``A Q
A'``). The expected sums are converted to the family's features at the end.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
from jax import Array
from jax.scipy.linalg import solve_triangular

from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.linalg import cholesky
from bayesgmm.core.moments import FullMoments
from bayesgmm.core.parameters import MixtureParams, NaturalParams


class ConditionalGaussians(NamedTuple):
    """Everything about K components given one observed mask ``o`` (D,).

    Attributes
    ----------
    natural : :class:`NaturalParams` of the marginal densities of the observed coordinates,
        with ``quadratic`` in :class:`FullMoments` form (K, D(D+1)/2)
    regression : (K, D, D) ``A``, so that ``E[x | x_o, k] = A x + b``
    offset : (K, D) ``b``
    residual : (K, D, D) ``C = Cov[x | x_o, k]`` (zero outside the missing block)
    """

    natural: NaturalParams
    regression: Array
    offset: Array
    residual: Array


def conditional_gaussians(params: MixtureParams, family: CovarianceFamily,
                          observed: Array) -> ConditionalGaussians:
    """Marginal and conditional Gaussians of each component for the observed mask ``observed``
    (D,) of 1.0 (observed) and 0.0 (missing) values."""
    n_components, n_dims = params.means.shape
    dtype = params.means.dtype
    cov = family.as_full(params.covariances, n_components, n_dims)
    missing = 1.0 - observed
    eye = jnp.eye(n_dims, dtype=dtype)
    masked = cov * (observed[:, None] * observed[None, :]) + jnp.diag(missing)
    chol = cholesky(masked)
    chol_inv = solve_triangular(chol, jnp.broadcast_to(eye, masked.shape), lower=True)
    precision = jnp.swapaxes(chol_inv, -1, -2) @ chol_inv - jnp.diag(missing)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    means = params.means
    linear = jnp.einsum("kij,kj->ki", precision, means)
    constant = (jnp.log(params.weights) - 0.5 * jnp.sum(observed) * math.log(2.0 * math.pi)
                - 0.5 * log_det - 0.5 * jnp.sum(linear * means, axis=-1))
    natural = NaturalParams(linear, FullMoments.quadratic_coefficients(precision), constant)
    gain = cov @ precision  # (K, D, D): S P
    regression = jnp.diag(observed) + missing[:, None] * gain
    offset = means - jnp.einsum("kij,kj->ki", regression, observed * means)
    residual = (missing[:, None] * missing[None, :]) * (cov - gain @ cov)
    return ConditionalGaussians(natural, regression, offset, residual)


def expected_sums(counts: Array, sum_x: Array, sum_outer: Array,
                  conditional: ConditionalGaussians) -> tuple[Array, Array]:
    """Expected complete-data sums from one block's raw sums.

    Parameters
    ----------
    counts : (K,) ``n_k = sum_i w_i r_ik``
    sum_x : (K, D) ``sum_i w_i r_ik x_i`` (missing coordinates of ``x_i`` arbitrary)
    sum_outer : (K, D, D) ``sum_i w_i r_ik x_i x_i'``
    conditional : for the block's mask

    Returns
    -------
    sum_x : (K, D) ``sum_i w_i r_ik E[x_i | x_i,o, k]``
    sum_outer : (K, D, D) ``sum_i w_i r_ik E[x_i x_i' | x_i,o, k]``
    """
    a, b = conditional.regression, conditional.offset
    a_s = jnp.einsum("kij,kj->ki", a, sum_x)
    cross = a_s[:, :, None] * b[:, None, :]
    outer = (a @ sum_outer @ jnp.swapaxes(a, -1, -2) + cross + jnp.swapaxes(cross, -1, -2)
             + counts[:, None, None] * (b[:, :, None] * b[:, None, :] + conditional.residual))
    return a_s + counts[:, None] * b, outer


def conditional_means(x: Array, resp: Array, conditional: ConditionalGaussians) -> Array:
    """``E[x_i | x_i,o]`` under the mixture: (n, D) rows, (n, K) responsibilities -> (n, D)."""
    per_component = (jnp.einsum("kij,nj->nki", conditional.regression, x)
                     + conditional.offset[None])
    return jnp.einsum("nk,nki->ni", resp, per_component)
