"""Validated training data and the one way every fit runs the compiled core.

:class:`GaussianMixture.fit <bayesgmm.GaussianMixture.fit>` and
:func:`~bayesgmm.select_model` both go through :class:`TrainingData`: the same input checks, the
same internal units, and the same call of :func:`~bayesgmm.core.em.fit_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import jax
import numpy as np

from bayesgmm.base.validation import (
    ColumnSummary,
    check_array_input,
    check_columns_informative,
    check_enough_samples,
    check_missing_option,
    drop_empty_rows,
    warn_if_regularisation_dominates,
)
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.em import BatchResult, EMConfig, FitInputs, InitOverride, SharedInputs, fit_batch
from bayesgmm.core.stats import BlockedData
from bayesgmm.engine.parallel import data_mesh, gather_from_processes, multi_process
from bayesgmm.engine.preprocessing import AffineScaling, to_blocks, to_pattern_blocks

#: Most fits one compiled program runs at once; larger batches run as several equal runs of
#: one program. XLA's CPU runtime (jax 0.10.2) deadlocked, every thread idle, on batches of
#: about 150 or more full-covariance fits (K = 9, D = 8) from the second EM iteration on;
#: batches of up to 108 ran. ``XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false``
#: also avoided it, but that is the user's process-wide setting to make, not ours.
MAX_FITS_PER_RUN = 60


@dataclass
class TrainingData:
    """Training rows after validation, with their column summary and internal units.

    Attributes
    ----------
    x : (N, D) float64, the caller's values (a new array); NaN marks a missing value when the
        data were prepared with ``missing='marginalize'`` (rows with no value are left out)
    summary : :class:`~bayesgmm.base.validation.ColumnSummary` of the observed values
    scaling : :class:`~bayesgmm.engine.preprocessing.AffineScaling`
    names : feature names, or None
    n_rows : int, the number of rows: ``len(x)``, or with several JAX processes
        (:mod:`bayesgmm.engine.parallel`) the rows of all processes, whose ``summary`` this is
    block_rows : int or None, rows per block of :meth:`blocks` (None: the default layout)
    """

    x: np.ndarray
    summary: ColumnSummary
    scaling: AffineScaling
    names: np.ndarray | None
    n_rows: int = -1
    block_rows: int | None = None
    _blocks: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.n_rows < 0:
            self.n_rows = self.x.shape[0]

    @classmethod
    def prepare(cls, X, estimator, n_components: int, reg_covar: float,
                missing: str = "error") -> TrainingData:
        """Validate ``X`` for ``estimator`` (setting its ``n_features_in_`` and
        ``feature_names_in_``) and for ``n_components`` components. With
        ``missing='marginalize'`` NaN entries are missing values."""
        allow_nan = check_missing_option(missing)
        x = check_array_input(X, estimator, reset=True, ensure_min_samples=2,
                              allow_nan=allow_nan)
        names = getattr(estimator, "feature_names_in_", None)
        if allow_nan:
            x = drop_empty_rows(x, names)
        summary, n_rows = ColumnSummary.of(x), x.shape[0]
        if multi_process():
            if allow_nan:
                raise ValueError("missing='marginalize' is not supported with several JAX "
                                 "processes yet")
            summary, n_rows = _across_processes(summary, n_rows)
        check_enough_samples(n_rows, n_components)
        check_columns_informative(x, summary, names)
        warn_if_regularisation_dominates(summary, reg_covar, names)
        return cls(x, summary, AffineScaling.from_moments(summary.mean, summary.var), names,
                   n_rows)

    def reordered(self, order: np.ndarray, block_rows: int) -> TrainingData:
        """These rows in ``order`` (a permutation), with the same units and column summary, in
        blocks of ``block_rows`` rows (a screened sweep's layout: :mod:`bayesgmm.engine.sweep`)."""
        return TrainingData(self.x[order], self.summary, self.scaling, self.names,
                            block_rows=block_rows)

    @property
    def has_missing(self) -> bool:
        return bool(self.missing_counts.any())

    @property
    def internal(self) -> np.ndarray:
        """(N, D) the rows in internal units."""
        return self.scaling.transform(self.x)

    @cached_property
    def missing_counts(self) -> np.ndarray:
        """(D,) number of missing values per column."""
        return np.isnan(self.x).sum(axis=0)

    @cached_property
    def mean_log_det(self) -> float:
        """Mean over rows of ``log |d internal / d x|`` on each row's observed coordinates:
        subtract from internal mean log densities (``scaling.log_det(D)`` for complete rows,
        from the cached per-column missing counts)."""
        if not self.has_missing:
            return self.scaling.log_det(self.x.shape[1])
        log_scale = np.log(np.broadcast_to(self.scaling.scale, (self.x.shape[1],)))
        return float(np.mean(~np.isnan(self.x) @ log_scale))

    def blocks(self, family: CovarianceFamily, dtype) -> BlockedData:
        """Feature blocks for ``family`` (shared by families with the same moments; with
        missing values, pattern blocks shared by every family), sharded over the devices of
        :func:`~bayesgmm.engine.parallel.data_mesh`."""
        has_missing = self.has_missing
        mesh = data_mesh(self.n_rows)
        devices = None if mesh is None else tuple(mesh.devices.flat)
        key = ("missing" if has_missing else family.moments, np.dtype(dtype).name, devices)
        if key not in self._blocks:
            if has_missing:
                fill = self.summary.var / self.scaling.scale**2
                self._blocks[key] = to_pattern_blocks(self.internal, dtype, fill,
                                                      mesh=mesh)[0]
            else:
                self._blocks[key] = to_blocks(self.internal, dtype, family, mesh=mesh,
                                              pad_to=self._largest_part(),
                                              block_rows=self.block_rows)
        return self._blocks[key]

    def _largest_part(self) -> int:
        """The most rows any process holds (every process lays its rows out alike)."""
        if not multi_process():
            return 0
        return int(gather_from_processes(np.array([self.x.shape[0]])).max())

    def fit(self, config: EMConfig, fits: FitInputs, *, dtype, reg_covar: float, tol: float,
            run_size: int | None = None, n_starts: int | None = None,
            first_alone: bool = False) -> BatchResult:
        """Run :func:`~bayesgmm.core.em.fit_batch` (inside ``compute_context(dtype)``) and
        return its result as numpy arrays. ``fits`` may hold host arrays, with ``override``,
        ``prior``, ``kinds`` and ``starts`` on the batch axis of ``fits.active`` and ``draws``
        one row per start (per fit without ``starts``); ``reg_covar`` is in the data's units.
        The fits run in runs of ``run_size`` (default :func:`fits_per_run`), each given
        ``n_starts`` rows of ``draws`` (default: the most distinct starts of any run): batches
        with equal values share one program. ``first_alone`` runs fit 0 as a run of its own (the
        program of a one-fit batch) and the others after it: a batch's size changes the order
        of its floating-point sums, so only then does fit 0 reproduce a one-fit call bit for
        bit (``n_init=10`` never ends below ``n_init=1`` with the same seed)."""
        scale2 = self.scaling.scale**2
        n_fits = len(fits.active)
        starts = np.arange(n_fits) if fits.starts is None else np.asarray(fits.starts)
        draws = np.asarray(fits.draws, dtype)
        # Host arrays (not arrays on one device) for everything but the data: with the data
        # sharded across processes, every other input must be the same replicated value.
        per_fit = (np.asarray(fits.active),
                   InitOverride(*(None if a is None else np.asarray(a, dtype)
                                  for a in fits.override)),
                   jax.tree_util.tree_map(np.asarray, fits.prior),
                   None if fits.kinds is None else np.asarray(fits.kinds, np.int32))
        shared = SharedInputs(self.blocks(config.family, dtype),
                              np.asarray(reg_covar / scale2, dtype), np.asarray(tol, dtype),
                              np.asarray(self.summary.var / scale2, dtype))
        if first_alone and n_fits > 1:
            rest = n_fits - 1
            others = [run + 1 for run in _equal_runs(rest, fits_per_run(rest))]
            runs = [np.zeros(1, int), *others]
            # the others' runs share one shape (the last is padded with repeats)
            run_starts = [1] + [most_starts(starts[1:], fits_per_run(rest))] * len(others)
        else:
            run_size = run_size or fits_per_run(n_fits)
            runs = _equal_runs(n_fits, run_size)
            run_starts = [n_starts or most_starts(starts, run_size)] * len(runs)
        final = None if fits.final is None else np.asarray(fits.final)

        def run(index, n_starts):
            active, override, prior, kinds = jax.tree_util.tree_map(lambda a: a[index],
                                                                    per_fit)
            used = np.unique(starts[index])
            own = np.searchsorted(used, starts[index]).astype(np.int32)
            used = np.pad(used, (0, n_starts - len(used)), mode="edge")  # one shape per run
            return jax.device_get(fit_batch(
                config, FitInputs(draws[used], active, override, prior, kinds, own, final),
                shared))

        if len(runs) == 1:
            return run(runs[0], run_starts[0])
        parts = [run(index, n_starts) for index, n_starts in zip(runs, run_starts, strict=True)]
        return jax.tree_util.tree_map(lambda *a: np.concatenate(a)[:n_fits], *parts)


def fits_per_run(n_fits: int) -> int:
    """Fits per run of a batch of ``n_fits``: runs of equal length (one compiled shape) of at
    most :data:`MAX_FITS_PER_RUN`."""
    return -(-n_fits // -(-n_fits // MAX_FITS_PER_RUN))


def most_starts(starts: np.ndarray, run_size: int) -> int:
    """The most distinct ``starts`` (one per fit) any run of ``run_size`` fits uses."""
    starts = np.asarray(starts)
    return max(len(np.unique(starts[run])) for run in _equal_runs(len(starts), run_size))


def _equal_runs(n_fits: int, size: int) -> list[np.ndarray]:
    """Fit indices in runs of ``size``, the last padded with repeats of the last fit."""
    n_runs = -(-n_fits // size)
    return list(np.minimum(np.arange(n_runs * size), n_fits - 1).reshape(n_runs, size))


def _across_processes(summary: ColumnSummary, n_rows: int) -> tuple[ColumnSummary, int]:
    """This process's column summary and row count combined with every other process's."""
    counts = gather_from_processes(np.array([n_rows]))[:, 0]
    parts = gather_from_processes(np.stack([summary.mean, summary.var, summary.minimum,
                                            summary.maximum]))
    return ColumnSummary.merge(counts, parts), int(counts.sum())
