"""Initial responsibilities, with scikit-learn's semantics for each ``init_params``.

=================== =============================================================================
``'kmeans'``        hard labels from k-means (greedy k-means++ seeding, then Lloyd iterations)
``'k-means++'``     one seed point per component chosen by greedy k-means++
``'random'``        responsibilities drawn uniformly and normalised per row
``'random_from_data'`` one data point per component, chosen uniformly without replacement
=================== =============================================================================

The initial parameters are the M-step of these responsibilities, as in scikit-learn, so a
one-point seed starts with covariance ``reg_covar``. Everything here is pure JAX on flat
``(N, D)`` rows with per-row weights (0 for padding rows, which are never chosen). The
randomness comes in as uniform draws made by numpy (:func:`init_draws`), as scikit-learn draws
from its ``random_state``.

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
import numpy as np
from jax import Array

from bayesgmm.base.program_cache import persistent_jit

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")

LLOYD_MAX_ITER = 300
LLOYD_TOL = 1e-4


def squared_distances(x: Array, centers: Array) -> Array:
    """(N, D), (M, D) -> (N, M) squared Euclidean distances (a matrix product, clipped at 0)."""
    dist = (jnp.sum(x * x, axis=1)[:, None] - 2.0 * x @ centers.T
            + jnp.sum(centers * centers, axis=1)[None, :])
    return jnp.maximum(dist, 0.0)


def n_trials(n_components: int) -> int:
    """Candidates per greedy k-means++ step (scikit-learn's ``2 + int(log K)``)."""
    return 2 + int(math.log(n_components))


def n_init_draws(method: str, n_components: int) -> int:
    """How many uniform draws one start of ``method`` with ``n_components`` consumes."""
    if method in ("kmeans", "k-means++"):
        return 1 + (n_components - 1) * n_trials(n_components)
    if method == "random_from_data":
        return n_components
    if method == "random":
        return 1
    raise ValueError(f"init_params={method!r} is not supported; choose one of {INIT_METHODS}")


def init_draws(seed, n_fits: int, method: str, n_components: int) -> np.ndarray:
    """(n_fits, :func:`n_init_draws`) uniforms in [0, 1) for ``n_fits`` starts, from numpy.

    The starts' randomness is drawn on the host, as scikit-learn draws it from its
    ``random_state``, and enters the compiled program as data: ``jax.random`` inside the
    program cost about 0.5 s of compile time per call site (threefry), several times the
    cost of the seeding itself. ``seed`` is anything ``numpy.random.default_rng`` takes.
    """
    return np.random.default_rng(seed).random((n_fits, n_init_draws(method, n_components)))


def draw_rows(weight: Array, uniforms: Array) -> Array:
    """Row indices drawn with probability proportional to ``weight`` (N,), by inverting the
    cumulative weight at ``uniforms`` (...,) in [0, 1): (...,) int. Rows of weight 0 are never
    drawn (if every weight is 0, the last row is)."""
    cumulative = jnp.cumsum(weight)
    index = jnp.searchsorted(cumulative, uniforms * cumulative[-1], side="right")
    return jnp.minimum(index, jnp.argmax(cumulative))  # rounding never passes the last row


def kmeans_plusplus(draws: Array, x: Array, weight: Array, n_components: int) -> Array:
    """Greedy k-means++ seeding (scikit-learn's ``kmeans_plusplus``): indices (K,) of seed rows.

    Each new centre is the best of ``2 + int(log K)`` candidates drawn with probability
    proportional to the squared distance to the nearest chosen centre. ``draws`` are
    :func:`n_init_draws` uniforms (the first picks the first centre).
    """
    trials = n_trials(n_components)
    first = draw_rows(weight, draws[0])
    closest = squared_distances(x, x[first][None])[:, 0]
    indices = jnp.zeros(n_components, first.dtype).at[0].set(first)
    if n_components == 1:
        return indices

    def add_centre(c, carry):
        indices, closest = carry
        mass = weight * closest
        # All remaining mass zero (every point coincides with a centre): draw by weight.
        mass = jnp.where(jnp.sum(mass) > 0, mass, weight)
        uniforms = jax.lax.dynamic_slice(draws, (1 + (c - 1) * trials,), (trials,))
        candidates = draw_rows(mass, uniforms)
        new_closest = jnp.minimum(closest[:, None], squared_distances(x, x[candidates]))
        best = jnp.argmin(jnp.sum(weight[:, None] * new_closest, axis=0))
        return indices.at[c].set(candidates[best]), new_closest[:, best]

    indices, _ = jax.lax.fori_loop(1, n_components, add_centre, (indices, closest))
    return indices


def rows_without_replacement(draws: Array, weight: Array, n_components: int) -> Array:
    """(K,) distinct row indices, each drawn with probability proportional to ``weight``
    among the rows not drawn yet (uniformly among real rows for 0/1 weights)."""

    def draw_one(c, carry):
        indices, remaining = carry
        row = draw_rows(remaining, draws[c])
        return indices.at[c].set(row), remaining.at[row].set(0.0)

    indices = jnp.zeros(n_components, int)  # jax's default integer, as draw_rows returns
    indices, _ = jax.lax.fori_loop(0, n_components, draw_one,
                                   (indices, weight.astype(draws.dtype)))
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


def initial_responsibilities(draws: Array, x: Array, weight: Array, n_components: int,
                             method: str, active: Array | None = None) -> Array:
    """Initial responsibilities (N, K) for ``method`` (one of :data:`INIT_METHODS`), from
    ``draws``, the start's :func:`n_init_draws` uniforms in [0, 1) (:func:`init_draws`).

    Components with ``active`` (K,) False get no responsibility. A padded fit (a sweep's K
    below the largest) seeds every component by greedy k-means++ with the padded K's number
    of candidates per step; the seeds of inactive components never become centres (k-means)
    or get responsibility.
    """
    n_rows = x.shape[0]
    mask = jnp.ones(n_components, x.dtype) if active is None else active.astype(x.dtype)
    if method in ("kmeans", "k-means++"):
        x = unit_variance_columns(x, weight)
    if method == "kmeans":
        seeds = kmeans_plusplus(draws, x, weight, n_components)
        labels = lloyd(x, weight, x[seeds], active)
        return jax.nn.one_hot(labels, n_components, dtype=x.dtype)
    if method == "random":
        key = jax.random.PRNGKey((draws[0] * 2.0**31).astype(jnp.int32))
        resp = jax.random.uniform(key, (n_rows, n_components), dtype=x.dtype) * mask
        return resp / jnp.sum(resp, axis=1, keepdims=True)
    if method == "k-means++":
        seeds = kmeans_plusplus(draws, x, weight, n_components)
    elif method == "random_from_data":
        seeds = rows_without_replacement(draws, weight, n_components)
    else:
        raise ValueError(f"init_params={method!r} is not supported; choose one of {INIT_METHODS}")
    return jnp.zeros((n_rows, n_components), x.dtype).at[seeds, jnp.arange(n_components)].set(mask)


def block_responsibilities(draws: Array, features: Array, weight: Array, n_dims: int,
                           n_components: int, method: str, active: Array | None = None
                           ) -> Array:
    """:func:`initial_responsibilities` of rows held in blocks, one start per row of
    ``draws`` (R, U): features (n_blocks, block_rows, D + F) whose first ``n_dims`` columns are
    the data, row weights (n_blocks, block_rows), optional ``active`` (R, K) ->
    (R, n_blocks, block_rows, K)."""
    n_blocks, block_rows, _ = features.shape
    flat_x = features[..., :n_dims].reshape(-1, n_dims)
    flat_weight = weight.reshape(-1)
    if active is None:
        resp = jax.vmap(lambda d: initial_responsibilities(d, flat_x, flat_weight, n_components,
                                                           method))(draws)
    else:
        resp = jax.vmap(lambda d, a: initial_responsibilities(
            d, flat_x, flat_weight, n_components, method, a))(draws, active)
    return resp.reshape(draws.shape[0], n_blocks, block_rows, n_components)


#: :func:`block_responsibilities` as a compiled program of its own: the EM and variational
#: fits of every covariance type share it for the same rows, method, K and starts.
start_responsibilities = persistent_jit(block_responsibilities,
                                        static_argnames=("n_dims", "n_components", "method"))
