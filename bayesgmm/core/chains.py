"""Running Gibbs chains in blocks: ``block`` sweeps of :func:`bayesgmm.core.gibbs.sweep` per
call, every chain at once, keeping every ``thin``-th state.

One compiled program (one block) serves the warm-up, the draws and any extension of the
chains: the host calls it repeatedly, carrying the states, so that it can report progress and
decide whether to go on (:mod:`bayesgmm.bayes.gibbs`). The sweep's code appears once in the
program (XLA compile time grows with every copy).

A kept draw is the state entering a sweep, with the log-likelihood of its parameters that the
sweep's assignment step computes anyway (no extra pass over the rows); its partition
(``counts``), ``K``, concentration and parameters belong to one state, so they are one
posterior draw.
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


class DrawRecord(NamedTuple):
    """One kept draw of a chain (with leading axes (chains, draws) once stacked).

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
    """Totals over the sweeps of a block, per chain (split-merge and concentration
    acceptance)."""

    moves: Array                   # (C, 4) splits proposed, accepted; merges proposed, accepted
    concentration_accepted: Array  # (C,)


def _record(states: GibbsState, log_likelihood: Array) -> DrawRecord:
    return DrawRecord(states.log_weights, states.components.means,
                      states.components.covariance_factor, states.counts, states.n_components,
                      states.concentration, log_likelihood)


def start_chains(draws: Array, n_start: Array, data: MixtureData, hyper: Hyperparameters,
                 config: GibbsConfig) -> GibbsState:
    """Starting states of the chains (leading axis C): ``draws`` (C, U), ``n_start`` (C,)
    clusters each (:func:`~bayesgmm.core.gibbs.init_state`)."""
    return jax.vmap(init_state, in_axes=(0, 0, None, None, None))(draws, n_start, data, hyper,
                                                                  config)


def run_block(seed: Array, states: GibbsState, data: MixtureData, hyper: Hyperparameters,
              config: GibbsConfig, block: int, thin: int
              ) -> tuple[GibbsState, DrawRecord, ChainSummary]:
    """``block`` sweeps of every chain from ``states``; returns the final states, the states
    entering every ``thin``-th sweep (records with leading axes (C, block // thin)) and the
    block's acceptance totals."""
    n_chains = states.concentration.shape[0]
    n_kept = block // thin

    def one(carry, sweep_seed):
        states, tally = carry
        new_states, info = sweep(sweep_seed, states, data, hyper, config)
        tally = ChainSummary(tally.moves + info.moves,
                             tally.concentration_accepted + info.concentration_accepted)
        return (new_states, tally), _record(states, info.log_likelihood)

    start = ChainSummary(jnp.zeros((n_chains, 4), jnp.int32), jnp.zeros(n_chains, jnp.int32))
    (states, tally), records = jax.lax.scan(one, (states, start), split(seed, block))
    records = jax.tree_util.tree_map(lambda r: jnp.swapaxes(r[::thin][:n_kept], 0, 1), records)
    return states, records, tally
