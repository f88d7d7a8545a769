"""Label switching: Stephens' (2000) KL relabelling of posterior draws.

Each draw ``s`` gives classification probabilities ``P_s`` (n, T). Stephens' algorithm finds
permutations ``sigma_s`` and a reference ``Q`` (n, T) minimising
``sum_s KL(P_s(sigma_s) || Q)``, alternating

1. ``Q = mean_s P_s(sigma_s)``;
2. for each draw,
   ``sigma_s = argmin_sigma sum_{i,j} P_s[i, j] (log P_s[i, j] - log Q[i, sigma(j)])``,
   an assignment problem solved exactly by :func:`scipy.optimize.linear_sum_assignment`;

until no permutation changes. Starting ``Q`` from the EM fit's responsibilities makes the final
labels follow the EM labelling. Empty components (``P_s[:, j] = 0``) cost nothing wherever
they go, so they take the labels left over.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

_LOG_FLOOR = 1e-300


def _best_permutations(stacked: np.ndarray, log_reference: np.ndarray) -> np.ndarray:
    """(S, T) permutations: ``perm[s, k]`` is the component of draw ``s`` that takes label k.
    ``stacked`` (n, S T) holds the draws' probabilities side by side (:func:`_side_by_side`):
    every draw's cost matrix comes from one matrix product."""
    n_components = log_reference.shape[1]
    cost = -(stacked.T @ log_reference).reshape(-1, n_components, n_components)
    perms = np.empty(cost.shape[:2], dtype=np.intp)
    for s, matrix in enumerate(cost):
        rows, cols = linear_sum_assignment(matrix)
        perms[s, cols] = rows
    return perms


def _side_by_side(prob: np.ndarray) -> np.ndarray:
    """(S, n, T) -> (n, S T): draw s's column j at column ``s T + j`` (a copy of ``prob``;
    the caller bounds S n T)."""
    n_draws, n_rows, n_components = prob.shape
    return np.ascontiguousarray(np.swapaxes(prob, 0, 1)).reshape(n_rows,
                                                                  n_draws * n_components)


def _relabelled_mean(stacked: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """``mean_s P_s(sigma_s)`` (n, T) from :func:`_side_by_side` probabilities, as one matrix
    product with the permutations' 0/1 matrices."""
    n_draws, n_components = perms.shape
    selector = np.zeros((n_draws, n_components, n_components))
    selector[np.arange(n_draws)[:, None], perms, np.arange(n_components)] = 1.0
    return stacked @ selector.reshape(-1, n_components) / n_draws


def permute(values: np.ndarray, perms: np.ndarray, axis: int = 1) -> np.ndarray:
    """Reorder the component axis (``axis`` >= 1; axis 0 indexes draws) of ``values``."""
    index = perms.reshape(perms.shape + (1,) * (values.ndim - axis - 1))
    index = np.expand_dims(index, tuple(range(1, axis)))
    return np.take_along_axis(values, index, axis=axis)


def stephens_relabel(prob: np.ndarray, reference: np.ndarray | None = None,
                     max_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Stephens' KL relabelling.

    Parameters
    ----------
    prob : (S, n, T)
        Classification probabilities of ``n`` points under each of ``S`` draws.
    reference : (n, T), optional
        Starting reference (e.g. the EM responsibilities). Default: the first draw.
    max_iter : int

    Returns
    -------
    perms : (S, T) int
        ``perms[s, k]`` is the component of draw ``s`` that gets label ``k``; apply with
        :func:`permute`.
    reference : (n, T)
        The final reference: mean relabelled classification probabilities.
    """
    prob = np.asarray(prob, np.float64)
    n_draws, _, n_components = prob.shape
    q = prob[0] if reference is None else np.asarray(reference, np.float64)
    stacked = _side_by_side(prob)
    perms = np.tile(np.arange(n_components), (n_draws, 1))
    for _ in range(max_iter):
        new = _best_permutations(stacked, np.log(np.maximum(q, _LOG_FLOOR)))
        q = _relabelled_mean(stacked, new)
        if np.array_equal(new, perms):
            break
        perms = new
    return perms, q
