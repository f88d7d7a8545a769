"""Variational inference for :class:`~bayesgmm.BayesianGaussianMixture` (``method="vi"``):
coordinate ascent on all rows, or natural-gradient stochastic VI on minibatches for large data,
on the conjugate mixture of :mod:`bayesgmm.core.variational`.

Model (standardised data ``y``; ``D`` features, ``R`` the columns' ranges)
    The Gibbs sampler's component prior (:mod:`bayesgmm.engine.bayes.gibbs`) with its hierarchical
    scale fixed at the hyperprior's mean, since a coordinate update needs a conjugate
    factor: ``Lambda_k^-1 ~ inverse-Wishart(D + 4, (D + 4) / 100 diag(R^2))``, ``mu_k |
    Lambda_k ~ N(0, (0.01 Lambda_k)^-1)``. Weights: a Dirichlet process truncated at ``T``
    with ``alpha`` fixed (default 0.5, the mean of the sampler's Gamma(2, 4) prior), or a
    sparse finite Dirichlet ``Dir(e0)`` with ``e0`` fixed (default 0.01, the mean of its
    Gamma(10, 1000) prior). ``diag`` uses scikit-learn's variational formulas for diagonal
    precisions (the Wishart's ``E[log |Lambda|]`` and normaliser).

Start
    Coordinate ascent on a subsample of :data:`START_ROWS` rows from k-means starts with 1,
    2, ..., T clusters (:func:`start_counts`; the other components empty, after the occupied
    ones: the order a stick-breaking prior favours), vmapped in one program; the start with
    the highest lower bound continues on all rows. These are restarts of one model, so their
    bounds compare directly (no BIC, no correction for K).

Which algorithm
    Up to :data:`STOCHASTIC_ROWS` rows (or without ``subsample_size``), coordinate ascent:
    each iteration one pass over the rows, stopping when the bound changes by less than
    ``tol`` per row. Above it, or with ``subsample_size``, natural-gradient stochastic VI
    (:func:`~bayesgmm.core.stochastic_vi.run_stochastic`) on minibatches of about
    ``subsample_size`` rows (default :data:`BATCH_ROWS`), then one coordinate-ascent
    iteration on all rows.

Posterior draws
    ``q`` is sampled directly (weights from the Beta sticks or the Dirichlet, ``Lambda_k``
    from the Wishart by Bartlett's construction, ``mu_k`` given ``Lambda_k``): the estimator's
    summaries treat them as the sampler's draws. ``q`` has one labelling, so no relabelling.
    The draws and ``q``'s posterior predictive density are in
    :mod:`bayesgmm.engine.bayes.variational_posterior`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.core import stochastic_vi, variational, variational_updates
from bayesgmm.core.covariance import get_family
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.init import block_responsibilities, init_draws
from bayesgmm.core.parameters import ConjugatePrior
from bayesgmm.core.partition import WeightPrior
from bayesgmm.core.stochastic_vi import StochasticSchedule
from bayesgmm.core.variational_updates import VariationalParams, VariationalPrior
from bayesgmm.engine.bayes.gibbs import default_hyperparameters
from bayesgmm.engine.preprocessing import compute_context, to_blocks

#: Above this many rows ``method="vi"`` runs stochastic VI by default.
STOCHASTIC_ROWS = 100_000
#: Rows per minibatch of stochastic VI by default.
BATCH_ROWS = 10_000
#: Rows per block of the stochastic VI data layout (a minibatch is a set of blocks).
_SVI_BLOCK_ROWS = 512
#: Default fixed concentrations: the means of the sampler's hyperpriors.
DEFAULT_CONCENTRATION = {"dp": 0.5, "sparse": 0.01}


@dataclass
class VariationalResult:
    """The fitted ``q`` (standardised units) and how the fit went.

    Attributes
    ----------
    params : :class:`~bayesgmm.core.variational_updates.VariationalParams` (numpy)
    memberships : (N, T) ``q(z)`` of the training rows
    info : ``algorithm`` ('cavi' or 'svi'), ``n_iter`` (iterations or steps),
        ``converged``, ``lower_bound`` (per row, at the end), ``history`` (per-row bound per
        iteration, or per-window estimate for SVI), ``batch_rows`` (SVI)
    """

    params: VariationalParams
    memberships: np.ndarray
    info: dict


def conjugate_prior(y: np.ndarray, covariance_type: str, weights: str,
                    concentration: float | None, n_components: int) -> VariationalPrior:
    """The prior of the module docstring for standardised rows ``y`` (N, D)."""
    hyper = default_hyperparameters(y, "full", WeightPrior.named("dirichlet_process", None),
                                    n_components).prior
    scale = get_family(covariance_type).component_covariance(np.asarray(hyper.scale))
    alpha = DEFAULT_CONCENTRATION[weights] if concentration is None else concentration
    components = ConjugatePrior(np.asarray(hyper.mean, np.float64),
                                np.asarray(hyper.shrinkage, np.float64),
                                np.asarray(hyper.dof, np.float64), scale)
    return VariationalPrior(components, np.asarray(alpha, np.float64),
                            np.asarray(weights == "dp"))


#: Rows of the subsample on which the restarts run (all rows if fewer).
START_ROWS = 5000
#: Most iterations of each restart on the subsample.
START_ITERATIONS = 60
#: How the restarts are seeded (:mod:`bayesgmm.core.init`).
START_INIT = "kmeans"


class RestartSettings(NamedTuple):
    """Static settings of the restarts' compiled program (hashable, with a stable ``repr``
    for the program cache): the covariance ``family``, at most ``max_iter`` iterations, and
    ``n_dims`` features."""

    family: CovarianceFamily
    max_iter: int
    n_dims: int


@persistent_jit(static_argnames=("settings",))
def _restarts(draws, active, data, prior, reg_covar, tol, *, settings: RestartSettings):
    """Coordinate ascent on ``data`` from k-means starts with ``active`` (R, T) clusters:
    the restarts' final states (leading axis R)."""
    resp = block_responsibilities(draws, data.features, data.weight, settings.n_dims,
                                  active.shape[1], START_INIT, active)
    return variational.fit_restarts(resp, data, prior, reg_covar, tol, family=settings.family,
                                    max_iter=settings.max_iter)


@persistent_jit(static_argnames=("family", "max_iter"))
def _fit_cavi(params, data, prior, reg_covar, tol, *, family, max_iter):
    """Coordinate ascent from ``params`` on all rows; the final state and ``q(z)`` of the rows
    (n_blocks, block_rows, T)."""
    state = variational.run(params, data, prior, family, reg_covar, tol, max_iter)
    return state, variational_updates.responsibilities(data, state.params,
                                                       prior.stick_breaking, family)


@persistent_jit(static_argnames=("family", "schedule"))
def _fit_svi(params, data, prior, reg_covar, tol, seed, *, family, schedule):
    """Stochastic VI from the statistics of ``params``' E-step on all rows, then one
    coordinate-ascent iteration on all rows."""
    stats = variational_updates.e_step(data, params, prior.stick_breaking, family).stats
    state = stochastic_vi.run_stochastic(stats, data, prior, reg_covar, tol, seed,
                                         family=family, schedule=schedule)
    final = variational.step(variational.initial_state(state.params, 1), data, prior, family,
                             reg_covar, tol)
    return state, final, variational_updates.responsibilities(data, final.params,
                                                              prior.stick_breaking, family)


def start_counts(n_components: int) -> np.ndarray:
    """Numbers of clusters the restarts start from: every count up to 10, then counts about
    25% apart, and ``T`` (1..10, 12, 15, 19, 20 for T = 20)."""
    counts = list(range(1, min(n_components, 10) + 1))
    while counts[-1] < n_components:
        counts.append(min(n_components, max(counts[-1] + 1, round(counts[-1] * 1.25))))
    return np.array(counts)


def start(y: np.ndarray, prior: VariationalPrior, covariance_type: str, n_components: int,
          n_clusters: int | None, *, tol: float, seed: int) -> tuple[VariationalParams, dict]:
    """The starting ``q``: coordinate ascent (at most :data:`START_ITERATIONS` iterations)
    on a subsample of :data:`START_ROWS` rows from k-means starts with
    :func:`start_counts` clusters (the others empty), all in one compiled, vmapped program;
    the highest lower bound wins (one model, several local optima).
    ``n_clusters`` an int: that many clusters only."""
    family = get_family(covariance_type)
    n_rows, n_dims = y.shape
    rng = np.random.default_rng(seed)
    rows = (rng.choice(n_rows, START_ROWS, replace=False) if n_rows > START_ROWS
            else slice(None))
    sample = y[rows]
    counts = (start_counts(n_components) if n_clusters is None
              else np.array([min(int(n_clusters), n_components)]))
    active = np.arange(n_components)[None, :] < counts[:, None]
    draws = init_draws(seed, len(counts), START_INIT, n_components)
    data = to_blocks(sample, np.float64, family)
    states = jax.device_get(_restarts(draws, active, data, prior, np.asarray(0.0),
                                      np.asarray(tol * len(sample)),
                                      settings=RestartSettings(family, START_ITERATIONS, n_dims)))
    bounds = np.where(np.isfinite(states.lower_bound), states.lower_bound, -np.inf)
    best = int(np.argmax(bounds))
    params = VariationalParams(*(np.asarray(a[best]) for a in states.params))
    return params, {"start_clusters": int(counts[best]),
                    "start_bounds": (bounds / len(sample)).tolist()}


def fit(y: np.ndarray, start_params: VariationalParams, prior: VariationalPrior,
        covariance_type: str, *, tol: float, max_steps: int, subsample_size: int | None,
        seed: int) -> VariationalResult:
    """Fit ``q`` to standardised rows ``y`` (N, D) from ``start_params`` (:func:`start`; see
    the module docstring for the algorithm). ``tol`` is per row."""
    family = get_family(covariance_type)
    n_rows = y.shape[0]
    reg_covar = np.asarray(0.0)
    start_params = VariationalParams(*(jnp.asarray(a) for a in start_params))
    stochastic = subsample_size is not None or n_rows > STOCHASTIC_ROWS
    if not stochastic:
        data = to_blocks(y, np.float64, family)
        state, resp = jax.device_get(_fit_cavi(start_params, data, prior, reg_covar,
                                               np.asarray(tol * n_rows), family=family,
                                               max_iter=max_steps))
        n_iter = int(state.n_iter)
        params = VariationalParams(*(np.asarray(a) for a in state.params))
        return VariationalResult(params, _unblocked(resp, n_rows), {
            "algorithm": "cavi", "n_iter": n_iter, "converged": bool(state.converged),
            "lower_bound": float(state.lower_bound) / n_rows,
            "history": np.asarray(state.history[:n_iter]) / n_rows})
    batch_rows = min(subsample_size or BATCH_ROWS, n_rows)
    data = to_blocks(y, np.float64, family, block_rows=_SVI_BLOCK_ROWS)
    n_blocks = data.features.shape[0]
    batch_blocks = max(1, min(n_blocks, round(batch_rows / _SVI_BLOCK_ROWS)))
    epoch_steps = -(-n_blocks // batch_blocks)
    schedule = StochasticSchedule(batch_blocks, window_steps=max(10, epoch_steps),
                                  max_steps=max_steps)
    state, final, resp = jax.device_get(_fit_svi(start_params, data, prior, reg_covar,
                                           np.asarray(tol), np.asarray(seed, np.uint32),
                                           family=family, schedule=schedule))
    n_windows = int(state.step) // schedule.window_steps
    params = VariationalParams(*(np.asarray(a) for a in final.params))
    return VariationalResult(params, _unblocked(resp, n_rows), {
        "algorithm": "svi", "n_iter": int(state.step), "converged": bool(state.converged),
        "lower_bound": float(final.lower_bound) / n_rows,
        "history": np.asarray(state.history[:n_windows]),
        "batch_rows": batch_blocks * _SVI_BLOCK_ROWS})


def _unblocked(resp: np.ndarray, n_rows: int) -> np.ndarray:
    """Per-row values (n_blocks, block_rows, T) -> the first ``n_rows`` rows (N, T)."""
    return np.asarray(resp, np.float64).reshape(-1, resp.shape[-1])[:n_rows]


def memberships(x: np.ndarray, params: VariationalParams, stick_breaking: bool,
                covariance_type: str) -> np.ndarray:
    """``q(z_i = k)`` (N, T) of standardised rows ``x``: the coordinate update of the
    assignments given ``q(pi, mu, Lambda)``."""
    family = get_family(covariance_type)
    with compute_context(np.float64):
        data = to_blocks(x, np.float64, family)
        resp = _responsibilities(data, VariationalParams(*(jnp.asarray(a) for a in params)),
                                 jnp.asarray(stick_breaking), family)
    return _unblocked(resp, len(x))


_responsibilities = persistent_jit(variational_updates.responsibilities, static_argnames="family")


#: Rows whose largest membership is above ``1 - CERTAIN`` are counted as assigned to it in
#: every draw of :func:`occupancy_draws` (the error is below ``N * CERTAIN`` points per draw).
CERTAIN = 1e-12
#: Most draws x rows x components held at once by :func:`occupancy_draws`.
_OCCUPANCY_BUDGET = 20_000_000


def occupancy_draws(resp: np.ndarray, n_draws: int, seed: int) -> np.ndarray:
    """Points per component (n_draws, T) under assignments drawn from ``q(z)`` (rows
    independent, row ``i`` categorical with probabilities ``resp[i]``).

    Rows that are certain (largest probability above ``1 - CERTAIN``) are counted once;
    only the others are sampled, by inverse CDF, in chunks of draws.
    """
    n_components = resp.shape[1]
    certain = resp.max(axis=1) > 1.0 - CERTAIN
    fixed = np.bincount(resp[certain].argmax(axis=1), minlength=n_components)
    uncertain = np.cumsum(resp[~certain], axis=1)
    counts = np.tile(fixed.astype(np.float64), (n_draws, 1))
    if not len(uncertain):
        return counts
    rng = np.random.default_rng(seed)
    chunk = max(1, _OCCUPANCY_BUDGET // (len(uncertain) * n_components))
    for start in range(0, n_draws, chunk):
        stop = min(n_draws, start + chunk)
        uniforms = rng.random((stop - start, len(uncertain), 1)) * uncertain[:, -1:]
        labels = np.minimum((uncertain[None] < uniforms).sum(axis=-1), n_components - 1)
        for row, drawn in enumerate(labels, start=start):
            counts[row] += np.bincount(drawn, minlength=n_components)
    return counts
