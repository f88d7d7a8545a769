"""Finishing the model that :func:`~bayesgmm.estimators.selection.select_model` selected.

Every fit of the grid stops at the sweep's ``tol`` (scikit-learn's 1e-3). By default the
selected model alone is then continued by EM from where the sweep left it, until the mean
log-likelihood changes by less than :data:`FINISH_TOL`, so that its reported criterion is the
optimum (figures in the README's scikit-learn differences). A continued fit that ends with a
degenerate component is dropped and the sweep's fit stands.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np

from bayesgmm.engine.preprocessing import compute_context, compute_dtype
from bayesgmm.engine.training import TrainingData
from bayesgmm.estimators.gaussian import GaussianMixture

#: By default the selected model is continued by EM until the mean log-likelihood changes by
#: less than this (or for at most ``FINISH_MAX_ITER`` more iterations), so that its reported
#: criterion is the optimum rather than wherever ``tol`` (scikit-learn's 1e-3, for every fit
#: of the grid) stopped it (figures in the README's scikit-learn differences).
FINISH_TOL = 1e-8
FINISH_MAX_ITER = 1000


class FinishedModel(NamedTuple):
    """The selected model continued to a tight tolerance, with what its table row needs."""

    #: The continued fit (iterations and lower bounds counted from the sweep's start).
    model: GaussianMixture
    #: Total log-likelihood of the training rows in the data's units.
    log_likelihood: float
    #: ICL's assignment term ``sum_i log r_i,map(i)``.
    map_log_resp: float


def finish_selected(model: GaussianMixture, data: TrainingData, seed: int,
                    tol: float) -> FinishedModel | None:
    """``model`` (the sweep's fit of the selected (type, K)) continued by EM on ``data`` to
    ``tol`` (at most :data:`FINISH_MAX_ITER` more iterations); None when the continued fit
    ends with a degenerate component (the sweep's fit then stands). ``model`` is not
    changed."""
    finished = copy.copy(model)
    with compute_context(compute_dtype(model.dtype)):
        result, _ = finished.run_from_start(data, 1, seed, FINISH_MAX_ITER, warm=True,
                                            tol=tol, summarise=True)
    if np.asarray(result.degenerate).any():
        return None
    finished.store_fit(result, 0, data.scaling, log_det=data.mean_log_det)
    finished.n_iter_ += model.n_iter_
    finished.lower_bounds_ = model.lower_bounds_ + finished.lower_bounds_
    finished.n_degenerate_inits_ = model.n_degenerate_inits_
    loglik = float(result.loglik[0]) - data.n_rows * data.mean_log_det
    return FinishedModel(finished, loglik, float(result.map_log_resp[0]))
