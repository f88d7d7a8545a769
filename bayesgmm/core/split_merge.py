"""Split-merge moves for the Gibbs sampler of :mod:`bayesgmm.core.gibbs`: reversible-jump
proposals that change the number of occupied clusters in one step, parallel over points.

Each proposal draws two distinct rows ``i``, ``j`` (:func:`anchors`). If they share a
cluster ``S`` it proposes a split, otherwise the merge of their two clusters into ``S``.

*One try of a split* draws the two sides' parameters from ``g`` (the Normal-inverse-Wishart
posteriors of :func:`launch`'s soft two-cluster fit of ``S``), then sends each other row of
``S`` to side A (with ``i``) or B (with ``j``) independently with probability
``rho_s f(x | theta_s) / sum_s' rho_s' f(x | theta_s')``. The target is the posterior of the
partition and of the occupied clusters' parameters, with the weights and ``K`` integrated out;
the reverse merge draws the union's parameters from their exact conditional posterior. Their
ratio (the union's parameters integrate to its marginal likelihood ``m(x_S)``, and each row's
allocation probability cancels against its likelihood) is

    r = p(C') / p(C) * prod_{s=A,B} p0(theta_s) / g_s(theta_s) * f(x_i | theta_A) f(x_j | theta_B)
        * prod_{l in S, l != i, j} [sum_s rho_s f(x_l | theta_s)] / rho_{s_l}  /  m(x_S):

the rows enter through a mixture likelihood, so the ratio does not collapse with the size of
the clusters as a proposal of labels alone does.

*Multiple tries* (Liu, Liang & Wong 2000, with the weight ``pi(y) / T(x, y)``): a split draws
``B`` tries, picks one with probability proportional to its ``r`` and is accepted with
probability ``min(1, mean r)``; a merge refreshes the current clusters' parameters from their
exact conditional posteriors (a Gibbs step on the extended state), computes ``r`` of the
current split and of ``B - 1`` fresh tries, and is accepted with probability
``min(1, 1 / mean r)``. (The reverse tries of a split are merges, whose weights are all
``p(C) m(x_S)``.) Averaging ``B`` importance ratios makes the acceptance far less sensitive
to the ratio's heavy tail. For a fixed pair ``(i, j)``, splits and merges are each other's
reverse (the change of dimension is an independence proposal: Jacobian 1), and the pair is
drawn independently of the state (Jain & Neal 2004), so the move is reversible. A split needs
a free slot (``K+ < T``).

Why not the sub-cluster moves of Chang & Fisher (2013): their Hastings ratios are
approximations (the thesis says so of its merges and of its deferred acceptance). Why not
Jain & Neal's restricted Gibbs launch: its scans visit the rows one after another.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.core.conjugate_draws import ComponentDraw
from bayesgmm.core.conjugate_posterior import ScaleFactor
from bayesgmm.core.covariance import ConjugatePrior
from bayesgmm.core.init import squared_distances
from bayesgmm.core.partition import WeightParameters, log_partition_prior
from bayesgmm.core.stats import SuffStats, block_stats, natural_log_prob
from bayesgmm.core.variates import fold_in, inverse_cdf_choice, log_gamma, normal, split, uniform

#: Chance of proposing a split rather than a merge (when both are possible).
SPLIT_SHARE = 0.5
#: Distance between cluster means (standardised units) at which a pair's chance of being
#: proposed for a merge halves: nearby clusters are proposed more often.
AFFINITY_SCALE = 1.0

#: Share of the split proposal ``g`` that is the component prior (defensive importance
#: sampling, Hesterberg 1995): ``g = (1 - share) g_launch + share p0``. The launch's posterior
#: sharpens with the cluster's size; alone, it gave the current split of a large cluster a
#: vanishing density whenever that split differed a little from the launch's, so merges of
#: spurious splits were never accepted (0 of 1,500 on 20,000 rows). With the prior in the
#: mixture, ``p0 / g <= 1 / share``.
DEFENSIVE_SHARE = 0.1

#: The two kernels: splits from a launched two-cluster fit, and moment matching.
LAUNCHED, MOMENT = 0, 1
#: Scales of the moment-matching kernel's auxiliary variables: ``z ~ N(0, 0.3^2 I)`` (the half
#: gap between the two means in units of the union's covariance, ``|z| < 1``) and the free
#: entries of ``V ~ N(0, 0.3^2)`` (the relative difference of the two covariances).
MOMENT_Z_SCALE = 0.3
MOMENT_V_SCALE = 0.3


class Launch(NamedTuple):
    """The deterministic part of a split proposal for a set of rows and two anchor rows.

    Attributes
    ----------
    posterior : (2, ...) Normal-inverse-Wishart posterior given each side's soft statistics:
        the proposal ``g`` of the two sides' parameters
    log_share : (2,) log of each side's soft share of the set, ``log rho``
    """

    posterior: ConjugatePrior
    log_share: Array


class MoveContext(NamedTuple):
    """What one chain's moves share within a sweep (a pytree): the data, the component prior
    with its factorised scale, and the partition prior's inputs.

    ``features`` (N, D + F), ``weight`` (N,) and ``log_k_prior`` (T,) are the same for every
    chain; the rest has a leading chain axis in :func:`split_merge`.
    """

    features: Array
    weight: Array
    log_k_prior: Array
    prior: ConjugatePrior
    prior_factor: ScaleFactor
    concentration: Array

    def log_prior(self, weights: WeightParameters, counts: Array) -> Array:
        """``log p(C)`` of a partition with block sizes ``counts`` (T,)."""
        return log_partition_prior(weights, self.log_k_prior, counts, self.concentration,
                                   jnp.sum(self.weight))


def stats_of(features: Array, weight: Array, membership: Array) -> SuffStats:
    """Statistics of the rows under 0/1 or soft ``membership`` (N, M): GEMM-shaped sums."""
    n_dims = _n_dims(features.shape[-1])
    return block_stats(features, weight, membership, n_dims)


def _n_dims(n_columns: int) -> int:
    """D from the width of a ``[x, phi(x)]`` feature row (full or diagonal moments)."""
    for n_dims in range(1, n_columns + 1):
        if n_columns in (2 * n_dims, n_dims + n_dims * (n_dims + 1) // 2):
            return n_dims
    raise ValueError(f"{n_columns} feature columns are no moment layout")


def _draw_row(weight: Array, uniform: Array) -> Array:
    """A row drawn with probability proportional to ``weight`` (N,): the inverse CDF by one
    comparison and sum (``jnp.searchsorted`` is a loop in XLA)."""
    cumulative = jnp.cumsum(weight)
    index = jnp.sum(cumulative < uniform * cumulative[-1])
    return jnp.minimum(index, weight.shape[0] - 1)


def _merge_log_weights(counts: Array, sums: Array) -> Array:
    """(T, T) log weights of ordered pairs of occupied clusters for a merge proposal:
    ``-log(1 + |mean_a - mean_b|^2 / AFFINITY_SCALE^2)`` (nearby clusters are proposed more
    often); ``-inf`` on the diagonal and for empty slots."""
    occupied = counts > 0
    means = sums / jnp.maximum(counts, 1.0)[:, None]
    gap = jnp.sum((means[:, None, :] - means[None, :, :]) ** 2, axis=-1)
    allowed = occupied[:, None] & occupied[None, :] & ~jnp.eye(counts.shape[0], dtype=bool)
    return jnp.where(allowed, -jnp.log1p(gap / AFFINITY_SCALE**2), -jnp.inf)


def _split_share(n_occupied: Array, n_slots: int) -> Array:
    """Chance of proposing a split: 1 with one cluster, 0 with T, else SPLIT_SHARE."""
    return jnp.where(n_occupied <= 1, 1.0, jnp.where(n_occupied >= n_slots, 0.0, SPLIT_SHARE))


def log_selection(counts: Array, sums: Array, cluster_a: Array, cluster_b: Array,
                  n_slots: int) -> Array:
    """``log s(i, j | state)``: the probability of drawing the anchor rows ``(i, j)`` whose
    clusters are ``cluster_a``, ``cluster_b`` in a state with cluster sizes ``counts`` (T,) and
    sums (T, D) (:func:`select_anchors`). A split: the share of splits, one of the K+
    clusters, an ordered pair of its rows; a merge: the share of merges, an ordered pair of
    clusters by :func:`_merge_log_weights`, a row of each."""
    n_occupied = jnp.sum(counts > 0)
    share = _split_share(n_occupied, n_slots)
    n_a, n_b = counts[cluster_a], counts[cluster_b]
    split = (jnp.log(share) - jnp.log(n_occupied) - jnp.log(n_a)
             - jnp.log(jnp.maximum(n_a - 1.0, 0.0)))
    log_weights = _merge_log_weights(counts, sums)
    merge = (jnp.log1p(-share) + log_weights[cluster_a, cluster_b]
             - jax.nn.logsumexp(log_weights) - jnp.log(n_a) - jnp.log(n_b))
    return jnp.where(cluster_a == cluster_b, split, merge)


def select_anchors(uniforms: Array, labels: Array, counts: Array, sums: Array, weight: Array,
                   n_slots: int) -> tuple[Array, Array, Array]:
    """Two anchor rows from four uniforms (:func:`log_selection` gives their probability):
    with probability :func:`_split_share` a split (one of the occupied clusters uniformly, two
    distinct rows of it), else a merge (an ordered pair of clusters by
    :func:`_merge_log_weights`, one row of each). ``labels`` are compact (occupied clusters
    first). Returns the rows and whether they make a proposal (a split needs two rows)."""
    n_occupied = jnp.sum(counts > 0)
    is_split = uniforms[0] < _split_share(n_occupied, n_slots)
    chosen = jnp.minimum(jnp.floor(uniforms[1] * n_occupied), n_occupied - 1).astype(
        labels.dtype)
    log_weights = _merge_log_weights(counts, sums).reshape(-1)
    pair = jnp.sum(jnp.cumsum(jnp.exp(log_weights - jax.nn.logsumexp(log_weights)))
                   < uniforms[1])
    pair = jnp.minimum(pair, log_weights.shape[0] - 1)
    cluster_a = jnp.where(is_split, chosen, pair // n_slots).astype(labels.dtype)
    cluster_b = jnp.where(is_split, chosen, pair % n_slots).astype(labels.dtype)
    first = _draw_row(weight * (labels == cluster_a), uniforms[2])
    in_b = weight * (labels == cluster_b)
    second = _draw_row(in_b.at[first].set(0.0), uniforms[3])
    valid = jnp.where(is_split, counts[cluster_a] >= 2, True)
    return first, second, valid


def launch(features: Array, weight: Array, in_set: Array, first: Array, second: Array,
           prior: ConjugatePrior, family, iterations: int) -> Launch:
    """Two-cluster fit of a set of rows, started from two anchor rows.

    A deterministic function of the set (``in_set`` (N,) bool), the anchors and the prior:
    rows start with the nearer anchor (squared Euclidean distance; ties go to ``first``,
    side A), then ``iterations`` EM iterations of a two-component mixture of diagonal
    Gaussians on the set (each side's posterior mean and a regularised variance: elementwise
    work and two small products per iteration; the anchors stay on their sides), and finally
    the Normal-inverse-Wishart posterior of each side under the soft memberships. Soft EM,
    unlike hard reallocation, reaches overlapping splits (a broad component around a tight
    one), which are common in the posterior. Nothing here depends on how the set is currently
    divided, so a split proposal and the reverse of a merge see the same launch.
    """
    n_dims = _n_dims(features.shape[-1])
    x = features[:, :n_dims]
    squares = x * x
    distance = squared_distances(x, x[jnp.stack([first, second])])            # (N, 2)
    rows = jnp.arange(x.shape[0])
    in_weight = in_set.astype(x.dtype) * weight
    prior_variance = family.variances(prior.scale)                             # (D,)

    def fix(share_a):
        return jnp.where(rows == first, 1.0, jnp.where(rows == second, 0.0, share_a))

    def membership(share_a):
        return jnp.stack([share_a, 1.0 - share_a], axis=1)

    def em_iteration(_, share_a):
        weights = membership(share_a) * in_weight[:, None]
        counts = jnp.sum(weights, axis=0)                                       # (2,)
        sums = weights.T @ jnp.concatenate([x, squares], axis=1)                # (2, 2D)
        means = sums[:, :n_dims] / (counts + prior.shrinkage)[:, None]
        scatter = sums[:, n_dims:] - counts[:, None] * means * means
        variance = (prior_variance + jnp.maximum(scatter, 0.0)) / (
            prior.dof + counts + 2.0)[:, None]
        precision = 1.0 / variance
        log_prob = (-0.5 * (squares @ precision.T - 2.0 * x @ (means * precision).T
                            + jnp.sum(means * means * precision, axis=1))
                    - 0.5 * jnp.sum(jnp.log(variance), axis=1)
                    + jnp.log(jnp.maximum(counts, 1e-300)))
        return fix(jax.nn.softmax(log_prob, axis=1)[:, 0])

    start = fix((distance[:, 0] <= distance[:, 1]).astype(x.dtype))
    share_a = jax.lax.fori_loop(0, iterations, em_iteration, start)
    stats = stats_of(features, in_weight, membership(share_a))
    log_sizes = jnp.log(jnp.maximum(stats.counts, 1e-300))
    return Launch(family.posterior(prior, stats), log_sizes - jax.nn.logsumexp(log_sizes))


class MovePlan(NamedTuple):
    """One chain's proposal before its random parameters are drawn (a pytree)."""

    first: Array
    second: Array
    cluster_a: Array
    cluster_b: Array
    is_split: Array
    valid: Array                # whether the anchors make a proposal
    in_set: Array
    launch: Launch
    current: ConjugatePrior     # posteriors of the current clusters of i and j
    from_prior: Array           # (tries, 2) bool: which tries' sides are drawn from the prior
    dof: Array                  # (tries + 1, 2) dofs of the draws: tries from g, then current
    choice: Array               # uniforms that pick the try and decide acceptance (2,)


def plan_move(labels: Array, stats: SuffStats, context: MoveContext, uniforms: Array,
              tries: int, family, iterations: int, n_slots: int) -> MovePlan:
    """The deterministic part of one chain's proposal, from ``6 + 2 tries`` uniforms (the
    anchors, each try's sides' choice between the launch and the prior, then two more)."""
    first, second, valid = select_anchors(uniforms[:4], labels, stats.counts, stats.sum_x,
                                          context.weight, n_slots)
    cluster_a, cluster_b = labels[first], labels[second]
    in_set = (context.weight > 0) & ((labels == cluster_a) | (labels == cluster_b))
    proposal = launch(context.features, context.weight, in_set, first, second,
                      context.prior, family, iterations)
    sides = jnp.stack([labels == cluster_a, labels == cluster_b], axis=1) & in_set[:, None]
    current = family.posterior(context.prior, stats_of(
        context.features, context.weight, sides.astype(context.features.dtype)))
    from_prior = uniforms[4:4 + 2 * tries].reshape(tries, 2) < DEFENSIVE_SHARE
    dof = jnp.concatenate([jnp.where(from_prior, context.prior.dof, proposal.posterior.dof),
                           current.dof[None]])
    return MovePlan(first, second, cluster_a, cluster_b, cluster_a == cluster_b, valid,
                    in_set, proposal, current, from_prior, dof, uniforms[4 + 2 * tries:])


def finish_move(plan: MovePlan, labels: Array, stats: SuffStats, context: MoveContext,
                log_gammas: Array, normals: Array, uniforms: Array, n_slots: int,
                family, weights: WeightParameters, kind: int | Array
                ) -> tuple[Array, SuffStats, Array]:
    """Draw the tries, accept or reject, and apply: one chain's proposal, of the launched
    kernel (``kind`` 0) or the moment-matching kernel (``kind`` 1; module docstring); ``kind``
    may be traced.

    Parameters
    ----------
    log_gammas : (tries + 1, 2, D) log Gamma variates for :attr:`MovePlan.dof`
    normals : (tries + 1, 2, D + 1, D) standard normals
    uniforms : (tries + 1, N) uniforms: each try's allocation (the last row is unused)

    Returns the new labels and statistics and whether the proposal was accepted.
    """
    features, weight = context.features, context.weight
    n_dims = _n_dims(features.shape[-1])
    tries = log_gammas.shape[0] - 1
    dtype = features.dtype
    rows = jnp.arange(labels.shape[0])
    first, second, cluster_a, cluster_b = plan.first, plan.second, plan.cluster_a, plan.cluster_b
    in_set, proposal = plan.in_set, plan.launch
    free = in_set & (rows != first) & (rows != second)

    whole = stats_of(features, weight, in_set[:, None].astype(dtype))          # (1, ...)
    union = jax.tree_util.tree_map(lambda a: a[0] if a.ndim else a, whole)
    counts = stats.counts
    n_occupied = jnp.sum(counts > 0)
    other_slot = jnp.where(plan.is_split, n_occupied, cluster_b)
    base = counts.at[cluster_a].set(0.0).at[cluster_b].set(0.0)
    base_sums = stats.sum_x.at[cluster_a].set(0.0).at[cluster_b].set(0.0)
    merged_counts = base.at[cluster_a].set(union.counts)
    log_merged_prior = context.log_prior(weights, merged_counts)
    # The anchors' selection probability in the merged state (a split of cluster_a).
    merged_selection = log_selection(merged_counts, base_sums.at[cluster_a].set(union.sum_x),
                                     cluster_a, cluster_a, n_slots)
    bartlett = family.bartlett(log_gammas, normals[:, :, :n_dims])
    # The current clusters' parameters, refreshed from their exact conditional posteriors
    # (a Gibbs step on the extended state; for a split both rows are the cluster's).
    refreshed = family.draw(plan.current.mean, plan.current.shrinkage,
                            family.factorise(plan.current.scale),
                            jax.tree_util.tree_map(lambda a: a[tries], bartlett),
                            normals[tries, :, n_dims])

    def log_p0(theta):
        return family.log_density(context.prior, context.prior_factor.log_det, theta)

    def launched():
        """The launched kernel's tries: each side from the launch's posterior or the prior."""
        proposal_factor = family.factorise(proposal.posterior.scale)

        def pick(launched, prior):  # each try's side from the launch's posterior or the prior
            mask = plan.from_prior.reshape(plan.from_prior.shape + (1,) * (launched.ndim - 1))
            return jnp.where(mask, jnp.broadcast_to(prior, launched.shape), launched)

        posteriors = jax.tree_util.tree_map(pick, proposal.posterior, context.prior)
        factors = jax.tree_util.tree_map(pick, proposal_factor, context.prior_factor)
        tried = jax.vmap(family.draw)(posteriors.mean, posteriors.shrinkage, factors,
                                      jax.tree_util.tree_map(lambda a: a[:tries], bartlett),
                                      normals[:tries, :, n_dims])               # (tries, 2)
        theta = jax.tree_util.tree_map(lambda t, r: jnp.concatenate([t, r[None]]), tried,
                                       refreshed)

        def minus_log_g(theta):  # the defensive mixture's proposal density, both sides
            return -jnp.sum(jnp.logaddexp(
                jnp.log1p(-DEFENSIVE_SHARE) + family.log_density(
                    proposal.posterior, proposal_factor.log_det, theta),
                jnp.log(DEFENSIVE_SHARE) + log_p0(theta)))

        merged_term = family.log_marginal(context.prior, context.prior_factor,
                                          family.posterior(context.prior, whole),
                                          whole.counts)[0]
        return theta, jax.vmap(minus_log_g)(theta), merged_term, proposal.log_share

    def moment():
        """The moment-matching kernel's tries, and the union's likelihood at the combined
        parameters."""
        mean, covariance, z_now, v_now = family.combine(
            jax.tree_util.tree_map(lambda a: a[0], refreshed),
            jax.tree_util.tree_map(lambda a: a[1], refreshed))
        # The union's parameters: a split refreshes them, a merge combines the current pair.
        own = family.covariances(refreshed.covariance_factor[0])
        own = jnp.diagonal(own) if covariance.ndim == 1 else own
        mean = jnp.where(plan.is_split, refreshed.means[0], mean)
        covariance = jnp.where(plan.is_split, own, covariance)
        z = jnp.concatenate([MOMENT_Z_SCALE * normals[:tries, 0, 0, :], z_now[None]])
        v = jnp.concatenate([MOMENT_V_SCALE * family.symmetric(normals[:tries, 1, :n_dims]),
                             v_now[None]])
        mean_a, mean_b, cov_a, cov_b, log_jacobian = jax.vmap(
            family.separate, in_axes=(None, None, 0, 0))(mean, covariance, z, v)
        theta = jax.vmap(family.from_covariance)(jnp.stack([mean_a, mean_b], axis=1),
                                                 jnp.stack([cov_a, cov_b], axis=1))
        # The current pair is the refreshed one exactly (not its round trip).
        theta = jax.tree_util.tree_map(lambda t, r: t.at[tries].set(r), theta, refreshed)
        auxiliary = log_jacobian - jax.vmap(family.log_auxiliary, in_axes=(None, 0, 0, None,
                                                                           None))(
            covariance, z, v, MOMENT_Z_SCALE, MOMENT_V_SCALE)
        merged = family.from_covariance(mean[None], covariance[None])
        log_f_union = natural_log_prob(features, family.natural(jnp.zeros(1, dtype),
                                                                merged))[:, 0]
        merged_term = log_p0(merged)[0] + jnp.sum(jnp.where(in_set, weight * log_f_union,
                                                            0.0))
        return theta, auxiliary, merged_term, jnp.full(2, -jnp.log(2.0), dtype)

    # Only the kernel-specific proposals branch; the passes over the rows below (each try's
    # allocation and statistics) appear once in the program whichever kernel runs.
    if isinstance(kind, int):
        theta, extra, merged_term, log_share = moment() if kind == MOMENT else launched()
    else:
        theta, extra, merged_term, log_share = jax.lax.cond(kind == MOMENT, moment, launched)

    def fixed(side_a):
        return jnp.where(rows == first, True, jnp.where(rows == second, False, side_a))

    def log_ratio(theta: ComponentDraw, aux: Array, side_draws: Array, now: Array):
        """``log r`` of a split of ``S`` with parameters ``theta`` (2 sides) and the kernel's
        extra term ``aux`` (minus the launched proposal's log density, or the moment kernel's
        Jacobian less its auxiliary density): the rows are allocated from ``side_draws`` (N,)
        uniforms, or as now when ``now``."""
        log_f = natural_log_prob(features, family.natural(jnp.zeros(2, dtype), theta))
        log_mixture = jax.nn.logsumexp(log_f + log_share, axis=1)
        share_a = log_f[:, 0] + log_share[0] - log_mixture
        side_a = fixed(jnp.where(now, labels == cluster_a, jnp.log(side_draws) < share_a))
        allocation = (jnp.sum(jnp.where(free, log_mixture - jnp.where(
            side_a, log_share[0], log_share[1]), 0.0))
            + log_f[first, 0] + log_f[second, 1])
        parts = stats_of(features, weight, jnp.stack([in_set & side_a, in_set & ~side_a], 1
                                                     ).astype(dtype))
        split_counts = base.at[cluster_a].set(parts.counts[0]).at[other_slot].set(
            parts.counts[1])
        split_sums = base_sums.at[cluster_a].set(parts.sum_x[0]).at[other_slot].set(
            parts.sum_x[1])
        ratio = (context.log_prior(weights, split_counts) - log_merged_prior
                 + jnp.sum(log_p0(theta)) + aux + allocation - merged_term)
        # Weighted by the anchors' selection probability in the split state (a merge).
        ratio = ratio + log_selection(split_counts, split_sums, cluster_a, other_slot, n_slots)
        return jnp.where(jnp.isnan(ratio), -jnp.inf, ratio), parts, side_a

    now = jnp.arange(tries + 1) == tries
    ratios, parts, sides = jax.vmap(log_ratio)(theta, extra, uniforms, now)
    log_mean_split = jax.nn.logsumexp(ratios[:tries]) - jnp.log(tries) - merged_selection
    log_mean_merge = jax.nn.logsumexp(jnp.concatenate([ratios[tries:], ratios[:tries - 1]])
                                      ) - jnp.log(tries) - merged_selection
    chosen = inverse_cdf_choice(ratios[:tries], plan.choice[0])
    feasible = plan.valid & jnp.where(plan.is_split, n_occupied < n_slots, True)
    log_accept = jnp.where(plan.is_split, log_mean_split, -log_mean_merge)
    accept = feasible & (jnp.log(plan.choice[1]) < log_accept)
    side_a = sides[chosen]
    part = jax.tree_util.tree_map(lambda a: a[chosen] if a.ndim else a, parts)
    last = n_occupied - 1

    def do_split():
        new_labels = jnp.where(in_set & ~side_a, n_occupied, labels).astype(labels.dtype)
        new_stats = jax.tree_util.tree_map(
            lambda s, p: s.at[cluster_a].set(p[0]).at[n_occupied].set(p[1]) if s.ndim else s,
            stats, part)
        return new_labels, new_stats

    def do_merge():
        new_labels = jnp.where(labels == cluster_b, cluster_a, labels)
        new_labels = jnp.where(new_labels == last, cluster_b, new_labels).astype(labels.dtype)

        def move(s, m):  # the union into cluster_a, then the last slot into cluster_b
            if not s.ndim:
                return s
            s = s.at[cluster_a].set(m).at[cluster_b].set(jnp.zeros_like(m))
            moved = s[last]
            return s.at[last].set(jnp.zeros_like(m)).at[cluster_b].set(moved)

        return new_labels, jax.tree_util.tree_map(move, stats, union)

    new_labels, new_stats = jax.lax.cond(plan.is_split, do_split, do_merge)
    labels, stats = jax.tree_util.tree_map(lambda a, b: jnp.where(accept, a, b),
                                           (new_labels, new_stats), (labels, stats))
    return labels, stats, accept


def split_merge(seed: Array, labels: Array, stats: SuffStats, contexts: MoveContext,
                moves: int, tries: int, iterations: int, n_slots: int, family,
                weights: WeightParameters, kernels: tuple = (0, 1)
                ) -> tuple[Array, SuffStats, Array]:
    """``moves`` proposals for every chain (leading chain axis C on ``labels`` (C, N),
    ``stats`` and ``contexts``). The random numbers are drawn for all chains at once and only
    the deterministic work is vmapped (random-number calls under ``vmap`` became loops).

    Each proposal uses a kernel drawn uniformly from ``kernels`` (:data:`LAUNCHED`,
    :data:`MOMENT`; repeat an entry to weight it), the same for every chain: the choice does
    not depend on the state, so the move is a mixture of reversible kernels. (Choosing by the
    move's index within a sweep left the last entries unused when ``moves < len(kernels)``:
    with 2 moves per sweep on large data the moment-matching kernel never ran.) The kernel is
    a traced argument of :func:`finish_move`, so the move appears once in the program.
    Returns the labels, statistics and per-chain tallies (C, 4): splits proposed and
    accepted, merges proposed and accepted.
    """
    n_chains, n_rows = labels.shape
    n_dims = stats.sum_x.shape[-1]
    dtype = stats.sum_x.dtype
    context_axes = MoveContext(None, None, None, 0, 0, 0)
    distinct = tuple(sorted(set(kernels)))
    kernel_of_entry = jnp.asarray(kernels, jnp.int32)

    def attempt(move, carry):
        labels, stats, tally = carry
        uniform_seed, normal_seed, gamma_seed, choice_seed, kernel_seed = split(
            fold_in(seed, move), 5)
        uniforms = uniform(uniform_seed, (n_chains, tries + 1, n_rows), dtype)
        normals = normal(normal_seed, (n_chains, tries + 1, 2, n_dims + 1, n_dims), dtype)
        choices = uniform(choice_seed, (n_chains, 6 + 2 * tries), dtype)
        if len(distinct) == 1:
            kind = distinct[0]
        else:  # the kernel is traced: one copy of the move in the program (finish_move)
            entry = jnp.minimum((uniform(kernel_seed, (), dtype) * len(kernels)).astype(jnp.int32),
                                len(kernels) - 1)
            kind = kernel_of_entry[entry]
        plans = jax.vmap(plan_move, in_axes=(0, 0, context_axes, 0, None, None, None, None))(
            labels, stats, contexts, choices, tries, family, iterations, n_slots)
        log_gammas = log_gamma(gamma_seed, family.gamma_shapes(plans.dof, n_dims))

        def finish(kind):
            return jax.vmap(finish_move, in_axes=(0, 0, 0, context_axes, 0, 0, 0, None, None,
                                                  None, None))(
                plans, labels, stats, contexts, log_gammas, normals, uniforms, n_slots,
                family, weights, kind)

        labels, stats, accept = finish(kind)
        splits = plans.is_split
        tally = tally + jnp.stack([splits, splits & accept, ~splits, ~splits & accept],
                                  axis=1).astype(jnp.int32)
        return labels, stats, tally

    return jax.lax.fori_loop(0, moves, attempt,
                             (labels, stats, jnp.zeros((n_chains, 4), jnp.int32)))
