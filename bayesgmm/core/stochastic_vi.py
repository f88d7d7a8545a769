"""Natural-gradient stochastic variational inference (Hoffman, Blei, Wang & Paisley 2013)
for the conjugate Gaussian mixture of :mod:`bayesgmm.core.variational`.

It reuses the CAVI E-step on minibatches and the same M-step
(:mod:`bayesgmm.core.variational_updates`): for this conjugate model a natural-gradient step
is a convex combination of the running statistics and a minibatch's, scaled to the whole
data. The bound is noisy, so the stopping rule compares windows of steps.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.stats import BlockedData, SuffStats
from bayesgmm.core.variational_updates import (
    Expectations,
    VariationalParams,
    VariationalPrior,
    block_expectations,
    expected_natural,
    m_step,
)


class StochasticState(NamedTuple):
    """State of natural-gradient stochastic VI (a pytree).

    For this conjugate model the natural parameters of ``q(pi)`` and ``q(mu, Lambda)`` are
    the prior's plus the expected sufficient statistics, so a natural-gradient step of size
    ``rho`` (Hoffman, Blei, Wang & Paisley 2013, eq. 34) is a convex combination of
    statistics: ``stats <- (1 - rho) stats + rho (N / B) batch_stats``, followed by the
    coordinate update :func:`~bayesgmm.core.variational_updates.m_step`.

    Attributes
    ----------
    stats : :class:`~bayesgmm.core.stats.SuffStats` scaled to the whole data set
    params : :class:`~bayesgmm.core.variational_updates.VariationalParams` of ``stats``
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
