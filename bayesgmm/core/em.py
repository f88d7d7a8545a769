"""Expectation-maximisation as a pure step function and a compiled loop.

The shape follows BlackJAX: a small state (:class:`EMState`), a pure step
(:func:`em_step`), and a loop that binds them (:func:`run_em`, a ``lax.while_loop``).
:func:`fit_batch` runs a batch of fits (restarts, and in a model-selection sweep every component
count too), initialisation included, as one ``vmap`` inside one ``jit``; picking the winner is
left to the caller.

Stopping rule (scikit-learn's): stop when the change in the mean log-likelihood between two
E-steps is below ``tol``, or after ``max_iter`` iterations. As in scikit-learn, the reported
lower bound is the mean log-likelihood at the last E-step, i.e. of the parameters *before* the
final M-step. A warm start continues from the previous fit's bound (``InitOverride.lower_bound``),
so repeated one-iteration fits detect convergence as scikit-learn's do.

Maximum-likelihood EM never lowers the likelihood, so when an E-step finds it lower than the
previous one the parameters have reached the rounding floor of a fixed point: the step is
discarded and the loop stops, converged. The reported bounds therefore never decrease, not
even by one rounding unit. (With a prior the loop watches the log-likelihood, not the
posterior it maximises, and may legitimately see it fall; there is no such rule then.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.init import initial_responsibilities
from bayesgmm.core.linalg import cholesky
from bayesgmm.core.parameters import ConjugatePrior, MixtureParams
from bayesgmm.core.stats import (
    BlockedData,
    SuffStats,
    assignment_summary,
    centred_e_step,
    data_columns,
    e_step,
    m_step,
    stats_from_responsibilities,
)

#: A component has collapsed when, in units of the data's per-feature variances, its covariance
#: (without ``reg_covar``) has a variance below this in some direction (see
#: :func:`degenerate_components`). A collapse onto repeated values gives exactly 0 in float64.
COLLAPSE_VARIANCE_RATIO = 1e-8

#: Relative error of a covariance formed from raw moments above which a screened sweep's final
#: batch redoes the last M-step from centred statistics (:func:`raw_moments_lose_digits`).
RAW_MOMENT_TOLERANCE = 1e-11

#: Multiple of ``eps * E[x^2]`` taken as the rounding noise of ``E[x x'] - mu mu'``.
_ROUNDING_NOISE_FACTOR = 32.0


class EMState(NamedTuple):
    """State of one EM run (a pytree; batched over fits by :func:`fit_batch`).

    Attributes
    ----------
    params : :class:`MixtureParams`, the current parameters
    stats : :class:`SuffStats` that produced ``params`` (the last E-step, or the initial
        responsibilities)
    stats_params : :class:`MixtureParams` under which ``stats`` were computed
    lower_bound : () mean log-likelihood at the last E-step (``-inf`` before the first)
    n_iter : () int32, E/M iterations done
    converged : () bool
    history : (max(max_iter, 1),) lower bound after each iteration, NaN where not run
    """

    params: MixtureParams
    stats: SuffStats
    stats_params: MixtureParams
    lower_bound: Array
    n_iter: Array
    converged: Array
    history: Array


class InitOverride(NamedTuple):
    """User-supplied initial parameters (internal units); ``None`` fields are computed.
    ``lower_bound`` is the bound a warm start continues from (default ``-inf``)."""

    weights: Array | None = None
    means: Array | None = None
    covariances: Array | None = None
    precisions_cholesky: Array | None = None
    lower_bound: Array | None = None

    @property
    def parameters(self) -> tuple:
        """The four parameter fields, in :class:`MixtureParams` order."""
        return (self.weights, self.means, self.covariances, self.precisions_cholesky)

    @property
    def complete(self) -> bool:
        return all(field is not None for field in self.parameters)


class BatchResult(NamedTuple):
    """What :func:`fit_batch` returns, with a leading fit axis (B,).

    Attributes
    ----------
    state : :class:`EMState`
    degenerate : (B, K) bool, by :func:`degenerate_components` (False for inactive components)
    loglik : (B,) total log-likelihood at the final parameters (``summarise=True``, else 0)
    map_log_resp : (B,) ``sum_i log r_i,map(i)`` at the final parameters, for ICL (likewise)
    """

    state: EMState
    degenerate: Array
    loglik: Array
    map_log_resp: Array


Update = Callable[[SuffStats, "Array | float"], MixtureParams]


def em_step(state: EMState, data: BlockedData, family: CovarianceFamily, update: Update,
            tol: Array, monotone: bool = True) -> EMState:
    """One E-step and M-step (pure). ``update(stats, centre)`` is the M-step."""
    return em_update(state, e_step(data, state.params, family), update, tol, monotone)


def em_update(state: EMState, stats: SuffStats, update: Update, tol: Array,
              monotone: bool = True) -> EMState:
    """The M-step and bookkeeping of :func:`em_step`, given the E-step's ``stats`` under
    ``state.params`` (however they were summed: blocks in memory, or chunks streamed from
    disk by :mod:`bayesgmm.engine.streaming`).

    ``monotone`` (static; maximum likelihood): a bound below the previous one ends the fit
    at the previous state, converged (see the module docstring)."""
    lower_bound = stats.loglik / stats.total_weight
    advanced = EMState(
        params=update(stats, 0.0),
        stats=stats,
        stats_params=state.params,
        lower_bound=lower_bound,
        n_iter=state.n_iter + 1,
        converged=jnp.abs(lower_bound - state.lower_bound) < tol,
        history=state.history.at[state.n_iter].set(lower_bound),
    )
    if not monotone:
        return advanced
    at_floor = lower_bound < state.lower_bound
    # Keep the parameters and their bound; the statistics become this E-step's (of those same
    # parameters), which also replaces the placeholder statistics of a warm start.
    stopped = state._replace(stats=stats, stats_params=state.params,
                             converged=jnp.asarray(True))
    return jax.tree_util.tree_map(lambda kept, new: jnp.where(at_floor, kept, new), stopped,
                                  advanced)


def run_em(params: MixtureParams, stats: SuffStats, data: BlockedData, family: CovarianceFamily,
           update: Update, tol: Array, max_iter: int, start_bound: Array | None = None,
           monotone: bool = True) -> EMState:
    """Iterate :func:`em_step` from ``params`` inside ``lax.while_loop``; ``start_bound`` is
    the bound the first iteration's change is measured from (a warm start's; else ``-inf``)."""
    dtype = data.features.dtype
    start_bound = -jnp.inf if start_bound is None else start_bound
    state = EMState(params, stats, params, jnp.asarray(start_bound, dtype),
                    jnp.asarray(0, jnp.int32), jnp.asarray(False),
                    jnp.full((max(max_iter, 1),), jnp.nan, dtype))

    def keep_going(state):
        return (state.n_iter < max_iter) & ~state.converged

    return jax.lax.while_loop(
        keep_going, lambda s: em_step(s, data, family, update, tol, monotone), state)


def refine_last_m_step(state: EMState, data: BlockedData, family: CovarianceFamily,
                       update: Update) -> tuple[EMState, Array]:
    """Redo the last M-step from statistics centred on its own means.

    The responsibilities are those of the last E-step, so the result is the same M-step as in
    the loop (and as scikit-learn's) computed without the cancellation of the raw-moment form;
    in float64 the two agree to rounding, in float32 this restores the digits of thin clusters.

    Returns
    -------
    state : ``params`` and ``stats`` replaced by the refined ones
    centre : (K, D) the origin of the refined ``stats.sum_second``

    With missing values (``data.observed``) the state is returned as it is, with centre 0:
    expected second moments are formed from raw sums anyway (float64 is then advised).
    """
    if data.observed is not None:
        return state, jnp.zeros((), data.features.dtype)
    centre = state.params.means
    stats = centred_e_step(data, state.stats_params, centre, family)
    return state._replace(params=update(stats, centre), stats=stats), centre


def degenerate_components(stats: SuffStats, centre: Array | float, family: CovarianceFamily,
                          feature_variance: Array, active: Array | None = None,
                          prior: ConjugatePrior | None = None) -> Array:
    """Which components are degenerate: (K,) bool.

    A component is degenerate when either

    * (maximum likelihood only) its effective size ``n_k`` is below what its covariance needs
      (:meth:`CovarianceFamily.min_count`: ``D + 1`` for full, 2 for diag and spherical, 1 for
      tied); with a prior the estimate is regularised and small components are legitimate; or
    * it has collapsed: the smallest eigenvalue of ``V^-1/2 S_k V^-1/2`` is below
      ``max(COLLAPSE_VARIANCE_RATIO, 32 eps max_d (m_kd^2 + S_kdd) / v_d)``, where ``S_k`` is its
      covariance *without* ``reg_covar`` (ML or MAP, as fitted), ``m_k`` its mean relative to
      the origin ``centre`` of the statistics, ``V = diag(v)`` the data's per-feature variances
      and ``eps`` the compute dtype's precision. The second term is the rounding noise of
      forming a covariance from moments about ``centre``. A collapsed component sits on
      repeated values or a lower-dimensional set, and only ``reg_covar`` bounds its likelihood.

    Components with ``active`` False are never degenerate.
    """
    dtype = stats.counts.dtype
    eps = jnp.finfo(dtype).eps
    counts = stats.counts + 10 * eps
    n_components, n_dims = stats.sum_x.shape
    means = stats.sum_x / counts[:, None]
    offsets = None if prior is None else means - prior.mean
    n_active = None if active is None else jnp.sum(active)
    cov = family.as_full(
        family.covariance(counts, means - centre, stats.sum_second, 0.0, prior, offsets,
                          n_active), n_components, n_dims)
    inv_sd = 1.0 / jnp.sqrt(feature_variance)
    second_moment = ((means - centre) ** 2 + jnp.diagonal(cov, axis1=-2, axis2=-1)
                     ) / feature_variance
    threshold = jnp.maximum(COLLAPSE_VARIANCE_RATIO,
                            _ROUNDING_NOISE_FACTOR * eps * jnp.max(second_moment, axis=-1))
    # smallest eigenvalue < threshold  <=>  the Cholesky factorisation of (C - threshold I)
    # fails. A direct factorisation, not an iterative eigensolver: XLA's float32 eigvalsh never
    # finished on some 32-D covariances. NaN input also fails it, i.e. counts as collapsed.
    shifted = (cov * inv_sd[:, None] * inv_sd[None, :]
               - threshold[:, None, None] * jnp.eye(n_dims, dtype=dtype))
    collapsed = ~jnp.all(jnp.isfinite(cholesky(shifted)), axis=(-2, -1))
    degenerate = collapsed if prior is not None else (
        collapsed | (stats.counts < family.min_count(n_dims)))
    return degenerate if active is None else degenerate & active


def usable_restarts(lower_bound: np.ndarray, degenerate: np.ndarray) -> np.ndarray:
    """(B,) bool: the restarts (host arrays: lower bounds (B,), degenerate (B, K)) that ended
    with no degenerate component and a finite lower bound."""
    return ~np.asarray(degenerate).any(axis=1) & np.isfinite(lower_bound)


def best_restart(lower_bound: np.ndarray, pool: np.ndarray) -> int:
    """Index of the highest lower bound (B,) among the restarts with ``pool`` True."""
    return int(np.argmax(np.where(pool, lower_bound, -np.inf)))


def choose_restart(lower_bound: np.ndarray, degenerate: np.ndarray) -> tuple[int, bool]:
    """The restart that represents a batch of restarts of one model (host arrays: lower
    bounds (B,), degenerate components (B, K)), and whether it is usable: the highest bound
    among the usable restarts (:func:`usable_restarts`); when none is usable, the highest
    finite bound (else the first). The estimator refuses an unusable choice; a sweep keeps
    it and marks the model degenerate."""
    lower_bound = np.asarray(lower_bound, dtype=np.float64)
    usable = usable_restarts(lower_bound, degenerate)
    pool = usable if usable.any() else np.isfinite(lower_bound)
    if not pool.any():
        pool = np.ones_like(usable)
    return best_restart(lower_bound, pool), bool(usable.any())


def _apply_override(params: MixtureParams, override: InitOverride) -> MixtureParams:
    return MixtureParams(*(given if given is not None else computed
                           for computed, given in zip(params, override.parameters,
                                                      strict=True)))


def raw_moments_lose_digits(params: MixtureParams, family: CovarianceFamily,
                            active: Array) -> Array:
    """Whether the loop's M-step, which forms covariances from moments about 0
    (``E[x x'] - mu mu'``), may have lost more than :data:`RAW_MOMENT_TOLERANCE` of some
    active component's covariance: () bool.

    The rounding error of that difference is about ``eps (|mu_k|^2 + tr S_k)``; relative to the
    covariance's smallest eigenvalue it exceeds the tolerance exactly when the Cholesky
    factorisation of ``S_k - eps (|mu_k|^2 + tr S_k) / RAW_MOMENT_TOLERANCE * I`` fails. In
    float32 (eps 1.2e-7) that is always; in float64 (eps 2.2e-16) only for components thinner
    than 1/45,000 of their distance from the origin squared, e.g. a thin cluster far from the
    data's mean, where :func:`refine_last_m_step` is needed.
    """
    n_components, n_dims = params.means.shape
    cov = family.as_full(params.covariances, n_components, n_dims)
    dtype = cov.dtype
    size = jnp.sum(params.means**2, axis=-1) + jnp.trace(cov, axis1=-2, axis2=-1)
    threshold = jnp.finfo(dtype).eps * size / RAW_MOMENT_TOLERANCE
    factor = cholesky(cov - threshold[:, None, None] * jnp.eye(n_dims, dtype=dtype))
    lose = ~jnp.all(jnp.isfinite(factor), axis=(-2, -1))
    return jnp.any(lose & active)


@persistent_jit(static_argnames=("family", "init", "max_iter", "summarise", "sample_blocks"))
def fit_batch(draws: Array, active: Array, data: BlockedData, reg_covar: Array, tol: Array,
              feature_variance: Array, override: InitOverride,
              prior: ConjugatePrior | None = None, kinds: Array | None = None,
              starts: Array | None = None, final: Array | None = None, *,
              family: CovarianceFamily, init: str, max_iter: int, summarise: bool = False,
              sample_blocks: int | None = None) -> BatchResult:
    """Initialise and run EM for a batch of fits, vmapped in one compiled program.

    Each fit has its own random draws and its own set of active components, so one
    program runs all restarts of all component counts of a sweep: a fit with K active
    components out of ``K_max`` is the K-component fit, the others keep weight exactly 0.
    With ``family=Mixed()`` each fit also has its own covariance type (``kinds``).

    Parameters
    ----------
    draws : (S, U) uniforms in [0, 1), one row per start
        (:func:`~bayesgmm.core.init.init_draws`; unused when ``override`` is complete)
    active : (B, K_max) bool
    data : :class:`BlockedData`
    feature_variance : (D,) per-feature data variance, for :func:`degenerate_components`
    override : :class:`InitOverride` with a leading fit axis (B, ...), applied after the
        ``init`` responsibilities' M-step; complete, it replaces the start
    prior : :class:`ConjugatePrior` with a leading fit axis (B, ...) for MAP EM (its default
        scale depends on K), or None for maximum likelihood
    kinds : (B,) int, each fit's index into :data:`~bayesgmm.core.covariance.MIXED_KINDS`
        (``family=Mixed()`` only)
    starts : (B,) int, each fit's row of ``draws``; None means row b for fit b (S = B).
        Fits that share a start (a sweep's covariance types, for one K and restart) share one
        computation of the initial responsibilities, e.g. one k-means run, and must share
        their ``active`` mask.
    final : () bool or None (with ``sample_blocks``). One program then serves both batches of
        a screened sweep (:mod:`bayesgmm.engine.sweep`), switching at run time: False starts from
        ``draws`` and runs EM on the first ``sample_blocks`` blocks (the sample; ``override``
        complete but unused); True continues ``override`` by EM on all blocks and summarises
        (``summarise`` is then ignored). Complete data, one shard. In every mode the last
        M-step is refined from centred statistics only when some fit of the batch needs it
        (:func:`raw_moments_lose_digits`; with ``final``, only when True): it costs about two
        passes over the rows.
    summarise : also score the final parameters (log-likelihood and ICL's assignment term)
    sample_blocks : int (static), the blocks holding the screening sample (with ``final``)
    """
    n_dims = feature_variance.shape[0]
    n_components = active.shape[1]
    screened = final is not None
    init_data = data.leading(sample_blocks) if screened else data
    if screened:
        data = dataclasses.replace(data, n_used=jnp.where(final, data.features.shape[0],
                                                          sample_blocks).astype(jnp.int32))
    n_blocks, block_rows, _ = init_data.features.shape
    starts = jnp.arange(active.shape[0]) if starts is None else starts

    def start_responsibilities():
        flat_x = data_columns(init_data.features, n_dims).reshape(-1, n_dims)
        start_active = jnp.zeros((draws.shape[0], n_components), bool).at[starts].set(active)
        return jax.vmap(lambda d, a: initial_responsibilities(
            d, flat_x, init_data.weight.reshape(-1), n_components, init, a))(
                draws, start_active)

    if screened:
        start_resp = jax.lax.cond(final, lambda: jnp.zeros(
            (draws.shape[0], n_blocks * block_rows, n_components), init_data.features.dtype),
            start_responsibilities)
    elif not override.complete:
        start_resp = start_responsibilities()

    def bound(kind):
        return family if kind is None else family.bind(kind)

    def tools(active, prior, kind):
        fit_family = bound(kind)

        def update(stats, centre):
            return m_step(stats, fit_family, reg_covar, centre, active, prior)

        return fit_family, update

    def run_fit(start, active, prior, kind, override):
        fit_family, update = tools(active, prior, kind)

        def from_override():
            params = MixtureParams(*override.parameters)
            if max_iter > 0:  # the first iteration's E-step replaces these statistics
                return params, jax.tree_util.tree_map(
                    lambda s: jnp.zeros(s.shape, s.dtype),
                    jax.eval_shape(lambda: e_step(data, params, fit_family)))
            return params, e_step(data, params, fit_family)

        def from_start(given: InitOverride | None = None):
            stats = stats_from_responsibilities(
                init_data, start_resp[start].reshape(n_blocks, block_rows, n_components),
                n_dims, fit_family)
            params = update(stats, 0.0)
            return (params if given is None else _apply_override(params, given)), stats

        if screened:
            params, stats = jax.lax.cond(final, from_override, from_start)
        else:
            params, stats = from_override() if override.complete else from_start(override)
        return run_em(params, stats, data, fit_family, update, tol, max_iter,
                      override.lower_bound, monotone=prior is None)

    def finish_fit(state, active, prior, kind, refine):
        fit_family, update = tools(active, prior, kind)
        centre = 0.0
        if max_iter > 0 and data.observed is None:  # with missing values: nothing to refine
            state, centre = jax.lax.cond(
                refine, lambda: refine_last_m_step(state, data, fit_family, update),
                lambda: (state, jnp.zeros_like(state.params.means)))
        degenerate = degenerate_components(state.stats, centre, fit_family, feature_variance,
                                           active, prior)
        zeros = (jnp.zeros((), data.features.dtype),) * 2
        if screened:
            loglik, map_log_resp = jax.lax.cond(
                final, lambda: assignment_summary(data, state.params, fit_family),
                lambda: zeros)
        else:
            loglik, map_log_resp = (assignment_summary(data, state.params, fit_family)
                                    if summarise else zeros)
        return BatchResult(state, degenerate, loglik, map_log_resp)

    states = jax.vmap(run_fit)(starts, active, prior, kinds, override)
    # Refine the last M-step from centred statistics only when some fit's raw moments may
    # have lost digits (two passes over the rows); one decision for the batch, since a
    # per-fit one under vmap would run both branches.
    refine = jnp.any(jax.vmap(lambda params, active, kind: raw_moments_lose_digits(
        params, bound(kind), active))(states.params, active, kinds))
    if screened:
        refine = final & refine
    return jax.vmap(finish_fit, in_axes=(0, 0, 0, 0, None))(states, active, prior, kinds,
                                                             refine)
