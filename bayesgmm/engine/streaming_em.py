"""Exact EM over data larger than memory: the in-memory E-step, summed over chunks.

The E-step's output is an additive :class:`~bayesgmm.core.stats.SuffStats`, so streaming EM is
the in-memory algorithm with the sum taken over chunks read from disk at every iteration:
each chunk goes through the same compiled :func:`~bayesgmm.core.stats.e_step` (every restart
at once, vmapped), the sums feed the same :func:`~bayesgmm.core.em_steps.em_update` (M-step and
stopping rule), and the last M-step is refined from centred statistics as in memory. The
result equals the in-memory fit from the same start up to floating-point summation order.

The sources, their first pass (moments, checks, the reservoir sample that initialises the
fit) and chunked prediction are :mod:`bayesgmm.engine.streaming`'s. The loop over iterations
runs on the host (each iteration reads the data once), so verbose lines appear live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.em import BatchResult
from bayesgmm.core.em_steps import EMState, degenerate_components, em_update
from bayesgmm.core.parameters import ConjugatePrior, MixtureParams
from bayesgmm.core.stats import SuffStats, centred_e_step, e_step, m_step
from bayesgmm.engine.preprocessing import AffineScaling, compute_context
from bayesgmm.engine.restarts import iteration_printer
from bayesgmm.engine.streaming import ChunkedSource, PreparedStream, prepare_stream
from bayesgmm.engine.training import TrainingData


@dataclass(frozen=True)
class StreamedEM:
    """The settings of a streamed EM fit.

    Attributes
    ----------
    n_components : int
    family : the covariance family
    dtype : the compute dtype (numpy float64 or float32)
    reg_covar : added to the covariance diagonals, in the data's units
    tol : stop when the mean log-likelihood changes by less
    max_iter : int
    verbose_interval : print the lower bounds every this many iterations; None is silent
    """

    n_components: int
    family: CovarianceFamily
    dtype: type
    reg_covar: float
    tol: float
    max_iter: int
    verbose_interval: int | None = None


class StreamedFit(NamedTuple):
    """A streamed fit: its :class:`~bayesgmm.core.em.BatchResult` (numpy, one fit per
    restart), the internal units, their ``log_det`` (to report bounds in the data's units)
    and the number of rows read."""

    result: BatchResult
    scaling: AffineScaling
    log_det: float
    n_rows: int


def fit_streamed(source: ChunkedSource, estimator, config: StreamedEM, seed: int,
                 start: Callable[[TrainingData], tuple[BatchResult, ConjugatePrior | None]]
                 ) -> StreamedFit:
    """EM over the chunks of ``source`` for ``estimator``: the first pass
    (:func:`~bayesgmm.engine.streaming.prepare_stream`, which sets the estimator's
    ``n_features_in_`` and ``feature_names_in_``), the starting parameters ``start(sample)``
    gives from the reservoir sample (a batch with a leading restart axis, and the batched
    prior), then :func:`run_streaming_em`."""
    stream = prepare_stream(source, estimator, config.n_components, config.reg_covar, seed)
    log_det = stream.scaling.log_det(stream.first.mean.shape[0])
    report = (None if config.verbose_interval is None
              else iteration_printer(log_det, config.verbose_interval))
    with compute_context(config.dtype):
        first, prior = start(stream.sample)
        params = MixtureParams(*(jnp.asarray(a, config.dtype) for a in first.state.params))
        result = run_streaming_em(source, params, stream, config, prior, report)
    return StreamedFit(result, stream.scaling, log_det, stream.first.n_rows)


@persistent_jit(static_argnames="family")
def _chunk_stats(data, params, family):
    """E-step statistics of one chunk under every fit's parameters (vmapped over fits)."""
    return jax.vmap(lambda p: e_step(data, p, family))(params)


@persistent_jit(static_argnames="family")
def _chunk_centred_stats(data, params, centre, family):
    return jax.vmap(lambda p, c: centred_e_step(data, p, c, family))(params, centre)


@persistent_jit(static_argnames="family")
def _update(state, stats, active, reg_covar, tol, prior, max_iter, family):
    """:func:`em_update` for every fit still running; stopped fits keep their state."""
    def one(state, stats, active, prior):
        running = (state.n_iter < max_iter) & ~state.converged
        new = em_update(state, stats, lambda s, c: m_step(s, family, reg_covar, c, active,
                                                          prior), tol, monotone=prior is None)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(running, a, b), new, state)

    return jax.vmap(one)(state, stats, active, prior)


@persistent_jit(static_argnames="family")
def _refine(state, stats, centre, active, reg_covar, feature_variance, prior, family):
    """The in-memory refinement of the last M-step and the degeneracy rule, per fit."""
    def one(state, stats, centre, active, prior):
        params = m_step(stats, family, reg_covar, centre, active, prior)
        degenerate = degenerate_components(stats, centre, family, feature_variance, active,
                                           prior)
        return state._replace(params=params, stats=stats), degenerate

    return jax.vmap(one)(state, stats, centre, active, prior)


def _sum_over_chunks(source, blocks_of, stats_of) -> SuffStats:
    total = None
    for chunk in source:
        stats = stats_of(blocks_of(chunk))
        total = stats if total is None else jax.tree_util.tree_map(jnp.add, total, stats)
    return total


def run_streaming_em(source: ChunkedSource, params: MixtureParams, stream: PreparedStream,
                     config: StreamedEM, prior: ConjugatePrior | None,
                     report: Callable[[int, np.ndarray], None] | None = None) -> BatchResult:
    """EM from a batch of starting ``params`` (internal units, leading fit axis) over the
    chunks of ``source`` after its first pass ``stream``: one read of the data per iteration.
    ``report(iteration, lower bounds)`` is called after each. Must run inside
    ``compute_context(config.dtype)``.

    Returns a :class:`BatchResult` (numpy) like :func:`~bayesgmm.core.em.fit_batch`'s.
    """
    family, dtype, max_iter = config.family, config.dtype, config.max_iter
    scaling = stream.scaling
    n_fits = params.weights.shape[0]
    active = jnp.ones(params.weights.shape, bool)
    reg = jnp.asarray(config.reg_covar / scaling.scale**2, dtype)

    def blocks_of(chunk):
        return stream.blocks_of(chunk, family, dtype)

    def stats_under(fit_params):
        return _sum_over_chunks(source, blocks_of,
                                lambda data: _chunk_stats(data, fit_params, family))

    history = jnp.full((n_fits, max(max_iter, 1)), jnp.nan, dtype)
    state = EMState(params, stats_under(params), params, jnp.full(n_fits, -jnp.inf, dtype),
                    jnp.zeros(n_fits, jnp.int32), jnp.zeros(n_fits, bool), history)
    for iteration in range(max_iter):
        if iteration:  # the first E-step's statistics were computed above
            state = state._replace(stats=stats_under(state.params))
        state = _update(state, state.stats, active, reg, jnp.asarray(config.tol, dtype), prior,
                        max_iter, family)
        if report is not None:
            report(iteration + 1, np.asarray(state.lower_bound))
        if not np.any((np.asarray(state.n_iter) < max_iter) & ~np.asarray(state.converged)):
            break
    variance = jnp.asarray(stream.first.var / scaling.scale**2, dtype)
    if max_iter > 0:
        centre = state.params.means
        stats = _sum_over_chunks(source, blocks_of, lambda data: _chunk_centred_stats(
            data, state.stats_params, centre, family))
    else:
        centre, stats = jnp.zeros_like(state.params.means), state.stats
    state, degenerate = _refine(state, stats, centre, active, reg, variance, prior, family)
    zeros = jnp.zeros(n_fits, dtype)
    return jax.device_get(BatchResult(state, degenerate, zeros, zeros))
