"""Collapsed Gibbs updates of single assignments, for the sampler of :mod:`bayesgmm.core.gibbs`.

With the weights and the component parameters integrated out, the assignment of row ``i``
given the others, ``K`` and ``gamma`` (the Dirichlet-multinomial of a finite mixture with ``K``
components) is

    P(z_i = k | z_-i) ~ (n_k,-i + gamma) p(x_i | x_k,-i),   k < K,

where ``p(x_i | x_k,-i)`` is the Normal-inverse-Wishart posterior predictive (a multivariate
Student t; the prior predictive for an empty component). Unlike the blocked update of
:func:`~bayesgmm.core.gibbs.assign`, it does not condition on the parameters of the clusters,
so rows move between overlapping clusters without waiting for the parameters to follow (the
blocked sampler is a stochastic EM and, like EM, crawls when clusters overlap), and a row can
open an empty component, which gives small clusters a way to be born and to die.

The rows are visited one after another (each update changes the statistics the next one sees),
so the cost is sequential: one ``fori_loop`` step per row, each O(T D^2) with the inverse
scales kept current by rank-one updates (:meth:`~bayesgmm.core.conjugate.ConjugateFull.
rank_one`). A sweep updates a random subset of ``rows`` rows (all rows on small data), every
chain at once.

Validity: the step leaves ``p(z | K, gamma, S0, x)`` invariant; the weights and parameters it
integrates out are redrawn from their conditionals later in the same sweep, before anything
conditions on them (partially collapsed Gibbs, van Dyk & Park 2008).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.core.conjugate import ConjugatePrior
from bayesgmm.core.stats import SuffStats
from bayesgmm.core.variates import split, uniform


def _slot_stats(stats: SuffStats, k: Array) -> SuffStats:
    return jax.tree_util.tree_map(lambda a: a[k][None] if a.ndim else a, stats)


def collapsed_updates(labels: Array, stats: SuffStats, rows: Array, uniforms: Array,
                      features: Array, weight: Array, n_components: Array, gamma: Array,
                      prior: ConjugatePrior, family) -> tuple[Array, SuffStats]:
    """One chain: update the assignments of ``rows`` (M,) in order.

    ``labels`` (N,), ``stats`` (T, ...) of those labels, ``uniforms`` (M,), ``features``
    (N, D + F) and ``weight`` (N,) (rows of weight 0 are skipped), ``n_components`` ``K``,
    ``gamma`` the Dirichlet parameter ``gamma_K``.
    """
    n_dims = stats.sum_x.shape[-1]
    n_slots = stats.counts.shape[0]
    active = jnp.arange(n_slots) < n_components
    cache = family.predictive_cache(family.posterior(prior, stats))

    def row_step(m, carry):
        labels, stats, cache = carry
        i = rows[m]
        w = weight[i]
        row = features[i]
        x = row[:n_dims]
        old = labels[i]
        # Remove the row: the scale of its cluster loses shrinkage' / (shrinkage' + 1) u u',
        # u = x - mean' (primes: the cluster without the row).
        delta = SuffStats(jnp.ones(()) * w, x * w, row[n_dims:] * w, jnp.zeros(()),
                          jnp.zeros(()))
        stats = jax.tree_util.tree_map(
            lambda s, d: s.at[old].add(-d) if s.ndim else s, stats, delta)
        without = family.posterior(prior, _slot_stats(stats, old))
        pull = without.shrinkage[0] / (without.shrinkage[0] + 1.0)
        cache = family.rank_one(cache, old, x - without.mean[0], -pull * w)
        posterior = family.posterior(prior, stats)
        log_prob = jnp.where(active, jnp.log(stats.counts + gamma)
                             + family.log_predictive(x, posterior, cache), -jnp.inf)
        top = jnp.max(log_prob)
        cumulative = jnp.cumsum(jnp.exp(log_prob - top))
        new = jnp.minimum(jnp.sum(cumulative < uniforms[m] * cumulative[-1]), n_slots - 1)
        new = jnp.where(w > 0, new, old).astype(labels.dtype)
        target = family.posterior(prior, _slot_stats(stats, new))
        pull = target.shrinkage[0] / (target.shrinkage[0] + 1.0)
        cache = family.rank_one(cache, new, x - target.mean[0], pull * w)
        stats = jax.tree_util.tree_map(
            lambda s, d: s.at[new].add(d) if s.ndim else s, stats, delta)
        return labels.at[i].set(new), stats, cache

    labels, stats, _ = jax.lax.fori_loop(0, rows.shape[0], row_step, (labels, stats, cache))
    return labels, stats


def random_rows(seed: Array, weight: Array, n_chains: int, n_rows: int) -> Array:
    """``n_rows`` distinct real rows per chain (C, M), in random order (a random permutation
    of the real rows, cut)."""
    keys = uniform(seed, (n_chains, weight.shape[0]), weight.dtype)
    keys = jnp.where(weight > 0, keys, 2.0)                                   # padding last
    return jnp.argsort(keys, axis=1)[:, :n_rows]


def collapsed_sweep(seed: Array, labels: Array, stats: SuffStats, features: Array,
                    weight: Array, n_components: Array, gamma: Array, priors: ConjugatePrior,
                    n_rows: int, family) -> tuple[Array, SuffStats]:
    """:func:`collapsed_updates` of ``n_rows`` random rows for every chain (leading axis C on
    ``labels``, ``stats``, ``n_components``, ``gamma`` and ``priors``)."""
    n_chains = labels.shape[0]
    row_seed, uniform_seed = split(seed, 2)
    rows = random_rows(row_seed, weight, n_chains, n_rows)
    uniforms = uniform(uniform_seed, (n_chains, n_rows), features.dtype)
    return jax.vmap(collapsed_updates, in_axes=(0, 0, 0, 0, None, None, 0, 0, 0, None))(
        labels, stats, rows, uniforms, features, weight, n_components, gamma, priors, family)
