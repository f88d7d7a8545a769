"""Choosing the number of components and the covariance type: BIC, AIC and ICL.

One compiled program fits every (covariance type, K, restart) of the grid
(:mod:`bayesgmm.engine.sweep`, with the :class:`~bayesgmm.core.covariance.Mixed` family).
Fits are padded to the largest K: a K-component fit carries ``max(K) - K`` extra
components whose weight is exactly zero (the ``active`` mask of
:func:`bayesgmm.core.em.fit_batch`), so all fits share one shape and one ``vmap``. Batching
also turns the E-step's two matrix products into wide ones that read the data once for all
fits; the price is that fits with few components pay for ``max(K)`` components and
that a batch runs until its slowest fit stops. On large data the restarts are screened on a
sample first (``screen_rows``).

Criteria (scikit-learn's sign: lower is better), with ``log L`` at the fitted parameters, ``p``
free parameters and ``n`` rows:

* ``bic = -2 log L + p log n``
* ``aic = -2 log L + 2 p``
* ``icl = bic - 2 sum_i log r_i,map(i)``: BIC plus twice the entropy of the hard (MAP)
  assignments, ``r_i,map(i)`` being each row's largest posterior probability. This is mclust's
  ICL (Biernacki, Celeux & Govaert 2000) with the sign flipped: mclust reports
  ``BIC_mclust = 2 log L - p log n = -bic`` and ``ICL_mclust = BIC_mclust + 2 sum_i log
  r_i,map(i) = -icl``, higher being better there.

Degenerate fits (see :func:`bayesgmm.core.em_steps.degenerate_components`) have an unbounded
likelihood and a spuriously good criterion. A (type, K) whose every restart is degenerate is
flagged in the ``degenerate`` column and, by default, excluded from selection, as mclust reports
NA for it.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesgmm.base.config import seed_from
from bayesgmm.base.estimator_api import BaseEstimator, DensityMixin, check_is_fitted
from bayesgmm.base.io import Persistable
from bayesgmm.base.validation import DegenerateFitError, is_real
from bayesgmm.core.covariance import MIXED_KINDS, get_family
from bayesgmm.engine.parallel import seed_of_process_zero
from bayesgmm.engine.preprocessing import AffineScaling, compute_context, compute_dtype
from bayesgmm.engine.sweep import Grid, SweepSettings, TypeFits, fit_grid, n_batches
from bayesgmm.engine.training import TrainingData
from bayesgmm.estimators.gaussian import GaussianMixture
from bayesgmm.estimators.selection_finish import FINISH_TOL, finish_selected

CRITERIA = ("bic", "aic", "icl")
#: Every covariance type, simplest first: the default sweep (one source with the sweep's codes).
COVARIANCE_TYPES = MIXED_KINDS
TABLE_COLUMNS = ["covariance_type", "n_components", "log_likelihood", "n_parameters", "bic",
                 "aic", "icl", "converged", "degenerate", "n_degenerate_inits", "selected"]


@dataclass
class SelectionResult(Persistable):
    """The outcome of :func:`select_model`.

    Attributes
    ----------
    table : DataFrame
        One row per (covariance_type, n_components): ``log_likelihood`` (total, at the fitted
        parameters; at the MAP estimate with a prior), ``n_parameters``, ``bic``, ``aic``,
        ``icl``, ``converged``, ``degenerate`` (every restart degenerate), ``n_degenerate_inits``
        and ``selected``. Sorted by the criterion, best first.
    best_ : GaussianMixture
        The selected model, fitted (the sweep's own fit, not a refit).
    criterion : str
    """

    table: pd.DataFrame
    best_: GaussianMixture
    criterion: str
    _sweep: _Sweep | SavedSweep

    def model(self, covariance_type: str, n_components: int) -> GaussianMixture:
        """The fitted model of any row of the table (the best restart of that (type, K))."""
        return self._sweep.model(covariance_type, n_components)

    def plot(self, ax=None, criterion: str | None = None):
        """The criterion against K, one line per covariance type (mclust's BIC plot)."""
        from bayesgmm.estimators.selection_plot import plot_selection

        return plot_selection(self.table, criterion or self.criterion, ax=ax)

    def _get_state(self) -> dict:
        """The table, the selected model, the criterion and every row's fitted model."""
        models = [[row.covariance_type, int(row.n_components),
                   self.model(row.covariance_type, int(row.n_components))]
                  for row in self.table.itertuples()]
        return {"table": self.table, "best": self.best_, "criterion": self.criterion,
                "models": models}

    @classmethod
    def _from_state(cls, state: dict) -> SelectionResult:
        models = {(kind, int(k)): model for kind, k, model in state["models"]}
        return cls(state["table"], state["best"], state["criterion"], SavedSweep(models))


@dataclass
class _Sweep:
    """Everything needed to turn a row of the sweep back into a fitted GaussianMixture."""

    fits: dict[str, TypeFits]
    ks: list[int]
    scaling: AffineScaling
    n_dims: int
    names: np.ndarray | None
    settings: dict
    mean_log_det: float
    missing_counts: np.ndarray
    #: Models continued past the sweep (the selected one: :func:`.finish_selected`), by
    #: (type, K).
    finished: dict = field(default_factory=dict)

    def model(self, covariance_type: str, n_components: int) -> GaussianMixture:
        if (covariance_type, n_components) in self.finished:
            return self.finished[covariance_type, n_components]
        if covariance_type not in self.fits or n_components not in self.ks:
            raise ValueError(f"({covariance_type!r}, {n_components}) is not in the sweep: "
                             f"types {list(self.fits)}, n_components {self.ks}")
        fits = self.fits[covariance_type]
        position = self.ks.index(n_components)
        model = GaussianMixture(n_components, covariance_type=covariance_type, **self.settings)
        model.store_fit(fits.result, position, self.scaling, np.arange(n_components),
                        log_det=self.mean_log_det)
        model.n_missing_values_ = self.missing_counts
        model.n_degenerate_inits_ = int(fits.n_degenerate_inits[position])
        model.n_features_in_ = self.n_dims
        if self.names is not None:
            model.feature_names_in_ = self.names
        return model


@dataclass
class SavedSweep:
    """The per-row models of a :class:`SelectionResult` read back by :func:`bayesgmm.load`."""

    models: dict[tuple[str, int], GaussianMixture]

    def model(self, covariance_type: str, n_components: int) -> GaussianMixture:
        try:
            return self.models[covariance_type, n_components]
        except KeyError:
            raise ValueError(f"({covariance_type!r}, {n_components}) is not in the sweep: "
                             f"{sorted(self.models)}") from None


def _check_grid(n_components, covariance_types, criterion) -> tuple[list[int], list[str]]:
    values = ([n_components] if isinstance(n_components, numbers.Integral)
              else list(n_components))
    if not values or not all(isinstance(k, numbers.Integral) and k >= 1 for k in values):
        raise ValueError(f"n_components={n_components!r} must be integers >= 1")
    if isinstance(covariance_types, str):
        covariance_types = (covariance_types,)
    types = list(dict.fromkeys(covariance_types))
    if not types:
        raise ValueError("covariance_types is empty")
    for name in types:
        get_family(name)
    if criterion not in CRITERIA:
        raise ValueError(f"criterion={criterion!r} is not supported; choose one of {CRITERIA}")
    return sorted({int(k) for k in values}), types


def select_model(X, n_components=range(1, 10), covariance_types=COVARIANCE_TYPES,
                 criterion="bic", n_init=5, random_state=None, prior=None, *, tol=1e-3,
                 reg_covar=1e-6, max_iter=100, init_params="kmeans", dtype="float64",
                 exclude_degenerate=True, progress_bar=False, missing="error",
                 screen_rows="auto", finish_tol=FINISH_TOL) -> SelectionResult:
    """Fit every (covariance type, K) with ``n_init`` restarts and pick the best by a criterion.

    The whole grid is one compiled program (:mod:`bayesgmm.engine.sweep`). On data of more than
    twice ``screen_rows`` rows, the restarts are screened on a random sample of that many rows
    and only each (type, K)'s best restart there is continued on all rows.

    Parameters
    ----------
    X : array-like (n_samples, n_features)
    n_components : iterable of int, default range(1, 10)
    covariance_types : iterable of {'spherical', 'diag', 'tied', 'full'}
    criterion : {'bic', 'aic', 'icl'}, default 'bic' (lower is better)
    n_init : int, restarts per (type, K); the best non-degenerate lower bound wins
    random_state : int, numpy RandomState or Generator, or None
    prior : None, 'default' or :class:`bayesgmm.MAPPrior`
        MAP EM under mclust's conjugate prior (scale set per K, as mclust's ``defaultPrior``);
        the criteria then use the log-likelihood at the MAP estimate, as mclust does.
    tol, reg_covar, max_iter, init_params, dtype :
        As :class:`bayesgmm.GaussianMixture`.
    exclude_degenerate : bool, default True
        Leave (type, K) pairs whose every restart is degenerate out of the selection (with a
        warning giving their number).
    progress_bar : bool, default False
        Show a progress bar over the batches (one, or two when screening).
    missing : {'error', 'marginalize'}, default 'error'
        As :class:`bayesgmm.GaussianMixture`: with 'marginalize', NaN entries are missing at
        random, every fit is exact EM for incomplete data, and the criteria use the
        observed-data log-likelihood with the usual parameter counts and ``n`` = the number of
        rows (rows with no observed value are left out, with a warning).
    screen_rows : 'auto', int or None, default 'auto'
        Size of the random sample on which every restart is fitted before the best restart of
        each (type, K) is continued by EM on all rows (emEM; see :mod:`bayesgmm.engine.sweep`).
        'auto' is 10,000 rows; the sample is rounded up to whole blocks (10,000 -> 10,240).
        Screening applies only to data of more than twice the sample, without missing values,
        on one device; None fits every restart on all rows (scikit-learn's semantics of
        ``n_init``).
    finish_tol : float or None, default 1e-8
        The selected model is continued by EM until its mean log-likelihood changes by less
        than this (at most :data:`~bayesgmm.estimators.selection_finish.FINISH_MAX_ITER`
        more iterations), so that its criterion in the table is the optimum rather than where
        ``tol`` stopped the sweep. None keeps the sweep's fit (one compiled program fewer).

    Returns
    -------
    SelectionResult
    """
    ks, types = _check_grid(n_components, covariance_types, criterion)
    if finish_tol is not None and not (is_real(finish_tol) and finish_tol > 0):
        raise ValueError(f"finish_tol={finish_tol!r} is invalid: it must be a number > 0, or "
                         "None to keep the sweep's fit of the selected model")
    template = GaussianMixture(max(ks), tol=tol, reg_covar=reg_covar, max_iter=max_iter,
                               n_init=n_init, init_params=init_params, dtype=dtype, prior=prior,
                               random_state=random_state, missing=missing)
    template.check_parameters()
    data = TrainingData.prepare(X, template, max(ks), reg_covar, missing)
    n_samples, n_dims = data.n_rows, data.x.shape[1]
    compute = compute_dtype(dtype)
    seed = seed_of_process_zero(seed_from(random_state))

    grid = Grid(types, ks, n_init)
    with compute_context(compute), _progress(n_batches(screen_rows, data, compute),
                                             progress_bar) as bar:
        fits = fit_grid(data, grid, SweepSettings(compute, reg_covar, tol, init_params, max_iter,
                                                  prior, screen_rows), seed=seed, progress=bar)
    rows = [row for name in types for row in _rows_for_type(
        fits[name], name, ks, n_init, n_samples, n_dims, data.mean_log_det)]

    table = pd.DataFrame(rows, columns=TABLE_COLUMNS[:-1])
    table["selected"] = False
    candidates = table[~table["degenerate"]] if exclude_degenerate else table
    excluded = int(table["degenerate"].sum())
    if exclude_degenerate and excluded:
        pairs = ", ".join(f"{r.covariance_type} K={r.n_components}"
                          for r in table[table["degenerate"]].itertuples())
        warnings.warn(f"{excluded} of {len(table)} models were degenerate in every restart and "
                      f"are excluded from selection ({pairs}); see the 'degenerate' column.",
                      UserWarning, stacklevel=2)
    if candidates.empty:
        raise DegenerateFitError(
            "Every (covariance type, K) in the grid was degenerate in every restart. Use fewer "
            "components, prior='default', a larger reg_covar or more n_init.")
    chosen = candidates[criterion].idxmin()
    table.loc[chosen, "selected"] = True
    best = table.loc[chosen]
    sweep = _Sweep(fits, ks, data.scaling, n_dims, data.names, dict(
        tol=tol, reg_covar=reg_covar, max_iter=max_iter, n_init=n_init, init_params=init_params,
        random_state=random_state, dtype=dtype, prior=prior, missing=missing),
        data.mean_log_det, data.missing_counts)
    key = (best.covariance_type, int(best.n_components))
    finished = None if finish_tol is None else finish_selected(sweep.model(*key), data, seed,
                                                               finish_tol)
    if finished is not None:
        model, loglik, map_log_resp = finished
        sweep.finished[key] = model
        n_params = int(table.loc[chosen, "n_parameters"])
        table.loc[chosen, ["log_likelihood", "bic", "aic", "icl", "converged"]] = [
            loglik, *_criteria(loglik, n_params, n_samples, map_log_resp), model.converged_]
    table = table.sort_values(criterion, kind="stable").reset_index(drop=True)
    return SelectionResult(table, sweep.model(*key), criterion, sweep)


def _progress(n_batches: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=n_batches, desc="model selection", unit="batch", disable=not enabled,
                leave=False)


def _criteria(loglik: float, n_params: int, n_samples: int,
              map_log_resp: float) -> tuple[float, float, float]:
    """(bic, aic, icl) of a fit (module docstring): its total log-likelihood, free
    parameters, rows and ICL's assignment term ``sum_i log r_i,map(i)``."""
    bic = -2.0 * loglik + n_params * np.log(n_samples)
    return bic, -2.0 * loglik + 2.0 * n_params, bic - 2.0 * map_log_resp


def _rows_for_type(fits: TypeFits, name: str, ks: list[int], n_init: int, n_samples: int,
                   n_dims: int, mean_log_det: float) -> list[list]:
    family = get_family(name)
    result = fits.result
    rows = []
    for position, k in enumerate(ks):
        n_degenerate = int(fits.n_degenerate_inits[position])
        loglik = float(result.loglik[position]) - n_samples * mean_log_det
        n_params = family.n_parameters(k, n_dims)
        degenerate = n_degenerate == n_init or bool(result.degenerate[position].any())
        rows.append([name, k, loglik, n_params,
                     *_criteria(loglik, n_params, n_samples,
                                float(result.map_log_resp[position])),
                     bool(result.state.converged[position]), degenerate, n_degenerate])
    return rows


class AutoGaussianMixture(Persistable, DensityMixin, BaseEstimator):
    """A Gaussian mixture whose K and covariance type are chosen by :func:`select_model`.

    After ``fit`` it behaves as the selected :class:`GaussianMixture` (``predict``,
    ``predict_proba``, ``score_samples``, ``score``, ``sample``, ``bic``, ``aic`` and the fitted
    attributes), so it can stand in a ``Pipeline``.

    Parameters
    ----------
    As :func:`select_model`.

    Attributes
    ----------
    best_estimator_ : GaussianMixture
    selection_ : SelectionResult
    n_components_, covariance_type_ : the selected K and covariance type
    weights_, means_, covariances_, precisions_, precisions_cholesky_, converged_, n_iter_,
    lower_bound_, n_features_in_, feature_names_in_ : those of ``best_estimator_``
    """

    _FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
               "converged_", "n_iter_", "lower_bound_", "degenerate_", "n_features_in_",
               "feature_names_in_", "n_missing_values_")

    def __init__(self, n_components=range(1, 10), *, covariance_types=COVARIANCE_TYPES,
                 criterion="bic", n_init=5, random_state=None, prior=None, tol=1e-3,
                 reg_covar=1e-6, max_iter=100, init_params="kmeans", dtype="float64",
                 missing="error", screen_rows="auto"):
        self.n_components = n_components
        self.covariance_types = covariance_types
        self.criterion = criterion
        self.n_init = n_init
        self.random_state = random_state
        self.prior = prior
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.init_params = init_params
        self.dtype = dtype
        self.missing = missing
        self.screen_rows = screen_rows

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags

    def fit(self, X, y=None):
        """Run the sweep and keep the selected model."""
        self.selection_ = select_model(
            X, self.n_components, self.covariance_types, self.criterion, self.n_init,
            self.random_state, self.prior, tol=self.tol, reg_covar=self.reg_covar,
            max_iter=self.max_iter, init_params=self.init_params, dtype=self.dtype,
            missing=self.missing, screen_rows=self.screen_rows)
        best = self.best_estimator_ = self.selection_.best_
        self.n_components_ = best.n_components
        self.covariance_type_ = best.covariance_type
        for name in self._FITTED:
            if hasattr(best, name):
                setattr(self, name, getattr(best, name))
        return self

    def _best(self) -> GaussianMixture:
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_

    def predict(self, X):
        return self._best().predict(X)

    def predict_proba(self, X):
        return self._best().predict_proba(X)

    def fit_predict(self, X, y=None):
        return self.fit(X).predict(X)

    def score_samples(self, X):
        return self._best().score_samples(X)

    def score(self, X, y=None):
        return self._best().score(X)

    def sample(self, n_samples=1):
        return self._best().sample(n_samples)

    def bic(self, X):
        return self._best().bic(X)

    def aic(self, X):
        return self._best().aic(X)
