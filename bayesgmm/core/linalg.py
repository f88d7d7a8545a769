"""A Cholesky factorisation in plain JAX operations, for the compiled EM programs.

jaxlib 0.10.2 on CPU factorises a batch of matrices (``jnp.linalg.cholesky`` -> LAPACK
``potrf`` through XLA's FFI) by splitting the batch into tasks on XLA's intra-op thread
pool and waiting for them from a thread of that same pool. When two such factorisations
run at once (XLA executes independent operations of one program concurrently) and the pool
has two threads (a 2-core machine), each waits for tasks queued behind the other and the
program never finishes: every thread idles in ``futex_do_wait``, the two pool threads in
``jax::ParallelBatchMap`` -> ``BlockingCounter::Wait``. Reproduced with
``select_model`` on 2,000 x 8 rows, K = 1..20, 'full', ``n_init=3`` (the EM start of a VI
fit of the issue's 100k x 8 benchmark): it hung in every run, with or without
``--xla_cpu_multi_thread_eigen=false``; K = 1..17 finished in 4 s.

:func:`cholesky` is the unblocked column (Cholesky-Crout) algorithm as ordinary vector
operations, so no FFI call and no pool task is involved. A failed factorisation (a matrix
that is not positive definite, or NaN input) yields non-finite entries, as
``jnp.linalg.cholesky`` does, which is what the callers test.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array


def cholesky(a: Array) -> Array:
    """Lower Cholesky factor of symmetric ``a`` (..., D, D); non-finite where it fails.

    Column ``j``: ``d = a_jj - sum_{k<j} L_jk^2``, ``L_jj = sqrt(d)``, ``L_ij = (a_ij -
    sum_{k<j} L_ik L_jk) / L_jj`` for ``i > j``. Only the lower triangle of ``a`` is read.
    A negative ``d`` gives NaN (sqrt) and a zero one infinities, and both propagate to the
    later columns.
    """
    n = a.shape[-1]
    rows = jnp.arange(n)

    def column(j, factor):
        row_j = factor[..., j, :]                                   # (..., D), zeros from j
        pivot = jnp.sqrt(a[..., j, j] - jnp.sum(row_j * row_j, axis=-1))
        below = (a[..., :, j] - jnp.einsum("...ik,...k->...i", factor, row_j)) / pivot[..., None]
        new = jnp.where(rows > j, below, jnp.where(rows == j, pivot[..., None], 0.0))
        return factor.at[..., :, j].set(new)

    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(a))


def lower_triangular_inverse(factor: Array) -> Array:
    """Inverse of lower-triangular ``factor`` (..., D, D), by forward substitution in plain
    JAX operations (no LAPACK ``trsm``; see the module docstring): lower-triangular.

    Row ``i`` of ``X = L^-1``: ``X_i = (e_i - sum_{k<i} L_ik X_k) / L_ii``. Rows not yet
    computed are zero, so ``L_i @ X`` is that sum.
    """
    n = factor.shape[-1]
    eye = jnp.eye(n, dtype=factor.dtype)

    def row(i, inverse):
        partial = jnp.einsum("...k,...kj->...j", factor[..., i, :], inverse)
        new = (eye[i] - partial) / factor[..., i, i][..., None]
        return inverse.at[..., i, :].set(new)

    return jax.lax.fori_loop(0, n, row, jnp.zeros_like(factor))


def log_det_from_cholesky(factor: Array) -> Array:
    """``log |L L'|`` (...,) from lower Cholesky factors (..., D, D)."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)
