"""The coordinate updates of coordinate-ascent variational inference
(:mod:`bayesgmm.core.variational`) for the conjugate Gaussian mixture: the variational
family's parameters, the E-step, the M-step and the evidence lower bound.

* The E-step (:func:`e_step`) is the EM core's matrix product ``features @ eta' + c`` with
  ``eta`` from the expected precision ``dof_k W_k`` and ``c`` carrying ``E[log pi_k]``,
  ``E[log |Lambda_k|]`` and ``-D / (2 beta_k)`` (:func:`expected_natural`); it returns the
  additive :class:`~bayesgmm.core.stats.SuffStats` and the responsibilities' entropy, summed
  over blocks (in memory, or over devices).
* The M-step (:func:`m_step`) maps those sums to the variational parameters
  (:meth:`~bayesgmm.core.covariance_family.CovarianceFamily.wishart_update`; :func:`weight_update`
  for ``q(pi)``).
* The evidence lower bound (:func:`lower_bound`) is scikit-learn's closed form after the
  M-step.

Shapes: ``K`` components, ``D`` features; ``concentration`` is (2, K): Beta ``(a_k, b_k)``
for sticks, or Dirichlet ``alpha_k`` in row 0 (row 1 zeros) for finite weights. Everything is
in the EM core's internal units.
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
