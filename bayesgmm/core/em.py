"""Batches of EM fits as one compiled program: ``init_state``, ``run``, ``finish``.

A batch is every restart of a model, or in a model-selection sweep every (covariance type,
component count, restart): one ``vmap`` of the single-fit loop of :mod:`bayesgmm.core.em_steps`.
As in BlackJAX, the batch is three pure functions over a state pytree (:class:`EMState`,
batched): :func:`init_state` (the M-step of the starts), :func:`run` (the ``lax.while_loop``
of every fit) and :func:`finish` (degeneracy and scores). :func:`fit_batch` composes them
inside one ``jit``: one compiled program per :class:`EMConfig` (static and hashable) and per
shape of its inputs (:class:`FitInputs` per fit, :class:`SharedInputs`). The starts (k-means
etc., shared by every type and setting) and the refined last M-step (run only when needed)
are programs of their own. The caller picks the best restart (:mod:`~bayesgmm.core.restart_choice`).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.core import init as init_programs
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.em_steps import (
    EMState,
    Update,
    degenerate_components,
    raw_moments_lose_digits,
    refine_last_m_step,
    run_em,
    start_state,
)
from bayesgmm.core.parameters import ConjugatePrior, MixtureParams
from bayesgmm.core.stats import (
    BlockedData,
    SuffStats,
    assignment_summary,
    e_step,
    m_step,
    stats_from_responsibilities,
)


@dataclasses.dataclass(frozen=True)
class EMConfig:
    """What fixes the compiled program (static: hashable, compared by value).

    Attributes
    ----------
    family : :class:`CovarianceFamily` (``Mixed()``: each fit has its own, ``FitInputs.kinds``)
    init : the initialisation method (:func:`~bayesgmm.core.init.initial_responsibilities`),
        run by its own compiled program (:func:`start_responsibilities`)
    max_iter : most EM iterations per fit (0: the starting parameters, scored). Traced: the
        compiled program is that of :attr:`compiled` (``max_iter`` rounded up to
        :func:`iteration_capacity`, the length of its history), so fits that differ only in
        ``max_iter`` (1, 100, 1,000) share programs
    summarise : also score the final parameters (log-likelihood and ICL's assignment term)
    sample_blocks : None, or a screened batch (:mod:`bayesgmm.engine.sweep`) whose sample fills
        the first ``sample_blocks`` blocks: the traced ``FitInputs.final`` then chooses at run
        time between False, starting from the draws and running EM on the sample (the
        ``override``, complete, unused), and True, continuing ``override`` by EM on all blocks
        and summarising (``summarise`` is ignored). Complete data, one shard.
    """

    family: CovarianceFamily
    init: str
    max_iter: int
    summarise: bool = False
    sample_blocks: int | None = None

    def __post_init__(self):
        # Plain Python values: equal settings give equal configs (numpy scalars included),
        # and the same text in the program cache's key on disk.
        object.__setattr__(self, "init", str(self.init))
        object.__setattr__(self, "max_iter", int(self.max_iter))
        object.__setattr__(self, "summarise", bool(self.summarise))
        if self.sample_blocks is not None:
            object.__setattr__(self, "sample_blocks", int(self.sample_blocks))

    @property
    def screened(self) -> bool:
        return self.sample_blocks is not None

    @property
    def compiled(self) -> EMConfig:
        """The static argument of the compiled program: ``max_iter`` replaced by its
        :func:`iteration_capacity` (inside the program ``config.max_iter`` is that capacity;
        the loop stops at the traced ``SharedInputs.max_iter``), and no ``init`` (the starts'
        responsibilities are an input: :func:`start_responsibilities`)."""
        return dataclasses.replace(self, init=PROGRAM_INIT,
                                   max_iter=iteration_capacity(self.max_iter))


#: ``EMConfig.init`` of a compiled program: its starts are given (:attr:`EMConfig.compiled`).
PROGRAM_INIT = "given"
#: The shortest iteration history a program is compiled for (see :func:`iteration_capacity`).
MIN_ITERATION_CAPACITY = 128


def iteration_capacity(max_iter: int) -> int:
    """The history length compiled for ``max_iter`` iterations: 0 for 0 (no loop), else the
    smallest power of two >= ``max_iter`` and >= :data:`MIN_ITERATION_CAPACITY`."""
    if max_iter <= 0:
        return 0
    return max(MIN_ITERATION_CAPACITY, 1 << (int(max_iter) - 1).bit_length())


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


class FitInputs(NamedTuple):
    """What each fit of a batch (B fits, S starts) brings: the traced inputs of one program.

    Attributes
    ----------
    draws : (S, U) uniforms in [0, 1), one row per start
        (:func:`~bayesgmm.core.init.init_draws`; unused when ``override`` is complete)
    active : (B, K_max) bool; a fit with K active components is the K-component fit, the
        others keep weight exactly 0
    override : :class:`InitOverride` with a leading fit axis (B, ...), applied after the
        ``init`` responsibilities' M-step; complete, it replaces the start
    prior : :class:`ConjugatePrior` with a leading fit axis (B, ...) for MAP EM (its default
        scale depends on K), or None for maximum likelihood
    kinds : (B,) int, each fit's index into :data:`~bayesgmm.core.covariance.MIXED_KINDS`
        (``family=Mixed()`` only), or None
    starts : (B,) int, each fit's row of ``draws``; None means row b for fit b (S = B). Fits
        that share a start (a sweep's covariance types, for one K and restart) share one
        computation of the initial responsibilities, e.g. one k-means run, and must share
        their ``active`` mask.
    final : () bool, with ``EMConfig.sample_blocks`` only (else None)
    """

    draws: Array
    active: Array
    override: InitOverride = InitOverride()
    prior: ConjugatePrior | None = None
    kinds: Array | None = None
    starts: Array | None = None
    final: Array | None = None

    def per_fit(self) -> _OneFit:
        """The inputs with a leading fit axis, to ``vmap`` over (``starts`` filled in)."""
        starts = jnp.arange(self.active.shape[0]) if self.starts is None else self.starts
        return _OneFit(starts, self.active, self.prior, self.kinds, self.override)


class SharedInputs(NamedTuple):
    """The data and settings every fit of a batch shares (traced: new values, same program).

    Attributes
    ----------
    data : :class:`BlockedData`
    reg_covar : () added to the covariances' diagonals (internal units)
    tol : () the stopping rule's tolerance on the change of the mean log-likelihood
    feature_variance : (D,) per-feature data variance, for :func:`degenerate_components`
    max_iter : () int32, most EM iterations (set by :func:`fit_batch` from
        ``EMConfig.max_iter``)
    """

    data: BlockedData
    reg_covar: Array
    tol: Array
    feature_variance: Array
    max_iter: Array | None = None


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


class _OneFit(NamedTuple):
    """One fit's inputs (:meth:`FitInputs.per_fit`; under ``vmap``, without the fit axis)."""

    start: Array
    active: Array
    prior: ConjugatePrior | None
    kind: Array | None
    override: InitOverride


def init_state(config: EMConfig, fits: FitInputs, shared: SharedInputs,
               resp: Array | None) -> EMState:
    """Every fit's state before its first iteration (a leading fit axis (B,)): the M-step of
    its start's responsibilities ``resp`` (:func:`start_responsibilities`) with ``override``
    applied, or a complete ``override`` as given (screened: chosen at run time by
    ``final``)."""
    data = _loop_data(config, fits, shared)
    n_dims = shared.feature_variance.shape[0]

    def one(fit: _OneFit) -> EMState:
        family, update = _fit_rules(config, shared, fit)
        given = fit.override
        if config.screened:
            params, stats = jax.lax.cond(
                fits.final, lambda: _from_override(given, data, family, config.max_iter),
                lambda: _from_start(resp[fit.start], _start_data(config, shared), n_dims,
                                    family, update))
        elif given.complete:
            params, stats = _from_override(given, data, family, config.max_iter)
        else:
            params, stats = _from_start(resp[fit.start], shared.data, n_dims, family, update,
                                        given)
        return start_state(params, stats, given.lower_bound, config.max_iter,
                           shared.data.features.dtype)

    return jax.vmap(one)(fits.per_fit())


def run(config: EMConfig, state: EMState, fits: FitInputs, shared: SharedInputs) -> EMState:
    """Every fit's EM loop (:func:`~bayesgmm.core.em_steps.run_em`) from ``state``."""
    data = _loop_data(config, fits, shared)

    def one(state: EMState, fit: _OneFit) -> EMState:
        family, update = _fit_rules(config, shared, fit)
        return run_em(state, data, family, update, shared.tol, shared.max_iter,
                      monotone=fit.prior is None)

    return jax.vmap(one)(state, fits.per_fit())


def needs_refinement(config: EMConfig, state: EMState, fits: FitInputs,
                     shared: SharedInputs) -> Array:
    """() bool: whether some fit needs its last M-step redone from centred statistics
    (:func:`raw_moments_lose_digits`; screened, only when ``final``): one decision for the
    batch (per fit, vmap would run both branches), made on the host (:func:`fit_batch`)."""
    if config.max_iter == 0 or shared.data.observed is not None:  # missing values: none
        return jnp.zeros((), bool)
    refine = jnp.any(jax.vmap(lambda params, fit: raw_moments_lose_digits(
        params, _fit_family(config, fit), fit.active))(state.params, fits.per_fit()))
    return fits.final & refine if config.screened else refine


def finish(config: EMConfig, state: EMState, fits: FitInputs, shared: SharedInputs,
           refine: bool = False) -> BatchResult:
    """Every fit's result from its final ``state``: with ``refine`` (static), the last M-step
    redone from centred statistics first (:func:`refine_last_m_step`; about two passes over
    the rows; not with missing values), then its degenerate components and, with
    ``summarise`` (screened: when ``final``), its scores."""
    data = _loop_data(config, fits, shared)
    zeros = (jnp.zeros((), data.features.dtype),) * 2

    def one(state: EMState, fit: _OneFit) -> BatchResult:
        family, update = _fit_rules(config, shared, fit)
        centre = 0.0
        if refine:
            state, centre = refine_last_m_step(state, data, family, update)
        degenerate = degenerate_components(state.stats, centre, family,
                                           shared.feature_variance, fit.active, fit.prior)
        if config.screened:
            scores = jax.lax.cond(fits.final,
                                  lambda: assignment_summary(data, state.params, family),
                                  lambda: zeros)
        else:
            scores = (assignment_summary(data, state.params, family) if config.summarise
                      else zeros)
        return BatchResult(state, degenerate, *scores)

    return jax.vmap(one)(state, fits.per_fit())


def fit_batch(config: EMConfig, fits: FitInputs, shared: SharedInputs) -> BatchResult:
    """Initialise, run and finish a batch of EM fits, vmapped in :func:`fit_program` (one per
    ``config.compiled`` and shapes; ``max_iter`` traced), from :func:`start_responsibilities`;
    when it :func:`needs_refinement`, :func:`refine_program` finishes it again."""
    if config.screened != (fits.final is not None):
        raise ValueError("FitInputs.final goes with EMConfig.sample_blocks, and only with it")
    shared = shared._replace(max_iter=np.asarray(config.max_iter, np.int32))
    resp = start_responsibilities(config, fits, shared)
    # the draws are spent: an empty placeholder, so that every init shares the EM program
    fits = fits._replace(draws=np.zeros((len(fits.draws), 0), np.asarray(fits.draws).dtype))
    result, refine = fit_program(config.compiled, fits, shared, resp)
    if bool(refine):
        result = refine_program(config.compiled, result.state, fits, shared)
    return result


@persistent_jit(static_argnames="config")
def fit_program(config: EMConfig, fits: FitInputs, shared: SharedInputs,
                resp: Array | None) -> tuple[BatchResult, Array]:
    """The compiled program of :func:`fit_batch` (``config`` as :attr:`EMConfig.compiled`,
    ``shared.max_iter`` set, ``resp`` from :func:`start_responsibilities`):
    :func:`init_state`, :func:`run`, :func:`finish` without refinement, and whether the batch
    :func:`needs_refinement`."""
    state = run(config, init_state(config, fits, shared, resp), fits, shared)
    return finish(config, state, fits, shared), needs_refinement(config, state, fits, shared)


@persistent_jit(static_argnames="config")
def refine_program(config: EMConfig, state: EMState, fits: FitInputs,
                   shared: SharedInputs) -> BatchResult:
    """:func:`finish` with the refined last M-step, from the loop's final ``state``."""
    return finish(config, state, fits, shared, refine=True)


def _fit_family(config: EMConfig, fit: _OneFit) -> CovarianceFamily:
    """The family of one fit: ``config.family``, bound to the fit's kind if it has one."""
    return config.family if fit.kind is None else config.family.bind(fit.kind)


def _fit_rules(config: EMConfig, shared: SharedInputs,
               fit: _OneFit) -> tuple[CovarianceFamily, Update]:
    """One fit's family and M-step (with its ``reg_covar``, active components and prior)."""
    family = _fit_family(config, fit)

    def update(stats: SuffStats, centre: Array | float) -> MixtureParams:
        return m_step(stats, family, shared.reg_covar, centre, fit.active, fit.prior)

    return family, update


def _start_data(config: EMConfig, shared: SharedInputs) -> BlockedData:
    """The blocks the starts are computed from: the sample's when screened, else all."""
    return shared.data.leading(config.sample_blocks) if config.screened else shared.data


def _loop_data(config: EMConfig, fits: FitInputs, shared: SharedInputs) -> BlockedData:
    """The blocks EM runs on: all, or when screened those ``final`` chooses (a traced count:
    the sample's blocks, or all)."""
    data = shared.data
    if not config.screened:
        return data
    n_used = jnp.where(fits.final, data.features.shape[0], config.sample_blocks)
    return dataclasses.replace(data, n_used=n_used.astype(jnp.int32))


def start_responsibilities(config: EMConfig, fits: FitInputs,
                           shared: SharedInputs) -> Array | None:
    """(S, n_blocks, block_rows, K_max) the ``init`` responsibilities of every start, over the
    blocks of :func:`_start_data` (screened and ``final``: zeros); None when no fit needs them
    (a complete override). A compiled program of their own
    (:data:`~bayesgmm.core.init.start_responsibilities`), shared by every covariance type and
    setting; inside the EM program it was ~40% of its compile time."""
    if not config.screened and fits.override.complete:
        return None
    data = _start_data(config, shared)
    n_starts, n_components = fits.draws.shape[0], fits.active.shape[1]
    dtype = data.features.dtype
    if config.screened and bool(np.asarray(fits.final)):  # continuing: no start needed
        return jnp.zeros((n_starts, *data.weight.shape, n_components), dtype)
    active = np.asarray(fits.active)
    starts = np.arange(len(active)) if fits.starts is None else np.asarray(fits.starts)
    start_active = np.zeros((n_starts, n_components), bool)
    start_active[starts] = active
    return init_programs.start_responsibilities(
        jnp.asarray(fits.draws, dtype), data.features, data.weight,
        n_dims=shared.feature_variance.shape[0], n_components=n_components,
        method=config.init, active=start_active)


def _from_override(given: InitOverride, data: BlockedData, family: CovarianceFamily,
                   max_iter: int) -> tuple[MixtureParams, SuffStats]:
    """A complete override's parameters as the start, with their statistics: placeholders
    (zeros) when the first iteration's E-step will replace them."""
    params = MixtureParams(*given.parameters)
    if max_iter > 0:
        return params, jax.tree_util.tree_map(
            lambda s: jnp.zeros(s.shape, s.dtype),
            jax.eval_shape(lambda: e_step(data, params, family)))
    return params, e_step(data, params, family)


def _from_start(resp: Array, data: BlockedData, n_dims: int, family: CovarianceFamily,
                update: Update, given: InitOverride | None = None
                ) -> tuple[MixtureParams, SuffStats]:
    """The M-step of one start's responsibilities ``resp`` (n_blocks, block_rows, K) over
    ``data`` (D = ``n_dims``), with the given fields of ``given`` replacing the computed ones."""
    stats = stats_from_responsibilities(data, resp, n_dims, family)
    params = update(stats, 0.0)
    if given is None:
        return params, stats
    return MixtureParams(*(value if value is not None else computed
                           for computed, value in zip(params, given.parameters,
                                                      strict=True))), stats
