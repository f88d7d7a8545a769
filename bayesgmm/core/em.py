"""Expectation-maximisation as a pure step function and a compiled loop.

The shape follows BlackJAX: a small state (:class:`EMState`), a pure step
(:func:`em_step`), and a loop that binds them (:func:`run_em`, a ``lax.while_loop``).
:func:`fit_restarts` runs every restart, initialisation included, as one ``vmap`` inside one
``jit``; picking the winner is left to the caller.

Stopping rule (scikit-learn's): stop when the change in the mean log-likelihood between two
E-steps is below ``tol``, or after ``max_iter`` iterations. As in scikit-learn, the reported
lower bound is the mean log-likelihood at the last E-step, i.e. of the parameters *before* the
final M-step.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.core.covariance import CovarianceFamily, MixtureParams
from bayesgmm.core.init import initial_responsibilities
from bayesgmm.core.stats import (
    BlockedData,
    SuffStats,
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

#: Multiple of ``eps * E[x^2]`` taken as the rounding noise of ``E[x x'] - mu mu'``.
_ROUNDING_NOISE_FACTOR = 32.0


class EMState(NamedTuple):
    """State of one EM run (a pytree; batched over restarts by :func:`fit_restarts`).

    Attributes
    ----------
    params : :class:`MixtureParams`, the current parameters
    stats : :class:`SuffStats` that produced ``params`` (the last E-step, or the initial
        responsibilities)
    stats_params : :class:`MixtureParams` under which ``stats`` were computed
    lower_bound : () mean log-likelihood at the last E-step (``-inf`` before the first)
    n_iter : () int32, E/M iterations done
    converged : () bool
    history : (max_iter,) lower bound after each iteration, NaN where not run
    """

    params: MixtureParams
    stats: SuffStats
    stats_params: MixtureParams
    lower_bound: Array
    n_iter: Array
    converged: Array
    history: Array


class InitOverride(NamedTuple):
    """User-supplied initial parameters (internal units); ``None`` fields are computed."""

    weights: Array | None = None
    means: Array | None = None
    covariances: Array | None = None
    precisions_cholesky: Array | None = None

    @property
    def complete(self) -> bool:
        return all(field is not None for field in self)


def em_step(state: EMState, data: BlockedData, family: CovarianceFamily, reg_covar: Array,
            tol: Array) -> EMState:
    """One E-step and M-step (pure)."""
    stats = e_step(data, state.params, family)
    lower_bound = stats.loglik / stats.total_weight
    return EMState(
        params=m_step(stats, family, reg_covar),
        stats=stats,
        stats_params=state.params,
        lower_bound=lower_bound,
        n_iter=state.n_iter + 1,
        converged=jnp.abs(lower_bound - state.lower_bound) < tol,
        history=state.history.at[state.n_iter].set(lower_bound),
    )


def run_em(params: MixtureParams, stats: SuffStats, data: BlockedData, family: CovarianceFamily,
           reg_covar: Array, tol: Array, max_iter: int) -> EMState:
    """Iterate :func:`em_step` from ``params`` inside ``lax.while_loop``."""
    dtype = data.features.dtype
    state = EMState(params, stats, params, jnp.asarray(-jnp.inf, dtype), jnp.asarray(0, jnp.int32),
                    jnp.asarray(False), jnp.full((max(max_iter, 1),), jnp.nan, dtype))

    def keep_going(state):
        return (state.n_iter < max_iter) & ~state.converged

    return jax.lax.while_loop(keep_going,
                              lambda s: em_step(s, data, family, reg_covar, tol), state)


def refine_last_m_step(state: EMState, data: BlockedData, family: CovarianceFamily,
                       reg_covar: Array) -> tuple[EMState, Array]:
    """Redo the last M-step from statistics centred on its own means.

    The responsibilities are those of the last E-step, so the result is the same M-step as in
    the loop (and as scikit-learn's) computed without the cancellation of the raw-moment form;
    in float64 the two agree to rounding, in float32 this restores the digits of thin clusters.

    Returns
    -------
    state : ``params`` and ``stats`` replaced by the refined ones
    centre : (K, D) the origin of the refined ``stats.sum_second``
    """
    centre = state.params.means
    stats = centred_e_step(data, state.stats_params, centre, family)
    return state._replace(params=m_step(stats, family, reg_covar, centre), stats=stats), centre


def degenerate_components(stats: SuffStats, centre: Array | float, family: CovarianceFamily,
                          feature_variance: Array) -> Array:
    """Which components are degenerate: (K,) bool.

    A component is degenerate when either

    * its effective size ``n_k`` is below what its covariance needs
      (:meth:`CovarianceFamily.min_count`: ``D + 1`` for full, 2 for diag and spherical, 1 for
      tied), or
    * it has collapsed: the smallest eigenvalue of ``V^-1/2 S_k V^-1/2`` is below
      ``max(COLLAPSE_VARIANCE_RATIO, 32 eps max_d (m_kd^2 + S_kdd) / v_d)``, where ``S_k`` is its
      covariance *without* ``reg_covar``, ``m_k`` its mean relative to the origin ``centre`` of
      the statistics, ``V = diag(v)`` the data's per-feature variances and ``eps`` the compute
      dtype's precision. The second term is the rounding noise of forming a covariance from
      moments about ``centre``. A collapsed component sits on repeated values or a
      lower-dimensional set, and only ``reg_covar`` bounds its likelihood.
    """
    dtype = stats.counts.dtype
    eps = jnp.finfo(dtype).eps
    counts = stats.counts + 10 * eps
    n_components, n_dims = stats.sum_x.shape
    means = stats.sum_x / counts[:, None] - centre
    cov = family.as_full(family.covariance(counts, means, stats.sum_second, 0.0),
                         n_components, n_dims)
    inv_sd = 1.0 / jnp.sqrt(feature_variance)
    smallest = jnp.linalg.eigvalsh(cov * inv_sd[:, None] * inv_sd[None, :])[..., 0]
    second_moment = (means**2 + jnp.diagonal(cov, axis1=-2, axis2=-1)) / feature_variance
    noise = _ROUNDING_NOISE_FACTOR * eps * jnp.max(second_moment, axis=-1)
    collapsed = ~(smallest >= jnp.maximum(COLLAPSE_VARIANCE_RATIO, noise))  # NaN: collapsed
    return (stats.counts < family.min_count(n_dims)) | collapsed


def _apply_override(params: MixtureParams, override: InitOverride) -> MixtureParams:
    return MixtureParams(*(given if given is not None else computed
                           for computed, given in zip(params, override, strict=True)))


@partial(jax.jit, static_argnames=("family", "n_components", "init", "max_iter"))
def fit_restarts(keys: Array, data: BlockedData, reg_covar: Array, tol: Array,
                 feature_variance: Array, override: InitOverride, *, family: CovarianceFamily,
                 n_components: int, init: str, max_iter: int) -> tuple[EMState, Array]:
    """Initialise and run EM for every restart key, vmapped in one compiled program.

    Parameters
    ----------
    keys : (R, 2) ``jax.random`` keys, one per restart
    data : :class:`BlockedData`
    feature_variance : (D,) per-feature data variance, for :func:`degenerate_components`
    override : :class:`InitOverride` applied after the ``init`` responsibilities' M-step

    Returns
    -------
    state : :class:`EMState` with a leading restart axis (R,)
    degenerate : (R, K) bool
    """
    n_blocks, block_rows, _ = data.features.shape
    n_dims = feature_variance.shape[0]
    flat_x = data_columns(data.features, n_dims).reshape(-1, n_dims)
    flat_weight = data.weight.reshape(-1)

    def one_restart(key):
        if override.complete:
            params = MixtureParams(*override)
            stats = e_step(data, params, family)
        else:
            resp = initial_responsibilities(key, flat_x, flat_weight, n_components, init)
            stats = stats_from_responsibilities(
                data, resp.reshape(n_blocks, block_rows, n_components), n_dims)
            params = _apply_override(m_step(stats, family, reg_covar), override)
        state = run_em(params, stats, data, family, reg_covar, tol, max_iter)
        centre = 0.0
        if max_iter > 0:
            state, centre = refine_last_m_step(state, data, family, reg_covar)
        return state, degenerate_components(state.stats, centre, family, feature_variance)

    return jax.vmap(one_restart)(keys)
