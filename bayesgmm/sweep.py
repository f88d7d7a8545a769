"""Running a model-selection grid: every (covariance type, K, restart) in one compiled program.

The grid runs as a batch of :func:`~bayesgmm.core.em.fit_batch` under the
:class:`~bayesgmm.core.covariance.Mixed` family: each fit carries its own covariance type, its
own K (padded to the largest K with components of weight exactly 0) and its own start. One
program serves the whole grid, because XLA's compile time, not arithmetic, is what a sweep of
modest size costs (about 2 s per program on 2 CPU cores, against well under a second of EM on
1e4 rows). Every covariance type starts from the same draws for a given (K, restart), as mclust
starts every model from one hierarchical clustering.

**Screening** (large data). Fitting every restart of every (type, K) to convergence on all rows
is the cost a sweep cannot avoid without it. With ``screen_rows`` set and more rows than twice
that, the sweep is two batches of the same program:

1. every (type, K, restart) runs EM to convergence on a uniform random sample of
   ``screen_rows`` rows, and the best restart of each (type, K) on the sample is kept (the
   highest lower bound among non-degenerate restarts, as without screening);
2. that fit alone is continued by EM on all rows, to convergence.

This is the emEM strategy of Biernacki, Celeux & Govaert (2003, "Choosing starting values for
the EM algorithm for getting the highest likelihood in multivariate Gaussian mixture models"):
cheap runs choose among starts, one long run finishes, with the cheap runs made cheap by a
subsample, as mclust initialises on a subset of large data. What changes is which restart
wins: the one best on the sample, not on all rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from bayesgmm.core.covariance import (
    FAMILIES,
    MIXED_KINDS,
    ConjugatePrior,
    Mixed,
    MixtureParams,
)
from bayesgmm.core.em import BatchResult, InitOverride, best_restart, usable_restarts
from bayesgmm.core.init import init_draws
from bayesgmm.parallel import multi_process
from bayesgmm.prior import resolve_prior
from bayesgmm.training import TrainingData

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


def screening_rows(screen_rows, n_rows: int) -> int | None:
    """The sample size the sweep screens restarts on, or None to fit every restart on all
    rows (``screen_rows`` None, data of at most twice the sample, or several processes)."""
    if screen_rows is None or multi_process():
        return None
    size = AUTO_SCREEN_ROWS if screen_rows == "auto" else screen_rows
    if not isinstance(size, int | np.integer) or isinstance(size, bool) or size < 1:
        raise ValueError(f"screen_rows={screen_rows!r} must be 'auto', None or a positive int")
    return int(size) if n_rows > 2 * size else None


def fit_grid(data: TrainingData, grid: Grid, *, seed: int, dtype, reg_covar: float, tol: float,
             init: str, max_iter: int, prior, screen_rows, progress) -> dict[str, TypeFits]:
    """Fit every (type, K, restart) of ``grid`` and keep the best restart of each (type, K).

    ``progress`` is a tqdm-like bar advanced once per batch. Must run inside
    ``compute_context(dtype)``.
    """
    sample_rows = screening_rows(screen_rows, data.n_rows)
    rng = np.random.default_rng([seed, 1])
    draws = init_draws([seed, 0], len(grid.ks) * grid.n_init, init, max(grid.ks))
    settings = dict(family=MIXED, dtype=dtype, reg_covar=reg_covar, tol=tol, max_iter=max_iter,
                    init=init)
    first_data = data if sample_rows is None else data.sample(
        np.sort(rng.choice(len(data.x), sample_rows, replace=False)))
    fits = grid.layout(grid.n_init)
    progress.set_postfix_str(f"{len(fits['pair'])} fits on {first_data.n_rows:,} rows")
    first = first_data.fit(draws, fits["active"], starts=fits["start"], kinds=fits["kind"],
                           prior=_mixed_prior(prior, grid, fits["pair"], data, dtype),
                           summarise=sample_rows is None, **settings)
    progress.update()
    of_pair = [np.flatnonzero(fits["pair"] == p) for p in range(len(grid.pairs))]
    n_degenerate = np.array([first.degenerate[i].any(axis=1).sum() for i in of_pair])
    final = _take(first, [_best_restart(first, i) for i in of_pair])  # in pair order
    if sample_rows is not None:
        progress.set_postfix_str(f"{len(of_pair)} fits on all {data.n_rows:,} rows")
        one = grid.layout(1)
        order = np.argsort(one["pair"])  # the layout's fits in pair order
        final = data.fit(np.zeros((len(order), 1)), one["active"][order],
                         kinds=one["kind"][order], override=InitOverride(*final.state.params),
                         prior=_mixed_prior(prior, grid, np.arange(len(order)), data, dtype),
                         summarise=True, **settings)
        progress.update()
    n_ks = len(grid.ks)
    return {name: TypeFits(_in_own_format(_take(final, range(t * n_ks, (t + 1) * n_ks)), name),
                           n_degenerate[t * n_ks:(t + 1) * n_ks])
            for t, name in enumerate(grid.types)}


def n_batches(screen_rows, n_rows: int) -> int:
    """How many batches :func:`fit_grid` runs (for a progress bar)."""
    return 1 if screening_rows(screen_rows, n_rows) is None else 2


def _best_restart(result: BatchResult, restarts: np.ndarray) -> int:
    """The batch index, among ``restarts`` (one (type, K)'s fits), of the restart that
    represents it: the best lower bound among non-degenerate restarts (all restarts if every
    one is degenerate)."""
    bounds = np.asarray(result.state.lower_bound[restarts], dtype=np.float64)
    usable = usable_restarts(bounds, result.degenerate[restarts])
    pool = usable if usable.any() else np.isfinite(bounds)
    if not pool.any():
        pool = np.ones_like(usable)
    return int(restarts[best_restart(bounds, pool)])


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
