"""The anchor rows of a split-merge proposal (:mod:`bayesgmm.core.split_merge`) and the
probability of drawing them.

Each proposal draws two distinct rows ``i``, ``j``: with probability :func:`_split_share` a
split (one of the occupied clusters uniformly, an ordered pair of its rows), else a merge (an
ordered pair of occupied clusters, nearby clusters more often, one row of each). The pair is
drawn independently of the rest of the state (Jain & Neal 2004); :func:`log_selection` is its
probability, which enters the Hastings ratio for the split state and the merged state alike.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

#: Chance of proposing a split rather than a merge (when both are possible).
SPLIT_SHARE = 0.5
#: Distance between cluster means (standardised units) at which a pair's chance of being
#: proposed for a merge halves: nearby clusters are proposed more often.
AFFINITY_SCALE = 1.0


def _draw_row(weight: Array, uniform: Array) -> Array:
    """A row drawn with probability proportional to ``weight`` (N,): the inverse CDF by one
    comparison and sum (``jnp.searchsorted`` is a loop in XLA)."""
    cumulative = jnp.cumsum(weight)
    index = jnp.sum(cumulative < uniform * cumulative[-1])
    return jnp.minimum(index, weight.shape[0] - 1)


def _merge_log_weights(counts: Array, sums: Array) -> Array:
    """(T, T) log weights of ordered pairs of occupied clusters for a merge proposal:
    ``-log(1 + |mean_a - mean_b|^2 / AFFINITY_SCALE^2)`` (nearby clusters are proposed more
    often); ``-inf`` on the diagonal and for empty slots. ``counts`` (T,), ``sums`` (T, D)."""
    occupied = counts > 0
    means = sums / jnp.maximum(counts, 1.0)[:, None]
    gap = jnp.sum((means[:, None, :] - means[None, :, :]) ** 2, axis=-1)
    allowed = occupied[:, None] & occupied[None, :] & ~jnp.eye(counts.shape[0], dtype=bool)
    return jnp.where(allowed, -jnp.log1p(gap / AFFINITY_SCALE**2), -jnp.inf)


def _split_share(n_occupied: Array, n_slots: int) -> Array:
    """Chance of proposing a split: 1 with one cluster, 0 with T, else SPLIT_SHARE."""
    return jnp.where(n_occupied <= 1, 1.0, jnp.where(n_occupied >= n_slots, 0.0, SPLIT_SHARE))


def log_selection(counts: Array, sums: Array, cluster_a: Array, cluster_b: Array,
                  n_slots: int) -> Array:
    """``log s(i, j | state)``: the probability of drawing the anchor rows ``(i, j)`` whose
    clusters are ``cluster_a``, ``cluster_b`` in a state with cluster sizes ``counts`` (T,) and
    sums (T, D) (:func:`select_anchors`). A split: the share of splits, one of the K+
    clusters, an ordered pair of its rows; a merge: the share of merges, an ordered pair of
    clusters by :func:`_merge_log_weights`, a row of each."""
    n_occupied = jnp.sum(counts > 0)
    share = _split_share(n_occupied, n_slots)
    n_a, n_b = counts[cluster_a], counts[cluster_b]
    split = (jnp.log(share) - jnp.log(n_occupied) - jnp.log(n_a)
             - jnp.log(jnp.maximum(n_a - 1.0, 0.0)))
    log_weights = _merge_log_weights(counts, sums)
    merge = (jnp.log1p(-share) + log_weights[cluster_a, cluster_b]
             - jax.nn.logsumexp(log_weights) - jnp.log(n_a) - jnp.log(n_b))
    return jnp.where(cluster_a == cluster_b, split, merge)


def select_anchors(uniforms: Array, labels: Array, counts: Array, sums: Array, weight: Array,
                   n_slots: int) -> tuple[Array, Array, Array]:
    """Two anchor rows from four uniforms (4,) (:func:`log_selection` gives their
    probability): with probability :func:`_split_share` a split (one of the occupied clusters
    uniformly, two distinct rows of it), else a merge (an ordered pair of clusters by
    :func:`_merge_log_weights`, one row of each). ``labels`` (N,) are compact (occupied
    clusters first), ``counts`` (T,), ``sums`` (T, D), ``weight`` (N,). Returns the rows and
    whether they make a proposal (a split needs two rows)."""
    n_occupied = jnp.sum(counts > 0)
    is_split = uniforms[0] < _split_share(n_occupied, n_slots)
    chosen = jnp.minimum(jnp.floor(uniforms[1] * n_occupied), n_occupied - 1).astype(
        labels.dtype)
    log_weights = _merge_log_weights(counts, sums).reshape(-1)
    pair = jnp.sum(jnp.cumsum(jnp.exp(log_weights - jax.nn.logsumexp(log_weights)))
                   < uniforms[1])
    pair = jnp.minimum(pair, log_weights.shape[0] - 1)
    cluster_a = jnp.where(is_split, chosen, pair // n_slots).astype(labels.dtype)
    cluster_b = jnp.where(is_split, chosen, pair % n_slots).astype(labels.dtype)
    first = _draw_row(weight * (labels == cluster_a), uniforms[2])
    in_b = weight * (labels == cluster_b)
    second = _draw_row(in_b.at[first].set(0.0), uniforms[3])
    valid = jnp.where(is_split, counts[cluster_a] >= 2, True)
    return first, second, valid
