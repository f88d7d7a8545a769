"""Additive sufficient statistics and the E-step.

The E-step never hands responsibilities to anyone: it returns a :class:`SuffStats`, a sum over
rows. In-memory EM, streaming EM over chunks and data-parallel EM (a ``psum`` across devices)
are the same computation summed in different ways.

Data arrive as :class:`BlockedData`: the feature rows ``[x, phi(x)]`` (data plus second-moment
features, computed once), padded to ``n_blocks * block_rows`` and split into blocks, with a
per-row weight (0 for padding). Each iteration is then two matrix products per block,
``features @ eta.T`` for the log densities and ``R.T @ features`` for the statistics. Blocks keep
the ``block_rows x K`` temporaries cache-sized; padding keeps shapes static so that data sets of
similar size share one compiled program.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.missing import conditional_gaussians, expected_sums
from bayesgmm.core.moments import FullMoments
from bayesgmm.core.parameters import ConjugatePrior, MixtureParams, NaturalParams


@partial(jax.tree_util.register_dataclass,
         data_fields=["features", "weight", "observed", "n_used"], meta_fields=["shards"])
@dataclass(frozen=True)
class BlockedData:
    """Rows of a data set as precomputed features, padded and split into blocks.

    Attributes
    ----------
    features : (n_blocks, block_rows, D + F)
        ``[x, phi(x)]`` per row (:func:`make_features`).
    weight : (n_blocks, block_rows)
        1 for real rows (or a sample weight), 0 for padding.
    observed : (n_blocks, D) or None
        For data with missing values (:mod:`bayesgmm.core.missing`): each block's mask of
        observed coordinates (1.0 observed, 0.0 missing; every row of a block shares it), and
        ``features`` are then always :class:`~bayesgmm.core.moments.FullMoments` features of
        the zero-filled rows. None for complete data.
    shards : int (static: part of the compiled program's key)
        Number of equal runs of consecutive blocks summed separately and then added
        (``n_blocks`` is a multiple of it). With the blocks sharded across that many devices
        (:mod:`bayesgmm.engine.parallel`) each device sums its own blocks and the sum of the shards'
        statistics is the only cross-device step; 1 is the single-device sum.
    n_used : () int32 (traced) or None
        Only the first ``n_used`` blocks enter every sum; None means all. A traced count lets
        one compiled program run on a leading sample of the blocks and on all of them (a
        screened sweep: :mod:`bayesgmm.engine.sweep`). Single shard only.
    """

    features: Array
    weight: Array
    observed: Array | None = None
    n_used: Array | None = None
    shards: int = 1

    def sum(self, fn, *extra: Array):
        """``sum_b fn(*self.arrays[b], *extra[b])`` over the blocks in use
        (:func:`sum_blocks`)."""
        return sum_blocks(fn, *self.arrays, *extra, shards=self.shards, n_used=self.n_used)

    def leading(self, n_blocks: int) -> BlockedData:
        """The first ``n_blocks`` blocks (static), all in use."""
        observed = None if self.observed is None else self.observed[:n_blocks]
        return BlockedData(self.features[:n_blocks], self.weight[:n_blocks], observed,
                           shards=self.shards)

    @property
    def arrays(self) -> tuple[Array, ...]:
        """The per-block arrays to scan over: features, weight (and observed)."""
        return tuple(a for a in (self.features, self.weight, self.observed) if a is not None)


class SuffStats(NamedTuple):
    """Additive summary of data under the current responsibilities (a pytree).

    Attributes
    ----------
    counts : (K,) ``sum_i w_i r_ik``
    sum_x : (K, D) ``sum_i w_i r_ik x_i``
    sum_second : (K, F) ``sum_i w_i r_ik phi(x_i)`` for the family's second-moment features
    loglik : () ``sum_i w_i log p(x_i)`` under the parameters that gave ``r``
    total_weight : () ``sum_i w_i``
    """

    counts: Array
    sum_x: Array
    sum_second: Array
    loglik: Array
    total_weight: Array


def make_features(x: Array, family: CovarianceFamily) -> Array:
    """``[x, phi(x)]``: (..., D) -> (..., D + F) with ``family``'s second-moment features."""
    return jnp.concatenate([x, family.moments.features(x)], axis=-1)


def data_columns(features: Array, n_dims: int) -> Array:
    """The data ``x`` (..., D) inside a feature array (..., D + F)."""
    return features[..., :n_dims]


def weighted_log_prob(features: Array, params: MixtureParams,
                      family: CovarianceFamily) -> Array:
    """``log w_k + log N(x_i | mu_k, S_k)`` for a block of feature rows.

    Parameters
    ----------
    features : (n, D + F) from :func:`make_features`

    Returns
    -------
    (n, K)
    """
    return natural_log_prob(features, family.natural(params))


def natural_log_prob(features: Array, natural: NaturalParams) -> Array:
    """``features @ eta' + c``: (n, D + F) feature rows, (K, ...) natural parameters -> (n, K)."""
    eta = jnp.concatenate([natural.linear, natural.quadratic], axis=1)
    return features @ eta.T + natural.constant


def block_log_prob(features: Array, params: MixtureParams, family: CovarianceFamily,
                   observed: Array | None = None) -> Array:
    """:func:`weighted_log_prob` of a block, or with a block mask ``observed`` (D,) the
    weighted log densities of each row's observed coordinates: (n, K)."""
    if observed is None:
        return weighted_log_prob(features, params, family)
    return natural_log_prob(features, conditional_gaussians(params, family, observed).natural)


_LOG_TINY = {name: float(np.log(np.finfo(name).tiny)) for name in ("float32", "float64")}


def normalise_log_prob(log_prob: Array) -> tuple[Array, Array]:
    """Responsibilities and row log-normalisers from joint log densities (n, K).

    One ``exp`` per entry (the max-shifted exponentials serve both), rather than the two of
    ``logsumexp`` followed by ``exp(log_prob - lse)``. Responsibilities below the dtype's
    smallest normal number relative to the row's largest are exactly 0.

    Returns
    -------
    resp : (n, K), rows summing to one
    log_norm : (n,) ``log sum_k exp(log_prob)``
    """
    top = jax.lax.stop_gradient(jnp.max(log_prob, axis=1, keepdims=True))
    delta = log_prob - top
    # Flush what would be a subnormal to exactly 0 (a relative 1e-38 in float32): subnormal
    # arithmetic is ~100x slower on CPUs and made float32 EM on separated clusters crawl.
    shifted = jnp.where(delta < _LOG_TINY[delta.dtype.name], 0.0, jnp.exp(delta))
    total = jnp.sum(shifted, axis=1, keepdims=True)
    return shifted / total, (top + jnp.log(total))[:, 0]


def block_stats(features: Array, weight: Array, resp: Array, n_dims: int,
                loglik: Array | float = 0.0) -> SuffStats:
    """Statistics of one block given responsibilities ``resp`` (n, K) and row weights (n,)."""
    weighted = resp * weight[:, None]
    sums = weighted.T @ features
    return SuffStats(
        counts=jnp.sum(weighted, axis=0),
        sum_x=sums[:, :n_dims],
        sum_second=sums[:, n_dims:],
        loglik=jnp.asarray(loglik, features.dtype),
        total_weight=jnp.sum(weight),
    )


def sum_blocks(fn, *blocked: Array, shards: int = 1, n_used: Array | None = None):
    """``sum_b fn(block_b...)`` over the leading (block) axis with ``lax.scan`` (over the first
    ``n_used`` blocks with a ``lax.fori_loop`` when ``n_used`` is given).

    ``fn`` maps one block of each argument to a pytree of arrays (e.g. :class:`SuffStats`).
    With ``shards > 1`` the blocks are split into that many runs of consecutive blocks, each run
    is summed by its own scan (vmapped over runs) and the runs' sums are added: when the block
    axis is sharded across devices run by run, each device scans only its own blocks and the
    final sum is the one all-reduce (see :class:`BlockedData`).
    """
    if shards > 1:
        if n_used is not None:
            raise ValueError("n_used needs a single shard")
        runs = [b.reshape(shards, b.shape[0] // shards, *b.shape[1:]) for b in blocked]
        per_run = jax.vmap(lambda *run: sum_blocks(fn, *run))(*runs)
        return jax.tree_util.tree_map(lambda s: jnp.sum(s, axis=0), per_run)
    first = jax.eval_shape(fn, *(b[0] for b in blocked))
    zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), first)

    def add(carry, block):
        return jax.tree_util.tree_map(jnp.add, carry, fn(*block))

    if n_used is not None:
        return jax.lax.fori_loop(0, n_used, lambda b, carry: add(
            carry, tuple(a[b] for a in blocked)), zero)
    total, _ = jax.lax.scan(lambda carry, block: (add(carry, block), None), zero, blocked)
    return total


def e_step(data: BlockedData, params: MixtureParams, family: CovarianceFamily) -> SuffStats:
    """Sufficient statistics of ``data`` under the responsibilities implied by ``params``."""
    n_dims = params.means.shape[1]
    if data.observed is not None:
        return _missing_e_step(data, params, family)

    def one_block(features, weight):
        resp, log_norm = normalise_log_prob(weighted_log_prob(features, params, family))
        return block_stats(features, weight, resp, n_dims, jnp.sum(weight * log_norm))

    return data.sum(one_block)


def _missing_e_step(data: BlockedData, params: MixtureParams,
                    family: CovarianceFamily) -> SuffStats:
    """:func:`e_step` for blocks with missing coordinates: expected complete-data statistics
    and the observed-data log-likelihood (:mod:`bayesgmm.core.missing`)."""
    n_dims = params.means.shape[1]

    def one_block(features, weight, observed):
        conditional = conditional_gaussians(params, family, observed)
        resp, log_norm = normalise_log_prob(natural_log_prob(features, conditional.natural))
        raw = block_stats(features, weight, resp, n_dims)
        sum_x, sum_outer = expected_sums(raw.counts, raw.sum_x,
                                         FullMoments.to_matrix(raw.sum_second, n_dims),
                                         conditional)
        return raw._replace(sum_x=sum_x, sum_second=sum_outer,
                            loglik=jnp.sum(weight * log_norm))

    stats = data.sum(one_block)
    return stats._replace(sum_second=family.moments.from_matrix(stats.sum_second))


def assignment_summary(data: BlockedData, params: MixtureParams,
                       family: CovarianceFamily) -> tuple[Array, Array]:
    """Total log-likelihood and ``sum_i w_i log r_i,map(i)`` (ICL's term) under ``params``."""

    def one_block(features, weight, observed=None):
        log_prob = block_log_prob(features, params, family, observed)
        _, log_norm = normalise_log_prob(log_prob)
        map_log_resp = jnp.max(log_prob, axis=1) - log_norm
        return jnp.sum(weight * log_norm), jnp.sum(weight * map_log_resp)

    return data.sum(one_block)


def stats_from_responsibilities(data: BlockedData, resp: Array, n_dims: int,
                                family: CovarianceFamily | None = None) -> SuffStats:
    """Statistics for given responsibilities ``resp`` (n_blocks, block_rows, K).

    With missing values these are the statistics of the rows as filled in the features
    (:func:`bayesgmm.engine.preprocessing.to_pattern_blocks`: column means, with the column variance
    as the missing squares), converted to ``family``'s features (required then): a start, not
    an E-step.
    """
    stats = data.sum(lambda f, w, *rest: block_stats(f, w, rest[-1], n_dims), resp)
    if data.observed is None:
        return stats
    return stats._replace(sum_second=family_features(stats.sum_second, n_dims, family))


def family_features(full_second: Array, n_dims: int, family: CovarianceFamily) -> Array:
    """Second-moment sums in :class:`FullMoments` form (..., D(D+1)/2) -> ``family``'s."""
    return family.moments.from_matrix(FullMoments.to_matrix(full_second, n_dims))


def centred_e_step(data: BlockedData, params: MixtureParams, centre: Array,
                   family: CovarianceFamily) -> SuffStats:
    """:func:`e_step` with the second moments taken about per-component centres (K, D).

    ``sum_second[k] = sum_i w_i r_ik phi(x_i - centre_k)``. With ``centre`` near the
    component means this avoids the cancellation of ``E[x x'] - mu mu'`` (which costs float32
    most of its digits on thin, distant clusters), at the price of ``K x block_rows x D``
    temporaries (a batched product over components); it is used once per fit, not per
    iteration.
    """
    n_dims = params.means.shape[1]

    def one_block(features, weight):
        resp, log_norm = normalise_log_prob(weighted_log_prob(features, params, family))
        weighted = resp * weight[:, None]
        x = data_columns(features, n_dims)
        return SuffStats(
            counts=jnp.sum(weighted, axis=0),
            sum_x=weighted.T @ x,
            sum_second=family.moments.centred_sums(weighted, x, centre),
            loglik=jnp.sum(weight * log_norm),
            total_weight=jnp.sum(weight),
        )

    return data.sum(one_block)


def m_step(stats: SuffStats, family: CovarianceFamily, reg_covar: Array,
           centre: Array | float = 0.0, active: Array | None = None,
           prior: ConjugatePrior | None = None) -> MixtureParams:
    """Parameters from statistics: maximum likelihood (scikit-learn's M-step) or MAP.

    Parameters
    ----------
    centre : (K, D) origin of ``stats.sum_second`` (0 for :func:`e_step`)
    active : (K,) bool, components in use; the others keep weight exactly 0 (used to pad
        a sweep over K to one shape). None means all.
    prior : :class:`ConjugatePrior` for MAP estimates of means and covariances, or None

    As in scikit-learn, ``10 * eps`` is added to each count so that an empty component keeps a
    finite mean and a covariance of ``reg_covar``.
    """
    counts = stats.counts + 10 * jnp.finfo(stats.counts.dtype).eps
    means = stats.sum_x / counts[:, None]
    n_active = None if active is None else jnp.sum(active)
    offsets = None if prior is None else means - prior.mean
    cov = family.covariance(counts, means - centre, stats.sum_second, reg_covar, prior, offsets,
                            n_active)
    if prior is not None:
        means = ((counts[:, None] * means + prior.shrinkage * prior.mean)
                 / (counts + prior.shrinkage)[:, None])
    cov, prec_chol = family.precisions_cholesky(cov, reg_covar)
    weights = counts if active is None else jnp.where(active, counts, 0.0)
    return MixtureParams(weights / jnp.sum(weights), means, cov, prec_chol)
