"""Draws of the conjugate component model (:mod:`bayesgmm.core.conjugate`) and their density:
components' means and covariances from Normal-inverse-Wishart (``full``) or per-feature
Normal-inverse-gamma (``diag``) hyperparameters, and the inverse-Wishart scale ``S0`` from its
Wishart hyperprior.

The random numbers are passed in (:mod:`bayesgmm.core.variates`: log Gamma variates of the
shapes that :meth:`FullDraws.gamma_shapes` gives, standard normals), so that a sampler makes
few random-number calls; the scale matrices come factorised
(:class:`~bayesgmm.core.conjugate_posterior.ScaleFactor`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import gammaln, multigammaln

from bayesgmm.core.conjugate_posterior import ScaleFactor
from bayesgmm.core.linalg import cholesky, log_det_from_cholesky, lower_triangular_inverse
from bayesgmm.core.moments import elementwise_natural, matrix_natural
from bayesgmm.core.parameters import ConjugatePrior, NaturalParams
from bayesgmm.core.variates import bartlett_factor, bartlett_shapes

_LOG_2 = math.log(2.0)
_LOG_2PI = math.log(2.0 * math.pi)


class ScaleHyperprior(NamedTuple):
    """Wishart prior ``S0 ~ Wishart(dof, scale)`` on the components' inverse-Wishart scale
    (``diag``: per feature ``s0_d ~ Gamma(dof / 2, rate 1 / (2 scale_d))``).

    Attributes
    ----------
    dof : ()
    scale : (D, D) full, (D,) diag
    inverse_scale : ``scale^-1`` (full), ``1 / scale`` (diag)
    """

    dof: Array
    scale: Array
    inverse_scale: Array


class Bartlett(NamedTuple):
    """The random part of a Wishart draw (any leading shape): ``A``, ``A^-1`` and
    ``log |A A'|`` (full); for diag, ``A`` holds the chi-square variates' square roots."""

    factor: Array
    inverse: Array
    log_det: Array


class ComponentDraw(NamedTuple):
    """Means and covariances of a stack of components (a pytree).

    Attributes
    ----------
    means : (T, D)
    precision : (T, D, D) full, (T, D) diag: the precision matrices (diagonals)
    covariance_factor : (T, D, D) full (``Sigma = G G'``), (T, D) diag (standard deviations)
    half_log_det : (T,) ``log |precision|^(1/2)``
    """

    means: Array
    precision: Array
    covariance_factor: Array
    half_log_det: Array


class FullDraws:
    """Draws of Normal-inverse-Wishart components with full covariance matrices."""

    @staticmethod
    def log_density(hyper: ConjugatePrior, log_det_scale: Array,
                    draw: ComponentDraw) -> Array:
        """``log NIW(mu_k, Sigma_k | hyper)`` (T,): ``log N(mu | mean, Sigma / shrinkage) +
        log IW(Sigma | dof, scale)``; ``hyper`` (and ``log |scale|``) per component or
        shared."""
        n_dims = draw.means.shape[-1]
        offset = draw.means - hyper.mean
        quadratic = jnp.einsum("ti,tij,tj->t", offset, draw.precision, offset)
        log_normal = (-0.5 * n_dims * _LOG_2PI + 0.5 * n_dims * jnp.log(hyper.shrinkage)
                      + draw.half_log_det - 0.5 * hyper.shrinkage * quadratic)
        trace = jnp.sum(hyper.scale * draw.precision, axis=(-2, -1))
        log_wishart = (0.5 * hyper.dof * log_det_scale - 0.5 * hyper.dof * n_dims * _LOG_2
                       - multigammaln(0.5 * hyper.dof, n_dims)
                       + (hyper.dof + n_dims + 1.0) * draw.half_log_det - 0.5 * trace)
        return log_normal + log_wishart

    @staticmethod
    def gamma_shapes(dof: Array, n_dims: int) -> Array:
        """Gamma shapes (..., D) of the chi-square variates of a draw with ``dof`` (...,)."""
        return bartlett_shapes(dof, n_dims)

    @staticmethod
    def bartlett(log_gammas: Array, normals: Array) -> Bartlett:
        """:class:`Bartlett` from log Gamma variates (..., D) of :meth:`gamma_shapes` and
        standard normals (..., D, D)."""
        factor = bartlett_factor(_LOG_2 + log_gammas, normals)
        return Bartlett(factor, lower_triangular_inverse(factor),
                        log_det_from_cholesky(factor))

    @staticmethod
    def draw(mean: Array, shrinkage: Array, scale: ScaleFactor, bartlett: Bartlett,
             mean_normals: Array) -> ComponentDraw:
        """``Sigma_k ~ IW(dof, S)`` and ``mu_k ~ N(mean, Sigma_k / shrinkage)``.

        Bartlett: with ``S = L L'``, the precision ``L^-T A A' L^-1`` is
        ``Wishart(dof, S^-1)`` (:func:`~bayesgmm.core.variates.bartlett_factor`) and
        ``Sigma = G G'`` with ``G = L A^-T``. Shapes: mean (T, D), shrinkage (T,), the
        factors (T, D, D) (or broadcastable), mean_normals (T, D).
        """
        precision_factor = jnp.swapaxes(scale.inverse, -1, -2) @ bartlett.factor   # L^-T A
        precision = precision_factor @ jnp.swapaxes(precision_factor, -1, -2)
        covariance_factor = scale.factor @ jnp.swapaxes(bartlett.inverse, -1, -2)   # L A^-T
        means = mean + jnp.einsum("tij,tj->ti", covariance_factor, mean_normals
                                  ) / jnp.sqrt(shrinkage)[:, None]
        half_log_det = 0.5 * (bartlett.log_det - scale.log_det)
        return ComponentDraw(means, precision, jnp.broadcast_to(
            covariance_factor, precision.shape), jnp.broadcast_to(half_log_det, means.shape[:1]))

    @staticmethod
    def natural(log_weights: Array, draw: ComponentDraw) -> NaturalParams:
        """Natural parameters of the drawn Gaussians with log weights (T,)."""
        return matrix_natural(log_weights, draw.means, draw.precision, draw.half_log_det)

    @staticmethod
    def from_covariance(means: Array, covariance: Array) -> ComponentDraw:
        """Components with given means (M, D) and covariance matrices (M, D, D); NaN where
        a covariance is not positive definite."""
        factor = cholesky(covariance)
        inverse = lower_triangular_inverse(factor)
        return ComponentDraw(means, jnp.swapaxes(inverse, -1, -2) @ inverse, factor,
                             -0.5 * log_det_from_cholesky(factor))

    @staticmethod
    def fixed(means: Array, covariance: Array) -> ComponentDraw:
        """Components with ``means`` (T, D) sharing one ``covariance`` (D, D)."""
        factor = cholesky(covariance)
        inverse = lower_triangular_inverse(factor)
        n_components = means.shape[0]
        return ComponentDraw(
            means, jnp.broadcast_to(inverse.T @ inverse, (n_components, *covariance.shape)),
            jnp.broadcast_to(factor, (n_components, *covariance.shape)),
            jnp.full(n_components, -0.5 * log_det_from_cholesky(factor)))

    @staticmethod
    def scale_gamma_shapes(hyper: ScaleHyperprior, prior_dof: Array,
                           n_occupied: Array) -> Array:
        """Gamma shapes (D,) for :meth:`draw_scale`."""
        return bartlett_shapes(hyper.dof + n_occupied * prior_dof, hyper.inverse_scale.shape[-1])

    @staticmethod
    def draw_scale(hyper: ScaleHyperprior, precision: Array, occupied: Array,
                   log_gammas: Array, normals: Array) -> Array:
        """``S0 | Sigma_occupied ~ Wishart(dof + K+ nu0, (scale^-1 + sum_k Sigma_k^-1)^-1)``:
        the inverse-Wishart density ``|S0|^(nu0/2) exp(-tr(S0 Sigma_k^-1) / 2)`` times the
        Wishart prior. Empty components are integrated out (they are prior draws given S0).
        ``precision`` (T, D, D), ``occupied`` (T,) bool.
        """
        total = hyper.inverse_scale + jnp.einsum("t,tij->ij", occupied.astype(
            precision.dtype), precision)
        upper = jnp.swapaxes(lower_triangular_inverse(cholesky(total)), -1, -2)   # L^-T
        root = upper @ bartlett_factor(_LOG_2 + log_gammas, normals)
        return root @ jnp.swapaxes(root, -1, -2)

    @staticmethod
    def covariances(covariance_factor: Array) -> Array:
        """(..., D, D) covariance matrices from :attr:`ComponentDraw.covariance_factor`."""
        return covariance_factor @ jnp.swapaxes(covariance_factor, -1, -2)

    @staticmethod
    def cholesky_of_factors(factors: np.ndarray) -> np.ndarray:
        """Lower Cholesky factors (..., D, D) of the covariances ``G G'`` of recorded
        :attr:`ComponentDraw.covariance_factor` values ``G`` (..., D, D), which are not
        triangular (host, numpy)."""
        return np.linalg.cholesky(factors @ np.swapaxes(factors, -1, -2))


class DiagDraws:
    """Draws of Normal-inverse-gamma components per feature: diagonal covariances."""

    @staticmethod
    def log_density(hyper: ConjugatePrior, log_det_scale: Array,
                    draw: ComponentDraw) -> Array:
        """Per feature ``log N(mu | mean, sigma2 / shrinkage) + log IG(sigma2 | dof / 2,
        scale / 2)``, summed over features (T,)."""
        n_dims = draw.means.shape[-1]
        dof = jnp.asarray(hyper.dof)
        shrinkage = jnp.asarray(hyper.shrinkage)
        offset = draw.means - hyper.mean
        log_normal = (-0.5 * n_dims * _LOG_2PI + 0.5 * n_dims * jnp.log(shrinkage)
                      + draw.half_log_det
                      - 0.5 * shrinkage * jnp.sum(draw.precision * offset**2, axis=-1))
        log_inverse_gamma = (0.5 * dof * (log_det_scale - n_dims * _LOG_2)
                             - n_dims * gammaln(0.5 * dof) + (dof + 2.0) * draw.half_log_det
                             - 0.5 * jnp.sum(hyper.scale * draw.precision, axis=-1))
        return log_normal + log_inverse_gamma

    @staticmethod
    def gamma_shapes(dof: Array, n_dims: int) -> Array:
        """Gamma shapes (..., D): ``dof / 2`` per feature for ``dof`` (...,)."""
        return jnp.broadcast_to(0.5 * jnp.asarray(dof)[..., None], (*jnp.shape(dof), n_dims))

    @staticmethod
    def bartlett(log_gammas: Array, normals: Array) -> Bartlett:
        """Square roots of the chi-square variates (..., D); ``normals`` unused."""
        log_chi2 = _LOG_2 + log_gammas
        factor = jnp.exp(0.5 * log_chi2)
        return Bartlett(factor, 1.0 / factor, jnp.sum(log_chi2, axis=-1))

    @staticmethod
    def draw(mean: Array, shrinkage: Array, scale: ScaleFactor, bartlett: Bartlett,
             mean_normals: Array) -> ComponentDraw:
        """``1 / sigma2_kd = chi2(dof) / s_d``, ``mu_kd ~ N(mean_d, sigma2_kd / shrinkage)``."""
        sd = scale.factor * bartlett.inverse
        means = mean + sd * mean_normals / jnp.sqrt(shrinkage)[:, None]
        precision = 1.0 / (sd * sd)
        half_log_det = 0.5 * (bartlett.log_det - scale.log_det)
        return ComponentDraw(means, precision, sd, jnp.broadcast_to(half_log_det,
                                                                     means.shape[:1]))

    @staticmethod
    def natural(log_weights: Array, draw: ComponentDraw) -> NaturalParams:
        """Natural parameters of the drawn Gaussians with log weights (T,)."""
        return elementwise_natural(log_weights, draw.means, draw.precision, draw.half_log_det)

    @staticmethod
    def from_covariance(means: Array, variance: Array) -> ComponentDraw:
        """Components with given means (M, D) and variances (M, D); NaN where one is not
        positive."""
        sd = jnp.sqrt(jnp.where(variance > 0, variance, jnp.nan))
        return ComponentDraw(means, 1.0 / variance, sd, -jnp.sum(jnp.log(sd), axis=-1))

    @staticmethod
    def fixed(means: Array, variance: Array) -> ComponentDraw:
        """Components with ``means`` (T, D) sharing the variances ``variance`` (D,)."""
        n_components = means.shape[0]
        return ComponentDraw(means, jnp.broadcast_to(1.0 / variance, means.shape),
                             jnp.broadcast_to(jnp.sqrt(variance), means.shape),
                             jnp.full(n_components, -0.5 * jnp.sum(jnp.log(variance))))

    @staticmethod
    def scale_gamma_shapes(hyper: ScaleHyperprior, prior_dof: Array,
                           n_occupied: Array) -> Array:
        """Gamma shapes (D,) for :meth:`draw_scale`."""
        return jnp.broadcast_to(0.5 * (hyper.dof + n_occupied * prior_dof),
                                hyper.inverse_scale.shape)

    @staticmethod
    def draw_scale(hyper: ScaleHyperprior, precision: Array, occupied: Array,
                   log_gammas: Array, normals: Array) -> Array:
        """``s0_d ~ Gamma(dof / 2 + K+ nu0 / 2, rate 1 / (2 scale_d) + sum_k lambda_kd / 2)``."""
        rate = 0.5 * (hyper.inverse_scale + jnp.sum(
            occupied.astype(precision.dtype)[:, None] * precision, axis=0))
        return jnp.exp(log_gammas) / rate

    @staticmethod
    def covariances(covariance_factor: Array) -> Array:
        """(..., D, D) diagonal covariance matrices from standard deviations (..., D)."""
        variance = covariance_factor**2
        return variance[..., None] * jnp.eye(variance.shape[-1], dtype=variance.dtype)

    @staticmethod
    def cholesky_of_factors(factors: np.ndarray) -> np.ndarray:
        """``diag(sd)`` (..., D, D): the Cholesky factors of the covariances of recorded
        standard deviations (..., D) (host, numpy)."""
        return factors[..., :, None] * np.eye(factors.shape[-1])
