"""Running Gibbs chains: all sweeps of :func:`bayesgmm.core.gibbs.sweep` (warm-up, then
``thin`` sweeps per kept draw) in one ``lax.scan``, every chain at once.

A kept draw is the state entering a sweep, with the log-likelihood of its parameters that the
sweep's assignment step computes anyway (no extra pass over the rows); its partition
(``counts``), ``K``, concentration and parameters belong to one state, so they are one
posterior draw. The sweep's code appears once in the compiled program (XLA compile time
grows with every copy): kept draws are written into a buffer carried by the scan.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from bayesgmm.core.gibbs import (
    GibbsConfig,
    GibbsState,
    Hyperparameters,
    MixtureData,
    init_state,
    sweep,
)
from bayesgmm.core.variates import split

#: Sweeps between progress reports from inside a compiled chain.
PROGRESS_EVERY = 50


class DrawRecord(NamedTuple):
    """One kept draw of a chain (with a leading draw axis once stacked).

    Attributes
    ----------
    log_weights : (T,); means : (T, D)
    covariance_factor : (T, D, D) full (``Sigma = G G'``), (T, D) diag (standard deviations)
    counts : (T,) rows per component
    n_components : () ``K``; concentration : (); log_likelihood : ()
    """

    log_weights: Array
    means: Array
    covariance_factor: Array
    counts: Array
    n_components: Array
    concentration: Array
    log_likelihood: Array


class ChainSummary(NamedTuple):
    """Totals over the sweeps after warm-up, per chain (split-merge and concentration
    acceptance)."""

    moves: Array                   # (C, 4) splits proposed, accepted; merges proposed, accepted
    concentration_accepted: Array  # (C,)


def _record(states: GibbsState, log_likelihood: Array) -> DrawRecord:
    return DrawRecord(states.log_weights, states.components.means,
                      states.components.covariance_factor, states.counts, states.n_components,
                      states.concentration, log_likelihood)


def run_chains(seed: Array, draws: Array, n_start: Array, chain_index: Array,
               data: MixtureData, hyper: Hyperparameters, config: GibbsConfig,
               num_warmup: int, num_samples: int, thin: int,
               report=None) -> tuple[DrawRecord, ChainSummary]:
    """Chains from :func:`~bayesgmm.core.gibbs.init_state` (``draws`` (C, U), ``n_start``
    (C,) components each): ``num_warmup`` sweeps, then ``num_samples`` kept draws ``thin``
    sweeps apart. Returns records with leading axes (C, num_samples).

    ``report(first_chain_index, sweep)`` (a host function, optional) is called every
    :data:`PROGRESS_EVERY` sweeps through ``jax.debug.callback``; ``chain_index`` (C,) numbers
    the chains (several groups of chains may run at once).
    """
    n_chains = n_start.shape[0]
    states = jax.vmap(init_state, in_axes=(0, 0, None, None, None))(
        draws, n_start, data, hyper, config)
    n_sweeps = num_warmup + num_samples * thin
    # The first sweep's log-likelihood is that of the seeded start, which is no draw.
    first = _record(states, jnp.zeros(n_chains, data.features.dtype))
    buffer = jax.tree_util.tree_map(
        lambda a: jnp.zeros((num_samples + 1, *a.shape), a.dtype), first)
    tally = ChainSummary(jnp.zeros((n_chains, 4), jnp.int32), jnp.zeros(n_chains, jnp.int32))

    def one(carry, inputs):
        states, buffer, tally = carry
        sweep_seed, index = inputs
        new_states, info = sweep(sweep_seed, states, data, hyper, config)
        after = index - num_warmup
        keep = (after >= 0) & (after % thin == 0)
        slot = jnp.where(keep, after // thin, num_samples)   # the spare last slot otherwise
        buffer = jax.tree_util.tree_map(lambda b, v: b.at[slot].set(v), buffer,
                                        _record(states, info.log_likelihood))
        counted = (after >= 0).astype(jnp.int32)
        tally = ChainSummary(tally.moves + counted * info.moves,
                             tally.concentration_accepted + counted * info.concentration_accepted)
        if report is not None:
            jax.lax.cond(index % PROGRESS_EVERY == 0,
                         lambda: jax.debug.callback(report, chain_index[0], index),
                         lambda: None)
        return (new_states, buffer, tally), None

    (_, buffer, tally), _ = jax.lax.scan(
        one, (states, buffer, tally), (split(seed, n_sweeps), jnp.arange(n_sweeps)))
    return jax.tree_util.tree_map(lambda b: jnp.swapaxes(b[:num_samples], 0, 1), buffer), tally
