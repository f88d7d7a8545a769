"""A Gibbs sampler for conjugate Gaussian mixtures that moves between numbers of clusters.

The model (stated as a NumPyro model in :mod:`bayesgmm.engine.bayes.conjugate`): weights from
:mod:`bayesgmm.core.partition` (by default a dynamic mixture of finite mixtures, ``K``
random), components from :mod:`bayesgmm.core.conjugate` (Normal-inverse-Wishart with a Wishart
prior on the scale), assignments ``z_i ~ Categorical(eta)`` and ``x_i ~ N(mu_z, Sigma_z)``.

One sweep (:func:`sweep`), in the BlackJAX shape ``(key, state) -> (state, info)``:

1. **Assignments** ``z_i | eta, theta``: one matrix product of the rows' features with the
   components' natural parameters (the EM E-step's form), one uniform per row. The sweep's
   statistics (counts, sums, second moments) are a second product, ``onehot(z)' features``.
2. **Compaction**: occupied components move to the first ``K+`` slots (a relabelling).
3. **Split-merge moves** (:mod:`bayesgmm.core.split_merge`): reversible-jump proposals on the
   partition and the involved clusters' parameters, with the weights and ``K`` integrated out,
   or on the partition alone (the collapsed kernel).
4. **Concentration** ``c | C``: random-walk Metropolis-Hastings on ``log c`` with ``K`` summed
   out.
5. **Number of components** ``K | C, c``: the telescoping step of Frühwirth-Schnatter,
   Malsiner-Walli & Grün (2021), when ``K`` is random.
6. **Components** ``theta_k | x_k`` from the Normal-inverse-Wishart posterior (occupied), the
   scale ``S0 | Sigma_occupied`` (Wishart), then the empty components from the prior given the
   new scale.
7. **Weights** ``eta | z, K ~ Dirichlet(gamma_K + n_1, ..., gamma_K + n_K)``, zero beyond K.

Steps 3-5 leave the posterior of the partition invariant with what 6-7 draw integrated out, and
6-7 are exact conditional draws of it, so the sweep leaves the joint posterior of
``(z, K, c, eta, theta, S0)`` invariant, up to the relabelling of step 2, which permutes
components. Label-invariant functions of the state (the partition, ``K+``, ``K``, ``c``, the
sorted weights, the likelihood) are what the sampler is checked on
(``tests/engine/test_gibbs_model.py``: a Geweke test and agreement with NumPyro's NUTS).

Why the split-merge moves
    Gibbs updates of the assignments alone change the number of occupied clusters only by
    emptying a component point by point, or by a prior draw for an empty component catching
    points. On Old Faithful, chains started at 1, 2, 5 and 10 clusters still disagreed after
    3,000 sweeps without them (R-hat 2.4 on I(K+ = 1)).

Shapes and randomness
    Every function here works on all chains at once: state arrays have a leading chain axis
    ``C``. Random numbers are drawn for all chains in one call per kind and only the
    deterministic per-chain work is vmapped: ``jax.random`` under ``vmap`` with a batch of keys
    became a loop in XLA, which cost more run time and compile time than the rest of a sweep on
    small data (measured here).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.core.conjugate import CONJUGATE_FAMILIES
from bayesgmm.core.conjugate_draws import ComponentDraw, ScaleHyperprior
from bayesgmm.core.init import kmeans_plusplus, lloyd
from bayesgmm.core.parameters import ConjugatePrior
from bayesgmm.core.partition import (
    WeightParameters,
    gamma_of_k,
    sample_n_components,
    update_concentration,
)
from bayesgmm.core.split_merge import COLLAPSED, LAUNCHED, MOMENT, split_merge
from bayesgmm.core.split_merge_launch import stats_of
from bayesgmm.core.split_merge_plan import MoveContext, MoveSettings
from bayesgmm.core.stats import SuffStats, natural_log_prob
from bayesgmm.core.variates import (
    inverse_cdf_choice,
    log_dirichlet,
    log_gamma,
    normal,
    split,
    uniform,
)


class GibbsConfig(NamedTuple):
    """Static settings of the sampler (hashable: the compiled program's key).

    Attributes
    ----------
    covariance_type : 'full' or 'diag'
    n_components : T, the number of component slots (the truncation of ``K``)
    split_merge_moves : split-merge proposals per sweep
    split_merge_tries : tries per proposal (multiple-try Metropolis)
    launch_iterations : EM iterations of a proposal's two-cluster launch
    split_merge_kernels : the split-merge kernels, one drawn uniformly per proposal
        (:data:`~bayesgmm.core.split_merge.LAUNCHED`, :data:`~bayesgmm.core.split_merge.MOMENT`,
        :data:`~bayesgmm.core.split_merge.COLLAPSED`). By default one proposal in four is the
        collapsed kernel's: on large clusters its merges are the only ones accepted (1e5 x 8),
        and on 300 rows it took a fit that had not converged after 2,500 extra draws per
        chain (R-hat 1.015 on I(K+ = 3)) to none (``benchmarks/gibbs.py --suite recovery``);
        on Old Faithful it costs ~0.6 ms per sweep of two chains.
    concentration_steps : Metropolis-Hastings steps on the concentration per sweep
    hierarchical_scale : whether ``S0`` has its Wishart prior (else it stays fixed)
    """

    covariance_type: str = "full"
    n_components: int = 10
    split_merge_moves: int = 4
    split_merge_tries: int = 4
    launch_iterations: int = 10
    split_merge_kernels: tuple = (LAUNCHED, COLLAPSED, LAUNCHED, MOMENT)
    concentration_steps: int = 2
    hierarchical_scale: bool = True

    @property
    def family(self):
        return CONJUGATE_FAMILIES[self.covariance_type]


class Hyperparameters(NamedTuple):
    """Per-fit inputs of the prior (a pytree; see :mod:`bayesgmm.core.conjugate`).

    Attributes
    ----------
    prior : component prior; its ``scale`` is the starting (or fixed) ``S0``
    scale_prior : the Wishart prior on ``S0``
    log_k_prior : (T,) ``log p(K)`` for ``K = 1..T`` (all mass on ``T`` when ``K`` is fixed)
    weights : the weight prior's other settings (arrays: every weight prior runs in one
        compiled program)
    """

    prior: ConjugatePrior
    scale_prior: ScaleHyperprior
    log_k_prior: Array
    weights: WeightParameters


class MixtureData(NamedTuple):
    """Rows as features ``[x, phi(x)]`` (N, D + F) and weights (N,) (0 for padding rows);
    ``order``, a random permutation of the rows (N,) int32 drawn independently of the state,
    orders the collapsed split-merge kernel's allocation (None: each sweep draws one)."""

    features: Array
    weight: Array
    order: Array | None = None


class GibbsState(NamedTuple):
    """State of the chains (a pytree; every field has a leading chain axis ``C``).

    Attributes
    ----------
    labels : (N,) int32 component of each row
    counts : (T,) rows per component (weighted), for ``labels``
    n_components : () int32, ``K`` (slots ``>= K`` have weight 0)
    log_weights : (T,) ``log eta`` (``-inf`` beyond ``K``)
    components : :class:`~bayesgmm.core.conjugate_draws.ComponentDraw`
    concentration : () ``c``
    scale : ``S0``, (D, D) full, (D,) diag
    """

    labels: Array
    counts: Array
    n_components: Array
    log_weights: Array
    components: ComponentDraw
    concentration: Array
    scale: Array


class SweepInfo(NamedTuple):
    """What one sweep reports, per chain.

    Attributes
    ----------
    log_likelihood : ``sum_i log p(x_i | eta, theta)`` of the parameters the sweep *started*
        from (computed in its assignment step)
    moves : (4,) int32 splits proposed, splits accepted, merges proposed, merges accepted
    concentration_accepted : () int32
    """

    log_likelihood: Array
    moves: Array
    concentration_accepted: Array


def _component_prior(hyper: Hyperparameters, scale: Array) -> ConjugatePrior:
    return hyper.prior._replace(scale=scale)


def _per_chain(tree, n_chains: int):
    """Broadcast every leaf to a leading chain axis."""
    return jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n_chains, *jnp.shape(a))),
                                  tree)


# ---------------------------------------------------------------- one chain's steps

def assign(data: MixtureData, state: GibbsState, uniforms: Array,
           config: GibbsConfig) -> tuple[Array, SuffStats, Array]:
    """Step 1 for one chain: labels ``z_i | eta, theta`` (N,), their statistics (T, ...) and
    the log-likelihood of the state's parameters (marginal over the labels)."""
    natural = config.family.natural(state.log_weights, state.components)
    log_prob = natural_log_prob(data.features, natural)                       # (N, T)
    labels = inverse_cdf_choice(log_prob, uniforms)
    log_norm = jax.nn.logsumexp(log_prob, axis=-1)
    onehot = jax.nn.one_hot(labels, config.n_components, dtype=data.features.dtype)
    log_likelihood = jnp.sum(jnp.where(data.weight > 0, data.weight * log_norm, 0.0))
    return labels, stats_of(data.features, data.weight, onehot), log_likelihood


def compact(labels: Array, stats: SuffStats) -> tuple[Array, SuffStats]:
    """Step 2 for one chain: relabel so that the occupied components come first (in order)."""
    order = jnp.argsort(stats.counts <= 0, stable=True)                       # new -> old
    rank = jnp.argsort(order)                                                  # old -> new
    permuted = jax.tree_util.tree_map(lambda a: a[order] if a.ndim else a, stats)
    return rank[labels].astype(labels.dtype), permuted


def parameter_gamma_shapes(stats: SuffStats, n_components: Array, concentration: Array,
                           hyper: Hyperparameters, config: GibbsConfig) -> Array:
    """Gamma shapes (M,) of one chain's step 6-7 draws: the Dirichlet weights (T), the
    components' Bartlett factors (T D) and the scale's (D)."""
    family = config.family
    n_dims = stats.sum_x.shape[-1]
    gamma = gamma_of_k(hyper.weights, concentration, config.n_components)[n_components - 1]
    n_occupied = jnp.sum(stats.counts > 0)
    return jnp.concatenate([
        gamma + stats.counts,
        family.gamma_shapes(hyper.prior.dof + stats.counts, n_dims).reshape(-1),
        family.scale_gamma_shapes(hyper.scale_prior, hyper.prior.dof, n_occupied).reshape(-1)])


def draw_parameters(stats: SuffStats, n_components: Array, scale: Array, log_gammas: Array,
                    normals: Array, hyper: Hyperparameters, config: GibbsConfig
                    ) -> tuple[ComponentDraw, Array, Array]:
    """Steps 6-7 for one chain, given its random numbers.

    Parameters
    ----------
    log_gammas : (M,) log Gamma variates of :func:`parameter_gamma_shapes`
    normals : (T + 1, D + 1, D) standard normals

    Returns the components, the new ``S0`` and the log weights (T,).
    """
    family = config.family
    n_slots = config.n_components
    n_dims = stats.sum_x.shape[-1]
    occupied = stats.counts > 0
    prior = _component_prior(hyper, scale)
    posterior = family.posterior(prior, stats)
    weight_gammas = log_gammas[:n_slots]
    bartlett = family.bartlett(log_gammas[n_slots:n_slots * (n_dims + 1)].reshape(
        n_slots, n_dims), normals[:n_slots, :n_dims])
    mean_normals = normals[:n_slots, n_dims]
    drawn = family.draw(posterior.mean, posterior.shrinkage, family.factorise(posterior.scale),
                        bartlett, mean_normals)
    if config.hierarchical_scale:
        new_scale = family.draw_scale(hyper.scale_prior, drawn.precision, occupied,
                                      log_gammas[n_slots * (n_dims + 1):],
                                      normals[n_slots, :n_dims])
        # Empty components: prior draws given the new scale (the same random numbers; their
        # Bartlett shapes are the prior's, as for the posterior of an empty component).
        empty = family.draw(jnp.broadcast_to(prior.mean, posterior.mean.shape),
                            jnp.broadcast_to(prior.shrinkage, (n_slots,)),
                            family.factorise(new_scale), bartlett, mean_normals)
        drawn = jax.tree_util.tree_map(
            lambda a, b: jnp.where(occupied.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
            drawn, empty)
    else:
        new_scale = scale
    log_weights = log_dirichlet(weight_gammas, jnp.arange(n_slots) < n_components)
    return drawn, new_scale, log_weights


# ---------------------------------------------------------------- all chains

def _move_contexts(data: MixtureData, hyper: Hyperparameters, scale: Array,
                   concentration: Array, config: GibbsConfig) -> MoveContext:
    n_chains = concentration.shape[0]
    prior = _per_chain(hyper.prior, n_chains)._replace(scale=scale)
    return MoveContext(data.features, data.weight, hyper.log_k_prior, prior,
                       jax.vmap(config.family.factorise)(scale), concentration, data.order)


def update_given_partition(seed: Array, labels: Array, stats: SuffStats, states: GibbsState,
                           data: MixtureData, hyper: Hyperparameters, config: GibbsConfig
                           ) -> tuple[GibbsState, Array, Array]:
    """Steps 3-7 for all chains from compact partitions; returns the new states, the
    split-merge tallies (C, 4) and the accepted concentration steps (C,)."""
    family = config.family
    n_chains = labels.shape[0]
    n_dims = stats.sum_x.shape[-1]
    dtype = data.features.dtype
    move_seed, scalar_seed, gamma_seed, normal_seed = split(seed, 4)
    labels, stats, tallies = split_merge(
        move_seed, labels, stats, _move_contexts(data, hyper, states.scale,
                                                states.concentration, config),
        config.split_merge_moves, MoveSettings(config.split_merge_tries,
                                               config.launch_iterations,
                                               config.n_components, family),
        hyper.weights, config.split_merge_kernels)
    n_total = jnp.sum(data.weight)
    steps = config.concentration_steps
    noise = normal(scalar_seed, (n_chains, 2 * steps + 1), dtype)
    uniforms = jax.scipy.stats.norm.cdf(noise[:, steps:])  # uniforms: one random call
    concentration, accepted = jax.vmap(
        lambda counts, c, z, u: update_concentration(
            hyper.weights, hyper.log_k_prior, counts, c, n_total, z, u))(
        stats.counts, states.concentration, noise[:, :steps], uniforms[:, :steps])
    # A fixed K is a p(K) with all its mass on T: the step then returns T.
    n_components = jax.vmap(lambda counts, c, u: sample_n_components(
        hyper.weights, hyper.log_k_prior, counts, c, n_total, u))(
        stats.counts, concentration, uniforms[:, steps])
    shapes = jax.vmap(parameter_gamma_shapes, in_axes=(0, 0, 0, None, None))(
        stats, n_components, concentration, hyper, config)
    log_gammas = log_gamma(gamma_seed, shapes)
    normals = normal(normal_seed, (n_chains, config.n_components + 1, n_dims + 1, n_dims),
                     dtype)
    components, scale, log_weights = jax.vmap(
        draw_parameters, in_axes=(0, 0, 0, 0, 0, None, None))(
        stats, n_components, states.scale, log_gammas, normals, hyper, config)
    new_states = GibbsState(labels, stats.counts, n_components.astype(jnp.int32), log_weights,
                            components, concentration, scale)
    return new_states, tallies, accepted


def sweep(seed: Array, states: GibbsState, data: MixtureData, hyper: Hyperparameters,
          config: GibbsConfig) -> tuple[GibbsState, SweepInfo]:
    """One sweep of every chain (module docstring): a pure function of the seed
    (:mod:`bayesgmm.core.variates`) and the states."""
    assign_seed, rest_seed = split(seed, 2)
    n_chains = states.concentration.shape[0]
    uniforms = uniform(assign_seed, (n_chains, data.weight.shape[0]), data.features.dtype)
    labels, stats, log_likelihood = jax.vmap(assign, in_axes=(None, 0, 0, None))(
        data, states, uniforms, config)
    labels, stats = jax.vmap(compact)(labels, stats)
    new_states, tallies, accepted = update_given_partition(rest_seed, labels, stats, states,
                                                           data, hyper, config)
    return new_states, SweepInfo(log_likelihood, tallies, accepted)


def init_state(draws: Array, n_start: Array, data: MixtureData, hyper: Hyperparameters,
               config: GibbsConfig) -> GibbsState:
    """One chain's starting state, to be followed by sweeps: ``n_start`` (traced, in
    ``1..T``) components of equal weight centred on the centres of a k-means fit (greedy
    k-means++ seeds from ``draws``, :func:`~bayesgmm.core.init.n_init_draws` uniforms for T
    seeds, then Lloyd's iterations), each with the prior's expected covariance
    ``S0 / (dof - D - 1)``; ``K = T``; the concentration's starting value. k-means rather than
    the seeds alone: a seed between two groups of rows, or two seeds in one group, would cut a
    group in two, a split that can outlive the warm-up on large data.

    It draws nothing: the first sweep does, so that the compiled chain holds the sweep's code
    once. Vmap it over chains.
    """
    family = config.family
    n_dims = family.variances(hyper.prior.scale).shape[-1]
    dtype = data.features.dtype
    x = data.features[:, :n_dims]
    active = jnp.arange(config.n_components) < n_start
    seeds = kmeans_plusplus(draws, x, data.weight, config.n_components)
    labels = lloyd(x, data.weight, x[seeds], active)
    members = jax.nn.one_hot(labels, config.n_components, dtype=dtype) * data.weight[:, None]
    sizes = jnp.sum(members, axis=0)
    centres = jnp.where((sizes > 0)[:, None], (members.T @ x) / jnp.maximum(sizes, 1.0)[:, None],
                        x[seeds])
    log_weights = jnp.where(active, -jnp.log(n_start.astype(dtype)), -jnp.inf)
    prior = hyper.prior
    # The prior mean of an inverse-Wishart of dimension p: scale / (dof - p - 1).
    spread = prior.dof - (family.problem_dims(n_dims) + 1)
    components = family.fixed(centres, prior.scale / spread)
    return GibbsState(jnp.zeros(x.shape[0], jnp.int32), jnp.zeros(config.n_components, dtype),
                      jnp.asarray(config.n_components, jnp.int32), log_weights, components,
                      jnp.asarray(hyper.weights.initial, dtype), prior.scale)
