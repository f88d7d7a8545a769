"""Running a model-selection grid: every (covariance type, K, restart) in one compiled program.

The grid runs as a batch of :func:`~bayesgmm.core.em.fit_batch` under the
:class:`~bayesgmm.core.covariance.Mixed` family: each fit carries its own covariance type, its
own K (padded to the largest K with components of weight exactly 0) and its own start. One
program serves the whole grid, because XLA's compile time, not arithmetic, is what a sweep of
modest size costs (figures in ``benchmarks/README.md``). Every covariance type starts from the
same draws for a given (K, restart), as mclust starts every model from one hierarchical
clustering.

**Screening** (large data). Fitting every restart of every (type, K) to convergence on all rows
is the cost a sweep cannot avoid without it. With ``screen_rows`` set and more rows than twice
that, the sweep is two batches of one compiled program:

1. every (type, K, restart) runs EM to convergence on a uniform random sample of
   ``screen_rows`` rows (rounded up to whole blocks: by less than 7% from 1,024 rows on), and
   the best restart of each (type, K) on the sample is kept (the highest lower bound among
   non-degenerate restarts, as without screening);
2. that fit alone is continued by EM on all rows, to convergence.

This is the emEM strategy of Biernacki, Celeux & Govaert (2003, "Choosing starting values for
the EM algorithm for getting the highest likelihood in multivariate Gaussian mixture models"):
cheap runs choose among starts, one long run finishes, with the cheap runs made cheap by a
subsample, as mclust initialises on a subset of large data. What changes is which restart
wins: the one best on the sample, not on all rows.

*One program for both batches.* The rows are reordered so that the sample fills the leading
blocks, and :func:`~bayesgmm.core.em.fit_batch` takes a traced ``final`` flag
(:class:`~bayesgmm.core.em.FitInputs`): False starts from the draws and sums over the sample's
blocks only (a traced block count), True continues the given fits over all blocks. Both
batches run in runs of one size under one :class:`~bayesgmm.core.em.EMConfig`, so the second
batch reuses the first one's compiled program: compiling a second program had cost about as
much as running it. Screening is off with missing values (their blocks group rows by pattern)
and when the rows are sharded over several devices or processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from bayesgmm.core.covariance import FAMILIES, MIXED_KINDS, Mixed
from bayesgmm.core.em import BatchResult, EMConfig, FitInputs, InitOverride
from bayesgmm.core.init import init_draws
from bayesgmm.core.parameters import ConjugatePrior, MixtureParams
from bayesgmm.core.restart_choice import choose_restart
from bayesgmm.engine.parallel import data_mesh, multi_process
from bayesgmm.engine.preprocessing import block_layout
from bayesgmm.engine.prior import resolve_prior
from bayesgmm.engine.training import TrainingData, fits_per_run, most_starts

#: Rows of the screening sample with ``screen_rows='auto'``; screening applies above twice
#: this many rows.
AUTO_SCREEN_ROWS = 10_000

MIXED = Mixed()


@dataclass(frozen=True)
class Grid:
    """The fits of a sweep. Pairs (type, K) are in table order (type, then K); fits are in the
    order K, restart, type, so that the types sharing a start sit together in a run of the
    program (:func:`~bayesgmm.core.em.fit_batch` computes a shared start once)."""

    types: list[str]
    ks: list[int]
    n_init: int

    @property
    def pairs(self) -> list[tuple[str, int]]:
        return [(t, k) for t in self.types for k in self.ks]

    def layout(self, n_init: int) -> dict[str, np.ndarray]:
        """Per fit: ``pair`` (index into :attr:`pairs`), ``start`` (K position x n_init +
        restart), ``kind`` (index into ``MIXED_KINDS``) and ``active`` (fits, max K)."""
        k_pos, restart, t = (a.ravel() for a in np.meshgrid(
            np.arange(len(self.ks)), np.arange(n_init), np.arange(len(self.types)),
            indexing="ij"))
        codes = np.array([MIXED_KINDS.index(name) for name in self.types])
        return dict(pair=t * len(self.ks) + k_pos, start=k_pos * n_init + restart,
                    kind=codes[t],
                    active=np.arange(max(self.ks))[None, :] < np.array(self.ks)[k_pos, None])


@dataclass
class TypeFits:
    """One covariance type's part of a sweep.

    Attributes
    ----------
    result : :class:`BatchResult` (numpy) with one fit per K of the grid, in the type's own
        parameter formats: the chosen restart (screened: its continuation on all rows)
    n_degenerate_inits : (len(ks),) int, restarts that ended degenerate (screened: on the
        sample)
    """

    result: BatchResult
    n_degenerate_inits: np.ndarray


@dataclass(frozen=True)
class Screening:
    """How a screened sweep lays out its rows: the sample fills the first ``sample_blocks``
    blocks of ``block_rows`` rows (so ``screen_rows`` rounded up to whole blocks)."""

    sample_blocks: int
    block_rows: int

    @property
    def sample_rows(self) -> int:
        return self.sample_blocks * self.block_rows


def screening_plan(screen_rows, data: TrainingData, dtype) -> Screening | None:
    """The screening layout, or None to fit every restart on all rows: ``screen_rows`` None,
    data of at most twice the sample, missing values, or rows sharded over several devices
    or processes."""
    if screen_rows is None:
        return None
    size = AUTO_SCREEN_ROWS if screen_rows == "auto" else screen_rows
    if not isinstance(size, int | np.integer) or isinstance(size, bool) or size < 1:
        raise ValueError(f"screen_rows={screen_rows!r} must be 'auto', None or a positive int")
    if multi_process() or data_mesh(data.n_rows) is not None or data.has_missing:
        return None
    n_dims = data.x.shape[1]
    plan = Screening(*block_layout(int(size), n_dims + MIXED.moments.n_features(n_dims),
                                   np.dtype(dtype).itemsize))
    return plan if data.n_rows > 2 * plan.sample_rows else None


@dataclass(frozen=True)
class SweepSettings:
    """Static settings of :func:`fit_grid`: the compute ``dtype``, EM's ``reg_covar``,
    ``tol``, ``init`` (the start method) and ``max_iter``, the ``prior`` (as
    :func:`~bayesgmm.engine.prior.resolve_prior` takes it) and ``screen_rows``
    (:func:`screening_plan`)."""

    dtype: Any
    reg_covar: float
    tol: float
    init: str
    max_iter: int
    prior: Any = None
    screen_rows: Any = None


def fit_grid(data: TrainingData, grid: Grid, settings: SweepSettings, *, seed: int,
             progress) -> dict[str, TypeFits]:
    """Fit every (type, K, restart) of ``grid`` and keep the best restart of each (type, K).

    ``progress`` is a tqdm-like bar advanced once per batch. Must run inside
    ``compute_context(settings.dtype)``.
    """
    dtype, prior = settings.dtype, settings.prior
    plan = screening_plan(settings.screen_rows, data, dtype)
    draws = init_draws([seed, 0], len(grid.ks) * grid.n_init, settings.init, max(grid.ks))
    config = EMConfig(MIXED, settings.init, settings.max_iter, summarise=plan is None,
                      sample_blocks=None if plan is None else plan.sample_blocks)
    options = dict(dtype=dtype, reg_covar=settings.reg_covar, tol=settings.tol)
    fits, n_pairs = grid.layout(grid.n_init), len(grid.pairs)
    override = InitOverride()
    if plan is not None:
        data = _sample_first(data, plan, np.random.default_rng([seed, 1]))
        options["run_size"] = fits_per_run(n_pairs)
        options["n_starts"] = most_starts(fits["start"], options["run_size"])
        shape = (len(fits["pair"]), max(grid.ks), data.x.shape[1])
        override = InitOverride(np.zeros(shape[:2]), np.zeros(shape),  # the sample starts
                                *(np.zeros((*shape, shape[-1])),) * 2)  # from draws, not these
    progress.set_postfix_str(f"{len(fits['pair'])} fits on "
                             f"{data.n_rows if plan is None else plan.sample_rows:,} rows")
    first = data.fit(config, FitInputs(
        draws, fits["active"], override, _mixed_prior(prior, grid, fits["pair"], data, dtype),
        fits["kind"], fits["start"], final=None if plan is None else False), **options)
    progress.update()
    of_pair = [np.flatnonzero(fits["pair"] == p) for p in range(n_pairs)]
    n_degenerate = np.array([first.degenerate[i].any(axis=1).sum() for i in of_pair])
    final = _take(first, [_best_restart(first, i) for i in of_pair])  # in pair order
    if plan is not None:
        progress.set_postfix_str(f"{n_pairs} fits on all {data.n_rows:,} rows")
        one = grid.layout(1)
        order = np.argsort(one["pair"])  # the layout's fits in pair order
        final = data.fit(config, FitInputs(
            draws[:1], one["active"][order], InitOverride(*final.state.params),
            _mixed_prior(prior, grid, np.arange(n_pairs), data, dtype), one["kind"][order],
            np.zeros(n_pairs, int), final=True), **options)
        progress.update()
    n_ks = len(grid.ks)
    return {name: TypeFits(_in_own_format(_take(final, range(t * n_ks, (t + 1) * n_ks)), name),
                           n_degenerate[t * n_ks:(t + 1) * n_ks])
            for t, name in enumerate(grid.types)}


def n_batches(screen_rows, data: TrainingData, dtype) -> int:
    """How many batches :func:`fit_grid` runs (for a progress bar)."""
    return 1 if screening_plan(screen_rows, data, dtype) is None else 2


def _sample_first(data: TrainingData, plan: Screening, rng: np.random.Generator
                  ) -> TrainingData:
    """``data`` reordered so that a uniform random sample of ``plan.sample_rows`` rows (in
    their original order) fills the first ``plan.sample_blocks`` blocks."""
    in_sample = np.zeros(data.n_rows, bool)
    in_sample[rng.choice(data.n_rows, plan.sample_rows, replace=False)] = True
    order = np.concatenate([np.flatnonzero(in_sample), np.flatnonzero(~in_sample)])
    return data.reordered(order, plan.block_rows)


def _best_restart(result: BatchResult, restarts: np.ndarray) -> int:
    """The batch index, among ``restarts`` (one (type, K)'s fits), of the restart that
    represents it: the best lower bound among non-degenerate restarts (all restarts if every
    one is degenerate)."""
    chosen, _ = choose_restart(result.state.lower_bound[restarts],
                               result.degenerate[restarts])
    return int(restarts[chosen])


def _take(result: BatchResult, index) -> BatchResult:
    index = np.asarray(list(index))
    return jax.tree_util.tree_map(lambda a: np.asarray(a)[index], result)


def _in_own_format(result: BatchResult, name: str) -> BatchResult:
    """Mixed-family parameters (full matrices) converted to type ``name``'s formats."""
    family = FAMILIES[name]
    params = result.state.params
    own = MixtureParams(params.weights, params.means, family.from_full(params.covariances),
                        family.from_full(params.precisions_cholesky))
    return result._replace(state=result.state._replace(params=own))


def _mixed_prior(prior, grid: Grid, pairs: np.ndarray, data: TrainingData,
                 dtype) -> ConjugatePrior | None:
    """The conjugate prior of every fit, given each fit's pair (the scale depends on the type
    and K), stacked, with the diag and spherical scalar scales as ``scale * I`` (see
    :class:`Mixed`)."""
    if prior is None:
        return None
    n_dims = data.x.shape[1]
    per_pair = []
    for name, k in grid.pairs:
        one = resolve_prior(prior, FAMILIES[name], data.x, k, data.scaling, dtype)
        scale = np.asarray(one.scale)
        if scale.ndim == 0:
            one = one._replace(scale=scale * np.eye(n_dims, dtype=scale.dtype))
        per_pair.append([np.asarray(leaf) for leaf in one])
    return ConjugatePrior(*(np.stack(leaves)[pairs] for leaves in zip(*per_pair, strict=True)))
