"""Missing values under a fitted Gaussian mixture: conditional Gaussians, imputation, draws.

Given a row's observed coordinates ``x_o``, each component ``k`` of the mixture gives the
Gaussian regression of the missing ones, ``x_m | x_o, k ~ N(A_k x + b_k, C_k)``
(:func:`bayesgmm.core.missing.conditional_gaussians`), and the memberships ``p(k | x_o)``
weight the components. Rows are packed into pattern blocks (rows that share one pattern of
observed coordinates, :func:`~bayesgmm.engine.preprocessing.to_pattern_blocks`), so one
compiled program serves every pattern. The work is done in a model's internal units
(:class:`~bayesgmm.engine.preprocessing.AffineScaling`); the results are in the data's units.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.missing import conditional_gaussians, conditional_means
from bayesgmm.core.parameters import MixtureParams
from bayesgmm.core.stats import BlockedData, block_log_prob, data_columns, normalise_log_prob
from bayesgmm.engine.preprocessing import AffineScaling, PatternLayout, to_pattern_blocks


class Conditionals(NamedTuple):
    """What imputation needs about rows with missing values, in internal units.

    Attributes
    ----------
    x : (N, D) the rows as given (data units, NaN where missing)
    resp : (N, K) memberships given the observed coordinates
    means : (N, D) conditional means under the mixture
    regression : (B, K, D, D) per pattern block and component, ``A_k``
    offset : (B, K, D) per pattern block and component, ``b_k``
    chol : (B, K, D, D) a factor of each component's conditional covariance plus the
        identity on the observed coordinates
    block : (N,) each row's pattern block
    """

    x: np.ndarray
    resp: np.ndarray
    means: np.ndarray
    regression: np.ndarray
    offset: np.ndarray
    chol: np.ndarray
    block: np.ndarray


def pattern_blocks(x: np.ndarray, scaling: AffineScaling, dtype
                   ) -> tuple[BlockedData, PatternLayout]:
    """Pattern blocks of rows ``x`` (N, D) with missing values (NaN), in ``scaling``'s internal
    units (:func:`~bayesgmm.engine.preprocessing.to_pattern_blocks`). Must be called inside
    ``compute_context(dtype)``."""
    fill = np.ones(x.shape[1])  # the filled squares only matter for an EM start
    return to_pattern_blocks(scaling.transform(x), dtype, fill)


@persistent_jit(static_argnames="family")
def _block_conditionals(data, params, family):
    """Per pattern block: memberships (n_blocks, block_rows, K), conditional means of the rows
    (n_blocks, block_rows, D), and the components' conditional Gaussians
    (:class:`~bayesgmm.core.missing.ConditionalGaussians` fields with a leading block axis)."""
    n_dims = params.means.shape[1]

    def one_block(block):
        features, observed = block
        conditional = conditional_gaussians(params, family, observed)
        resp, _ = normalise_log_prob(block_log_prob(features, params, family, observed))
        means = conditional_means(data_columns(features, n_dims), resp, conditional)
        return resp, means, conditional.regression, conditional.offset, conditional.residual

    return jax.lax.map(one_block, (data.features, data.observed))


def conditionals(x: np.ndarray, params: MixtureParams, family: CovarianceFamily,
                 scaling: AffineScaling, dtype) -> Conditionals:
    """Memberships, conditional means and per-block conditional Gaussians of rows ``x``
    (N, D, NaN where missing) under a mixture with ``params`` (internal units, JAX arrays of
    ``dtype``). Must be called inside ``compute_context(dtype)``."""
    data, layout = pattern_blocks(x, scaling, dtype)
    blocks = jax.device_get(_block_conditionals(data, params, family))
    resp, means = (layout.unblock(np.asarray(a, np.float64)) for a in blocks[:2])
    regression, offset, residual = (np.asarray(a, np.float64) for a in blocks[2:])
    observed = np.asarray(data.observed, np.float64)
    # Conditional covariances are zero on the observed block; C + diag(o) factors.
    chol = np.linalg.cholesky(residual + np.eye(x.shape[1]) * observed[:, None, None, :])
    return Conditionals(x, resp, means, regression, offset, chol,
                        layout.position // layout.block_rows)


def impute(given: Conditionals, scaling: AffineScaling) -> np.ndarray:
    """Conditional-mean imputation (N, D): each NaN of ``given.x`` replaced by its conditional
    mean in the data's units; observed values unchanged."""
    return np.where(np.isnan(given.x), scaling.inverse_transform(given.means), given.x)


def sample_missing(given: Conditionals, scaling: AffineScaling, n_imputations: int,
                   rng: np.random.Generator) -> np.ndarray:
    """``n_imputations`` draws of the missing values of ``given.x`` from ``p(x_m | x_o)``:
    (n_imputations, N, D), observed values unchanged. Each draw picks a component with the
    row's memberships, then draws from that component's conditional Gaussian (numpy's
    ``rng``)."""
    x = given.x
    n_samples, n_dims = x.shape
    n_components = given.resp.shape[1]
    missing = np.isnan(x)
    internal = np.where(missing, 0.0, scaling.transform(x))
    cumulative = np.cumsum(given.resp, axis=1)
    draws = np.repeat(x[None], n_imputations, axis=0)
    for t in range(n_imputations):
        k = np.minimum((rng.random(n_samples)[:, None] > cumulative).sum(axis=1),
                       n_components - 1)
        b = given.block
        noise = rng.standard_normal((n_samples, n_dims))
        value = (np.einsum("nij,nj->ni", given.regression[b, k], internal)
                 + given.offset[b, k] + np.einsum("nij,nj->ni", given.chol[b, k], noise))
        draws[t] = np.where(missing, scaling.inverse_transform(value), x)
    return draws
