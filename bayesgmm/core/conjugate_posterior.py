"""Posterior updates and marginal likelihoods of the conjugate component model
(:mod:`bayesgmm.core.conjugate`): Normal-inverse-Wishart components (``full``) and their
per-feature Normal-inverse-gamma counterpart (``diag``).

Given statistics (:class:`~bayesgmm.core.stats.SuffStats`: counts ``n``, sums ``s``,
second-moment sums ``Q``) of each of ``T`` components::

    shrinkage_n = shrinkage + n,   dof_n = dof + n,   mean_n = (shrinkage mean + s) / shrinkage_n
    scale_n = S0 + W + shrinkage n / shrinkage_n (xbar - mean)(xbar - mean)'

with ``W = Q - n xbar xbar'`` the scatter about the component mean. An empty component's
posterior is its prior. The scale matrices are factorised once (:class:`ScaleFactor`) and the
factors shared by the formulas that need them.

The classes here hold static methods only; :class:`~bayesgmm.core.conjugate.ConjugateFull`
and :class:`~bayesgmm.core.conjugate.ConjugateDiag` combine them with the draws of
:mod:`bayesgmm.core.conjugate_draws` and the maps of :mod:`bayesgmm.core.moment_matching`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import gammaln, multigammaln

from bayesgmm.core.linalg import cholesky, log_det_from_cholesky, lower_triangular_inverse
from bayesgmm.core.moments import FullMoments, elementwise_natural, matrix_natural
from bayesgmm.core.parameters import ConjugatePrior, NaturalParams
from bayesgmm.core.stats import SuffStats, natural_log_prob

_LOG_PI = math.log(math.pi)


class ScaleFactor(NamedTuple):
    """A factorised inverse-Wishart scale ``S`` (any leading shape).

    Attributes
    ----------
    factor : ``L`` with ``S = L L'`` (full: lower-triangular (..., D, D); diag: sqrt (..., D))
    inverse : ``L^-1``
    log_det : ``log |S|`` (...,)
    """

    factor: Array
    inverse: Array
    log_det: Array


class FullPosterior:
    """Posterior hyperparameters, marginal likelihoods and plug-in estimates of
    Normal-inverse-Wishart components with full covariance matrices."""

    @staticmethod
    def posterior(prior: ConjugatePrior, stats: SuffStats) -> ConjugatePrior:
        """Per-component posterior hyperparameters (T leading axis) from ``stats``."""
        n = stats.counts
        n_dims = stats.sum_x.shape[-1]
        shrinkage = prior.shrinkage + n
        safe = jnp.where(n > 0, n, 1.0)
        xbar = stats.sum_x / safe[:, None]
        scatter = (FullMoments.to_matrix(stats.sum_second, n_dims)
                   - n[:, None, None] * xbar[:, :, None] * xbar[:, None, :])
        offset = xbar - prior.mean
        pull = prior.shrinkage * n / shrinkage
        scale = (prior.scale + scatter
                 + pull[:, None, None] * offset[:, :, None] * offset[:, None, :])
        mean = (prior.shrinkage * prior.mean + stats.sum_x) / shrinkage[:, None]
        return ConjugatePrior(mean, shrinkage, prior.dof + n, scale)

    @staticmethod
    def factorise(scale: Array) -> ScaleFactor:
        """:class:`ScaleFactor` of scale matrices (..., D, D)."""
        factor = cholesky(scale)
        return ScaleFactor(factor, lower_triangular_inverse(factor),
                           log_det_from_cholesky(factor))

    @staticmethod
    def log_marginal(prior: ConjugatePrior, prior_factor: ScaleFactor,
                     posterior: ConjugatePrior, counts: Array) -> Array:
        """``log p(x_k)`` of each component's points with its parameters integrated out (T,);
        0 for an empty component."""
        n_dims = posterior.mean.shape[-1]
        log_det_post = log_det_from_cholesky(cholesky(posterior.scale))
        return (-0.5 * counts * n_dims * _LOG_PI
                + multigammaln(0.5 * posterior.dof, n_dims)
                - multigammaln(0.5 * prior.dof, n_dims)
                + 0.5 * prior.dof * prior_factor.log_det - 0.5 * posterior.dof * log_det_post
                + 0.5 * n_dims * (jnp.log(prior.shrinkage) - jnp.log(posterior.shrinkage)))

    @staticmethod
    def log_predictive(posterior: ConjugatePrior, features: Array) -> Array:
        """``log p(x | x_k)`` of feature rows (N, D + F) under each of M posteriors: the
        multivariate Student t of ``dof - D + 1`` degrees of freedom, centre ``mean`` and
        scale ``scale (shrinkage + 1) / (shrinkage (dof - D + 1))`` (N, M). The squared
        distances are one matrix product with the features (the E-step's form)."""
        n_dims = posterior.mean.shape[-1]
        dof = posterior.dof - n_dims + 1.0
        spread = (posterior.shrinkage + 1.0) / (posterior.shrinkage * dof)       # (M,)
        factor = cholesky(posterior.scale)
        inverse = lower_triangular_inverse(factor)
        precision = jnp.swapaxes(inverse, -1, -2) @ inverse / spread[:, None, None]
        linear = jnp.einsum("mij,mj->mi", precision, posterior.mean)
        centred = NaturalParams(linear, FullMoments.quadratic_coefficients(precision),
                                -0.5 * jnp.sum(linear * posterior.mean, axis=-1))
        distance = jnp.maximum(-2.0 * natural_log_prob(features, centred), 0.0)
        log_det = log_det_from_cholesky(factor) + n_dims * jnp.log(spread)
        return (gammaln(0.5 * (dof + n_dims)) - gammaln(0.5 * dof)
                - 0.5 * n_dims * (jnp.log(dof) + _LOG_PI) - 0.5 * log_det
                - 0.5 * (dof + n_dims) * jnp.log1p(distance / dof))

    @staticmethod
    def plug_in(log_weights: Array, posterior: ConjugatePrior) -> NaturalParams:
        """Natural parameters of Gaussians at the posterior mean of the means and the posterior
        mode of the covariances, ``scale / (dof + D + 1)``; ``log_weights`` (T,)."""
        n_dims = posterior.mean.shape[-1]
        covariance = posterior.scale / (posterior.dof + n_dims + 1.0)[:, None, None]
        factor = cholesky(covariance)
        inverse = lower_triangular_inverse(factor)
        precision = jnp.swapaxes(inverse, -1, -2) @ inverse
        return matrix_natural(log_weights, posterior.mean, precision,
                              -0.5 * log_det_from_cholesky(factor))

    @staticmethod
    def variances(scale: Array) -> Array:
        """The diagonal of an inverse-Wishart scale (D,)."""
        return jnp.diagonal(scale, axis1=-2, axis2=-1)

    @staticmethod
    def scale_of_variances(variances: np.ndarray) -> np.ndarray:
        """The inverse-Wishart scale (D, D) with ``variances`` (D,) on its diagonal (host,
        numpy): the inverse of :meth:`variances` for a diagonal scale."""
        return np.diag(variances)

    @staticmethod
    def problem_dims(n_dims: int) -> int:
        """The dimension of each conjugate problem of ``n_dims`` features: ``D`` (one
        ``D``-dimensional inverse-Wishart per component, of mean ``scale / (dof - D - 1)``)."""
        return n_dims


class DiagPosterior:
    """The same per feature: Normal-inverse-gamma components, diagonal covariances (scales
    (..., D))."""

    @staticmethod
    def posterior(prior: ConjugatePrior, stats: SuffStats) -> ConjugatePrior:
        """Per-component posterior hyperparameters (T leading axis) from ``stats``."""
        n = stats.counts
        shrinkage = prior.shrinkage + n
        safe = jnp.where(n > 0, n, 1.0)
        xbar = stats.sum_x / safe[:, None]
        scatter = stats.sum_second - n[:, None] * xbar * xbar
        offset = xbar - prior.mean
        pull = prior.shrinkage * n / shrinkage
        scale = prior.scale + scatter + pull[:, None] * offset * offset
        mean = (prior.shrinkage * prior.mean + stats.sum_x) / shrinkage[:, None]
        return ConjugatePrior(mean, shrinkage, prior.dof + n, scale)

    @staticmethod
    def factorise(scale: Array) -> ScaleFactor:
        """:class:`ScaleFactor` of per-feature scales (..., D)."""
        factor = jnp.sqrt(scale)
        return ScaleFactor(factor, 1.0 / factor, jnp.sum(jnp.log(scale), axis=-1))

    @staticmethod
    def log_marginal(prior: ConjugatePrior, prior_factor: ScaleFactor,
                     posterior: ConjugatePrior, counts: Array) -> Array:
        """``log p(x_k)`` (T,), summed over features; 0 for an empty component."""
        n_dims = posterior.mean.shape[-1]
        return (-0.5 * counts * n_dims * _LOG_PI
                + n_dims * (gammaln(0.5 * posterior.dof) - gammaln(0.5 * prior.dof))
                + 0.5 * prior.dof * prior_factor.log_det
                - 0.5 * posterior.dof * jnp.sum(jnp.log(posterior.scale), axis=-1)
                + 0.5 * n_dims * (jnp.log(prior.shrinkage) - jnp.log(posterior.shrinkage)))

    @staticmethod
    def log_predictive(posterior: ConjugatePrior, features: Array) -> Array:
        """``log p(x | x_k)`` (N, M): per feature the Student t of ``dof`` degrees of
        freedom, centre ``mean`` and scale ``scale (shrinkage + 1) / (shrinkage dof)``."""
        n_dims = posterior.mean.shape[-1]
        dof = posterior.dof[:, None]                                                # (M, 1)
        variance = posterior.scale * (posterior.shrinkage + 1.0)[:, None] / (
            posterior.shrinkage[:, None] * dof)                                     # (M, D)
        x = features[:, None, :n_dims]
        distance = (x - posterior.mean) ** 2 / variance                             # (N, M, D)
        return jnp.sum(gammaln(0.5 * (dof + 1.0)) - gammaln(0.5 * dof)
                       - 0.5 * (jnp.log(dof) + _LOG_PI) - 0.5 * jnp.log(variance)
                       - 0.5 * (dof + 1.0) * jnp.log1p(distance / dof), axis=-1)

    @staticmethod
    def plug_in(log_weights: Array, posterior: ConjugatePrior) -> NaturalParams:
        """Natural parameters at the posterior mean and the inverse-gamma mode."""
        precision = (posterior.dof + 3.0)[:, None] / posterior.scale  # the inverse-gamma mode
        return elementwise_natural(log_weights, posterior.mean, precision,
                                   0.5 * jnp.sum(jnp.log(precision), axis=-1))

    @staticmethod
    def variances(scale: Array) -> Array:
        """The per-feature scale itself (D,)."""
        return scale

    @staticmethod
    def scale_of_variances(variances: np.ndarray) -> np.ndarray:
        """The per-feature scale (D,) of ``variances`` (D,): themselves."""
        return variances

    @staticmethod
    def problem_dims(n_dims: int) -> int:
        """1: each feature is its own one-dimensional problem (an inverse-gamma, the
        one-dimensional inverse-Wishart, of mean ``scale / (dof - 2)``)."""
        return 1
