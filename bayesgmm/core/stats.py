"""Additive sufficient statistics and the E-step.

The E-step never hands responsibilities to anyone: it returns a :class:`SuffStats`, a sum over
rows. In-memory EM, streaming EM over chunks and data-parallel EM (a ``psum`` across devices)
are the same computation summed in different ways.

Data arrive as :class:`BlockedData`: rows padded to ``n_blocks * block_rows`` and split into
blocks, with a per-row weight (0 for padding). Blocks bound the memory of the second-moment
features (``block_rows x F``); padding keeps shapes static so that data sets of similar size
share one compiled program. The E-step is two matrix products per block: ``features @ eta.T``
for the log densities and ``R.T @ features`` for the statistics.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import logsumexp

from bayesgmm.core.covariance import CovarianceFamily, MixtureParams


class BlockedData(NamedTuple):
    """Rows of a data set, padded and split into blocks.

    Attributes
    ----------
    x : (n_blocks, block_rows, D)
    weight : (n_blocks, block_rows), 1 for real rows (or a sample weight), 0 for padding
    """

    x: Array
    weight: Array


class SuffStats(NamedTuple):
    """Additive summary of data under the current responsibilities (a pytree).

    Attributes
    ----------
    counts : (K,) ``sum_i w_i r_ik``
    sum_x : (K, D) ``sum_i w_i r_ik x_i``
    sum_second : (K, F) ``sum_i w_i r_ik phi(x_i)`` for the family's second-moment features
    loglik : () ``sum_i w_i log p(x_i)`` under the parameters that gave ``r``
    total_weight : () ``sum_i w_i``
    """

    counts: Array
    sum_x: Array
    sum_second: Array
    loglik: Array
    total_weight: Array


def weighted_log_prob(x: Array, params: MixtureParams, family: CovarianceFamily) -> Array:
    """``log w_k + log N(x_i | mu_k, S_k)`` for a block of rows.

    Parameters
    ----------
    x : (n, D)

    Returns
    -------
    (n, K)
    """
    natural = family.natural(params)
    return (x @ natural.linear.T + family.moments.features(x) @ natural.quadratic.T
            + natural.constant)


def block_stats(x: Array, weight: Array, resp: Array, family: CovarianceFamily,
                loglik: Array | float = 0.0) -> SuffStats:
    """Statistics of one block given responsibilities ``resp`` (n, K) and row weights (n,)."""
    weighted = resp * weight[:, None]
    return SuffStats(
        counts=jnp.sum(weighted, axis=0),
        sum_x=weighted.T @ x,
        sum_second=weighted.T @ family.moments.features(x),
        loglik=jnp.asarray(loglik, x.dtype),
        total_weight=jnp.sum(weight),
    )


def sum_blocks(fn, *blocked: Array):
    """``sum_b fn(block_b...)`` over the leading (block) axis with ``lax.scan``.

    ``fn`` maps one block of each argument to a pytree of arrays (e.g. :class:`SuffStats`).
    """
    first = jax.eval_shape(fn, *(b[0] for b in blocked))
    zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), first)

    def step(carry, block):
        return jax.tree_util.tree_map(jnp.add, carry, fn(*block)), None

    total, _ = jax.lax.scan(step, zero, blocked)
    return total


def e_step(data: BlockedData, params: MixtureParams, family: CovarianceFamily) -> SuffStats:
    """Sufficient statistics of ``data`` under the responsibilities implied by ``params``."""

    def one_block(x, weight):
        log_prob = weighted_log_prob(x, params, family)
        log_norm = logsumexp(log_prob, axis=1)
        resp = jnp.exp(log_prob - log_norm[:, None])
        return block_stats(x, weight, resp, family, jnp.sum(weight * log_norm))

    return sum_blocks(one_block, data.x, data.weight)


def stats_from_responsibilities(data: BlockedData, resp: Array,
                                family: CovarianceFamily) -> SuffStats:
    """Statistics for given responsibilities ``resp`` (n_blocks, block_rows, K)."""
    return sum_blocks(lambda x, w, r: block_stats(x, w, r, family), data.x, data.weight, resp)


def m_step(stats: SuffStats, family: CovarianceFamily, reg_covar: Array) -> MixtureParams:
    """Maximum-likelihood parameters from statistics (scikit-learn's M-step).

    As in scikit-learn, ``10 * eps`` is added to each count so that an empty component keeps a
    finite mean and a covariance of ``reg_covar``.
    """
    counts = stats.counts + 10 * jnp.finfo(stats.counts.dtype).eps
    means = stats.sum_x / counts[:, None]
    cov = family.covariance(counts, means, stats.sum_second, reg_covar)
    cov, prec_chol = family.precisions_cholesky(cov, reg_covar)
    return MixtureParams(counts / jnp.sum(counts), means, cov, prec_chol)
