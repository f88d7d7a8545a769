"""Starting points for NUTS and SVI from an EM fit, so every chain starts in one labelling.

The EM fit (on the standardised data) gives the first ``K0`` components, sorted by weight
(stick-breaking favours decreasing weights). The remaining ``T - K0`` components start as
broad, nearly empty components at the data's centre, sharing ``EMPTY_MASS`` of the weight;
the posterior is free to fill them.
"""

from __future__ import annotations

import numpy as np

from bayesgmm.engine.bayes.models import ModelSpec

#: Total initial weight of the components the EM fit does not provide.
EMPTY_MASS = 1e-3
_U_RANGE = (1e-12, 1 - 1e-9)


def initial_weights(em_weights: np.ndarray, n_components: int) -> np.ndarray:
    """(T,) weights: the EM weights (sorted, descending) then ``EMPTY_MASS`` spread evenly."""
    k0 = len(em_weights)
    if k0 >= n_components:
        return np.asarray(em_weights[:n_components]) / np.sum(em_weights[:n_components])
    extra = np.full(n_components - k0, EMPTY_MASS / (n_components - k0))
    return np.concatenate([np.asarray(em_weights) * (1 - EMPTY_MASS), extra])


def initial_concentration(spec: ModelSpec, n_samples: int, k0: int) -> float:
    """A concentration consistent with ``k0`` clusters among ``n_samples`` points."""
    if spec.weights == "dp":
        return float(np.clip(k0 / np.log(max(n_samples, 3)), 0.1, 10.0))
    return spec.e0_mean


def weight_sites(weights: np.ndarray, spec: ModelSpec, concentration: float) -> dict:
    """Latent weight sites (see :mod:`bayesgmm.engine.bayes.models`) reproducing ``weights``
    (T,)."""
    weights = np.asarray(weights, np.float64)
    if spec.weights == "dp":
        remaining = 1.0 - np.concatenate([[0.0], np.cumsum(weights)[:-1]])
        v = np.clip(weights[:-1] / np.maximum(remaining[:-1], 1e-300), 0.0, 1.0)
        alpha = spec.alpha if spec.alpha is not None else concentration
        u = np.exp(alpha * np.log1p(-np.minimum(v, 1 - 1e-12)))
        sites = {"stick_u": np.clip(u, *_U_RANGE)}
        if spec.alpha is None:
            sites["alpha"] = np.asarray(concentration)
        return sites
    e0 = spec.e0 if spec.e0 is not None else concentration
    u = (weights / weights.max()) ** e0
    sites = {"weight_u": np.clip(u, *_U_RANGE), "weight_gamma": np.full_like(weights, e0 + 1.0)}
    if spec.e0 is None:
        sites["e0"] = np.asarray(e0)
    return sites


def initial_sites(weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
                  spec: ModelSpec, n_samples: int) -> dict:
    """Constrained site values from an EM fit in standardised units.

    Parameters
    ----------
    weights : (K0,), means : (K0, D), covariances : (K0, D, D)
    """
    order = np.argsort(-np.asarray(weights), kind="stable")[: spec.n_components]
    k0, t, d = len(order), spec.n_components, spec.n_features
    sd = np.sqrt(np.diagonal(covariances[order], axis1=-2, axis2=-1))
    all_means = np.zeros((t, d))
    all_means[:k0] = means[order]
    scales = np.ones((t, d))
    scales[:k0] = sd
    sites = weight_sites(initial_weights(np.asarray(weights)[order], t), spec,
                         initial_concentration(spec, n_samples, k0))
    sites.update(means=all_means, scales=scales)
    if spec.correlated:
        corr = np.tile(np.eye(d), (t, 1, 1))
        corr[:k0] = covariances[order] / (sd[:, :, None] * sd[:, None, :])
        sites["corr_cholesky"] = np.linalg.cholesky(corr)
    return sites
