"""Weighted component log densities of rows under a fitted mixture, complete or with missing
values: what ``predict``, ``predict_proba`` and ``score_samples`` are computed from.

Complete rows go through the ordinary blocks; rows with missing values (NaN) through pattern
blocks (:func:`bayesgmm.engine.imputation.pattern_blocks`), where each row's density is that of
its observed coordinates. Both are computed in the model's internal units and returned in the
data's units.
"""

from __future__ import annotations

import jax
import numpy as np

from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.parameters import MixtureParams
from bayesgmm.core.stats import block_log_prob, weighted_log_prob
from bayesgmm.engine.imputation import pattern_blocks
from bayesgmm.engine.preprocessing import AffineScaling, to_blocks


@persistent_jit(static_argnames="family")
def _block_log_prob(data, params, family):
    """Weighted component log densities per block: (n_blocks, block_rows, K); of the observed
    coordinates for pattern blocks."""
    if data.observed is None:
        return jax.lax.map(lambda f: weighted_log_prob(f, params, family), data.features)
    return jax.lax.map(lambda block: block_log_prob(*block[:1], params, family, block[1]),
                       (data.features, data.observed))


def rows_weighted_log_prob(x: np.ndarray, params: MixtureParams, family: CovarianceFamily,
                           scaling: AffineScaling, dtype) -> np.ndarray:
    """``log w_k + log N(x | mu_k, S_k)`` (N, K) in the data's units for rows ``x`` (N, D);
    of the observed coordinates for rows with NaN. ``params`` are in ``scaling``'s internal
    units, JAX arrays of ``dtype``. Must be called inside ``compute_context(dtype)``."""
    n_samples, n_dims = x.shape
    observed = ~np.isnan(x)
    if observed.all():
        data = to_blocks(scaling.transform(x), dtype, family)
        log_prob = np.asarray(_block_log_prob(data, params, family), np.float64)
        log_prob = log_prob.reshape(-1, params.weights.shape[-1])[:n_samples]
    else:
        data, layout = pattern_blocks(x, scaling, dtype)
        log_prob = layout.unblock(np.asarray(_block_log_prob(data, params, family),
                                             np.float64))
    # The density of a row's observed values is in the units of those columns only.
    log_scale = np.log(np.broadcast_to(scaling.scale, (n_dims,)))
    return log_prob - (observed @ log_scale)[:, None]
