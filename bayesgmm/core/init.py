"""Initial responsibilities, with scikit-learn's semantics for each ``init_params``.

=================== =============================================================================
``'kmeans'``        hard labels from k-means (greedy k-means++ seeding, then Lloyd iterations)
``'k-means++'``     one seed point per component chosen by greedy k-means++
``'random'``        responsibilities drawn uniformly and normalised per row
``'random_from_data'`` one data point per component, chosen uniformly without replacement
=================== =============================================================================

The initial parameters are the M-step of these responsibilities, as in scikit-learn, so a
one-point seed starts with covariance ``reg_covar``. Everything here is pure JAX on flat
``(N, D)`` rows with per-row weights (0 for padding rows, which are never chosen).

Unlike scikit-learn, the k-means distances (``'kmeans'`` and ``'k-means++'``) are measured on
columns scaled to unit variance, as mclust initialises on scaled data (its default
``hcUse = "SVD"``). Otherwise a column in large units decides the start alone: on three
clusters separated along a column of scale 1 next to a column of scale 100, every k-means
start (scikit-learn's too) ended at a log-likelihood of -1773 against -1700 from the true
means, and BIC then chose four clusters. Only the start changes; EM runs on the data.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")

LLOYD_MAX_ITER = 300
LLOYD_TOL = 1e-4


def squared_distances(x: Array, centers: Array) -> Array:
    """(N, D), (M, D) -> (N, M) squared Euclidean distances (a matrix product, clipped at 0)."""
    dist = (jnp.sum(x * x, axis=1)[:, None] - 2.0 * x @ centers.T
            + jnp.sum(centers * centers, axis=1)[None, :])
    return jnp.maximum(dist, 0.0)


def _sampling_probabilities(weight: Array, closest: Array) -> Array:
    mass = weight * closest
    total = jnp.sum(mass)
    # All remaining mass zero (every point coincides with a centre): fall back to uniform.
    return jnp.where(total > 0, mass / jnp.where(total > 0, total, 1.0), weight / jnp.sum(weight))


def kmeans_plusplus(key: Array, x: Array, weight: Array, n_components: int) -> Array:
    """Greedy k-means++ seeding (scikit-learn's ``kmeans_plusplus``): indices (K,) of seed rows.

    Each new centre is the best of ``2 + int(log K)`` candidates drawn with probability
    proportional to the squared distance to the nearest chosen centre.
    """
    n_rows = x.shape[0]
    n_trials = 2 + int(math.log(n_components))
    key, first_key = jax.random.split(key)
    first = jax.random.choice(first_key, n_rows, p=weight / jnp.sum(weight))
    closest = squared_distances(x, x[first][None])[:, 0]
    indices = jnp.zeros(n_components, first.dtype).at[0].set(first)

    def add_centre(c, carry):
        indices, closest = carry
        probs = _sampling_probabilities(weight, closest)
        candidates = jax.random.choice(jax.random.fold_in(key, c), n_rows, (n_trials,), p=probs)
        new_closest = jnp.minimum(closest[:, None], squared_distances(x, x[candidates]))
        best = jnp.argmin(jnp.sum(weight[:, None] * new_closest, axis=0))
        return indices.at[c].set(candidates[best]), new_closest[:, best]

    indices, _ = jax.lax.fori_loop(1, n_components, add_centre, (indices, closest))
    return indices


def lloyd(x: Array, weight: Array, centers: Array, active: Array | None = None,
          max_iter: int = LLOYD_MAX_ITER, tol: float = LLOYD_TOL) -> Array:
    """Weighted Lloyd iterations from ``centers`` (K, D); returns final labels (N,).

    Stops, as scikit-learn's ``KMeans``, when the summed squared centre shift is at most
    ``tol`` times the mean per-feature variance, or after ``max_iter`` iterations. An empty
    cluster keeps its previous centre. Centres with ``active`` (K,) False are never nearest.
    """
    n_components = centers.shape[0]
    mean = jnp.sum(weight[:, None] * x, axis=0) / jnp.sum(weight)
    variance = jnp.sum(weight[:, None] * (x - mean) ** 2, axis=0) / jnp.sum(weight)
    threshold = tol * jnp.mean(variance)

    def labels_for(centers):
        dist = squared_distances(x, centers)
        if active is not None:
            dist = jnp.where(active, dist, jnp.inf)
        return jnp.argmin(dist, axis=1)

    def update(state):
        centers, _, n_iter = state
        onehot = jax.nn.one_hot(labels_for(centers), n_components, dtype=x.dtype) * weight[:, None]
        counts = jnp.sum(onehot, axis=0)
        sums = onehot.T @ x
        new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1e-300)[:, None], centers)
        return new, jnp.sum((new - centers) ** 2), n_iter + 1

    def keep_going(state):
        _, shift, n_iter = state
        return (n_iter < max_iter) & (shift > threshold)

    init = (centers, jnp.asarray(jnp.inf, x.dtype), jnp.asarray(0, jnp.int32))
    centers, _, _ = jax.lax.while_loop(keep_going, update, init)
    return labels_for(centers)


def unit_variance_columns(x: Array, weight: Array) -> Array:
    """``x`` (N, D) with each column divided by its weighted standard deviation (constant
    columns are left as they are)."""
    share = weight / jnp.sum(weight)
    mean = share @ x
    sd = jnp.sqrt(share @ (x - mean) ** 2)
    return x / jnp.where(sd > 0, sd, 1.0)


def initial_responsibilities(key: Array, x: Array, weight: Array, n_components: int,
                             method: str, active: Array | None = None) -> Array:
    """Initial responsibilities (N, K) for ``method`` (one of :data:`INIT_METHODS`).

    Components with ``active`` (K,) False get no responsibility. Greedy k-means++ picks the
    first seeds independently of later ones, so the active components' seeds equal those of
    a fit with only the active components.
    """
    n_rows = x.shape[0]
    mask = jnp.ones(n_components, x.dtype) if active is None else active.astype(x.dtype)
    if method in ("kmeans", "k-means++"):
        x = unit_variance_columns(x, weight)
    if method == "kmeans":
        seeds = kmeans_plusplus(key, x, weight, n_components)
        labels = lloyd(x, weight, x[seeds], active)
        return jax.nn.one_hot(labels, n_components, dtype=x.dtype)
    if method == "random":
        resp = jax.random.uniform(key, (n_rows, n_components), dtype=x.dtype) * mask
        return resp / jnp.sum(resp, axis=1, keepdims=True)
    if method == "k-means++":
        seeds = kmeans_plusplus(key, x, weight, n_components)
    elif method == "random_from_data":
        seeds = jax.random.choice(key, n_rows, (n_components,), replace=False,
                                  p=weight / jnp.sum(weight))
    else:
        raise ValueError(f"init_params={method!r} is not supported; choose one of {INIT_METHODS}")
    return jnp.zeros((n_rows, n_components), x.dtype).at[seeds, jnp.arange(n_components)].set(mask)
