"""The collapsed split-merge kernel (:mod:`bayesgmm.core.split_merge`): a proposal on the
partition alone, with every cluster's parameters integrated out, whose split is built by
sequential allocation (Dahl 2003, "sequentially-allocated merge-split"), in blocks.

Why a third kernel
    The other two kernels carry the two clusters' parameters. At tens of thousands of rows a
    merge of two overlapping components was never accepted by either (measured on 1e5 x 8:
    0 of ~280 proposals of the co-located pair in 1,600 sweeps): the reverse split would have
    to propose the current parameters, and a launch's posterior, narrowing as ``1 / sqrt(n)``,
    gives them no density unless it found the same split. Here the reverse of a merge scores
    the *current* split row by row, each row against the two sides' Student t predictives
    of the rows scored before it, so any split that the sides' statistics explain has a
    non-negligible probability, however large the clusters.

The proposal, for anchor rows ``i`` (side A) and ``j`` (side B) of the set ``S`` (the union
of their clusters; :func:`~bayesgmm.core.split_merge_anchors.select_anchors`)
    The other rows of ``S`` are taken in an order drawn independently of the state (a
    random permutation of all rows, :func:`row_order`, rotated by a random shift per
    proposal), in blocks (:func:`block_starts`): each block holds a quarter as many rows as
    came before it, at most :data:`BLOCK_ROWS`. Block by block, a row goes to side ``s``
    with probability proportional to ``n_s t_s(x)``: the side's (weighted) size so far
    times the Student t predictive of the Normal-inverse-Wishart posterior given the side's
    rows in earlier blocks (the anchors included). A split draws the sides; the reverse of a
    merge evaluates the same probabilities along the current split. ``q`` is their product.

Acceptance
    The target is ``p(C | x) ~ p(C) prod_k m(x_k)`` (the weights, ``K`` and the parameters
    integrated out; ``m`` the Normal-inverse-Wishart marginal likelihood), so

        log r = log p(C_split) - log p(C_merged) + log m(x_A) + log m(x_B) - log m(x_S)
                + log s(i, j | C_split) - log s(i, j | C_merged) - log q(C_split)

    with ``s`` the anchors' selection probability; a split is accepted with probability
    ``min(1, r)`` and a merge with ``min(1, 1 / r)``. The order is drawn the same way in
    both directions and independently of the state, so it cancels (Dahl's argument for the
    random order of the rows).

Blocks instead of single rows
    Each block is one step over a window of rows (GEMM-shaped, static shapes) instead of one
    step per row. A row scored against predictives that lack the rest of its block costs
    ``q`` some probability of the current split: measured on one 8-D Gaussian cluster of
    12,500 rows held by two components (a coin-flip split), ``log r`` of the merge was
    -9 to +3 with one row per step (a numpy reference), +3 to +8 with blocks of a quarter,
    -6 to +3 with blocks of a tenth (twice the steps), and +8 to +30 with blocks of a half;
    with whole doublings from a fixed first block (8 steps) +50 to +90. (The launched
    kernel's ``log r`` for the current pair was +141 to +415 on a 1,000-row cluster.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from bayesgmm.core.partition import WeightParameters
from bayesgmm.core.split_merge_anchors import select_anchors
from bayesgmm.core.split_merge_launch import stats_of
from bayesgmm.core.split_merge_plan import (
    Decision,
    MoveContext,
    MoveSettings,
    partition_change,
)
from bayesgmm.core.stats import SuffStats
from bayesgmm.core.variates import uniform

#: Rows of a block as a share of the rows allocated before it: each row is scored against
#: predictives that lack at most this share of the rows before it (block by block).
BLOCK_GROWTH = 0.25
#: Most rows in one block: the window of rows each step of the allocation reads.
BLOCK_ROWS = 1024


def block_starts(n_rows: int) -> np.ndarray:
    """Start positions (M + 1,) of the allocation blocks over up to ``n_rows`` rows (host,
    static): block ``k`` holds the rows at positions ``starts[k] .. starts[k+1] - 1`` of the
    order, ``max(1, floor(BLOCK_GROWTH (p + 2)))`` rows after ``p`` (and the two anchors),
    at most :data:`BLOCK_ROWS`; the last start is ``>= n_rows``."""
    starts = [0]
    while starts[-1] < n_rows:
        position = starts[-1]
        starts.append(position + min(max(1, int(BLOCK_GROWTH * (position + 2))), BLOCK_ROWS))
    return np.asarray(starts, np.int32)


def row_order(seed: Array, n_rows: int, dtype=jnp.float64) -> Array:
    """A uniformly random permutation of the rows (N,) int32, drawn independently of the
    state: the order of the sequential allocation (each proposal rotates it)."""
    return jnp.argsort(uniform(seed, (n_rows,), dtype)).astype(jnp.int32)


def _sequential_allocation(context: MoveContext, family, free: Array, shift: Array,
                           draws: Array, current_a: Array, is_split: Array,
                           anchors: SuffStats) -> tuple[SuffStats, Array, Array]:
    """The two sides' statistics (2, ...), which rows of ``free`` (N,) bool went to side A
    (N,) and ``log q``: the rows of ``free`` in the order ``context.order`` rotated by
    ``shift``, block by block (:func:`block_starts`). A split draws each row's side from
    ``draws`` (N,) uniforms, the reverse of a merge takes ``current_a`` (N,) bool;
    ``anchors`` (2, ...) start the sides. Each step reads a fixed window of rows (static
    shapes); the loop ends with the set's rows."""
    features, weight = context.features, context.weight
    n_rows = free.shape[0]
    window = min(BLOCK_ROWS, n_rows)
    starts = jnp.asarray(block_starts(n_rows))
    sequence = context.order[(jnp.arange(n_rows) + shift) % n_rows]
    in_sequence = free[sequence]
    position = jnp.cumsum(in_sequence) - 1
    n_free = jnp.sum(in_sequence)
    # queue[p]: the p-th row of the set in the order; n_rows (out of range) past its end.
    queue = jnp.full(n_rows + window, n_rows, jnp.int32).at[
        jnp.where(in_sequence, position, n_rows + window)].set(sequence, mode="drop")

    def one_block(carry):
        block, sides, side_a, log_q = carry
        rows = jax.lax.dynamic_slice(queue, (starts[block],), (window,))
        live = starts[block] + jnp.arange(window) < jnp.minimum(starts[block + 1], n_free)
        x = jnp.take(features, rows, axis=0, mode="clip")
        posterior = family.posterior(context.prior, sides)
        log_score = (family.log_predictive(posterior, x)
                     + jnp.log(jnp.maximum(sides.counts, 1e-300)))                  # (W, 2)
        log_share = log_score - jax.nn.logsumexp(log_score, axis=1, keepdims=True)
        to_a = jnp.where(is_split, jnp.log(jnp.take(draws, rows, mode="clip")) < log_share[:, 0],
                         jnp.take(current_a, rows, mode="clip"))
        log_q = log_q + jnp.sum(jnp.where(live, jnp.where(to_a, log_share[:, 0],
                                                          log_share[:, 1]), 0.0))
        membership = jnp.stack([live & to_a, live & ~to_a], axis=1).astype(features.dtype)
        sides = jax.tree_util.tree_map(
            jnp.add, sides, stats_of(x, jnp.take(weight, rows, mode="clip"), membership))
        side_a = side_a.at[jnp.where(live, rows, n_rows)].set(to_a, mode="drop")
        return block + 1, sides, side_a, log_q

    def more(carry):
        return starts[carry[0]] < n_free

    start = (jnp.zeros((), jnp.int32), anchors, jnp.zeros(n_rows, bool),
             jnp.zeros((), features.dtype))
    _, sides, side_a, log_q = jax.lax.while_loop(more, one_block, start)
    return sides, side_a, log_q


def collapsed_move(labels: Array, stats: SuffStats, context: MoveContext, draws: Array,
                   choices: Array, settings: MoveSettings, weights: WeightParameters
                   ) -> Decision:
    """One chain's collapsed proposal (module docstring): ``labels`` (N,) compact, ``stats``
    (T, ...), ``draws`` (N,) uniforms (the split's allocation), ``choices`` (6,) uniforms
    (the anchors, acceptance, the rotation of the order).

    Returns the :class:`~bayesgmm.core.split_merge_plan.Decision` (applied by
    :func:`~bayesgmm.core.split_merge.split_merge`).
    """
    family, n_slots = settings.family, settings.n_slots
    features, weight = context.features, context.weight
    rows = jnp.arange(labels.shape[0])
    first, second, valid = select_anchors(choices[:4], labels, stats.counts, stats.sum_x,
                                          weight, n_slots)
    cluster_a, cluster_b = labels[first], labels[second]
    is_split = cluster_a == cluster_b
    in_set = (weight > 0) & ((labels == cluster_a) | (labels == cluster_b))
    free = in_set & (rows != first) & (rows != second)
    anchor_rows = jnp.stack([first, second])
    anchors = stats_of(features[anchor_rows], weight[anchor_rows],
                       jnp.eye(2, dtype=features.dtype))
    shift = jnp.minimum(jnp.floor(choices[5] * labels.shape[0]), labels.shape[0] - 1
                        ).astype(jnp.int32)
    parts, side_a, log_q = _sequential_allocation(context, family, free, shift, draws,
                                                  labels == cluster_a, is_split, anchors)
    union = jax.tree_util.tree_map(lambda a: a[0] + a[1] if a.ndim else a, parts)
    both = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b[None]]) if a.ndim else a,
                                  parts, union)
    log_marginals = family.log_marginal(context.prior, context.prior_factor,
                                        family.posterior(context.prior, both), both.counts)

    change = partition_change(context, weights, stats, cluster_a, cluster_b, union, n_slots)
    log_ratio = (change.log_split(context, weights, parts, n_slots) - change.log_merged
                 + log_marginals[0] + log_marginals[1] - log_marginals[2] - log_q)
    n_occupied = jnp.sum(stats.counts > 0)
    feasible = valid & jnp.where(is_split, n_occupied < n_slots, True)
    # A NaN ratio (a failed factorisation) compares false: the proposal is rejected.
    accept = feasible & (jnp.log(choices[4]) < jnp.where(is_split, log_ratio, -log_ratio))
    moved = in_set & ~jnp.where(rows == first, True, jnp.where(rows == second, False, side_a))
    return Decision(accept, is_split, moved, parts, union, cluster_a, cluster_b)
