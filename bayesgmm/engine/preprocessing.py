"""Host-side preparation of data for the compiled core: internal units, blocks and dtypes.

Internal units
    EM runs on ``(X - center) / scale`` with ``center`` the column means and ``scale`` *one*
    scalar (the root mean per-feature variance). A translation and a common scale change are
    exact symmetries of maximum-likelihood EM for every covariance type once ``reg_covar`` is
    divided by ``scale**2``, so results are identical to fitting the raw data, while float32
    arithmetic stays accurate on data such as values near 1e6 with a small spread. (Per-feature
    scaling is *not* a symmetry of the spherical model or of ``reg_covar``, so it is not done.)

Blocks
    Rows are padded with zero-weight rows and split into equal blocks
    (:class:`~bayesgmm.core.stats.BlockedData`). Block sizes are rounded up to a small set of
    sizes so that data sets of similar size reuse one compiled program: every data set of up
    to :data:`SMALL_ROWS` rows gets one block of that size; above it the padding is at most
    about 6% of the rows.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from bayesgmm.base.io import register_record
from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.core.covariance import FAMILIES
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.moments import FullMoments
from bayesgmm.core.stats import BlockedData, make_features
from bayesgmm.engine.parallel import local_shard_count, put_blocks, shard_count

#: Target size of one block of feature rows: small enough to stay in cache across the two
#: matrix products of an E-step (measured fastest on the benchmark machine, benchmarks/).
BLOCK_BYTES = 4 * 2**20
_MIN_BLOCK_ROWS = 8

#: Row counts up to this are all padded to this one size (see :func:`block_layout`).
SMALL_ROWS = 1024

SUPPORTED_DTYPES = ("float64", "float32")


def compute_dtype(dtype) -> np.dtype:
    """Normalise a user's ``dtype`` argument to ``np.float64`` or ``np.float32``."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; use 'float64' (default, for "
                         "agreement with scikit-learn) or 'float32' (faster)")
    return resolved


@contextmanager
def compute_context(dtype: np.dtype):
    """Run JAX code in ``dtype`` without touching the user's global JAX configuration.

    float64 needs x64 mode; it is enabled only inside this context (``jax.enable_x64`` is a
    context manager), so the user's setting is unchanged afterwards.
    """
    if np.dtype(dtype) == np.float64:
        with jax.enable_x64(True):
            yield
    else:
        yield


def _multiple_of(step: int, n: int) -> int:
    """The smallest multiple of ``step`` that is ``>= n``."""
    return -(-n // step) * step


def round_up_size(n: int) -> int:
    """Smallest size ``>= n`` of the form ``m * 2**e`` with ``16 <= m < 32`` (or ``n <= 16``)."""
    if n <= 16:
        return max(n, 1)
    return _multiple_of(2 ** (n.bit_length() - 5), n)


def block_layout(n_rows: int, n_columns: int, itemsize: int, shards: int = 1
                 ) -> tuple[int, int]:
    """``(n_blocks, block_rows)`` for ``n_rows`` feature rows of ``n_columns`` values, with
    ``n_blocks`` a multiple of ``shards`` (the devices the blocks are split over).

    Up to :data:`SMALL_ROWS` rows, one block of exactly that many rows: at such sizes
    compiling a program costs seconds and running it microseconds, so every small data set
    (and its train/test splits, and the other small data sets of a session) shares one
    program per (covariance type, K, restarts, D).
    """
    fit = max(BLOCK_BYTES // (n_columns * itemsize), 1)
    max_rows = max(_MIN_BLOCK_ROWS, 2 ** int(math.log2(fit)))
    n_blocks = -(-n_rows // max_rows)
    if shards > 1:
        n_blocks = _multiple_of(shards, n_blocks)
    elif n_blocks == 1 and n_rows <= SMALL_ROWS:
        return 1, SMALL_ROWS
    return n_blocks, round_up_size(-(-n_rows // n_blocks))


@persistent_jit(static_argnames="family")
def feature_rows(x, family):
    """:func:`~bayesgmm.core.stats.make_features` of rows ``x`` (N, D), as one compiled (and
    cached) program."""
    return make_features(x, family)


def to_blocks(x: np.ndarray, dtype: np.dtype, family: CovarianceFamily,
              weight: np.ndarray | None = None, pad_to: int = 0,
              mesh: Mesh | None = None, block_rows: int | None = None) -> BlockedData:
    """Pad ``x`` (N, D) with zero-weight rows, split it into blocks on the JAX device(s) and
    build the feature rows ``[x, phi(x)]`` for ``family``. ``pad_to`` lays the rows out as if
    there were at least that many (the chunks of a stream then share one shape). With a
    ``mesh`` (:func:`bayesgmm.engine.parallel.data_mesh`) the blocks are sharded over its devices.
    ``block_rows`` fixes the rows per block (default: :func:`block_layout`).

    Must be called inside :func:`compute_context` for float64.
    """
    n_rows, n_dims = x.shape
    n_columns = n_dims + family.moments.n_features(n_dims)
    if block_rows is None:
        n_blocks, block_rows = block_layout(max(n_rows, pad_to), n_columns,
                                            np.dtype(dtype).itemsize, local_shard_count(mesh))
    else:
        n_blocks = _multiple_of(local_shard_count(mesh), -(-max(n_rows, pad_to) // block_rows))
    padded = np.zeros((n_blocks * block_rows, n_dims), dtype)
    padded[:n_rows] = x
    w = np.zeros(n_blocks * block_rows, dtype)
    w[:n_rows] = 1.0 if weight is None else weight
    rows, w = put_blocks([padded.reshape(n_blocks, block_rows, n_dims),
                          w.reshape(n_blocks, block_rows)], mesh)
    return BlockedData(feature_rows(rows, family), w, shards=shard_count(mesh))


#: Fixed cost of one block in row-equivalents, used to choose the block size of data with
#: missing values (many small blocks cost loop overhead, large ones padding).
_BLOCK_OVERHEAD_ROWS = 32

#: Missing-data blocks always carry full second moments (:mod:`bayesgmm.core.missing`).
_FULL_SECOND_MOMENTS = FAMILIES["full"]


class PatternLayout(NamedTuple):
    """Where each row of a data set with missing values went in its pattern blocks.

    Attributes
    ----------
    position : (N,) int, index of row ``i`` in the flattened ``(n_blocks * block_rows)`` layout
    n_blocks, block_rows : the block shape
    """

    position: np.ndarray
    n_blocks: int
    block_rows: int

    def unblock(self, blocked: np.ndarray) -> np.ndarray:
        """(n_blocks, block_rows, ...) per-row results -> (N, ...) in the caller's row order."""
        flat = np.asarray(blocked).reshape(self.n_blocks * self.block_rows,
                                            *np.shape(blocked)[2:])
        return flat[self.position]


def _pattern_block_rows(pattern_sizes: np.ndarray, largest: int) -> int:
    """Block size (a power of two in [8, largest]) that minimises padded rows plus per-block
    overhead when every pattern's rows fill whole blocks."""
    best, best_cost = _MIN_BLOCK_ROWS, np.inf
    rows = _MIN_BLOCK_ROWS
    while rows <= max(largest, _MIN_BLOCK_ROWS):
        n_blocks = np.sum(-(-pattern_sizes // rows))
        cost = n_blocks * (rows + _BLOCK_OVERHEAD_ROWS)
        if cost < best_cost:
            best, best_cost = rows, cost
        rows *= 2
    return best


def to_pattern_blocks(x: np.ndarray, dtype: np.dtype, fill_variance: np.ndarray,
                      weight: np.ndarray | None = None, mesh: Mesh | None = None
                      ) -> tuple[BlockedData, PatternLayout]:
    """Blocks for rows with missing values (NaN) in internal units: rows sorted by missingness
    pattern, each block holding rows of one pattern and its observed mask
    (:mod:`bayesgmm.core.missing`).

    Missing entries are filled with 0 (the column mean in internal units) and their squares
    with ``fill_variance`` (D,), so that statistics of the filled rows (the EM start) see a
    column's spread; the E-step itself never reads them. The number of blocks is rounded up
    like row counts (:func:`round_up_size`) so that similar data sets share programs, and to a
    multiple of the ``mesh``'s size when the blocks are sharded over it.
    Must be called inside :func:`compute_context` for float64.
    """
    n_rows, n_dims = x.shape
    observed = ~np.isnan(x)
    patterns, pattern_of_row = np.unique(observed, axis=0, return_inverse=True)
    pattern_of_row = pattern_of_row.reshape(-1)
    sizes = np.bincount(pattern_of_row, minlength=len(patterns))
    n_columns = n_dims + FullMoments.n_features(n_dims)
    largest = block_layout(n_rows, n_columns, np.dtype(dtype).itemsize)[1]
    block_rows = _pattern_block_rows(sizes, largest)
    blocks_per_pattern = -(-sizes // block_rows)
    n_blocks = _multiple_of(local_shard_count(mesh), round_up_size(int(blocks_per_pattern.sum())))
    first_block = np.concatenate([[0], np.cumsum(blocks_per_pattern)[:-1]])
    order = np.argsort(pattern_of_row, kind="stable")
    rank_in_pattern = np.empty(n_rows, np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank_in_pattern[order] = np.arange(n_rows) - np.repeat(starts, sizes)
    position = first_block[pattern_of_row] * block_rows + rank_in_pattern

    filled = np.where(observed, x, 0.0)
    padded = np.zeros((n_blocks * block_rows, n_dims), dtype)
    padded[position] = filled
    w = np.zeros(n_blocks * block_rows, dtype)
    w[position] = 1.0 if weight is None else weight
    block_mask = np.ones((n_blocks, n_dims), dtype)
    block_mask[:blocks_per_pattern.sum()] = np.repeat(
        patterns, blocks_per_pattern, axis=0)
    features = np.array(feature_rows(padded.reshape(n_blocks, block_rows, n_dims),
                                     _FULL_SECOND_MOMENTS))
    rows, cols = np.triu_indices(n_dims)
    square_columns = n_dims + np.flatnonzero(rows == cols)
    flat = features.reshape(n_blocks * block_rows, -1)
    missing_rows, missing_cols = np.nonzero(~observed)
    flat[position[missing_rows], square_columns[missing_cols]] = fill_variance[missing_cols]
    data = BlockedData(*put_blocks([flat.reshape(features.shape), w.reshape(n_blocks, block_rows),
                                    block_mask], mesh), shards=shard_count(mesh))
    return data, PatternLayout(position, n_blocks, block_rows)


@register_record
@dataclass(frozen=True)
class AffineScaling:
    """``internal = (x - center) / scale``; see the module docstring.

    Attributes
    ----------
    center : (D,)
    scale : positive scalar (EM), or (D,) per-feature scales (:meth:`standardise`, used by
        the Bayesian model, whose priors are stated per standardised feature)
    """

    center: np.ndarray
    scale: float | np.ndarray

    @classmethod
    def from_moments(cls, mean: np.ndarray, var: np.ndarray) -> AffineScaling:
        """From column means and variances (D,)."""
        scale = float(np.sqrt(np.mean(var)))
        return cls(mean, scale if scale > 0 and np.isfinite(scale) else 1.0)

    @classmethod
    def standardise(cls, mean: np.ndarray, var: np.ndarray) -> AffineScaling:
        """Per-feature standardisation ``(x - mean) / sd`` from column means and variances."""
        return cls(np.asarray(mean, np.float64), np.sqrt(np.asarray(var, np.float64)))

    @classmethod
    def fit(cls, x: np.ndarray) -> AffineScaling:
        return cls.from_moments(x.mean(axis=0), x.var(axis=0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Rows (..., D) in the data's units -> internal units."""
        return (x - self.center) / self.scale

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        """Rows or means (..., D) in internal units -> the data's units."""
        return y * self.scale + self.center

    def log_det(self, n_dims: int) -> float:
        """``log |d internal / d x|``: subtract from internal log densities."""
        return float(np.sum(np.log(np.broadcast_to(self.scale, (n_dims,)))))
