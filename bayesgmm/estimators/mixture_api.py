"""What bayesgmm's scikit-learn-style mixtures share: the checks of their common parameters,
the scores scikit-learn derives from weighted log probabilities, and sampling a fitted
Gaussian mixture.
"""

from __future__ import annotations

import numbers

import numpy as np

from bayesgmm.base.validation import is_int, is_real, require
from bayesgmm.core.covariance import get_family
from bayesgmm.core.init import INIT_METHODS
from bayesgmm.engine.preprocessing import compute_dtype


def check_mixture_parameters(estimator) -> None:
    """The checks of the parameters scikit-learn's mixtures share (``n_components``,
    ``covariance_type``, ``tol``, ``reg_covar``, ``max_iter``, ``n_init``, ``init_params``,
    ``verbose_interval``) and bayesgmm's ``dtype``."""
    require(estimator, is_int(estimator.n_components) and estimator.n_components >= 1,
            "n_components", "it must be an integer >= 1")
    get_family(estimator.covariance_type)
    require(estimator, is_real(estimator.tol) and estimator.tol >= 0, "tol",
            "it must be a number >= 0")
    require(estimator, is_real(estimator.reg_covar) and estimator.reg_covar >= 0, "reg_covar",
            "it must be a number >= 0")
    require(estimator, is_int(estimator.max_iter) and estimator.max_iter >= 0, "max_iter",
            "it must be an integer >= 0")
    require(estimator, is_int(estimator.n_init) and estimator.n_init >= 1, "n_init",
            "it must be an integer >= 1")
    require(estimator, estimator.init_params in INIT_METHODS, "init_params",
            f"choose one of {INIT_METHODS}")
    require(estimator, is_int(estimator.verbose_interval) and estimator.verbose_interval >= 1,
            "verbose_interval", "it must be an integer >= 1")
    compute_dtype(estimator.dtype)


def sample_mixture(weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
                   n_samples, rng) -> tuple[np.ndarray, np.ndarray]:
    """``n_samples`` draws from a Gaussian mixture (weights (K,), means (K, D), covariances
    (K, D, D)) with numpy's ``rng``: the rows (n_samples, D) and their components
    (n_samples,), in component order (as scikit-learn)."""
    if (not isinstance(n_samples, numbers.Integral) or isinstance(n_samples, bool)
            or n_samples < 1):
        raise ValueError(f"Invalid value for 'n_samples': {n_samples!r} . The sampling "
                         "requires at least one sample. (n_samples must be an integer >= 1.)")
    n_components, n_dims = means.shape
    counts = rng.multinomial(n_samples, weights)
    chol = np.linalg.cholesky(covariances)
    draws = [mean + rng.standard_normal((count, n_dims)) @ factor.T
             for mean, factor, count in zip(means, chol, counts, strict=True)]
    return np.vstack(draws), np.repeat(np.arange(n_components), counts)


def row_log_sum_exp(log_prob: np.ndarray) -> np.ndarray:
    """``log sum_k exp(log_prob[:, k])`` per row, (n,), stable (the row maximum is taken out
    first; a row of -inf gives -inf). numpy's, so scoring does not import SciPy."""
    top = log_prob.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(log_prob - top).sum(axis=1)) + top[:, 0]


class ComponentScores:
    """``score_samples``, ``score``, ``predict`` and ``predict_proba`` from a model's
    ``_estimate_weighted_log_prob(X)`` (n_samples, K), as scikit-learn's mixtures define
    them."""

    def score_samples(self, X):
        """``log sum_k exp(weighted log probability)`` per sample, (n_samples,): the log
        density for EM (for scikit-learn's variational mixture, its variational analogue)."""
        return row_log_sum_exp(self._estimate_weighted_log_prob(X))

    def score(self, X, y=None):
        """Mean of :meth:`score_samples` over ``X``."""
        return float(self.score_samples(X).mean())

    def predict(self, X):
        """Most probable component of each sample, (n_samples,)."""
        return self._estimate_weighted_log_prob(X).argmax(axis=1)

    def predict_proba(self, X):
        """Component probabilities (responsibilities) of each sample, (n_samples, K)."""
        log_prob = self._estimate_weighted_log_prob(X)
        return np.exp(log_prob - row_log_sum_exp(log_prob)[:, None])
