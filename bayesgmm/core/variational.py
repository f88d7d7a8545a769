"""Coordinate-ascent variational inference (CAVI) for the conjugate Gaussian mixture.

The variational family is scikit-learn's ``BayesianGaussianMixture`` (Bishop 2006, ch. 10;
Blei & Jordan 2006): ``q(pi)`` Dirichlet (finite weights) or a product of Beta sticks
(truncated Dirichlet process), ``q(mu_k, Lambda_k)`` Normal-Wishart, ``q(z_i)`` categorical.
The component prior is the Normal-(inverse-)Wishart
:class:`~bayesgmm.core.parameters.ConjugatePrior` that MAP EM and the Gibbs sampler use too
(``mu_k | Lambda_k ~ N(mean, (shrinkage Lambda_k)^-1)``, ``Lambda_k^-1 ~ inverse-Wishart(dof,
scale)``); only the sampler adds a hyperprior on ``scale``, which has no closed-form
coordinate update (:mod:`bayesgmm.core.conjugate`).

One iteration is the EM iteration with different natural parameters: the E-step, the M-step
and the evidence lower bound of :mod:`bayesgmm.core.variational_updates`. This module runs
the iterations (:func:`step`, :func:`update`) inside ``lax.while_loop`` (:func:`run`), vmapped
over restarts (:func:`fit_restarts`) or from a warm start (:func:`continue_fit`).
Natural-gradient stochastic VI (:mod:`bayesgmm.core.stochastic_vi`) reuses the same E-step on
minibatches and the same M-step.

Everything is in the EM core's internal units (data centred and divided by one scale ``s``).
The responsibilities and every parameter but the Wishart factor are unchanged by that map;
the bound moves by ``D log(s) sum_k dof_k``, a constant the caller adds back.

Shapes: ``K`` components, ``D`` features; ``concentration`` is (2, K): Beta ``(a_k, b_k)``
for sticks, or Dirichlet ``alpha_k`` in row 0 (row 1 zeros) for finite weights. Both weight
types run in one compiled program (``stick_breaking`` is traced).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.stats import BlockedData, stats_from_responsibilities
from bayesgmm.core.variational_updates import (
    Expectations,
    VariationalParams,
    VariationalPrior,
    e_step,
    lower_bound,
    m_step,
)


class CaviState(NamedTuple):
    """State of one CAVI run (a pytree; batched over restarts).

    Attributes
    ----------
    params : :class:`~bayesgmm.core.variational_updates.VariationalParams`
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
