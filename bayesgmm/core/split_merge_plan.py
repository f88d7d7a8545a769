"""The deterministic part of one chain's split-merge proposal (:mod:`bayesgmm.core.split_merge`):
what the chain's moves share within a sweep (:class:`MoveContext`), the static settings
(:class:`MoveSettings`), and the plan of a proposal before its random parameters are drawn
(:func:`plan_move`: the anchors, the set of rows, the launch, the current clusters'
posteriors and which tries draw from the prior).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from bayesgmm.core.conjugate_posterior import ScaleFactor
from bayesgmm.core.parameters import ConjugatePrior
from bayesgmm.core.partition import WeightParameters, log_partition_prior
from bayesgmm.core.split_merge_anchors import select_anchors
from bayesgmm.core.split_merge_launch import Launch, launch, stats_of
from bayesgmm.core.stats import SuffStats

#: Share of the split proposal ``g`` that is the component prior (defensive importance
#: sampling, Hesterberg 1995): ``g = (1 - share) g_launch + share p0``. The launch's posterior
#: sharpens with the cluster's size; alone, it gave the current split of a large cluster a
#: vanishing density whenever that split differed a little from the launch's, so merges of
#: spurious splits were never accepted (0 of 1,500 on 20,000 rows). With the prior in the
#: mixture, ``p0 / g <= 1 / share``.
DEFENSIVE_SHARE = 0.1


class MoveContext(NamedTuple):
    """What one chain's moves share within a sweep (a pytree): the data, the component prior
    with its factorised scale, and the partition prior's inputs.

    ``features`` (N, D + F), ``weight`` (N,) and ``log_k_prior`` (T,) are the same for every
    chain; the rest has a leading chain axis in :func:`~bayesgmm.core.split_merge.split_merge`.
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


@dataclass(frozen=True)
class MoveSettings:
    """Static settings of the split-merge moves (hashable).

    Attributes
    ----------
    tries : tries per proposal (multiple-try Metropolis)
    iterations : EM iterations of the launch (:func:`~bayesgmm.core.split_merge_launch.launch`)
    n_slots : T, the number of component slots
    family : a :data:`~bayesgmm.core.conjugate.CONJUGATE_FAMILIES` entry
    """

    tries: int
    iterations: int
    n_slots: int
    family: type


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
              settings: MoveSettings) -> MovePlan:
    """The deterministic part of one chain's proposal, from ``6 + 2 tries`` uniforms (the
    anchors, each try's sides' choice between the launch and the prior, then two more);
    ``labels`` (N,) compact, ``stats`` (T, ...)."""
    tries, family = settings.tries, settings.family
    first, second, valid = select_anchors(uniforms[:4], labels, stats.counts, stats.sum_x,
                                          context.weight, settings.n_slots)
    cluster_a, cluster_b = labels[first], labels[second]
    in_set = (context.weight > 0) & ((labels == cluster_a) | (labels == cluster_b))
    proposal = launch(context.features, context.weight, in_set, first, second,
                      context.prior, family, settings.iterations)
    sides = jnp.stack([labels == cluster_a, labels == cluster_b], axis=1) & in_set[:, None]
    current = family.posterior(context.prior, stats_of(
        context.features, context.weight, sides.astype(context.features.dtype)))
    from_prior = uniforms[4:4 + 2 * tries].reshape(tries, 2) < DEFENSIVE_SHARE
    dof = jnp.concatenate([jnp.where(from_prior, context.prior.dof, proposal.posterior.dof),
                           current.dof[None]])
    return MovePlan(first, second, cluster_a, cluster_b, cluster_a == cluster_b, valid,
                    in_set, proposal, current, from_prior, dof, uniforms[4 + 2 * tries:])
