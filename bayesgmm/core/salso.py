"""A point estimate of a partition: the one that minimises the posterior expected loss.

Given draws of the partition ``C_1..C_S`` of ``n`` points (integer labels (S, n)), the
estimate is ``argmin_c (1/S) sum_s L(c, C_s)`` over all partitions ``c``, for

* the **variation of information** (Meilă 2007; Wade & Ghahramani 2018), in bits:
  ``VI(c, C) = (1/n) sum_i [log2 |c_i| + log2 |C_i| - 2 log2 |c_i ∩ C_i|]``, where ``|c_i|`` is
  the size of ``i``'s block in ``c`` and ``|c_i ∩ C_i|`` the number of points that share
  ``i``'s block in both;
* **Binder's loss** with equal costs, as the share of pairs on which the partitions disagree:
  ``sum_{i<j} |1{c_i = c_j} - 1{C_i = C_j}| / (n (n - 1) / 2)``. Its expectation needs only
  the posterior similarity ``p_ij = P(z_i = z_j | data)``.

The search follows SALSO (Dahl, Johnson & Müller 2022). A run starts from one cluster, from
a partition draw, or empty; an empty start visits the points in a random order and allocates
each to the block (or a new one) that makes the expected loss of the points allocated so far
smallest. Then it sweeps over all points in fresh random orders, moving each to its best
block; when a sweep changes nothing, it merges the pair of blocks whose union lowers the loss
most (if any does) and sweeps again. Every move lowers the expected loss, so a run ends at a
partition no single-point move or merge improves. Runs are vmapped and the best is kept.

The expected VI is tracked through the contingency tables of ``c`` with every draw
(S, M, blocks): moving one point changes one entry per draw, so a move's cost is O(S x
blocks) and a sweep O(n S blocks). Binder's change is O(n) per point from the similarity.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.base.program_cache import persistent_jit

LOSSES = ("vi", "binder")


class SearchState(NamedTuple):
    """A partition being searched: ``labels`` (n,) int32 (-1 for a point not yet allocated),
    ``sizes`` (B,) points per block (B = the most blocks allowed), and ``table`` (S, M, B) the
    contingency counts with every draw's M labels (VI; a (1, 1, 1) placeholder for Binder)."""

    labels: Array
    sizes: Array
    table: Array


def _x_log2_x(x: Array) -> Array:
    return jnp.where(x > 0, x * jnp.log2(jnp.maximum(x, 1.0)), 0.0)


def _increment(x: Array) -> Array:
    """``f(x + 1) - f(x)`` for ``f(x) = x log2 x``."""
    return _x_log2_x(x + 1.0) - _x_log2_x(x)


def _move(state: SearchState, point: Array, block: Array, sign: Array, draws: Array,
          loss: str) -> SearchState:
    """Add (``sign`` +1) or remove (-1) ``point`` to or from ``block`` (0: no change)."""
    sizes = state.sizes.at[block].add(sign)
    table = state.table
    if loss == "vi":
        table = table.at[jnp.arange(draws.shape[0]), draws[:, point], block].add(sign)
    return SearchState(state.labels, sizes, table)


def _costs(state: SearchState, point: Array, draws: Array, similarity: Array,
           loss: str) -> Array:
    """Change of the (unnormalised) expected loss if ``point`` joins each block: (B,)."""
    if loss == "vi":
        shared = state.table[jnp.arange(draws.shape[0]), draws[:, point]]           # (S, B)
        return _increment(state.sizes) - 2.0 * jnp.mean(_increment(shared), axis=0)
    allocated = (state.labels >= 0) & (jnp.arange(state.labels.shape[0]) != point)
    pull = jnp.where(allocated, 1.0 - 2.0 * similarity[point], 0.0)
    return jax.ops.segment_sum(pull, jnp.maximum(state.labels, 0),
                               num_segments=state.sizes.shape[0])


def _visit(state: SearchState, point: Array, draws: Array, similarity: Array,
           loss: str) -> tuple[SearchState, Array]:
    """Move ``point`` to its best block (a new one when that is best and there is room);
    returns the state and whether the point changed block."""
    current = state.labels[point]
    # An unallocated point (-1) has nothing to remove: a zero update (a cond would copy).
    removed = _move(state, point, jnp.maximum(current, 0), -(current >= 0).astype(
        state.sizes.dtype), draws, loss)
    costs = _costs(removed, point, draws, similarity, loss)
    occupied = removed.sizes > 0
    first_empty = jnp.argmin(occupied)          # the first empty block (0 if none is empty)
    allowed = occupied | ((jnp.arange(occupied.shape[0]) == first_empty) & ~occupied[first_empty])
    costs = jnp.where(allowed, costs, jnp.inf)
    best = jnp.argmin(costs)
    # Keep the current block on ties, so that sweeps end.
    stay = (current >= 0) & (costs[jnp.maximum(current, 0)] <= costs[best])
    block = jnp.where(stay, current, best).astype(jnp.int32)
    added = _move(removed, point, block, 1.0, draws, loss)
    return added._replace(labels=added.labels.at[point].set(block)), block != current


def _sweep(state: SearchState, order: Array, draws: Array, similarity: Array,
           loss: str) -> tuple[SearchState, Array]:
    def body(i, carry):
        state, changed = carry
        state, moved = _visit(state, order[i], draws, similarity, loss)
        return state, changed | moved

    return jax.lax.fori_loop(0, order.shape[0], body, (state, jnp.asarray(False)))


def _merge_costs(state: SearchState, similarity: Array, loss: str) -> Array:
    """Change of the (unnormalised) expected loss if blocks ``a`` and ``b`` merge: (B, B),
    ``inf`` on the diagonal and for empty blocks."""
    sizes = state.sizes
    if loss == "vi":
        def gain(a, b):
            return _x_log2_x(a + b) - _x_log2_x(a) - _x_log2_x(b)
        table = state.table                                                     # (S, M, B)
        joint = gain(table[..., :, None], table[..., None, :])                   # (S, M, B, B)
        costs = (gain(sizes[:, None], sizes[None, :])
                 - 2.0 * jnp.mean(jnp.sum(joint, axis=1), axis=0))
    else:
        one_hot = (state.labels[:, None] == jnp.arange(sizes.shape[0])).astype(similarity.dtype)
        costs = one_hot.T @ (1.0 - 2.0 * similarity) @ one_hot
    occupied = sizes > 0
    valid = occupied[:, None] & occupied[None, :] & ~jnp.eye(sizes.shape[0], dtype=bool)
    return jnp.where(valid, costs, jnp.inf)


def _merge_best(state: SearchState, similarity: Array, loss: str
                ) -> tuple[SearchState, Array]:
    """Merge the pair of blocks whose union lowers the expected loss most, if any does
    (SALSO's escape from partitions where every single-point move costs); returns the state
    and whether it merged."""
    costs = _merge_costs(state, similarity, loss)
    flat = jnp.argmin(costs)
    keep, gone = jnp.divmod(flat, costs.shape[1])
    merge = costs.reshape(-1)[flat] < -1e-9

    def apply(state):
        labels = jnp.where(state.labels == gone, keep, state.labels).astype(jnp.int32)
        sizes = state.sizes.at[keep].add(state.sizes[gone]).at[gone].set(0.0)
        table = state.table
        if loss == "vi":
            table = table.at[..., keep].add(table[..., gone]).at[..., gone].set(0.0)
        return SearchState(labels, sizes, table)

    return jax.lax.cond(merge, apply, lambda s: s, state), merge


def expected_loss(labels: Array, draws: Array, similarity: Array, loss: str, n_blocks: int,
                  n_draw_labels: int) -> Array:
    """The posterior expected loss of ``labels`` (n,) (values below ``n_blocks``) against
    ``draws`` (S, n) (VI, bits; values below ``n_draw_labels``) or the ``similarity`` (n, n)
    (Binder, share of pairs)."""
    n = labels.shape[0]
    if loss == "vi":
        sizes = jnp.zeros(n_blocks).at[labels].add(1.0)
        draw_sizes = jax.vmap(lambda d: jnp.zeros(n_draw_labels).at[d].add(1.0))(draws)
        joint = jax.vmap(
            lambda d: jnp.zeros((n_blocks, n_draw_labels)).at[labels, d].add(1.0))(draws)
        total = (jnp.sum(_x_log2_x(sizes)) + jnp.mean(jnp.sum(_x_log2_x(draw_sizes), axis=1))
                 - 2.0 * jnp.mean(jnp.sum(_x_log2_x(joint), axis=(1, 2))))
        return total / n
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~jnp.eye(n, dtype=bool)
    disagree = jnp.where(same, 1.0 - similarity, similarity)
    return jnp.sum(jnp.where(off_diagonal, disagree, 0.0)) / (n * (n - 1))


def starting_partitions(key: Array, draws: Array, n_runs: int, n_draw_labels: int) -> Array:
    """Starts (R, n) for :func:`search`: one cluster for all (run 0), partition draws picked at
    random (runs 1..R/2, labels compacted to ``0..K+ - 1``), and sequential allocation (the
    rest, all -1). Single-point moves and pair merges from one kind of start can stop at a
    partition that another reaches (measured on 7-point problems against brute force)."""
    picked = draws[jax.random.choice(key, draws.shape[0], (n_runs,))]

    def compact(labels):
        present = jnp.zeros(n_draw_labels, jnp.int32).at[labels].set(1)
        return (jnp.cumsum(present) - 1)[labels]

    run = jnp.arange(n_runs)[:, None]
    starts = jnp.where(run <= n_runs // 2, jax.vmap(compact)(picked), -1)
    return jnp.where(run == 0, 0, starts).astype(jnp.int32)


def _state_of(labels: Array, draws: Array, n_blocks: int, table_shape: tuple,
              loss: str) -> SearchState:
    """The search state of ``labels`` (n,) (-1: not allocated yet)."""
    allocated = (labels >= 0).astype(jnp.float64)
    block = jnp.maximum(labels, 0)
    sizes = jnp.zeros(n_blocks).at[block].add(allocated)
    table = jnp.zeros(table_shape)
    if loss == "vi":
        table = table.at[jnp.arange(draws.shape[0])[:, None], draws, block[None, :]].add(
            allocated[None, :])
    return SearchState(labels.astype(jnp.int32), sizes, table)


@persistent_jit(static_argnames=("loss", "n_blocks", "n_draw_labels", "max_sweeps"))
def search(keys: Array, starts: Array, draws: Array, similarity: Array, *, loss: str,
           n_blocks: int, n_draw_labels: int, max_sweeps: int) -> tuple[Array, Array, Array]:
    """Runs of the search, one per key (R, 2) and start (R, n) (module docstring).

    Parameters
    ----------
    starts : (R, n) int32 starting partitions, labels below ``n_blocks``; a run whose start is
        all -1 begins with SALSO's sequential allocation
    draws : (S, n) int32 labels of the partition draws, values below ``n_draw_labels``
        (VI; any (S, n) array for Binder)
    similarity : (n, n) posterior similarity (Binder; any (n, n) array for VI)
    n_blocks : the most blocks a partition may have

    Returns
    -------
    labels : (R, n) int32; losses : (R,) expected loss; sweeps : (R,) sweeps run
    """
    n = draws.shape[1]
    table_shape = (draws.shape[0], n_draw_labels, n_blocks) if loss == "vi" else (1, 1, 1)

    def one_run(key, start):
        state = _state_of(start, draws, n_blocks, table_shape, loss)
        state, _ = _sweep(state, jax.random.permutation(key, n), draws, similarity, loss)

        def again(carry):
            _, changed, sweeps = carry
            return changed & (sweeps < max_sweeps)

        def body(carry):
            state, _, sweeps = carry
            order = jax.random.permutation(jax.random.fold_in(key, sweeps + 1), n)
            state, changed = _sweep(state, order, draws, similarity, loss)
            # At a local minimum of single-point moves, merge the best pair if that helps.
            state, merged = jax.lax.cond(changed, lambda s: (s, jnp.asarray(False)),
                                         lambda s: _merge_best(s, similarity, loss), state)
            return state, changed | merged, sweeps + 1

        state, _, sweeps = jax.lax.while_loop(again, body, (state, jnp.asarray(True),
                                                            jnp.asarray(0)))
        return (state.labels, expected_loss(state.labels, draws, similarity, loss, n_blocks,
                                            n_draw_labels),
                sweeps)

    return jax.vmap(one_run)(keys, starts)
