"""The launch state of a split proposal (:mod:`bayesgmm.core.split_merge`): a soft
two-cluster fit of a set of rows started from two anchor rows, whose Normal-inverse-Wishart
posteriors are the proposal ``g`` of the two sides' parameters; and the statistics of rows
under a membership, in the ``[x, phi(x)]`` feature layout of :mod:`bayesgmm.core.stats`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.core.init import squared_distances
from bayesgmm.core.parameters import ConjugatePrior
from bayesgmm.core.stats import SuffStats, block_stats


class Launch(NamedTuple):
    """The deterministic part of a split proposal for a set of rows and two anchor rows.

    Attributes
    ----------
    posterior : (2, ...) Normal-inverse-Wishart posterior given each side's soft statistics:
        the proposal ``g`` of the two sides' parameters
    log_share : (2,) log of each side's soft share of the set, ``log rho``
    """

    posterior: ConjugatePrior
    log_share: Array


def feature_dims(n_columns: int) -> int:
    """D from the width of a ``[x, phi(x)]`` feature row (full or diagonal moments)."""
    for n_dims in range(1, n_columns + 1):
        if n_columns in (2 * n_dims, n_dims + n_dims * (n_dims + 1) // 2):
            return n_dims
    raise ValueError(f"{n_columns} feature columns are no moment layout")


def stats_of(features: Array, weight: Array, membership: Array) -> SuffStats:
    """Statistics (M leading axis) of the feature rows (N, D + F) with weights (N,) under 0/1
    or soft ``membership`` (N, M): GEMM-shaped sums."""
    n_dims = feature_dims(features.shape[-1])
    return block_stats(features, weight, membership, n_dims)


def launch(features: Array, weight: Array, in_set: Array, first: Array, second: Array,
           prior: ConjugatePrior, family, iterations: int) -> Launch:
    """Two-cluster fit of a set of rows, started from two anchor rows.

    A deterministic function of the set (``in_set`` (N,) bool), the anchors and the prior:
    rows start with the nearer anchor (squared Euclidean distance; ties go to ``first``,
    side A), then ``iterations`` EM iterations of a two-component mixture of diagonal
    Gaussians on the set (each side's posterior mean and a regularised variance: elementwise
    work and two small products per iteration; the anchors stay on their sides), and finally
    the Normal-inverse-Wishart posterior of each side under the soft memberships. Soft EM,
    unlike hard reallocation, reaches overlapping splits (a broad component around a tight
    one), which are common in the posterior. Nothing here depends on how the set is currently
    divided, so a split proposal and the reverse of a merge see the same launch.
    ``features`` (N, D + F), ``weight`` (N,); ``family`` a
    :data:`~bayesgmm.core.conjugate.CONJUGATE_FAMILIES` entry.
    """
    n_dims = feature_dims(features.shape[-1])
    x = features[:, :n_dims]
    squares = x * x
    distance = squared_distances(x, x[jnp.stack([first, second])])            # (N, 2)
    rows = jnp.arange(x.shape[0])
    in_weight = in_set.astype(x.dtype) * weight
    prior_variance = family.variances(prior.scale)                             # (D,)

    def fix(share_a):
        return jnp.where(rows == first, 1.0, jnp.where(rows == second, 0.0, share_a))

    def membership(share_a):
        return jnp.stack([share_a, 1.0 - share_a], axis=1)

    def em_iteration(_, share_a):
        weights = membership(share_a) * in_weight[:, None]
        counts = jnp.sum(weights, axis=0)                                       # (2,)
        sums = weights.T @ jnp.concatenate([x, squares], axis=1)                # (2, 2D)
        means = sums[:, :n_dims] / (counts + prior.shrinkage)[:, None]
        scatter = sums[:, n_dims:] - counts[:, None] * means * means
        variance = (prior_variance + jnp.maximum(scatter, 0.0)) / (
            prior.dof + counts + 2.0)[:, None]
        precision = 1.0 / variance
        log_prob = (-0.5 * (squares @ precision.T - 2.0 * x @ (means * precision).T
                            + jnp.sum(means * means * precision, axis=1))
                    - 0.5 * jnp.sum(jnp.log(variance), axis=1)
                    + jnp.log(jnp.maximum(counts, 1e-300)))
        return fix(jax.nn.softmax(log_prob, axis=1)[:, 0])

    start = fix((distance[:, 0] <= distance[:, 1]).astype(x.dtype))
    share_a = jax.lax.fori_loop(0, iterations, em_iteration, start)
    stats = stats_of(features, in_weight, membership(share_a))
    log_sizes = jnp.log(jnp.maximum(stats.counts, 1e-300))
    return Launch(family.posterior(prior, stats), log_sizes - jax.nn.logsumexp(log_sizes))
