"""Running Gibbs chains in blocks: ``block`` sweeps of :func:`bayesgmm.core.gibbs.sweep` per
call, every chain at once, keeping every ``thin``-th state.

One compiled program (one block) serves the warm-up, the draws and any extension of the
chains: the host calls it repeatedly, carrying the states, so that it can report progress and
decide whether to go on (:mod:`bayesgmm.engine.bayes.gibbs`). The sweep's code appears once in the
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
from bayesgmm.core.split_merge import COLLAPSED
from bayesgmm.core.split_merge_collapsed import row_order
from bayesgmm.core.variates import fold_in

#: The stream of a block's row order: a fold-in value no sweep index reaches.
ORDER_STREAM = 2**31 - 1


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
              config: GibbsConfig, n_kept: int, thin: Array
              ) -> tuple[GibbsState, DrawRecord, ChainSummary]:
    """``n_kept * thin`` sweeps of every chain from ``states``; returns the final states, the
    states entering every ``thin``-th sweep (records with leading axes (C, n_kept)) and the
    block's acceptance totals.

    ``thin`` is traced (an int32 scalar), so one compiled program serves every thinning: the
    sweeps run in a ``while_loop``, and sweep i writes its entering state to record slot
    ceil(i / thin), which the first sweep of the next thinning interval overwrites (the last
    interval writes to a spare slot that is dropped).
    """
    n_chains = states.concentration.shape[0]
    if COLLAPSED in config.split_merge_kernels and data.order is None:
        # One order of the rows per block of sweeps (a sort of N keys; per sweep it cost
        # ~10% of a sweep at 1e5 rows): drawn independently of the state, it leaves every
        # move valid (:mod:`bayesgmm.core.split_merge_collapsed`).
        data = data._replace(order=row_order(fold_in(seed, ORDER_STREAM), data.weight.shape[0],
                                             data.features.dtype))
    template = _record(states, jnp.zeros(n_chains, states.concentration.dtype))
    buffer = jax.tree_util.tree_map(lambda r: jnp.zeros((n_kept + 1, *r.shape), r.dtype),
                                    template)
    start = ChainSummary(jnp.zeros((n_chains, 4), jnp.int32), jnp.zeros(n_chains, jnp.int32))

    def one(i, carry):
        states, tally, buffer = carry
        new_states, info = sweep(fold_in(seed, i), states, data, hyper, config)
        tally = ChainSummary(tally.moves + info.moves,
                             tally.concentration_accepted + info.concentration_accepted)
        slot = (i + thin - 1) // thin
        buffer = jax.tree_util.tree_map(
            lambda b, r: jax.lax.dynamic_update_index_in_dim(b, r, slot, 0), buffer,
            _record(states, info.log_likelihood))
        return new_states, tally, buffer

    states, tally, buffer = jax.lax.fori_loop(0, n_kept * thin, one, (states, start, buffer))
    records = jax.tree_util.tree_map(lambda r: jnp.swapaxes(r[:n_kept], 0, 1), buffer)
    return states, records, tally
