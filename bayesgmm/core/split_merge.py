"""Split-merge moves for the Gibbs sampler of :mod:`bayesgmm.core.gibbs`: reversible-jump
proposals that change the number of occupied clusters in one step, parallel over points.

Each proposal draws two distinct rows ``i``, ``j``
(:func:`~bayesgmm.core.split_merge_anchors.select_anchors`). If they share a cluster ``S`` it
proposes a split, otherwise the merge of their two clusters into ``S``.

*One try of a split* draws the two sides' parameters from ``g`` (the Normal-inverse-Wishart
posteriors of :func:`~bayesgmm.core.split_merge_launch.launch`'s soft two-cluster fit of
``S``), then sends each other row of ``S`` to side A (with ``i``) or B (with ``j``)
independently with probability ``rho_s f(x | theta_s) / sum_s' rho_s' f(x | theta_s')``. The
target is the posterior of the partition and of the occupied clusters' parameters, with the
weights and ``K`` integrated out; the reverse merge draws the union's parameters from their
exact conditional posterior. Their ratio (the union's parameters integrate to its marginal
likelihood ``m(x_S)``, and each row's allocation probability cancels against its likelihood)
is

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

A third kernel, :data:`COLLAPSED` (:mod:`~bayesgmm.core.split_merge_collapsed`), proposes
on the partition alone (parameters integrated out) by sequential allocation in blocks; on
large clusters it is the one whose merges are accepted. :func:`split_merge` draws a kernel
per proposal.

Why not the sub-cluster moves of Chang & Fisher (2013): their Hastings ratios are
approximations (the thesis says so of its merges and of its deferred acceptance). Why not
Jain & Neal's restricted Gibbs launch: its scans visit the rows one after another, and the
reverse of a merge needs the launch (from a random split) to reach the current split.

The parts: :mod:`~bayesgmm.core.split_merge_anchors` (the pair ``(i, j)`` and its probability),
:mod:`~bayesgmm.core.split_merge_launch` (the launch), :mod:`~bayesgmm.core.split_merge_plan`
(the proposal before its random parameters, and applying a decided one),
:mod:`~bayesgmm.core.split_merge_kernels` (the parametric kernels' tries),
:mod:`~bayesgmm.core.split_merge_collapsed` (the collapsed kernel); this module draws the
random numbers, accepts or rejects and applies.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.core.conjugate_draws import ComponentDraw
from bayesgmm.core.partition import WeightParameters
from bayesgmm.core.split_merge_collapsed import collapsed_move, row_order
from bayesgmm.core.split_merge_kernels import (
    TryInputs,
    launched_tries,
    moment_tries,
    prior_log_density,
)
from bayesgmm.core.split_merge_launch import feature_dims, stats_of
from bayesgmm.core.split_merge_plan import (
    Decision,
    MoveContext,
    MovePlan,
    MoveSettings,
    apply_move,
    partition_change,
    plan_move,
)
from bayesgmm.core.stats import SuffStats, natural_log_prob
from bayesgmm.core.variates import fold_in, inverse_cdf_choice, log_gamma, normal, split, uniform

#: The kernels: splits from a launched two-cluster fit, moment matching, and the collapsed
#: sequential allocation (:mod:`bayesgmm.core.split_merge_collapsed`).
LAUNCHED, MOMENT, COLLAPSED = 0, 1, 2


class MoveVariates(NamedTuple):
    """One chain's random numbers for :func:`finish_move` (a pytree).

    Attributes
    ----------
    log_gammas : (tries + 1, 2, D) log Gamma variates for :attr:`MovePlan.dof`
    normals : (tries + 1, 2, D + 1, D) standard normals
    uniforms : (tries + 1, N) uniforms: each try's allocation (the last row is unused)
    """

    log_gammas: Array
    normals: Array
    uniforms: Array


def finish_move(plan: MovePlan, labels: Array, stats: SuffStats, context: MoveContext,
                variates: MoveVariates, settings: MoveSettings, weights: WeightParameters,
                kind: int | Array) -> Decision:
    """Draw the tries and decide: one chain's proposal, of the launched kernel (``kind`` 0) or
    the moment-matching kernel (``kind`` 1; module docstring); ``kind`` may be traced.
    ``labels`` (N,) compact, ``stats`` (T, ...). :func:`split_merge` applies the
    :class:`~bayesgmm.core.split_merge_plan.Decision`.
    """
    family, n_slots = settings.family, settings.n_slots
    log_gammas, normals, uniforms = variates
    features, weight = context.features, context.weight
    n_dims = feature_dims(features.shape[-1])
    tries = log_gammas.shape[0] - 1
    dtype = features.dtype
    rows = jnp.arange(labels.shape[0])
    first, second, cluster_a, cluster_b = plan.first, plan.second, plan.cluster_a, plan.cluster_b
    in_set = plan.in_set
    free = in_set & (rows != first) & (rows != second)

    whole = stats_of(features, weight, in_set[:, None].astype(dtype))          # (1, ...)
    union = jax.tree_util.tree_map(lambda a: a[0] if a.ndim else a, whole)
    n_occupied = jnp.sum(stats.counts > 0)
    change = partition_change(context, weights, stats, cluster_a, cluster_b, union, n_slots)
    bartlett = family.bartlett(log_gammas, normals[:, :, :n_dims])
    # The current clusters' parameters, refreshed from their exact conditional posteriors
    # (a Gibbs step on the extended state; for a split both rows are the cluster's).
    refreshed = family.draw(plan.current.mean, plan.current.shrinkage,
                            family.factorise(plan.current.scale),
                            jax.tree_util.tree_map(lambda a: a[tries], bartlett),
                            normals[tries, :, n_dims])
    inputs = TryInputs(plan, context, whole, bartlett, normals, refreshed)

    def launched():
        return launched_tries(inputs, family)

    def moment():
        return moment_tries(inputs, family)

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
        # The partition prior and the anchors' selection probabilities, split over merged.
        ratio = (change.log_split(context, weights, parts, n_slots) - change.log_merged
                 + jnp.sum(prior_log_density(context, family, theta)) + aux + allocation
                 - merged_term)
        return jnp.where(jnp.isnan(ratio), -jnp.inf, ratio), parts, side_a

    now = jnp.arange(tries + 1) == tries
    ratios, parts, sides = jax.vmap(log_ratio)(theta, extra, uniforms, now)
    log_mean_split = jax.nn.logsumexp(ratios[:tries]) - jnp.log(tries)
    log_mean_merge = jax.nn.logsumexp(jnp.concatenate([ratios[tries:], ratios[:tries - 1]])
                                      ) - jnp.log(tries)
    chosen = inverse_cdf_choice(ratios[:tries], plan.choice[0])
    feasible = plan.valid & jnp.where(plan.is_split, n_occupied < n_slots, True)
    log_accept = jnp.where(plan.is_split, log_mean_split, -log_mean_merge)
    accept = feasible & (jnp.log(plan.choice[1]) < log_accept)
    part = jax.tree_util.tree_map(lambda a: a[chosen] if a.ndim else a, parts)
    return Decision(accept, plan.is_split, in_set & ~sides[chosen], part, union, cluster_a,
                    cluster_b)


def split_merge(seed: Array, labels: Array, stats: SuffStats, contexts: MoveContext,
                moves: int, settings: MoveSettings, weights: WeightParameters,
                kernels: tuple = (0, 1)) -> tuple[Array, SuffStats, Array]:
    """``moves`` proposals for every chain (leading chain axis C on ``labels`` (C, N),
    ``stats`` and ``contexts``). The random numbers are drawn for all chains at once and only
    the deterministic work is vmapped (random-number calls under ``vmap`` became loops).

    Each proposal uses a kernel drawn uniformly from ``kernels`` (:data:`LAUNCHED`,
    :data:`MOMENT`, :data:`COLLAPSED`; repeat an entry to weight it), the same for every
    chain: the choice does not depend on the state, so the move is a mixture of reversible
    kernels. (Choosing by the move's index within a sweep left the last entries unused when
    ``moves < len(kernels)``: with 2 moves per sweep on large data the moment-matching kernel
    never ran.) The parametric kernel is a traced argument of :func:`finish_move`, so that
    move appears once in the program; a ``lax.cond`` chooses between it and the collapsed
    kernel. The collapsed kernel's row order is ``contexts.order``, or one drawn per call.
    Returns the labels, statistics and per-chain tallies (C, 4): splits proposed and
    accepted, merges proposed and accepted.
    """
    n_chains, n_rows = labels.shape
    n_dims = stats.sum_x.shape[-1]
    dtype = stats.sum_x.dtype
    tries, family = settings.tries, settings.family
    context_axes = MoveContext(None, None, None, 0, 0, 0, None)
    if COLLAPSED in kernels and contexts.order is None:
        contexts = contexts._replace(order=row_order(fold_in(seed, moves), n_rows, dtype))
    parametric_kinds = tuple(sorted(set(kernels) - {COLLAPSED}))
    kernel_of_entry = jnp.asarray(kernels, jnp.int32)

    def parametric(kind, labels, stats, uniforms, choices, normal_seed, gamma_seed):
        normals = normal(normal_seed, (n_chains, tries + 1, 2, n_dims + 1, n_dims), dtype)
        plans = jax.vmap(functools.partial(plan_move, settings=settings),
                         in_axes=(0, 0, context_axes, 0))(labels, stats, contexts, choices)
        log_gammas = log_gamma(gamma_seed, family.gamma_shapes(plans.dof, n_dims))
        variates = MoveVariates(log_gammas, normals, uniforms)

        def finish(plan, labels, stats, context, variates):
            return finish_move(plan, labels, stats, context, variates, settings, weights, kind)

        return jax.vmap(finish, in_axes=(0, 0, 0, context_axes, 0))(
            plans, labels, stats, contexts, variates)

    def collapsed(labels, stats, uniforms, choices):
        def one_chain(labels, stats, context, variates, choices):
            return collapsed_move(labels, stats, context, variates, choices, settings, weights)

        return jax.vmap(one_chain, in_axes=(0, 0, context_axes, 0, 0))(
            labels, stats, contexts, uniforms[:, 0], choices[:, :6])

    def attempt(move, carry):
        labels, stats, tally = carry
        uniform_seed, normal_seed, gamma_seed, choice_seed, kernel_seed = split(
            fold_in(seed, move), 5)
        uniforms = uniform(uniform_seed, (n_chains, tries + 1, n_rows), dtype)
        choices = uniform(choice_seed, (n_chains, 6 + 2 * tries), dtype)
        entry = jnp.minimum((uniform(kernel_seed, (), dtype) * len(kernels)).astype(jnp.int32),
                            len(kernels) - 1)
        kind = kernel_of_entry[entry]
        # With both parametric kernels in use the kind is traced: one copy of finish_move.
        parametric_kind = parametric_kinds[0] if len(parametric_kinds) == 1 else kind

        def run_parametric():
            return parametric(parametric_kind, labels, stats, uniforms, choices, normal_seed,
                              gamma_seed)

        def run_collapsed():
            return collapsed(labels, stats, uniforms, choices)

        if not parametric_kinds:
            outcome = run_collapsed()
        elif COLLAPSED not in kernels:
            outcome = run_parametric()
        else:
            outcome = jax.lax.cond(kind == COLLAPSED, run_collapsed, run_parametric)
        # One copy of the relabelling, after whichever kernel decided.
        labels, stats = jax.vmap(apply_move)(labels, stats, outcome)
        splits, accept = outcome.is_split, outcome.accept
        tally = tally + jnp.stack([splits, splits & accept, ~splits, ~splits & accept],
                                  axis=1).astype(jnp.int32)
        return labels, stats, tally

    return jax.lax.fori_loop(0, moves, attempt,
                             (labels, stats, jnp.zeros((n_chains, 4), jnp.int32)))
