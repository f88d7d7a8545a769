"""Coordinate-ascent VI over chunked sources: :class:`~bayesgmm.VariationalGaussianMixture`
on data too large for memory (a ``numpy.memmap``, Parquet, a chunk iterator;
:mod:`bayesgmm.engine.streaming`).

The iterations are the in-memory fit's (:mod:`bayesgmm.core.variational`), each one read of the
data with the E-step's sums added over chunks. The restarts start from a reservoir sample's
responsibilities, their statistics scaled to the whole data (:func:`scaled_start`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.core import variational, variational_updates
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.stats import BlockedData, stats_from_responsibilities
from bayesgmm.core.variational import CaviState
from bayesgmm.core.variational_updates import VariationalParams, VariationalPrior
from bayesgmm.engine.streaming import ChunkedSource


@persistent_jit(static_argnames=("family", "max_iter"))
def scaled_start(resp, data: BlockedData, prior, reg_covar, scale, *, family, max_iter):
    """Restarts' initial states from a sample's responsibilities (R, n_blocks, block_rows, K),
    the sample's statistics multiplied by ``scale`` (rows in the data / rows in the sample)."""
    n_dims = prior.components.mean.shape[0]

    def one(r):
        stats = stats_from_responsibilities(data, r, n_dims)
        stats = jax.tree_util.tree_map(lambda a: a * scale, stats)
        params = variational_updates.m_step(stats, prior, family, reg_covar)
        return variational.initial_state(params, max_iter)

    return jax.vmap(one)(resp)


@persistent_jit(static_argnames="family")
def _chunk_expectations(data: BlockedData, params: VariationalParams, stick_breaking,
                        family: CovarianceFamily):
    """One chunk's E-step sums under every restart's ``q`` (vmapped over restarts)."""
    return jax.vmap(lambda p: variational_updates.e_step(data, p, stick_breaking, family))(params)


@persistent_jit(static_argnames=("family", "max_iter"))
def _stream_update(state, expectations, prior, reg_covar, tol, *, family, max_iter):
    """:func:`~bayesgmm.core.variational.update` for every restart still running."""
    def one(state, expectations):
        running = (state.n_iter < max_iter) & ~state.converged
        new = variational.update(state, expectations, prior, family, reg_covar, tol)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(running, a, b), new, state)

    return jax.vmap(one)(state, expectations)


def run_streaming_cavi(state: CaviState, source: ChunkedSource, blocks_of: Callable,
                       prior: VariationalPrior, reg_covar, tol, *, family: CovarianceFamily,
                       max_iter: int) -> CaviState:
    """Coordinate ascent from the restarts' ``state`` (leading restart axis, e.g. from
    :func:`scaled_start`) over the chunks of ``source``, one read of the data per iteration:
    each chunk's E-step sums under every restart's ``q`` (``blocks_of(chunk)`` its feature
    blocks), added over chunks, then one update of every restart still running. Must run
    inside ``compute_context``; ``reg_covar`` and ``tol`` are arrays of its dtype."""
    stick_breaking = prior.stick_breaking
    for _ in range(max_iter):
        total = None
        for chunk in source:
            part = _chunk_expectations(blocks_of(chunk), state.params, stick_breaking, family)
            total = part if total is None else jax.tree_util.tree_map(jnp.add, total, part)
        state = _stream_update(state, total, prior, reg_covar, tol, family=family,
                               max_iter=max_iter)
        if not np.any((np.asarray(state.n_iter) < max_iter) & ~np.asarray(state.converged)):
            break
    return state
