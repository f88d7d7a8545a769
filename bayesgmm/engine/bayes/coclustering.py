"""Label-free summaries of the posterior partition: co-clustering, a loss-optimal partition,
and how surely each point belongs with its cluster.

Cluster labels switch between draws; the *partition* does not. Three summaries need no labels:

* **The posterior similarity matrix** ``p_ij = P(z_i = z_j | data)``. Given a draw's
  parameters the assignments are independent, so ``P(z_i = z_j | theta_s) = sum_k
  p_ik(theta_s) p_jk(theta_s)`` with ``p_ik(theta_s)`` the draw's membership probabilities,
  and ``p_ij`` is its mean over draws (Rao-Blackwellised: no sampling noise from the
  assignments; the diagonal is 1).
* **A point estimate of the partition** minimising the posterior expected variation of
  information (default) or Binder loss (:mod:`bayesgmm.core.salso`), searched on draws of the
  assignments (one per parameter draw, ``z_i ~ p(z_i | theta_s, x_i)``: together a draw from
  the joint posterior).
* **Belonging**: for a point and an estimated cluster, the probability that the point shares
  its component with a member of that cluster, averaged over the members (the point itself
  left out), ``a_ic(theta_s) = mean_{j in c, j != i} P(z_i = z_j | theta_s)``. Its posterior
  mean says how surely the point belongs there, and its quantiles across draws give a
  credible interval, whatever the labels. A point outside the searched rows (or a new one)
  joins the cluster it belongs with most.

Everything is computed on at most ``max_rows`` rows (a random subset of larger data): the
similarity matrix is ``rows x rows``, and the search costs ``O(rows x draws x clusters)`` per
sweep.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.core.salso import LOSSES, search, starting_partitions

#: Partition draws the search uses (evenly spaced over the chains' draws).
SEARCH_DRAWS = 500
#: Independent runs of the search (vmapped); the best is kept.
SEARCH_RUNS = 8
#: Sweeps after the first allocation, at most, per run.
MAX_SWEEPS = 100


class PartitionEstimate(NamedTuple):
    """A loss-optimal partition of the rows ``rows`` (n,) of the training data: ``labels``
    (n,) ordered by cluster size (0 the largest), its posterior ``expected_loss``, the
    ``loss`` ('vi' in bits, or 'binder' as a share of pairs)."""

    rows: np.ndarray
    labels: np.ndarray
    expected_loss: float
    loss: str


def check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is invalid: it must be one of {LOSSES}")
    return loss


def sample_assignments(membership: np.ndarray, seed: int) -> np.ndarray:
    """One assignment per draw and point, ``z ~ membership`` (S, n, T) -> (S, n) int32."""
    rng = np.random.default_rng(seed)
    uniform = rng.random(membership.shape[:2])[..., None]
    labels = (np.cumsum(membership, axis=-1) < uniform).sum(axis=-1)
    return np.minimum(labels, membership.shape[-1] - 1).astype(np.int32)


def similarity_from_memberships(membership: np.ndarray) -> np.ndarray:
    """The Rao-Blackwellised posterior similarity (n, n) from per-draw memberships (S, n, T)
    (module docstring)."""
    n_draws, n_points, _ = membership.shape
    flat = np.moveaxis(membership, 0, 1).reshape(n_points, -1)      # (n, S T): one product
    similarity = flat @ flat.T / n_draws
    np.fill_diagonal(similarity, 1.0)
    return np.clip(similarity, 0.0, 1.0)


def similarity_from_labels(labels: np.ndarray) -> np.ndarray:
    """The share of draws in which two points share a cluster: (S, n) -> (n, n)."""
    n_labels = int(labels.max()) + 1
    one_hot = (labels[..., None] == np.arange(n_labels)).astype(np.float64)  # (S, n, L)
    return np.einsum("sil,sjl->ij", one_hot, one_hot) / labels.shape[0]


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Relabel clusters by size, largest first (ties: first appearance): (n,) -> (n,)."""
    values, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = values[np.lexsort((first, -counts))]
    mapping = np.empty(values.max() + 1, np.int64)
    mapping[order] = np.arange(len(order))
    return mapping[labels]


def evenly_spaced(n_items: int, wanted: int) -> np.ndarray:
    """At most ``wanted`` indices spread evenly over ``range(n_items)``."""
    if n_items <= wanted:
        return np.arange(n_items)
    return np.unique(np.linspace(0, n_items - 1, wanted).round().astype(int))


def estimate_partition(membership: np.ndarray, rows: np.ndarray, loss: str, seed: int,
                       n_runs: int = SEARCH_RUNS) -> PartitionEstimate:
    """Search the partition of ``rows`` minimising the expected ``loss``, from per-draw
    memberships (S, n, T) of those rows (:mod:`bayesgmm.core.salso`)."""
    check_loss(loss)
    draws = membership[evenly_spaced(membership.shape[0], SEARCH_DRAWS)]
    assignments = sample_assignments(draws, seed)
    n_points, n_labels = assignments.shape[1], membership.shape[-1]
    most = max(len(np.unique(a)) for a in assignments)
    n_blocks = int(min(n_points, 2 * most + 10))
    similarity = (similarity_from_memberships(membership) if loss == "binder"
                  else np.zeros((1, 1)))
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(seed)
        device_draws = jnp.asarray(assignments)
        starts = starting_partitions(jax.random.fold_in(key, 1), device_draws, n_runs, n_labels)
        labels, losses, _ = search(jax.random.split(key, n_runs), starts, device_draws,
                                   jnp.asarray(similarity), loss=loss, n_blocks=n_blocks,
                                   n_draw_labels=n_labels, max_sweeps=MAX_SWEEPS)
    labels, losses = np.asarray(labels), np.asarray(losses)
    best = int(np.argmin(losses))
    return PartitionEstimate(rows, canonical_labels(labels[best]), float(losses[best]), loss)


def member_memberships(membership: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per draw, the mean membership vector of each cluster's members: (S, m, T) and labels
    (m,) -> (S, C, T)."""
    one_hot = (labels[:, None] == np.arange(labels.max() + 1)).astype(np.float64)   # (m, C)
    return np.einsum("smt,mc->sct", membership, one_hot) / one_hot.sum(axis=0)[:, None]


def belonging(affinity: np.ndarray, self_overlap: np.ndarray, sizes: np.ndarray,
              member_of: np.ndarray) -> np.ndarray:
    """Per-draw belonging (S, n, C) of points to the clusters, the point itself left out of
    the cluster it is a member of.

    ``affinity`` (S, n, C) and ``self_overlap`` (S, n) are :func:`~bayesgmm.engine.bayes.posterior.
    cluster_affinity`'s; ``sizes`` (C,) the clusters' member counts; ``member_of`` (n,) the
    cluster each point is a member of, -1 for points that are not members. A member of a
    one-point cluster has no other member to belong with: NaN there.
    """
    out = affinity.copy()
    members = np.flatnonzero(member_of >= 0)
    cluster = member_of[members]
    size = sizes[cluster].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, members, cluster] = ((size * affinity[:, members, cluster]
                                     - self_overlap[:, members]) / (size - 1.0))
    return out
