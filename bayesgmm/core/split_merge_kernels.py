"""The tries of the two split-merge kernels (:mod:`bayesgmm.core.split_merge`): each kernel
proposes the two sides' parameters of ``tries`` splits of a set of rows ``S`` and gives the
terms of the Hastings ratio that depend on how they were proposed.

* The launched kernel draws each side from the launch's posterior (or, with probability
  :data:`~bayesgmm.core.split_merge_plan.DEFENSIVE_SHARE`, from the prior); its term is
  ``-log g`` of the defensive mixture, and the merged side is the union's marginal
  likelihood ``log m(x_S)``.
* The moment-matching kernel separates the union's parameters with auxiliary variables
  (:mod:`bayesgmm.core.moment_matching`); its term is the log-Jacobian less the auxiliary
  density, and the merged side is the union's prior density and likelihood at those
  parameters.

In both, the last try is the current pair of clusters, with parameters refreshed from their
exact conditional posteriors.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.core.conjugate_draws import Bartlett, ComponentDraw
from bayesgmm.core.split_merge_plan import DEFENSIVE_SHARE, MoveContext, MovePlan
from bayesgmm.core.stats import SuffStats, natural_log_prob

#: Scales of the moment-matching kernel's auxiliary variables: ``z ~ N(0, 0.3^2 I)`` (the half
#: gap between the two means in units of the union's covariance, ``|z| < 1``) and the free
#: entries of ``V ~ N(0, 0.3^2)`` (the relative difference of the two covariances).
MOMENT_Z_SCALE = 0.3
MOMENT_V_SCALE = 0.3


class TryInputs(NamedTuple):
    """What both kernels' tries start from, for one chain (a pytree).

    Attributes
    ----------
    plan : the proposal's :class:`~bayesgmm.core.split_merge_plan.MovePlan`
    context : the chain's :class:`~bayesgmm.core.split_merge_plan.MoveContext`
    whole : (1, ...) statistics of the set ``S``
    bartlett : (tries + 1, 2, ...) Bartlett factors for the plan's ``dof``
    normals : (tries + 1, 2, D + 1, D) standard normals
    refreshed : (2,) the current clusters' parameters drawn from their conditional posteriors
    """

    plan: MovePlan
    context: MoveContext
    whole: SuffStats
    bartlett: Bartlett
    normals: Array
    refreshed: ComponentDraw


class Tries(NamedTuple):
    """A kernel's tries (a pytree; the same structure for both kernels).

    Attributes
    ----------
    theta : (tries + 1, 2) the sides' parameters: the tries, then the current pair
    extra : (tries + 1,) the kernel's term of ``log r``
    merged_term : () the merged state's term of ``log r``
    log_share : (2,) ``log rho`` of the two sides in the rows' allocation
    """

    theta: ComponentDraw
    extra: Array
    merged_term: Array
    log_share: Array


def prior_log_density(context: MoveContext, family, theta: ComponentDraw) -> Array:
    """``log p0(theta)`` (T,) of components ``theta`` under the chain's component prior."""
    return family.log_density(context.prior, context.prior_factor.log_det, theta)


def launched_tries(inputs: TryInputs, family) -> Tries:
    """The launched kernel's tries: each side from the launch's posterior or the prior."""
    plan, context = inputs.plan, inputs.context
    bartlett, normals = inputs.bartlett, inputs.normals
    proposal = plan.launch
    tries = normals.shape[0] - 1
    n_dims = normals.shape[-1]
    proposal_factor = family.factorise(proposal.posterior.scale)

    def pick(launched, prior):  # each try's side from the launch's posterior or the prior
        mask = plan.from_prior.reshape(plan.from_prior.shape + (1,) * (launched.ndim - 1))
        return jnp.where(mask, jnp.broadcast_to(prior, launched.shape), launched)

    posteriors = jax.tree_util.tree_map(pick, proposal.posterior, context.prior)
    factors = jax.tree_util.tree_map(pick, proposal_factor, context.prior_factor)
    tried = jax.vmap(family.draw)(posteriors.mean, posteriors.shrinkage, factors,
                                  jax.tree_util.tree_map(lambda a: a[:tries], bartlett),
                                  normals[:tries, :, n_dims])                   # (tries, 2)
    theta = jax.tree_util.tree_map(lambda t, r: jnp.concatenate([t, r[None]]), tried,
                                   inputs.refreshed)

    def minus_log_g(theta):  # the defensive mixture's proposal density, both sides
        return -jnp.sum(jnp.logaddexp(
            jnp.log1p(-DEFENSIVE_SHARE) + family.log_density(
                proposal.posterior, proposal_factor.log_det, theta),
            jnp.log(DEFENSIVE_SHARE) + prior_log_density(context, family, theta)))

    merged_term = family.log_marginal(context.prior, context.prior_factor,
                                      family.posterior(context.prior, inputs.whole),
                                      inputs.whole.counts)[0]
    return Tries(theta, jax.vmap(minus_log_g)(theta), merged_term, proposal.log_share)


def moment_tries(inputs: TryInputs, family) -> Tries:
    """The moment-matching kernel's tries, and the union's likelihood at the combined
    parameters."""
    plan, context = inputs.plan, inputs.context
    normals, refreshed = inputs.normals, inputs.refreshed
    features, weight = context.features, context.weight
    dtype = features.dtype
    tries = normals.shape[0] - 1
    n_dims = normals.shape[-1]
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
    merged_term = prior_log_density(context, family, merged)[0] + jnp.sum(
        jnp.where(plan.in_set, weight * log_f_union, 0.0))
    return Tries(theta, auxiliary, merged_term, jnp.full(2, -jnp.log(2.0), dtype))
