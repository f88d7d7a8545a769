"""Running the Gibbs sampler of :mod:`bayesgmm.core.gibbs` on a data set: the data-dependent
priors, dispersed starts, compiled chains on every core, and a progress bar.

Priors (standardised data ``y = (x - mean) / sd`` per feature; ``D`` features, ``R`` the
columns' ranges in those units; for ``diag``, each feature is its own one-dimensional problem
and ``D`` is 1 below)

=========================== ====================================================================
component means             ``mu_k | Sigma_k ~ N(0, Sigma_k / 0.01)``
component covariances       ``Sigma_k ~ inverse-Wishart(D + 4, S0)``
scale (hierarchical)        ``S0 ~ Wishart(D, V)``, ``V = (D + 4) / (100 D) diag(R^2)``
weights, default            ``K - 1 ~ BNB(1, 4, 3)`` on ``1..T``, ``eta | K ~ Dir(alpha / K)``,
                            ``alpha ~ F(6, 3)`` (a mixture of finite mixtures)
weights, DP                 ``K = T``, ``eta ~ Dir(alpha / T)``, ``alpha ~ Gamma(2, 4)``
weights, sparse             ``K = T``, ``eta ~ Dir(e0)``, ``e0 ~ Gamma(10, 1000)``
=========================== ====================================================================

Why these
    The covariance prior is that of Malsiner-Walli, Frühwirth-Schnatter & Grün (2016) and the
    telescope package (Frühwirth-Schnatter et al. 2021), in the usual inverse-Wishart
    parametrisation: their ``c0 = 2.5 + (D - 1) / 2`` is ``dof = D + 4`` (finite variances; the
    covariances' eigenvalues are kept away from 0), their ``g0 = 0.5 + (D - 1) / 2`` and
    ``G0 = 100 g0 / c0 diag(1 / R^2)`` make ``E[S0] = (D + 4) / 100 diag(R^2)``, so that a
    priori a cluster's variance is about 1/75 of a feature's squared range (a fiftieth of it
    in one dimension): clusters far smaller than the data are expected, and the hierarchy lets
    the data set the common scale. The mean prior is the conjugate one (the sampler
    integrates the parameters out in its split-merge moves); its shrinkage 0.01, mclust's
    default, gives a prior standard deviation of a cluster's mean of 10 cluster standard
    deviations: weak, centred on the data. The weight priors are Frühwirth-Schnatter et al.'s
    (2021) recommendation for estimating the number of clusters (a dynamic mixture of finite
    mixtures, whose posterior on the number of occupied clusters does not inflate with N as
    the DP's does), Escobar & West's (1995) for the DP, and Malsiner-Walli et al.'s (2016) for
    the sparse finite mixture.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

import jax
import numpy as np

from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.core.chains import ChainSummary, DrawRecord, run_block, start_chains
from bayesgmm.core.conjugate import CONJUGATE_FAMILIES
from bayesgmm.core.conjugate_draws import ScaleHyperprior
from bayesgmm.core.covariance import FAMILIES
from bayesgmm.core.gibbs import GibbsConfig, Hyperparameters, MixtureData
from bayesgmm.core.init import init_draws
from bayesgmm.core.parameters import ConjugatePrior
from bayesgmm.core.partition import WeightPrior, log_k_prior
from bayesgmm.core.variates import fold_in, make_seed, split
from bayesgmm.engine.bayes.convergence import bulk_ess, label_invariant_quantities, rank_rhat
from bayesgmm.engine.preprocessing import feature_rows, round_up_size

#: Prior shrinkage of the component means (pseudo-observations; mclust's default).
MEAN_SHRINKAGE = 0.01
#: Metropolis-Hastings steps on the concentration per sweep. Each costs a few T x T lgamma
#: evaluations; with balanced clusters on large data the concentration's posterior is wide
#: (alpha's F(6, 3) prior tail), and 2 steps per sweep left its ESS at 8 in 400 draws.
CONCENTRATION_STEPS = 10


def default_hyperparameters(y: np.ndarray, covariance_type: str, weights: WeightPrior,
                            n_components: int) -> Hyperparameters:
    """The priors of the module docstring for standardised data ``y`` (N, D), as numpy."""
    family = CONJUGATE_FAMILIES[covariance_type]
    n_dims = y.shape[1]
    effective = family.problem_dims(n_dims)
    ranges = np.nanmax(y, axis=0) - np.nanmin(y, axis=0)
    ranges = np.where(ranges > 0, ranges, 1.0)
    variances = (effective + 4.0) / (100.0 * effective) * ranges**2
    scale_dof = float(effective)
    scale = family.scale_of_variances(variances)
    scale_prior = ScaleHyperprior(np.asarray(scale_dof), scale,
                                  family.scale_of_variances(1.0 / variances))
    start = scale_dof * scale
    prior = ConjugatePrior(np.zeros(n_dims), np.asarray(MEAN_SHRINKAGE),
                           np.asarray(effective + 4.0), start)
    return Hyperparameters(prior, scale_prior, log_k_prior(weights, n_components),
                           weights.parameters())


def chain_starts(num_chains: int, n_components: int) -> np.ndarray:
    """Numbers of clusters the chains start from: geometrically spread from 1 to T (1, 2, 5
    and 10 for four chains and T = 10), k-means++ seeds. Chains from below have to find
    clusters by splitting, the chain from T (over-fitted) has to lose them by merging, so
    R-hat sees chains that have not found the same posterior. (Before the collapsed
    split-merge kernel the starts stopped at 4: on 20,000 rows of 8 clusters a chain started
    at 8 kept a ninth cluster, no merge accepted in 300 sweeps; with it, the chain started at
    20 on 1e5 x 8 reached 8 within the warm-up, ``benchmarks/gibbs.py --suite scale``.)
    """
    top = n_components
    if num_chains == 1:
        return np.array([min(top, 2)], np.int32)
    return np.round(np.geomspace(1, top, num_chains)).astype(np.int32)


@dataclass(frozen=True)
class SamplerSettings:
    """How long to run and how hard each sweep works (see :class:`~bayesgmm.core.gibbs.
    GibbsConfig`). ``None`` fields are chosen from the data size by :meth:`resolve`.

    The chains run ``num_warmup`` sweeps, then ``num_samples`` kept draws ``thinning`` sweeps
    apart; while the label-invariant diagnostics fail (R-hat above ``RHAT_TARGET`` or bulk ESS
    below ``ESS_PER_CHAIN_TARGET`` per chain) they are extended one block of draws
    (``DRAWS_PER_BLOCK``, or ``num_samples`` if fewer) at a time, checking after each, by at
    most ``max_extensions`` times the kept draws (``num_samples`` rounded up to whole blocks)
    per chain. (Extending by ``num_samples`` draws at a time could run almost ``num_samples``
    draws past the point where the targets were met.)
    """

    num_warmup: int = 500
    num_samples: int = 500
    num_chains: int = 4
    thinning: int = 5
    max_extensions: int = 5
    split_merge_moves: int | None = None
    split_merge_tries: int | None = None
    launch_iterations: int = 5

    def resolve(self, n_samples: int) -> SamplerSettings:
        """Split-merge work per sweep: 4 proposals of 2 tries on small data; fewer and single
        tries on large data, where a proposal's passes over the rows dominate a sweep."""
        moves = self.split_merge_moves
        if moves is None:
            moves = 4 if n_samples <= 10_000 else 2
        tries = self.split_merge_tries
        if tries is None:
            tries = 2 if n_samples <= 5_000 else 1
        return replace(self, split_merge_moves=moves, split_merge_tries=tries)


#: The extension rule's targets (Vehtari et al. 2021).
RHAT_TARGET = 1.01
ESS_PER_CHAIN_TARGET = 100
#: Kept draws per compiled block of sweeps (the unit of progress and of extension).
DRAWS_PER_BLOCK = 100


@dataclass
class GibbsResult:
    """Draws of every chain: ``records`` (numpy :class:`~bayesgmm.core.chains.DrawRecord`,
    leading axes (chains, draws), standardised units), acceptance totals and timings."""

    records: DrawRecord
    summary: ChainSummary
    config: GibbsConfig
    hyper: Hyperparameters
    info: dict = field(default_factory=dict)


# ---------------------------------------------------------------- compiled chains

#: XLA options of the sampler's programs: XLA's older CPU fusion emitters. They compile the
#: Gibbs program of Old Faithful in 5.3 s instead of 7.3 s at the same run time per sweep
#: (0.9-1.0 ms); a cold default fit took 14.1-15.2 s instead of 17.6-18.4 s, and sweeps on
#: 20k x 8 rows 20.4-20.7 ms instead of 24-31 ms (fresh processes, compile cache off, 2 cores).
#: Not for every program: variational inference on 1e5 x 8 ran about 25% slower with them
#: (1.36-1.67 s against 1.08-1.33 s per warm fit). The options are the program's own (the
#: user's XLA flags are untouched); they are debug options that every backend parses and only
#: the CPU compiler reads.
COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


@persistent_jit(static_argnames=("config",), compiler_options=COMPILER_OPTIONS)
def _start(draws, n_start, data, hyper, *, config):
    return start_chains(draws, n_start, data, hyper, config)


@persistent_jit(static_argnames=("config", "n_kept"), compiler_options=COMPILER_OPTIONS)
def _block(seed, states, data, hyper, thin, *, config, n_kept):
    return run_block(seed, states, data, hyper, config, n_kept, thin)


def _groups(num_chains: int) -> int:
    """Chain groups run concurrently, one per CPU core (JAX releases the GIL while a
    compiled program runs; vmapped chains in one program used one core): the largest divisor
    of ``num_chains`` not above the core count. One group on an accelerator."""
    if jax.default_backend() != "cpu":
        return 1
    cores = max(1, os.cpu_count() or 1)
    return max(d for d in range(1, num_chains + 1) if num_chains % d == 0 and d <= cores)


_ROWS_PADDED_LIKE: ContextVar[int | None] = ContextVar("rows_padded_like", default=None)


@contextmanager
def rows_padded_like(n_rows: int) -> Iterator[None]:
    """Inside, the sampler pads a data set of at most ``n_rows`` rows to as many rows as
    ``n_rows`` rows would get, so that a fit of part of a data set (a training split) runs
    the compiled program of the whole one: compiling costs seconds, and the extra
    zero-weight rows cost a fraction of a sweep (``benchmarks/sweep_cost.py``)."""
    token = _ROWS_PADDED_LIKE.set(n_rows)
    try:
        yield
    finally:
        _ROWS_PADDED_LIKE.reset(token)


def padded_rows(n_rows: int) -> int:
    """The rows a sampler's data set of ``n_rows`` rows is padded to: the shared size
    (:func:`~bayesgmm.engine.preprocessing.round_up_size`), or that of the whole data set
    inside :func:`rows_padded_like`."""
    like = _ROWS_PADDED_LIKE.get()
    return round_up_size(like if like is not None and like >= n_rows else n_rows)


def mixture_data(y: np.ndarray, covariance_type: str,
                 n_padded: int | None = None) -> MixtureData:
    """Feature rows of ``y`` (N, D) for the family, padded with zero-weight rows to a shared
    size (:func:`padded_rows`: at most ~6% padding, more inside :func:`rows_padded_like`) so
    that data sets of similar size reuse one compiled program, or to ``n_padded`` (>= N) rows
    if given.
    Call inside ``jax.enable_x64``."""
    n_rows = y.shape[0]
    padded = np.zeros((n_padded or padded_rows(n_rows), y.shape[1]))
    padded[:n_rows] = y
    weight = np.zeros(padded.shape[0])
    weight[:n_rows] = 1.0
    features = feature_rows(padded, FAMILIES[covariance_type])  # a cached program, not eager
    return MixtureData(features, jax.device_put(weight))


@dataclass(frozen=True)
class BlockSchedule:
    """Static settings of the compiled blocks of sweeps: the sampler's ``config``, ``sweeps``
    per block, and ``thinning`` sweeps between kept draws (:attr:`n_kept` per block)."""

    config: GibbsConfig
    sweeps: int
    thinning: int

    @property
    def n_kept(self) -> int:
        return self.sweeps // self.thinning


class _Chains:
    """The chains of one group (one thread): their states, and the records kept so far.
    ``draws`` and ``starts`` are the group's k-means++ uniforms and starting numbers of
    clusters (:func:`chain_starts`); ``bar`` a progress bar or None."""

    def __init__(self, seed, draws, starts, data: MixtureData, hyper: Hyperparameters,
                 schedule: BlockSchedule, bar):
        self.seed, self.data, self.hyper, self.schedule, self.bar = (seed, data, hyper,
                                                                     schedule, bar)
        self.done = 0
        with jax.enable_x64(True):
            self.states = _start(np.asarray(draws), np.asarray(starts), data, hyper,
                                 config=schedule.config)
        self.records, self.summaries = [], []

    def run(self, n_blocks: int, keep: bool) -> None:
        schedule = self.schedule
        with jax.enable_x64(True):  # thread-local: re-entered in the worker
            for _ in range(n_blocks):
                self.states, records, summary = _block(
                    fold_in(self.seed, self.done), self.states, self.data, self.hyper,
                    np.int32(schedule.thinning), config=schedule.config,
                    n_kept=schedule.n_kept)
                self.done += 1
                if keep:
                    self.records.append(jax.device_get(records))
                    self.summaries.append(jax.device_get(summary))
                else:
                    jax.block_until_ready(self.states)
                if self.bar is not None:
                    self.bar.update(schedule.sweeps)


def _converged(records: DrawRecord, fixed_concentration: bool) -> bool:
    """Whether every label-invariant quantity (:func:`~bayesgmm.engine.bayes.convergence.
    label_invariant_quantities`) has R-hat <= RHAT_TARGET and bulk ESS >= the target."""
    quantities = label_invariant_quantities(
        records.log_likelihood, None if fixed_concentration else records.concentration,
        np.exp(records.log_weights), records.counts)
    n_chains = records.counts.shape[0]
    for draws in quantities.values():
        if np.ptp(draws) == 0:
            continue
        if rank_rhat(draws) > RHAT_TARGET or bulk_ess(draws) < ESS_PER_CHAIN_TARGET * n_chains:
            return False
    return True


def run_gibbs(y: np.ndarray, covariance_type: str, weights: WeightPrior, n_components: int,
              seed: int, settings: SamplerSettings, progress_bar: bool) -> GibbsResult:
    """Fit standardised data ``y`` (N, D) by the Gibbs sampler (see :class:`SamplerSettings`
    for the run length), in float64 whatever the caller's x64 setting (the global setting
    is not changed). Chain groups run in threads, one per core."""
    settings = settings.resolve(y.shape[0])
    config = GibbsConfig(covariance_type, n_components, settings.split_merge_moves,
                         settings.split_merge_tries, settings.launch_iterations,
                         concentration_steps=CONCENTRATION_STEPS)
    hyper_np = default_hyperparameters(y, covariance_type, weights, n_components)
    n_chains, thin = settings.num_chains, settings.thinning
    draws_per_block = min(settings.num_samples, DRAWS_PER_BLOCK)
    block = draws_per_block * thin
    warm_blocks = -(-settings.num_warmup // block)
    sample_blocks = -(-settings.num_samples // draws_per_block)
    groups = _groups(n_chains)
    per_group = n_chains // groups
    starts = chain_starts(n_chains, n_components)
    draws = init_draws(seed, n_chains, "k-means++", n_components)
    bar = None
    if progress_bar:
        from tqdm.auto import tqdm
        bar = tqdm(total=(warm_blocks + sample_blocks) * block,
                   desc=f"Gibbs ({n_chains} chains, sweeps)")
    began = time.perf_counter()
    with jax.enable_x64(True):
        data = mixture_data(y, covariance_type)
        hyper = jax.tree_util.tree_map(lambda a: jax.device_put(np.asarray(a, np.float64)),
                                       hyper_np)
        seeds = split(make_seed(seed), groups)
        schedule = BlockSchedule(config, block, thin)
        chains = [_Chains(seeds[g], draws[g * per_group:(g + 1) * per_group],
                          starts[g * per_group:(g + 1) * per_group], data, hyper, schedule,
                          bar if g == 0 else None) for g in range(groups)]

    def in_parallel(n_blocks: int, keep: bool) -> None:
        if groups == 1:
            chains[0].run(n_blocks, keep)
            return
        with ThreadPoolExecutor(groups) as pool:
            list(pool.map(lambda c: c.run(n_blocks, keep), chains))

    def gathered() -> DrawRecord:
        per_chain = [jax.tree_util.tree_map(lambda *a: np.concatenate(a, axis=1), *c.records)
                     for c in chains]
        return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *per_chain)

    extra_blocks = 0
    try:
        in_parallel(warm_blocks, keep=False)
        in_parallel(sample_blocks, keep=True)
        records = gathered()
        while (extra_blocks < settings.max_extensions * sample_blocks
               and not _converged(records, weights.concentration is not None)):
            extra_blocks += 1
            if bar is not None:
                bar.total += block
                bar.set_postfix(extra_draws=extra_blocks * draws_per_block)
            in_parallel(1, keep=True)
            records = gathered()
    finally:
        if bar is not None:
            bar.close()
    summary = jax.tree_util.tree_map(  # totals over blocks, chains of every group in order
        lambda *a: np.concatenate(a),
        *[jax.tree_util.tree_map(lambda *b: np.sum(b, axis=0), *c.summaries) for c in chains])
    moves = summary.moves.sum(axis=0)
    info = {"seconds": time.perf_counter() - began,
            "n_sweeps": (warm_blocks + sample_blocks + extra_blocks) * block,
            "extra_draws": extra_blocks * draws_per_block,
            "split_acceptance": float(moves[1] / max(moves[0], 1)),
            "merge_acceptance": float(moves[3] / max(moves[2], 1)),
            "starts": starts, "chain_groups": groups, "settings": settings}
    return GibbsResult(records, summary, config, hyper_np, info)


# ---------------------------------------------------------------- draws

def flatten_chains(values: np.ndarray) -> np.ndarray:
    """(chains, draws, ...) -> (chains * draws, ...), chain-major."""
    return np.asarray(values).reshape((-1, *np.shape(values)[2:]))


def relabel_reference(prob: np.ndarray, n_occupied: np.ndarray, log_likelihood: np.ndarray,
                      weights: np.ndarray) -> np.ndarray:
    """The starting reference (n, T) of Stephens' relabelling: the memberships of the draw
    with the highest log-likelihood among those with the modal number of occupied clusters,
    its components ordered by weight (largest first), so that labels follow that order.

    prob : (S, n, T) per-draw memberships; n_occupied, log_likelihood : (S,); weights (S, T)
    """
    values, counts = np.unique(n_occupied, return_counts=True)
    modal = values[np.argmax(counts)]
    candidates = np.flatnonzero(n_occupied == modal)
    best = candidates[np.argmax(log_likelihood[candidates])]
    order = np.argsort(-weights[best], kind="stable")
    return prob[best][:, order]
