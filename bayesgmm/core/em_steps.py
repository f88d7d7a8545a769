"""One EM fit: its state, the pure step, the compiled loop, and the rules applied at its end.

The shape follows BlackJAX: a small state (:class:`EMState`), a pure step (:func:`em_step`),
and a loop that binds them (:func:`run_em`, a ``lax.while_loop``). Everything here is one fit;
:mod:`bayesgmm.core.em` runs batches of them (``vmap``) as one compiled program.

Stopping rule (scikit-learn's): stop when the change in the mean log-likelihood between two
E-steps is below ``tol``, or after ``max_iter`` iterations. As in scikit-learn, the reported
lower bound is the mean log-likelihood at the last E-step, i.e. of the parameters *before* the
final M-step. A warm start continues from the previous fit's bound (``start_bound`` of
:func:`start_state`), so repeated one-iteration fits detect convergence as scikit-learn's do.

Maximum-likelihood EM never lowers the likelihood, so when an E-step finds it lower than the
previous one the parameters have reached the rounding floor of a fixed point: the step is
discarded and the loop stops, converged. The reported bounds therefore never decrease, not
even by one rounding unit. (With a prior the loop watches the log-likelihood, not the
posterior it maximises, and may legitimately see it fall; there is no such rule then.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.linalg import cholesky
from bayesgmm.core.parameters import ConjugatePrior, MixtureParams
from bayesgmm.core.stats import BlockedData, SuffStats, centred_e_step, e_step

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
    """State of one EM run (a pytree; batched over fits by :func:`bayesgmm.core.em.fit_batch`).

    Attributes
    ----------
    params : :class:`MixtureParams`, the current parameters
    stats : :class:`SuffStats` that produced ``params`` (the last E-step, or the initial
        responsibilities)
    stats_params : :class:`MixtureParams` under which ``stats`` were computed
    lower_bound : () mean log-likelihood at the last E-step (``-inf`` before the first)
    n_iter : () int32, E/M iterations done
    converged : () bool
    history : (H,) lower bound after each iteration, NaN where not run (H: the compiled
        program's iteration capacity, :func:`~bayesgmm.core.em.iteration_capacity`, or 1)
    """

    params: MixtureParams
    stats: SuffStats
    stats_params: MixtureParams
    lower_bound: Array
    n_iter: Array
    converged: Array
    history: Array


#: The M-step of one fit: ``update(stats, centre)`` gives the parameters from statistics whose
#: second moments are about ``centre`` ((K, D), or 0).
Update = Callable[[SuffStats, "Array | float"], MixtureParams]


def start_state(params: MixtureParams, stats: SuffStats, start_bound: Array | None,
                max_iter: int, dtype) -> EMState:
    """The state before the first iteration, from ``params`` and the ``stats`` that gave them;
    ``start_bound`` is the bound the first iteration's change is measured from (a warm
    start's; None: ``-inf``); ``dtype`` is the data's (of the bounds)."""
    start_bound = -jnp.inf if start_bound is None else start_bound
    return EMState(params, stats, params, jnp.asarray(start_bound, dtype),
                   jnp.asarray(0, jnp.int32), jnp.asarray(False),
                   jnp.full((max(max_iter, 1),), jnp.nan, dtype))


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


def run_em(state: EMState, data: BlockedData, family: CovarianceFamily, update: Update,
           tol: Array, max_iter: Array | int, monotone: bool = True) -> EMState:
    """Iterate :func:`em_step` from ``state`` (:func:`start_state`) inside
    ``lax.while_loop`` until converged or ``max_iter`` (traced or static; at most the
    length of ``state.history``) iterations are done."""
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
