"""Coordinate-ascent variational inference (CAVI) for the conjugate Gaussian mixture.

The variational family is scikit-learn's ``BayesianGaussianMixture`` (Bishop 2006, ch. 10;
Blei & Jordan 2006): ``q(pi)`` Dirichlet (finite weights) or a product of Beta sticks
(truncated Dirichlet process), ``q(mu_k, Lambda_k)`` Normal-Wishart, ``q(z_i)`` categorical.
The component prior is the Normal-(inverse-)Wishart :class:`ConjugatePrior` that MAP EM and
the Gibbs sampler use too (``mu_k | Lambda_k ~ N(mean, (shrinkage Lambda_k)^-1)``,
``Lambda_k^-1 ~ inverse-Wishart(dof, scale)``); only the sampler adds a hyperprior on
``scale``, which has no closed-form coordinate update (:mod:`bayesgmm.core.conjugate`).

One iteration is the EM iteration with different natural parameters:

* the E-step is the EM core's matrix product ``features @ eta' + c`` with ``eta`` from the
  expected precision ``dof_k W_k`` and ``c`` carrying ``E[log pi_k]``, ``E[log |Lambda_k|]``
  and ``-D / (2 beta_k)``; it returns the additive :class:`~bayesgmm.core.stats.SuffStats`
  and the responsibilities' entropy, summed over blocks (in memory, or over devices);
* the M-step maps those sums to the variational parameters
  (:meth:`~bayesgmm.core.covariance_family.CovarianceFamily.wishart_update`);
* the evidence lower bound is scikit-learn's closed form after the M-step.

Natural-gradient stochastic VI (:func:`run_stochastic`) reuses the same E-step on minibatches
and the same M-step: for this conjugate model a natural-gradient step is a convex combination
of the running statistics and a minibatch's, scaled to the whole data.

Everything is in the EM core's internal units (data centred and divided by one scale ``s``).
The responsibilities and every parameter but the Wishart factor are unchanged by that map;
the bound moves by ``D log(s) sum_k dof_k``, a constant the caller adds back.

Shapes: ``K`` components, ``D`` features; ``concentration`` is (2, K): Beta ``(a_k, b_k)``
for sticks, or Dirichlet ``alpha_k`` in row 0 (row 1 zeros) for finite weights. Both weight
types run in one compiled program (``stick_breaking`` is traced).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import betaln, digamma, gammaln

from bayesgmm.base.io import register_record
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.parameters import ConjugatePrior, NaturalParams
from bayesgmm.core.stats import (
    BlockedData,
    SuffStats,
    block_stats,
    natural_log_prob,
    normalise_log_prob,
    stats_from_responsibilities,
)

_LOG_2 = math.log(2.0)


class VariationalPrior(NamedTuple):
    """The model's prior (a pytree of arrays, in internal units).

    Attributes
    ----------
    components : :class:`ConjugatePrior`; ``scale`` in the covariance type's format
        (scikit-learn's ``covariance_prior_``)
    concentration : () the weights' concentration ``gamma_0`` (Dirichlet ``alpha_0`` or the
        DP's ``alpha``)
    stick_breaking : () bool, True for the truncated Dirichlet process
    """

    components: ConjugatePrior
    concentration: Array
    stick_breaking: Array


@register_record
class VariationalParams(NamedTuple):
    """The variational posterior (scikit-learn's fitted attributes, in internal units).

    Attributes
    ----------
    concentration : (2, K) ``weight_concentration_`` (see the module docstring)
    mean_precision : (K,) ``beta_k``
    means : (K, D) ``m_k``
    dof : (K,) ``nu_k`` (tied: one value repeated)
    covariances : ``(nu_k W_k)^-1`` in the covariance type's format
    precisions_cholesky : its inverse's Cholesky factor, same format
    """

    concentration: Array
    mean_precision: Array
    means: Array
    dof: Array
    covariances: Array
    precisions_cholesky: Array


class CaviState(NamedTuple):
    """State of one CAVI run (a pytree; batched over restarts).

    Attributes
    ----------
    params : :class:`VariationalParams`
    lower_bound : () the bound after the last iteration (``-inf`` before the first)
    n_iter : () int32
    converged : () bool, ``|change in bound| < tol``
    history : (max(max_iter, 1),) the bound after each iteration (NaN after the last)
    """

    params: VariationalParams
    lower_bound: Array
    n_iter: Array
    converged: Array
    history: Array


def expected_log_weights(concentration: Array, stick_breaking: Array) -> Array:
    """``E_q[log pi_k]`` (K,) for sticks (Beta) or finite (Dirichlet) weights."""
    a, b = concentration
    total = digamma(a + b)
    sticks = digamma(a) - total + jnp.concatenate(
        [jnp.zeros(1, a.dtype), jnp.cumsum(digamma(b) - total)[:-1]])
    dirichlet = digamma(a) - digamma(jnp.sum(a))
    return jnp.where(stick_breaking, sticks, dirichlet)


def mean_weights(concentration: Array, stick_breaking: Array) -> Array:
    """scikit-learn's ``weights_`` (K,): ``E_q[pi_k]`` (sticks: the product of the sticks'
    means, renormalised over the truncation)."""
    a, b = concentration
    left = b / (a + b)
    sticks = a / (a + b) * jnp.concatenate([jnp.ones(1, a.dtype), jnp.cumprod(left[:-1])])
    sticks = sticks / jnp.sum(sticks)
    return jnp.where(stick_breaking, sticks, a / jnp.sum(a))


def weight_update(counts: Array, prior: VariationalPrior) -> Array:
    """``q(pi)`` from the counts (K,): (2, K)."""
    tail = jnp.concatenate([jnp.cumsum(counts[::-1])[-2::-1], jnp.zeros(1, counts.dtype)])
    sticks = jnp.stack([1.0 + counts, prior.concentration + tail])
    dirichlet = jnp.stack([prior.concentration + counts, jnp.zeros_like(counts)])
    return jnp.where(prior.stick_breaking, sticks, dirichlet)


def m_step(stats: SuffStats, prior: VariationalPrior, family: CovarianceFamily,
           reg_covar: Array) -> VariationalParams:
    """The coordinate updates of ``q(pi)`` and ``q(mu, Lambda)`` from additive statistics."""
    counts = stats.counts + 10 * jnp.finfo(stats.counts.dtype).eps
    xbar = stats.sum_x / counts[:, None]
    components = prior.components
    mean_precision = components.shrinkage + counts
    means = ((components.shrinkage * components.mean + counts[:, None] * xbar)
             / mean_precision[:, None])
    covariances, dof = family.wishart_update(counts, xbar, stats.sum_second, reg_covar,
                                             components)
    covariances, prec_chol = family.precisions_cholesky(covariances, reg_covar)
    return VariationalParams(weight_update(counts, prior), mean_precision, means, dof,
                             covariances, prec_chol)


def _wishart_digamma_sum(dof: Array, n_dims: int) -> Array:
    """``sum_{j<D} digamma((dof - j) / 2)`` (K,)."""
    return jnp.sum(digamma(0.5 * (dof[:, None] - jnp.arange(n_dims))), axis=-1)


def expected_natural(params: VariationalParams, stick_breaking: Array,
                     family: CovarianceFamily) -> NaturalParams:
    """Natural parameters of ``E_q[log pi_k + log N(x | mu_k, Lambda_k^-1)]`` as a function of
    ``x``: the E-step's log densities are ``features @ eta' + c`` as in EM."""
    n_dims = params.means.shape[1]
    expected_log_det = n_dims * _LOG_2 + _wishart_digamma_sum(params.dof, n_dims)
    offsets = (expected_log_weights(params.concentration, stick_breaking)
               - 0.5 * n_dims * jnp.log(params.dof)
               + 0.5 * (expected_log_det - n_dims / params.mean_precision))
    return family.natural_of(offsets, params.means, params.precisions_cholesky)


class Expectations(NamedTuple):
    """What one E-step returns: the statistics and ``sum_i w_i sum_k r_ik log r_ik``."""

    stats: SuffStats
    neg_entropy: Array


def block_expectations(features: Array, weight: Array, natural: NaturalParams,
                       n_dims: int) -> Expectations:
    """:class:`Expectations` of one block of feature rows (n, D + F) with weights (n,)."""
    log_prob = natural_log_prob(features, natural)
    resp, log_norm = normalise_log_prob(log_prob)
    r_log_r = jnp.where(resp > 0, resp * (log_prob - log_norm[:, None]), 0.0)
    return Expectations(block_stats(features, weight, resp, n_dims, jnp.sum(weight * log_norm)),
                        jnp.sum(weight * jnp.sum(r_log_r, axis=1)))


def e_step(data: BlockedData, params: VariationalParams, stick_breaking: Array,
           family: CovarianceFamily) -> Expectations:
    """Responsibilities' statistics and entropy under ``q`` (summed over ``data``'s blocks)."""
    natural = expected_natural(params, stick_breaking, family)
    n_dims = params.means.shape[1]
    return data.sum(lambda features, weight: block_expectations(features, weight, natural,
                                                                n_dims))


def responsibilities(data: BlockedData, params: VariationalParams, stick_breaking: Array,
                     family: CovarianceFamily) -> Array:
    """``q(z_i = k)`` of every row of ``data`` under ``params``: (n_blocks, block_rows, K)."""
    natural = expected_natural(params, stick_breaking, family)
    return jax.lax.map(lambda f: normalise_log_prob(natural_log_prob(f, natural))[0],
                       data.features)


def lower_bound(params: VariationalParams, prior: VariationalPrior, neg_entropy: Array,
                family: CovarianceFamily) -> Array:
    """The evidence lower bound after an M-step, up to a constant (scikit-learn's
    ``_compute_lower_bound``): the entropy of ``q(z)`` minus the log normalisers of the
    Wishart, weight and mean factors."""
    n_components, n_dims = params.means.shape
    dof = params.dof
    half_log_det = (family.half_log_det(params.precisions_cholesky, n_components, n_dims)
                    - 0.5 * n_dims * jnp.log(dof))
    log_wishart_norm = -(dof * half_log_det + 0.5 * dof * n_dims * _LOG_2
                         + jnp.sum(gammaln(0.5 * (dof[:, None] - jnp.arange(n_dims))), -1))
    a, b = params.concentration
    sticks = -jnp.sum(betaln(a, b))
    dirichlet = gammaln(jnp.sum(a)) - jnp.sum(gammaln(a))
    log_norm_weight = jnp.where(prior.stick_breaking, sticks, dirichlet)
    return (-neg_entropy - jnp.sum(log_wishart_norm) - log_norm_weight
            - 0.5 * n_dims * jnp.sum(jnp.log(params.mean_precision)))


def step(state: CaviState, data: BlockedData, prior: VariationalPrior,
         family: CovarianceFamily, reg_covar: Array, tol: Array) -> CaviState:
    """One CAVI iteration (pure): E-step under ``state.params``, M-step, bound."""
    expectations = e_step(data, state.params, prior.stick_breaking, family)
    return update(state, expectations, prior, family, reg_covar, tol)


def update(state: CaviState, expectations: Expectations, prior: VariationalPrior,
           family: CovarianceFamily, reg_covar: Array, tol: Array) -> CaviState:
    """The M-step and bookkeeping of :func:`step`, given its E-step's sums (however summed:
    in memory, or over chunks streamed from disk)."""
    params = m_step(expectations.stats, prior, family, reg_covar)
    bound = lower_bound(params, prior, expectations.neg_entropy, family)
    return CaviState(params, bound, state.n_iter + 1,
                     jnp.abs(bound - state.lower_bound) < tol,
                     state.history.at[state.n_iter].set(bound))


def initial_state(params: VariationalParams, max_iter: int) -> CaviState:
    dtype = params.means.dtype
    return CaviState(params, jnp.asarray(-jnp.inf, dtype), jnp.asarray(0, jnp.int32),
                     jnp.asarray(False), jnp.full((max(max_iter, 1),), jnp.nan, dtype))


def run(params: VariationalParams, data: BlockedData, prior: VariationalPrior,
        family: CovarianceFamily, reg_covar: Array, tol: Array, max_iter: int,
        start_bound: Array | None = None) -> CaviState:
    """Iterate :func:`step` from ``params`` inside ``lax.while_loop`` until the bound changes
    by less than ``tol`` or ``max_iter`` iterations (``start_bound``: the bound of ``params``
    for a warm start, else ``-inf``)."""
    state = initial_state(params, max_iter)
    if start_bound is not None:
        state = state._replace(lower_bound=start_bound)

    def keep_going(state):
        return (state.n_iter < max_iter) & ~state.converged

    return jax.lax.while_loop(
        keep_going, lambda s: step(s, data, prior, family, reg_covar, tol), state)


def fit_restarts(start_resp: Array, data: BlockedData, prior: VariationalPrior,
                 reg_covar: Array, tol: Array, *, family: CovarianceFamily,
                 max_iter: int) -> CaviState:
    """CAVI from each restart's initial responsibilities, vmapped.

    Parameters
    ----------
    start_resp : (R, n_blocks, block_rows, K) initial responsibilities per restart; the start
        is their M-step, as in scikit-learn's ``_initialize``

    Returns
    -------
    :class:`CaviState` with a leading restart axis (``max_iter=0``: the starts themselves)
    """
    n_dims = prior.components.mean.shape[0]

    def one(resp):
        stats = stats_from_responsibilities(data, resp, n_dims)
        params = m_step(stats, prior, family, reg_covar)
        return run(params, data, prior, family, reg_covar, tol, max_iter)

    return jax.vmap(one)(start_resp)


def continue_fit(params: VariationalParams, start_bound: Array, data: BlockedData,
                 prior: VariationalPrior, reg_covar: Array, tol: Array, *,
                 family: CovarianceFamily, max_iter: int) -> CaviState:
    """CAVI from given variational parameters (a warm start), with a leading axis of 1."""
    state = run(params, data, prior, family, reg_covar, tol, max_iter, start_bound)
    return jax.tree_util.tree_map(lambda a: a[None], state)


# --------------------------------------------------------------------------- stochastic VI
class StochasticState(NamedTuple):
    """State of natural-gradient stochastic VI (a pytree).

    For this conjugate model the natural parameters of ``q(pi)`` and ``q(mu, Lambda)`` are
    the prior's plus the expected sufficient statistics, so a natural-gradient step of size
    ``rho`` (Hoffman, Blei, Wang & Paisley 2013, eq. 34) is a convex combination of
    statistics: ``stats <- (1 - rho) stats + rho (N / B) batch_stats``, followed by the
    coordinate update :func:`m_step`.

    Attributes
    ----------
    stats : :class:`SuffStats` scaled to the whole data set
    params : :class:`VariationalParams` of ``stats``
    step : () int32, steps taken
    window : (3,) running count, sum and sum of squares of the per-row bound estimates of the
        current window
    previous : (2,) mean and variance of the mean of the previous window (NaN before one)
    converged : () bool
    history : (max_steps // window_steps + 1,) each finished window's mean estimate
    """

    stats: SuffStats
    params: VariationalParams
    step: Array
    window: Array
    previous: Array
    converged: Array
    history: Array


class StochasticSchedule(NamedTuple):
    """Static settings of :func:`run_stochastic`.

    Attributes
    ----------
    batch_blocks : blocks per minibatch
    window_steps : steps per window of the stopping rule
    max_steps : most steps
    delay, forgetting : the Robbins-Monro step ``rho_t = (t + delay)^-forgetting``
        (``forgetting`` in (0.5, 1] so that ``sum rho = inf`` and ``sum rho^2 < inf``)
    """

    batch_blocks: int
    window_steps: int
    max_steps: int
    delay: float = 2.0
    forgetting: float = 0.7


def _bound_estimate(expectations: Expectations, weight: Array) -> Array:
    """Per-row noisy estimate of the data part of the bound from one minibatch: the mean of
    ``log sum_k exp(E_q[log pi_k N(x_i | mu_k, Lambda_k)])`` (its expected-complete-data
    log-likelihood plus the entropy of ``q(z_i)``) over the batch's rows."""
    return expectations.stats.loglik / jnp.maximum(weight, 1.0)


def run_stochastic(stats: SuffStats, data: BlockedData, prior: VariationalPrior,
                   reg_covar: Array, tol: Array, seed: Array, *, family: CovarianceFamily,
                   schedule: StochasticSchedule) -> StochasticState:
    """Natural-gradient stochastic VI from ``stats`` (scaled to the whole data set) on
    minibatches of ``schedule.batch_blocks`` blocks drawn uniformly with replacement.

    Stopping rule for noisy bounds: the per-row bound estimates of consecutive windows of
    ``window_steps`` steps are averaged; the run stops when two consecutive window means
    differ by less than ``tol`` plus two standard errors of that difference (so that the
    noise of the estimates cannot end the run early, nor keep it going forever), or after
    ``max_steps`` steps.
    """
    n_blocks = data.features.shape[0]
    n_total = jnp.sum(data.weight)
    n_dims = prior.components.mean.shape[0]
    dtype = data.features.dtype
    n_windows = schedule.max_steps // schedule.window_steps + 1
    state = StochasticState(stats, m_step(stats, prior, family, reg_covar),
                            jnp.asarray(0, jnp.int32), jnp.zeros(3, dtype),
                            jnp.full(2, jnp.nan, dtype), jnp.asarray(False),
                            jnp.full((n_windows,), jnp.nan, dtype))
    key = jax.random.PRNGKey(seed)

    def one_step(state: StochasticState) -> StochasticState:
        index = jax.random.randint(jax.random.fold_in(key, state.step),
                                   (schedule.batch_blocks,), 0, n_blocks)
        batch = BlockedData(data.features[index], data.weight[index])
        natural = expected_natural(state.params, prior.stick_breaking, family)
        expectations = batch.sum(lambda f, w: block_expectations(f, w, natural, n_dims))
        batch_weight = expectations.stats.total_weight
        scale = n_total / jnp.maximum(batch_weight, 1.0)
        rho = (state.step + schedule.delay) ** -schedule.forgetting
        new_stats = jax.tree_util.tree_map(lambda old, new: (1 - rho) * old + rho * scale * new,
                                           state.stats, expectations.stats)
        new_stats = new_stats._replace(total_weight=n_total)
        estimate = _bound_estimate(expectations, batch_weight)
        window = state.window + jnp.stack([jnp.ones((), dtype), estimate, estimate**2])
        step = state.step + 1
        window_done = step % schedule.window_steps == 0
        count, total, squares = window
        mean = total / count
        var_of_mean = jnp.maximum(squares / count - mean**2, 0.0) / count
        change = jnp.abs(mean - state.previous[0])
        noise = 2.0 * jnp.sqrt(var_of_mean + state.previous[1])
        converged = window_done & (change < tol + noise)
        history = jnp.where(window_done, state.history.at[
            step // schedule.window_steps - 1].set(mean), state.history)
        return StochasticState(
            new_stats, m_step(new_stats, prior, family, reg_covar), step,
            jnp.where(window_done, jnp.zeros(3, dtype), window),
            jnp.where(window_done, jnp.stack([mean, var_of_mean]), state.previous),
            converged, history)

    def keep_going(state):
        return (state.step < schedule.max_steps) & ~state.converged

    return jax.lax.while_loop(keep_going, one_step, state)
