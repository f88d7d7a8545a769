"""The conjugate component model: Normal-inverse-Wishart components with a Wishart prior on
the inverse-Wishart scale, updated from the EM core's additive statistics.

Per component ``k`` (``full``)::

    S0             ~ Wishart(scale_dof, scale_scale)         (hierarchical; or fixed)
    Sigma_k        ~ inverse-Wishart(dof, S0)
    mu_k | Sigma_k ~ Normal(mean, Sigma_k / shrinkage)

``diag`` is the same per feature (``D`` independent one-dimensional problems):
``sigma2_kd ~ inverse-gamma(dof / 2, s0_d / 2)``, ``mu_kd | sigma2_kd ~ N(mean_d, sigma2_kd /
shrinkage)`` and ``s0_d ~ Gamma(scale_dof / 2, rate 1 / (2 scale_scale_d))`` (the
one-dimensional Wishart).

The components' hyperparameters are a :class:`~bayesgmm.core.parameters.ConjugatePrior` (the
Normal-inverse-Wishart, also mclust's prior for MAP EM); per-component posterior
hyperparameters have the same type with a leading component axis. Given statistics
(:class:`~bayesgmm.core.stats.SuffStats`: counts ``n``, sums ``s``, second-moment sums ``Q``)::

    shrinkage_n = shrinkage + n,   dof_n = dof + n,   mean_n = (shrinkage mean + s) / shrinkage_n
    scale_n = S0 + W + shrinkage n / shrinkage_n (xbar - mean)(xbar - mean)'

with ``W = Q - n xbar xbar'`` the scatter about the component mean. An empty component's
posterior is its prior.

Everything is plain JAX (:mod:`bayesgmm.core.linalg`: no LAPACK calls) on a stack of
components, with the random numbers passed in (:mod:`bayesgmm.core.variates`) so that a
sampler makes few random-number calls, and with the factorisations of scale matrices
(:class:`ScaleFactor`) computed once and shared by the formulas that need them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
from jax import Array
from jax.scipy.special import gammaln, multigammaln

from bayesgmm.core.linalg import cholesky, log_det_from_cholesky, lower_triangular_inverse
from bayesgmm.core.moments import DiagMoments, FullMoments, elementwise_natural, matrix_natural
from bayesgmm.core.parameters import ConjugatePrior, NaturalParams
from bayesgmm.core.stats import SuffStats
from bayesgmm.core.variates import bartlett_factor, bartlett_shapes

_LOG_2 = math.log(2.0)
_LOG_PI = math.log(math.pi)
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


class ConjugateFull:
    """Normal-inverse-Wishart components with full covariance matrices."""

    name = "full"
    moments = FullMoments

    @staticmethod
    def n_dims_of(scale: Array) -> int:
        return scale.shape[-1]

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
    def combine(first: ComponentDraw, second: ComponentDraw) -> tuple[Array, Array, Array,
                                                                     Array]:
        """Moment matching with equal weights (Richardson & Green 1997): the merged mean and
        covariance and the auxiliary ``(z, V)`` that :meth:`separate` maps back.

        ``mu = (mu_a + mu_b) / 2``, ``u = (mu_a - mu_b) / 2``, ``M = (S_a + S_b) / 2``,
        ``S = M + u u'``; ``z = L_S^-1 u``, ``V = L_M^-1 (S_a - S_b) / 2 L_M^-T``.
        Shapes: draws of (...) components -> means (..., D), covariances (..., D, D), z
        (..., D), V (..., D, D).
        """
        cov_a = ConjugateFull.covariances(first.covariance_factor)
        cov_b = ConjugateFull.covariances(second.covariance_factor)
        mean = 0.5 * (first.means + second.means)
        half_gap = 0.5 * (first.means - second.means)
        middle = 0.5 * (cov_a + cov_b)
        covariance = middle + half_gap[..., :, None] * half_gap[..., None, :]
        root = lower_triangular_inverse(cholesky(covariance))
        inverse_middle = lower_triangular_inverse(cholesky(middle))
        z = jnp.einsum("...ij,...j->...i", root, half_gap)
        v = inverse_middle @ (0.5 * (cov_a - cov_b)) @ jnp.swapaxes(inverse_middle, -1, -2)
        return mean, covariance, z, v

    @staticmethod
    def separate(mean: Array, covariance: Array, z: Array, v: Array
                 ) -> tuple[Array, Array, Array, Array, Array]:
        """The inverse of :meth:`combine`: means and covariances of the two sides and the
        log-Jacobian ``log |d(mu_a, mu_b, S_a, S_b) / d(mu, S, u, V)| = D log 2 + q log 2 +
        (D + 1) / 2 log |M|`` (q = D (D + 1) / 2). Not positive definite where ``|z| >= 1``
        or ``I +- V`` is not (the caller rejects those)."""
        n_dims = mean.shape[-1]
        factor = cholesky(covariance)
        half_gap = jnp.einsum("...ij,...j->...i", factor, z)
        middle = covariance - half_gap[..., :, None] * half_gap[..., None, :]
        root = cholesky(middle)
        spread = root @ v @ jnp.swapaxes(root, -1, -2)
        n_free = n_dims * (n_dims + 1) // 2
        log_jacobian = ((n_dims + n_free) * _LOG_2
                        + 0.5 * (n_dims + 1) * log_det_from_cholesky(root))
        return (mean + half_gap, mean - half_gap, middle + spread, middle - spread,
                log_jacobian)

    @staticmethod
    def log_auxiliary(covariance: Array, z: Array, v: Array, z_scale: float,
                      v_scale: float) -> Array:
        """``log q(u, V)`` of the auxiliary variables of :meth:`separate` in the coordinates
        ``u = L_S z`` (so ``- log |S| / 2``): ``z ~ N(0, z_scale^2 I)``, the free entries of
        symmetric ``V`` (diagonal and above) ``~ N(0, v_scale^2)``."""
        n_dims = z.shape[-1]
        rows, cols = jnp.triu_indices(n_dims)
        free = v[..., rows, cols]
        log_z = (-0.5 * n_dims * (_LOG_2PI + 2.0 * jnp.log(z_scale))
                 - 0.5 * jnp.sum(z * z, axis=-1) / z_scale**2)
        log_v = (-0.5 * free.shape[-1] * (_LOG_2PI + 2.0 * jnp.log(v_scale))
                 - 0.5 * jnp.sum(free * free, axis=-1) / v_scale**2)
        return log_z + log_v - 0.5 * log_det_from_cholesky(cholesky(covariance))

    @staticmethod
    def symmetric(normals: Array) -> Array:
        """A symmetric matrix (..., D, D) whose free entries are the upper triangle of
        ``normals`` (..., D, D)."""
        upper = jnp.triu(normals)
        return upper + jnp.swapaxes(jnp.triu(normals, k=1), -1, -2)

    @staticmethod
    def plug_in(log_weights: Array, posterior: ConjugatePrior) -> NaturalParams:
        """Natural parameters of Gaussians at the posterior mean of the means and the posterior
        mode of the covariances, ``scale / (dof + D + 1)``."""
        n_dims = posterior.mean.shape[-1]
        covariance = posterior.scale / (posterior.dof + n_dims + 1.0)[:, None, None]
        factor = cholesky(covariance)
        inverse = lower_triangular_inverse(factor)
        precision = jnp.swapaxes(inverse, -1, -2) @ inverse
        return matrix_natural(log_weights, posterior.mean, precision,
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
    def variances(scale: Array) -> Array:
        """The diagonal of an inverse-Wishart scale (D,)."""
        return jnp.diagonal(scale, axis1=-2, axis2=-1)

    @staticmethod
    def covariances(covariance_factor: Array) -> Array:
        """(..., D, D) covariance matrices from :attr:`ComponentDraw.covariance_factor`."""
        return covariance_factor @ jnp.swapaxes(covariance_factor, -1, -2)


class ConjugateDiag:
    """Normal-inverse-gamma components per feature: diagonal covariances."""

    name = "diag"
    moments = DiagMoments

    @staticmethod
    def posterior(prior: ConjugatePrior, stats: SuffStats) -> ConjugatePrior:
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
        factor = jnp.sqrt(scale)
        return ScaleFactor(factor, 1.0 / factor, jnp.sum(jnp.log(scale), axis=-1))

    @staticmethod
    def log_marginal(prior: ConjugatePrior, prior_factor: ScaleFactor,
                     posterior: ConjugatePrior, counts: Array) -> Array:
        n_dims = posterior.mean.shape[-1]
        return (-0.5 * counts * n_dims * _LOG_PI
                + n_dims * (gammaln(0.5 * posterior.dof) - gammaln(0.5 * prior.dof))
                + 0.5 * prior.dof * prior_factor.log_det
                - 0.5 * posterior.dof * jnp.sum(jnp.log(posterior.scale), axis=-1)
                + 0.5 * n_dims * (jnp.log(prior.shrinkage) - jnp.log(posterior.shrinkage)))

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
        return elementwise_natural(log_weights, draw.means, draw.precision, draw.half_log_det)

    @staticmethod
    def from_covariance(means: Array, variance: Array) -> ComponentDraw:
        """Components with given means (M, D) and variances (M, D); NaN where one is not
        positive."""
        sd = jnp.sqrt(jnp.where(variance > 0, variance, jnp.nan))
        return ComponentDraw(means, 1.0 / variance, sd, -jnp.sum(jnp.log(sd), axis=-1))

    @staticmethod
    def combine(first: ComponentDraw, second: ComponentDraw) -> tuple[Array, Array, Array,
                                                                     Array]:
        """Per-feature moment matching (see :meth:`ConjugateFull.combine`)."""
        var_a, var_b = first.covariance_factor**2, second.covariance_factor**2
        mean = 0.5 * (first.means + second.means)
        half_gap = 0.5 * (first.means - second.means)
        middle = 0.5 * (var_a + var_b)
        variance = middle + half_gap**2
        return mean, variance, half_gap / jnp.sqrt(variance), 0.5 * (var_a - var_b) / middle

    @staticmethod
    def separate(mean: Array, variance: Array, z: Array, v: Array
                 ) -> tuple[Array, Array, Array, Array, Array]:
        """Per feature: log-Jacobian ``sum_d log(4 M_d)``."""
        half_gap = jnp.sqrt(variance) * z
        middle = variance - half_gap**2
        log_jacobian = jnp.sum(2.0 * _LOG_2 + jnp.log(jnp.where(middle > 0, middle, jnp.nan)),
                               axis=-1)
        return (mean + half_gap, mean - half_gap, middle * (1.0 + v), middle * (1.0 - v),
                log_jacobian)

    @staticmethod
    def log_auxiliary(variance: Array, z: Array, v: Array, z_scale: float,
                      v_scale: float) -> Array:
        n_dims = z.shape[-1]
        return (-n_dims * (_LOG_2PI + jnp.log(z_scale) + jnp.log(v_scale))
                - 0.5 * jnp.sum(z * z, axis=-1) / z_scale**2
                - 0.5 * jnp.sum(v * v, axis=-1) / v_scale**2
                - 0.5 * jnp.sum(jnp.log(variance), axis=-1))

    @staticmethod
    def symmetric(normals: Array) -> Array:
        """The diagonal of ``normals`` (..., D, D): one free value per feature."""
        return jnp.diagonal(normals, axis1=-2, axis2=-1)

    @staticmethod
    def plug_in(log_weights: Array, posterior: ConjugatePrior) -> NaturalParams:
        precision = (posterior.dof + 3.0)[:, None] / posterior.scale  # the inverse-gamma mode
        return elementwise_natural(log_weights, posterior.mean, precision,
                                   0.5 * jnp.sum(jnp.log(precision), axis=-1))

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
    def variances(scale: Array) -> Array:
        return scale

    @staticmethod
    def covariances(covariance_factor: Array) -> Array:
        """(..., D, D) diagonal covariance matrices from standard deviations (..., D)."""
        variance = covariance_factor**2
        return variance[..., None] * jnp.eye(variance.shape[-1], dtype=variance.dtype)


CONJUGATE_FAMILIES = {family.name: family for family in (ConjugateFull, ConjugateDiag)}
