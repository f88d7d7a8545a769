"""What a fitted variational posterior ``q`` (:mod:`bayesgmm.engine.bayes.variational`) gives:
independent draws of the mixture's parameters, and the posterior predictive density (host-side,
numpy, apart from one compiled Gaussian log density for ``full``).

``q``'s components (a :class:`~bayesgmm.core.variational_updates.VariationalParams`, standardised
units) take one form per conjugate family (:data:`Q_FORMS`, by
:class:`~bayesgmm.core.conjugate.ConjugateFull` / :class:`~bayesgmm.core.conjugate.ConjugateDiag`;
kept here rather than on the families because it is numpy and SciPy host code, and the core is
pure JAX):

``full`` (:class:`WishartQ`)
    ``Lambda_k ~ Wishart(nu_k, W_k)`` with ``covariances_ = (nu_k W_k)^-1``, and ``mu_k |
    Lambda_k ~ N(m_k, (beta_k Lambda_k)^-1)``.
``diag`` (:class:`GammaQ`)
    per feature, ``lambda_kd ~ Gamma(nu_k / 2, rate nu_k sigma2_kd / 2)`` (scikit-learn's
    diagonal Wishart factor; ``sigma2_kd`` its ``covariances_``), and ``mu_kd | lambda_kd ~
    N(m_kd, 1 / (beta_k lambda_kd))``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln, logsumexp

from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.core.conjugate import CONJUGATE_FAMILIES, ConjugateDiag, ConjugateFull
from bayesgmm.core.covariance import get_family
from bayesgmm.core.stats import natural_log_prob
from bayesgmm.core.variational_updates import VariationalParams, mean_weights
from bayesgmm.engine.bayes.models import MixtureDraws
from bayesgmm.engine.preprocessing import compute_context, to_blocks

#: Rows per chunk of the per-feature Student t densities (diag).
_T_ROWS = 8192


def log_gamma_variates(rng: np.random.Generator, shape: np.ndarray, size) -> np.ndarray:
    """``log g`` for ``g ~ Gamma(shape)`` (unit scale), exact for tiny shapes too:
    ``g = G U^(1/shape)`` with ``G ~ Gamma(shape + 1)`` and ``U`` uniform."""
    shape = np.broadcast_to(shape, size)
    return (np.log(rng.gamma(shape + 1.0, size=size))
            + np.log(rng.random(size=size)) / shape)


class WishartQ:
    """``q`` of full covariance matrices: a Wishart factor per component."""

    @staticmethod
    def covariance_roots(rng: np.random.Generator, params: VariationalParams,
                         n_draws: int) -> tuple[np.ndarray, np.ndarray]:
        """Draws of ``Sigma_k = Lambda_k^-1`` by Bartlett's construction: roots ``G`` with
        ``Sigma = G G'`` and the Cholesky factors of ``Sigma``, both (n_draws, T, D, D)."""
        n_components, n_dims = params.means.shape
        dof = params.dof
        scale = params.covariances * dof[:, None, None]                # W_k^-1, (T, D, D)
        factor = np.linalg.cholesky(scale)
        chi2 = 2.0 * np.exp(log_gamma_variates(
            rng, 0.5 * (dof[:, None] - np.arange(n_dims)), (n_draws, n_components, n_dims)))
        bartlett = np.tril(rng.standard_normal((n_draws, n_components, n_dims, n_dims)), -1)
        bartlett += np.sqrt(chi2)[..., None] * np.eye(n_dims)
        # Lambda = L^-T A A' L^-1 is Wishart(dof, W); Sigma = G G' with G = L A^-T.
        root = factor @ np.swapaxes(np.linalg.inv(bartlett), -1, -2)
        covariance = root @ np.swapaxes(root, -1, -2)
        return root, np.linalg.cholesky(covariance)

    @staticmethod
    def log_student_t(x: np.ndarray, params: VariationalParams,
                      shrink: np.ndarray) -> np.ndarray:
        """Log densities (N, T) of component ``k``'s ``St(m_k, L_k, nu_k + 1 - D)`` with ``L_k
        = (nu_k + 1 - D) shrink_k W_k`` (``shrink = beta / (1 + beta)``, (T,))."""
        n_dims = params.means.shape[1]
        t_dof = params.dof + 1.0 - n_dims
        # L_k = t_dof shrink W_k and covariances_ = (dof W_k)^-1: the precision Cholesky
        # factors scale by sqrt(t_dof shrink / dof).
        prec_chol = params.precisions_cholesky * np.sqrt(t_dof * shrink / params.dof
                                                         )[:, None, None]
        return _full_t(x, params.means, t_dof, prec_chol)


class GammaQ:
    """``q`` of diagonal covariances: a Gamma factor per component and feature."""

    @staticmethod
    def covariance_roots(rng: np.random.Generator, params: VariationalParams,
                         n_draws: int) -> tuple[np.ndarray, np.ndarray]:
        """Draws of per-feature Gamma precisions as ``diag(sd)`` (n_draws, T, D, D), which is
        both the root and the Cholesky factor of ``Sigma``."""
        n_components, n_dims = params.means.shape
        dof = params.dof
        scale = params.covariances * dof[:, None]                      # (T, D)
        precision = 2.0 * np.exp(log_gamma_variates(
            rng, np.broadcast_to(0.5 * dof[:, None], (n_components, n_dims)),
            (n_draws, n_components, n_dims))) / scale
        root = np.sqrt(1.0 / precision)[..., None] * np.eye(n_dims)
        return root, root

    @staticmethod
    def log_student_t(x: np.ndarray, params: VariationalParams,
                      shrink: np.ndarray) -> np.ndarray:
        """Log densities (N, T): products over features of ``St(m_kd, shrink_k /
        sigma2_kd, nu_k)``, the marginals of the diagonal factor."""
        prec_chol = params.precisions_cholesky * np.sqrt(shrink)[:, None]
        return _diag_t(x, params.means, params.dof, prec_chol)


#: The form of ``q`` of each conjugate family.
Q_FORMS = {ConjugateFull: WishartQ, ConjugateDiag: GammaQ}


def posterior_draws(params: VariationalParams, stick_breaking: bool, n_draws: int, seed: int,
                    covariance_type: str) -> MixtureDraws:
    """``n_draws`` independent draws of the mixture's parameters from ``q`` (numpy, no
    compiled program): weights from the Beta sticks or the Dirichlet; ``Sigma_k`` from the
    family's form (:data:`Q_FORMS`); ``mu_k ~ N(m_k, Sigma_k / beta_k)``."""
    rng = np.random.default_rng(seed)
    n_components, n_dims = params.means.shape
    a, b = params.concentration
    size = (n_draws, n_components)
    log_a = log_gamma_variates(rng, a, size)
    if stick_breaking:
        log_b = log_gamma_variates(rng, np.where(b > 0, b, 1.0), size)
        log_total = np.logaddexp(log_a, log_b)
        log_sticks = log_a - log_total
        log_left = np.cumsum(log_b - log_total, axis=1)
        log_w = log_sticks + np.concatenate([np.zeros((n_draws, 1)), log_left[:, :-1]], 1)
    else:
        log_w = log_a
    log_w = log_w - logsumexp(log_w, axis=1, keepdims=True)
    form = Q_FORMS[CONJUGATE_FAMILIES[covariance_type]]
    root, scale_tril = form.covariance_roots(rng, params, n_draws)
    normals = rng.standard_normal((n_draws, n_components, n_dims))
    means = params.means + np.einsum("stij,stj->sti", root, normals) / np.sqrt(
        params.mean_precision)[:, None]
    return MixtureDraws(log_w, means, scale_tril)


def predictive_log_density(x: np.ndarray, params: VariationalParams, stick_breaking: bool,
                           covariance_type: str) -> np.ndarray:
    """``log p(x_i | data)`` under ``q`` (N,): a mixture of Student t densities (Bishop 2006,
    eq. 10.81; per feature for ``diag``, see :data:`Q_FORMS`) with weights ``E_q[pi_k]``."""
    shrink = params.mean_precision / (1.0 + params.mean_precision)
    log_t = Q_FORMS[CONJUGATE_FAMILIES[covariance_type]].log_student_t(x, params, shrink)
    with compute_context(np.float64):
        weights = np.asarray(mean_weights(jnp.asarray(params.concentration), stick_breaking))
    return logsumexp(np.log(np.maximum(weights, 1e-300)) + log_t, axis=1)


@persistent_jit(static_argnames="family")
def _gaussian_log_prob(data, means, prec_chol, family):
    """``log N(x | m_k, P_k^-1)`` per block (n_blocks, block_rows, K)."""
    natural = family.natural_of(jnp.zeros(means.shape[0], means.dtype), means, prec_chol)
    return jax.lax.map(lambda f: natural_log_prob(f, natural), data.features)


def _full_t(x: np.ndarray, means: np.ndarray, t_dof: np.ndarray,
            prec_chol: np.ndarray) -> np.ndarray:
    """Multivariate Student t log densities (N, T): locations ``means`` (T, D), precision
    Cholesky factors ``prec_chol`` (T, D, D), degrees of freedom ``t_dof`` (T,). The squared
    Mahalanobis distances come from the Gaussian log densities (the E-step's matrix
    product)."""
    family = get_family("full")
    n_components, n_dims = means.shape
    with compute_context(np.float64):
        data = to_blocks(x, np.float64, family)
        log_gauss = np.asarray(_gaussian_log_prob(data, jnp.asarray(means),
                                                  jnp.asarray(prec_chol), family))
        half_log_det = np.asarray(family.half_log_det(jnp.asarray(prec_chol), n_components,
                                                      n_dims))
    log_gauss = log_gauss.reshape(-1, n_components)[: len(x)]
    squared = -2.0 * (log_gauss + 0.5 * n_dims * np.log(2 * np.pi) - half_log_det)
    return (gammaln((t_dof + n_dims) / 2) - gammaln(t_dof / 2) + half_log_det
            - 0.5 * n_dims * np.log(t_dof * np.pi)
            - 0.5 * (t_dof + n_dims) * np.log1p(np.maximum(squared, 0.0) / t_dof))


def _diag_t(x: np.ndarray, means: np.ndarray, t_dof: np.ndarray,
            prec_root: np.ndarray) -> np.ndarray:
    """Products over features of Student t log densities (N, T): per-feature precision
    square roots ``prec_root`` (T, D), degrees of freedom ``t_dof`` (T,)."""
    dof = t_dof[:, None]
    constant = np.sum(gammaln((dof + 1) / 2) - gammaln(dof / 2) + np.log(prec_root)
                      - 0.5 * np.log(dof * np.pi), axis=-1)
    log_t = np.empty((len(x), len(means)))
    for start in range(0, len(x), _T_ROWS):
        rows = slice(start, start + _T_ROWS)
        scaled = ((x[rows, None, :] - means[None]) * prec_root[None]) ** 2
        log_t[rows] = constant - 0.5 * np.sum((dof + 1) * np.log1p(scaled / dof), axis=-1)
    return log_t
