"""Exact EM over data larger than memory: the in-memory E-step, summed over chunks.

The E-step's output is an additive :class:`~bayesgmm.core.stats.SuffStats`, so streaming EM is
the in-memory algorithm with the sum taken over chunks read from disk at every iteration:
each chunk goes through the same compiled :func:`~bayesgmm.core.stats.e_step` (every restart
at once, vmapped), the sums feed the same :func:`~bayesgmm.core.em_steps.em_update` (M-step and
stopping rule), and the last M-step is refined from centred statistics as in memory. The
result equals the in-memory fit from the same start up to floating-point summation order.

Sources (:func:`chunked`)
    * a ``numpy.memmap`` (C order): chunks are read with ordinary file reads rather than
      through the mapping, so pages already processed do not count toward the process's
      resident memory;
    * a Parquet file, directory or ``pyarrow.dataset.Dataset`` (numeric columns, read in
      record batches);
    * a callable returning a fresh iterator of (rows, D) arrays each time it is called;
    * :class:`ChunkedSource` itself (to choose ``chunk_rows``).

A first pass computes the column moments (the internal units), checks every value, and keeps
a uniform reservoir sample of :data:`RESERVOIR_ROWS` rows (Vitter's algorithm R) from which the
initialisation (k-means etc.) is drawn. Each EM iteration then reads the data once.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.base.validation import (
    ColumnSummary,
    check_columns_informative,
    check_enough_samples,
    warn_if_regularisation_dominates,
)
from bayesgmm.core.covariance import ConjugatePrior, CovarianceFamily, MixtureParams
from bayesgmm.core.em import BatchResult
from bayesgmm.core.em_steps import EMState, degenerate_components, em_update
from bayesgmm.core.stats import SuffStats, centred_e_step, e_step, m_step
from bayesgmm.engine.parallel import data_mesh
from bayesgmm.engine.preprocessing import AffineScaling, to_blocks
from bayesgmm.engine.training import TrainingData

#: Rows per chunk read from a source (features of 65,536 x 8 rows are ~23 MB in float64).
CHUNK_ROWS = 65_536
#: Rows kept in the reservoir sample that initialises the fit.
RESERVOIR_ROWS = 20_000


class ChunkedSource:
    """Rows of a data set that is read in chunks, as many times as EM needs.

    Parameters
    ----------
    open_chunks : callable returning a fresh iterator of (rows, D) array-likes
    description : what the source is, for messages
    names : column names, or None
    """

    def __init__(self, open_chunks: Callable[[], Iterator], description: str,
                 names: list[str] | None = None):
        self._open = open_chunks
        self.description = description
        self.names = names

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self._open():
            array = np.asarray(chunk, dtype=np.float64)
            if array.ndim != 2:
                raise ValueError(f"{self.description} gave a chunk of shape {array.shape}; "
                                 "each chunk must be a 2-D (rows, features) array")
            yield array

    def __repr__(self) -> str:
        return f"ChunkedSource({self.description})"


def _memmap_chunks(array: np.memmap, chunk_rows: int) -> Callable[[], Iterator]:
    """Chunks of a C-ordered memmap by plain file reads (see the module docstring)."""
    if not array.flags.c_contiguous or array.ndim != 2 or array.filename is None:
        return lambda: (array[i:i + chunk_rows] for i in range(0, len(array), chunk_rows))
    row_bytes = array.shape[1] * array.dtype.itemsize

    def read():
        with open(array.filename, "rb") as handle:
            for start in range(0, array.shape[0], chunk_rows):
                rows = min(chunk_rows, array.shape[0] - start)
                handle.seek(array.offset + start * row_bytes)
                yield np.fromfile(handle, array.dtype, rows * array.shape[1]).reshape(
                    rows, array.shape[1])

    return read


def _parquet_source(dataset, chunk_rows: int) -> ChunkedSource:
    import pyarrow as pa

    names = [f.name for f in dataset.schema
             if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    if not names:
        raise ValueError("the Parquet data have no numeric columns")

    def read():
        for batch in dataset.to_batches(columns=names, batch_size=chunk_rows):
            yield np.column_stack([batch.column(i).to_numpy(zero_copy_only=False)
                                   .astype(np.float64) for i in range(batch.num_columns)])

    return ChunkedSource(read, "Parquet data", names)


def chunked(X, chunk_rows: int = CHUNK_ROWS) -> ChunkedSource | None:
    """``X`` as a :class:`ChunkedSource`, or None when it is ordinary in-memory data.

    Accepts a ``numpy.memmap``, a Parquet path (file or directory) or
    ``pyarrow.dataset.Dataset``, a callable returning an iterator of arrays, or a
    ``ChunkedSource``.
    """
    if isinstance(X, ChunkedSource):
        return X
    if not isinstance(chunk_rows, numbers.Integral) or chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows!r} must be an integer >= 1")
    if isinstance(X, np.memmap):
        return ChunkedSource(_memmap_chunks(X, chunk_rows), f"memmap {X.shape}")
    if isinstance(X, str | Path):
        path = Path(X)
        if path.suffix in (".parquet", ".pq") or path.is_dir():
            import pyarrow.dataset as ds

            return _parquet_source(ds.dataset(path, format="parquet"), chunk_rows)
        raise ValueError(f"{X!r}: a path must name a Parquet file or directory")
    if type(X).__module__.startswith("pyarrow") and hasattr(X, "to_batches"):
        return _parquet_source(X, chunk_rows)
    if callable(X) and not hasattr(X, "shape"):
        return ChunkedSource(X, "chunk iterator")
    return None


class StreamSummary(NamedTuple):
    """First pass over a source: row count, column moments and ranges (D,), a uniform
    reservoir sample (at most :data:`RESERVOIR_ROWS`, D) of the rows, and the largest chunk
    (every chunk is padded to it, so all share one compiled program)."""

    n_rows: int
    mean: np.ndarray
    var: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    sample: np.ndarray
    largest_chunk: int


def summarise(source: ChunkedSource, seed: int, reservoir_rows: int = RESERVOIR_ROWS,
              names=None) -> StreamSummary:
    """One pass: Chan et al.'s pairwise update of the moments, every value checked (errors
    give the global row numbers), and Vitter's reservoir sample."""
    from bayesgmm.base.validation import check_finite, merge_moments

    rng = np.random.default_rng(seed)
    n, mean, m2, lo, hi, sample, largest = 0, None, None, None, None, None, 0
    for chunk in source:
        if mean is not None and chunk.shape[1] != mean.shape[0]:
            raise ValueError(f"{source.description}: a chunk has {chunk.shape[1]} columns, "
                             f"the first had {mean.shape[0]}")
        check_finite(chunk, names, f"{source.description}", first_row=n)
        rows = len(chunk)
        if rows == 0:
            continue
        largest = max(largest, rows)
        chunk_mean = chunk.mean(axis=0)
        chunk_m2 = ((chunk - chunk_mean) ** 2).sum(axis=0)
        if mean is None:
            mean, m2 = chunk_mean, chunk_m2
            lo, hi = chunk.min(axis=0), chunk.max(axis=0)
            sample = np.empty((0, chunk.shape[1]))
        else:
            _, mean, m2 = merge_moments(n, mean, m2, rows, chunk_mean, chunk_m2)
            lo, hi = np.minimum(lo, chunk.min(axis=0)), np.maximum(hi, chunk.max(axis=0))
        sample = _reservoir_update(sample, chunk, n, reservoir_rows, rng)
        n += rows
    if mean is None:
        raise ValueError(f"{source.description} gave no rows")
    return StreamSummary(n, mean, m2 / n, lo, hi, sample, largest)


class PreparedStream(NamedTuple):
    """A chunked source after its first pass: the :class:`StreamSummary`, the internal units,
    the validated reservoir sample as :class:`~bayesgmm.engine.training.TrainingData`, and a
    function from a chunk to its feature blocks (padded to the largest chunk, sharded over
    the devices) for ``family`` and ``dtype``."""

    first: StreamSummary
    scaling: AffineScaling
    sample: TrainingData
    blocks_of: Callable


def prepare_stream(source: ChunkedSource, estimator, n_components: int, reg_covar: float,
                   seed: int) -> PreparedStream:
    """The first pass over ``source`` for a streamed fit of ``estimator``: moments, checks
    (enough rows, informative columns, regularisation), ``n_features_in_`` and
    ``feature_names_in_`` set on the estimator, internal units."""
    names = None if source.names is None else np.asarray(source.names, dtype=object)
    first = summarise(source, seed, names=names)
    estimator.n_features_in_ = first.mean.shape[0]
    if names is not None:
        estimator.feature_names_in_ = names
    elif hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_
    check_enough_samples(first.n_rows, n_components)
    summary = ColumnSummary(first.mean, first.var, first.minimum, first.maximum)
    check_columns_informative(first.sample, summary, names)
    warn_if_regularisation_dominates(summary, reg_covar, names)
    scaling = AffineScaling.from_moments(first.mean, first.var)
    mesh = data_mesh(first.largest_chunk)

    def blocks_of(chunk, family: CovarianceFamily, dtype):
        return to_blocks(scaling.transform(chunk), dtype, family, pad_to=first.largest_chunk,
                         mesh=mesh)

    return PreparedStream(first, scaling, TrainingData(first.sample, summary, scaling, names),
                          blocks_of)


def stream_covariance(source: ChunkedSource, mean: np.ndarray, n_rows: int) -> np.ndarray:
    """The rows' sample covariance (D, D) (``ddof=1``) in one pass, about their ``mean``."""
    scatter = 0.0
    for chunk in source:
        centred = chunk - mean
        scatter = scatter + centred.T @ centred
    return np.atleast_2d(scatter / max(n_rows - 1, 1))


def _reservoir_update(sample: np.ndarray, chunk: np.ndarray, seen: int, size: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Algorithm R over one chunk: row ``t`` (global index) replaces a uniform slot with
    probability ``size / (t + 1)`` (fancy assignment keeps the sequential last-write-wins)."""
    fill = max(0, min(size - len(sample), len(chunk)))
    sample = np.vstack([sample, chunk[:fill]])
    rest = chunk[fill:]
    if len(rest):
        index = seen + fill + np.arange(len(rest))
        slots = (rng.random(len(rest)) * (index + 1)).astype(np.int64)
        keep = slots < size
        sample[slots[keep]] = rest[keep]
    return sample


@persistent_jit(static_argnames="family")
def _chunk_stats(data, params, family):
    """E-step statistics of one chunk under every fit's parameters (vmapped over fits)."""
    return jax.vmap(lambda p: e_step(data, p, family))(params)


@persistent_jit(static_argnames="family")
def _chunk_centred_stats(data, params, centre, family):
    return jax.vmap(lambda p, c: centred_e_step(data, p, c, family))(params, centre)


@persistent_jit(static_argnames="family")
def _update(state, stats, active, reg_covar, tol, prior, max_iter, family):
    """:func:`em_update` for every fit still running; stopped fits keep their state."""
    def one(state, stats, active, prior):
        running = (state.n_iter < max_iter) & ~state.converged
        new = em_update(state, stats, lambda s, c: m_step(s, family, reg_covar, c, active,
                                                          prior), tol, monotone=prior is None)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(running, a, b), new, state)

    return jax.vmap(one)(state, stats, active, prior)


@persistent_jit(static_argnames="family")
def _refine(state, stats, centre, active, reg_covar, feature_variance, prior, family):
    """The in-memory refinement of the last M-step and the degeneracy rule, per fit."""
    def one(state, stats, centre, active, prior):
        params = m_step(stats, family, reg_covar, centre, active, prior)
        degenerate = degenerate_components(stats, centre, family, feature_variance, active,
                                           prior)
        return state._replace(params=params, stats=stats), degenerate

    return jax.vmap(one)(state, stats, centre, active, prior)


def _sum_over_chunks(source, blocks_of, stats_of) -> SuffStats:
    total = None
    for chunk in source:
        stats = stats_of(blocks_of(chunk))
        total = stats if total is None else jax.tree_util.tree_map(jnp.add, total, stats)
    return total


def run_streaming_em(source: ChunkedSource, params: MixtureParams, *, scaling: AffineScaling,
                     family: CovarianceFamily, dtype, reg_covar: float, tol: float,
                     max_iter: int, feature_variance: np.ndarray, chunk_rows: int,
                     prior: ConjugatePrior | None, report=None) -> BatchResult:
    """EM from a batch of starting ``params`` (internal units, leading fit axis) over the
    chunks of ``source``: one read of the data per iteration. ``report(iteration, lower
    bounds)`` is called after each. Must run inside ``compute_context(dtype)``.

    Returns a :class:`BatchResult` (numpy) like :func:`~bayesgmm.core.em.fit_batch`'s.
    """
    n_fits = params.weights.shape[0]
    active = jnp.ones(params.weights.shape, bool)
    reg = jnp.asarray(reg_covar / scaling.scale**2, dtype)
    mesh = data_mesh(chunk_rows)

    def blocks_of(chunk):
        return to_blocks(scaling.transform(chunk), dtype, family, pad_to=chunk_rows, mesh=mesh)

    def stats_under(fit_params):
        return _sum_over_chunks(source, blocks_of,
                                lambda data: _chunk_stats(data, fit_params, family))

    history = jnp.full((n_fits, max(max_iter, 1)), jnp.nan, dtype)
    state = EMState(params, stats_under(params), params, jnp.full(n_fits, -jnp.inf, dtype),
                    jnp.zeros(n_fits, jnp.int32), jnp.zeros(n_fits, bool), history)
    for iteration in range(max_iter):
        if iteration:  # the first E-step's statistics were computed above
            state = state._replace(stats=stats_under(state.params))
        state = _update(state, state.stats, active, reg, jnp.asarray(tol, dtype), prior,
                        max_iter, family)
        if report is not None:
            report(iteration + 1, np.asarray(state.lower_bound))
        if not np.any((np.asarray(state.n_iter) < max_iter) & ~np.asarray(state.converged)):
            break
    variance = jnp.asarray(feature_variance / scaling.scale**2, dtype)
    if max_iter > 0:
        centre = state.params.means
        stats = _sum_over_chunks(source, blocks_of, lambda data: _chunk_centred_stats(
            data, state.stats_params, centre, family))
    else:
        centre, stats = jnp.zeros_like(state.params.means), state.stats
    state, degenerate = _refine(state, stats, centre, active, reg, variance, prior, family)
    zeros = jnp.zeros(n_fits, dtype)
    return jax.device_get(BatchResult(state, degenerate, zeros, zeros))


def named_chunks(source: ChunkedSource, model) -> Iterator:
    """The chunks of ``source`` for ``model``'s prediction methods: DataFrames with the
    model's feature names when it has them (so scikit-learn's name check passes), else
    arrays."""
    names = getattr(model, "feature_names_in_", None)
    for chunk in source:
        if names is None:
            yield chunk
        else:
            import pandas as pd

            yield pd.DataFrame(chunk, columns=list(names))


def predict_to(model, X, path, what: str = "predict_proba", chunk_rows: int = CHUNK_ROWS
               ) -> Path:
    """Write ``model.<what>`` of a chunked source to a Parquet file chunk by chunk, for results
    too large to hold (``predict_proba`` of 1e7 rows is N x K). ``what`` is 'predict'
    (column ``label``), 'predict_proba' (``prob_<k>``) or 'score_samples' (``log_density``).
    Works for any fitted model with those methods."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if what not in ("predict", "predict_proba", "score_samples"):
        raise ValueError(f"what={what!r}: choose 'predict', 'predict_proba' or 'score_samples'")
    source = chunked(X, chunk_rows)
    if source is None:
        source = ChunkedSource(lambda: iter([X]), "array")
    path = Path(path)
    writer = None
    try:
        for chunk in named_chunks(source, model):
            values = np.asarray(getattr(model, what)(chunk))
            columns = ({"label": values} if what == "predict"
                       else {"log_density": values} if what == "score_samples"
                       else {f"prob_{k}": values[:, k] for k in range(values.shape[1])})
            table = pa.table(columns)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path
