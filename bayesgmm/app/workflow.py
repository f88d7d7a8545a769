"""The whole clustering job on a table, as one object: what ``bayesgmm fit`` runs.

:class:`Clustering` chooses K and the covariance type by a criterion (:func:`select_model`),
optionally fits the Bayesian mixture on top, and keeps everything needed to assign new rows:
the columns used, the optional per-column standardisation and an anomaly threshold. Saved with
``save(path)`` and read back with :func:`bayesgmm.load`, it assigns raw new data exactly as the
fit did (``bayesgmm predict`` and ``bayesgmm report`` use it that way).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from bayesgmm.base.config import AMBIGUITY_THRESHOLD
from bayesgmm.base.estimator_api import BaseEstimator, check_is_fitted
from bayesgmm.base.io import Persistable
from bayesgmm.base.validation import (
    ColumnSummary,
    NonNumericDataError,
    as_frame,
    check_finite,
    check_missing_option,
)
from bayesgmm.core.covariance import get_family
from bayesgmm.engine.bayes.posterior import membership_entropy
from bayesgmm.engine.preprocessing import AffineScaling
from bayesgmm.estimators.bayesian import BayesianGaussianMixture
from bayesgmm.estimators.selection import COVARIANCE_TYPES, select_model

BAYES_METHODS = ("none", "gibbs", "vi", "nuts")
#: Smallest mean share of rows for which a Bayesian cluster is reported on its own.
REPORTED_SHARE = 0.01


#: Settings when ``BAYESGMM_SMALL=1`` (how the test suite runs the demo, the examples and the
#: notebooks): short chains (and capped NUTS trajectories). They exercise every code path;
#: their posteriors are not fit for inference.
SMALL_SETTINGS = {
    # 100 kept draws per block as by default, so the compiled program is the default's
    # (thinning is a traced argument of it).
    "gibbs": {"num_warmup": 100, "num_samples": 100, "thinning": 1, "max_extensions": 0},
    "nuts": {"num_warmup": 100, "num_samples": 100, "num_chains": 1, "max_tree_depth": 6},
    "vi": {"max_steps": 1000},
}


def small_settings(method: str = "gibbs") -> dict:
    """The :data:`SMALL_SETTINGS` of ``method`` when the environment variable
    ``BAYESGMM_SMALL`` is ``1``, else ``{}`` (the defaults)."""
    return dict(SMALL_SETTINGS[method]) if os.environ.get("BAYESGMM_SMALL") == "1" else {}


def select_columns(data: pd.DataFrame, columns=None) -> tuple[pd.DataFrame, list[str]]:
    """The numeric columns to cluster on, as float64.

    ``columns`` None takes every numeric column and returns the names of the other columns
    (left out); named columns must exist and be numeric. Errors name the column.
    """
    if data.shape[0] == 0:
        raise ValueError("the data have no rows")
    if columns is None:
        numeric = [c for c in data.columns if pd.api.types.is_numeric_dtype(data[c])
                   and not pd.api.types.is_bool_dtype(data[c])]
        skipped = [str(c) for c in data.columns if c not in numeric]
        if not numeric:
            raise NonNumericDataError(
                f"the data have no numeric columns (columns: {', '.join(map(str, data.columns))})")
        columns = numeric
    else:
        skipped = []
        missing = [c for c in columns if c not in data.columns]
        if missing:
            raise ValueError(f"unknown column {missing[0]!r}; the data have columns: "
                             f"{', '.join(map(str, data.columns))}")
        for c in columns:
            if not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c]):
                sample = data[c].dropna().astype(str).head(3).tolist()
                raise NonNumericDataError(f"column {c!r} is not numeric (e.g. {sample}); "
                                          "choose numeric columns with --columns")
    frame = data[list(columns)].astype(np.float64)
    frame.columns = [str(c) for c in frame.columns]
    return frame, skipped


class Clustering(Persistable, BaseEstimator):
    """Select, fit and keep a Gaussian mixture for a table, with its preprocessing.

    Parameters
    ----------
    columns : list of str, optional
        Columns to cluster on; default every numeric column.
    n_components : int or iterable of int, default range(1, 10)
        K, or the Ks to choose from (as :func:`select_model`).
    covariance_type : 'auto' or one of {'spherical', 'diag', 'tied', 'full'}
        'auto' chooses among all four.
    criterion : {'bic', 'aic', 'icl'}
    bayes : {'none', 'gibbs', 'vi', 'nuts'}
        Also fit a :class:`~bayesgmm.BayesianGaussianMixture` by that method (truncation
        ``max(10, 2 K)`` with K the selected EM count; full covariances, or diag when EM chose
        diag or spherical; NUTS and VI start from an EM fit with the selected K). Its
        assignments and uncertainty are then the ones reported.
    standardize : bool, default False
        Scale each column to mean 0 and variance 1 before clustering (the spherical and diag
        models and ``reg_covar`` are not invariant to per-column scale; full and tied are).
        Results are always reported in the data's own units.
    anomaly_quantile : float, default 0.01
        Rows whose log density is below this quantile of the training rows' log densities are
        flagged as anomalies by :meth:`assign`.
    n_init : int, EM restarts per (type, K)
    random_state : int or None
    progress_bar : bool
    bayes_options : dict, optional
        Further :class:`~bayesgmm.BayesianGaussianMixture` parameters (e.g.
        ``{"num_samples": 2000}`` or ``{"weight_concentration_prior_type":
        "dirichlet_distribution"}``); they override the choices above.
    missing : {'error', 'marginalize'}, default 'error'
        'marginalize' keeps rows with missing values (NaN) and fits every model by
        marginalising them (:class:`~bayesgmm.GaussianMixture`); rows with nothing observed
        are left out with a warning. A row's log density is then that of its observed values,
        which is not comparable with complete rows', so rows with missing values are never
        flagged as anomalies (``anomaly`` is NA for them) and the threshold comes from the
        complete training rows.
    """

    def __init__(self, columns=None, n_components=range(1, 10), *, covariance_type="auto",
                 criterion="bic", bayes="none", standardize=False, anomaly_quantile=0.01,
                 n_init=5, random_state=None, progress_bar=False, bayes_options=None,
                 missing="error"):
        self.columns = columns
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.criterion = criterion
        self.bayes = bayes
        self.standardize = standardize
        self.anomaly_quantile = anomaly_quantile
        self.n_init = n_init
        self.random_state = random_state
        self.progress_bar = progress_bar
        self.bayes_options = bayes_options
        self.missing = missing

    def _check_parameters(self) -> None:
        if self.bayes not in BAYES_METHODS:
            raise ValueError(f"bayes={self.bayes!r}: choose one of {BAYES_METHODS}")
        if self.covariance_type != "auto" and self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type={self.covariance_type!r}: choose 'auto' or one "
                             f"of {COVARIANCE_TYPES}")
        unknown = set(self.bayes_options or {}) - set(BayesianGaussianMixture().get_params())
        if unknown:
            raise ValueError(f"bayes_options: unknown BayesianGaussianMixture parameter(s) "
                             f"{sorted(unknown)}")
        check_missing_option(self.missing)
        if not 0 < self.anomaly_quantile < 1:
            raise ValueError(f"anomaly_quantile={self.anomaly_quantile!r} must be in (0, 1)")

    def fit(self, data: pd.DataFrame, y=None):
        """Fit on the rows of ``data`` (a DataFrame; other array-likes get columns x0, x1...)."""
        self._check_parameters()
        data = as_frame(data)
        frame, self.skipped_columns_ = select_columns(data, self.columns)
        self.columns_ = list(frame.columns)
        check_finite(frame.to_numpy(), np.array(self.columns_, dtype=object),
                     allow_nan=check_missing_option(self.missing),
                     nan_hint=" or pass missing='marginalize' (--missing marginalize)")
        summary = ColumnSummary.of(frame.to_numpy())
        self.input_scaling_ = (AffineScaling.standardise(summary.mean, summary.var)
                               if self.standardize else None)
        x = self.model_input(frame)
        types = COVARIANCE_TYPES if self.covariance_type == "auto" else (self.covariance_type,)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.selection_ = select_model(
                x, self.n_components, types, self.criterion, self.n_init,
                self.random_state, progress_bar=self.progress_bar, missing=self.missing)
            self.em_model_ = self.selection_.best_
            self.bayes_model_ = None
            if self.bayes != "none":
                k = self.em_model_.n_components
                covariance = get_family(self.em_model_.covariance_type).conjugate_type
                # The chains start from an EM fit with the K just selected on all rows
                # (instead of the Bayesian model re-running its own BIC sweep on a subsample).
                options = {"n_components": max(10, 2 * k), "covariance_type": covariance,
                           "init_components": k,
                           "method": self.bayes, "random_state": self.random_state,
                           "progress_bar": self.progress_bar, "missing": self.missing,
                           **(self.bayes_options or {})}
                self.bayes_model_ = BayesianGaussianMixture(**options).fit(x)
        relevant = (UserWarning, RuntimeWarning)
        self.warnings_ = list(dict.fromkeys(str(w.message) for w in caught
                                            if issubclass(w.category, relevant)))
        for message in self.warnings_:
            warnings.warn(message, UserWarning, stacklevel=2)
        self.n_rows_ = len(frame)
        self.n_missing_values_ = frame.isna().sum()
        log_density = self.log_density(frame)[~frame.isna().any(axis=1).to_numpy()]
        if not len(log_density):
            raise ValueError("no training row is complete: the anomaly threshold needs some "
                             "rows with every value observed")
        self.anomaly_threshold_ = float(np.quantile(log_density, self.anomaly_quantile))
        return self

    @property
    def model_(self):
        """The model whose assignments are reported: the Bayesian one if fitted, else EM."""
        check_is_fitted(self, "em_model_")
        return self.bayes_model_ if self.bayes_model_ is not None else self.em_model_

    def model_input(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``frame`` (n, D), as :meth:`input_frame` returns them, in the units the
        models were fitted in: standardised with ``standardize=True``, else unchanged."""
        if self.input_scaling_ is None:
            return frame
        return pd.DataFrame(self.input_scaling_.transform(frame.to_numpy()),
                            columns=frame.columns, index=frame.index)

    def input_frame(self, data) -> pd.DataFrame:
        """The fitted columns (:attr:`columns_`) of ``data`` (a table, or an array-like
        given columns x0, x1...) as a float64 DataFrame (n, D); errors name a missing or
        non-numeric column."""
        check_is_fitted(self, "em_model_")
        frame, _ = select_columns(as_frame(data), self.columns_)
        return frame

    def log_density(self, data) -> np.ndarray:
        """(n,) log density of each row in the data's own units (the model's
        ``score_samples``, corrected for the standardisation)."""
        frame = self.input_frame(data)
        values = self.model_.score_samples(self.model_input(frame))
        if self.input_scaling_ is not None:
            values = values - self.input_scaling_.log_det(frame.shape[1])
        return values

    @property
    def ambiguity_threshold_(self) -> float:
        """The probability below which an assignment is ambiguous: the Bayesian model's
        ``ambiguity_threshold`` (``bayes_options`` may set it), else
        :data:`bayesgmm.base.config.AMBIGUITY_THRESHOLD`."""
        if self.bayes_model_ is not None:
            return float(self.bayes_model_.ambiguity_threshold)
        return AMBIGUITY_THRESHOLD

    def assign(self, data) -> pd.DataFrame:
        """One row per input row: ``label``, ``prob_<k>`` per cluster, ``probability`` (of the
        label), ``probability_lower``/``probability_upper`` (Bayesian only: credible interval
        across posterior draws), ``uncertainty`` (``1 - probability``, mclust's), ``entropy``
        (nats), ``ambiguous`` (``probability`` below :attr:`ambiguity_threshold_`),
        ``log_density`` and ``anomaly`` (``log_density`` below :attr:`anomaly_threshold_`)."""
        frame = self.input_frame(data)
        x = self.model_input(frame)
        model = self.model_
        proba = model.predict_proba(x)
        clusters = self.cluster_labels()
        out = pd.DataFrame(index=frame.index)
        if self.bayes_model_ is not None:
            table = model.uncertainty_table(model.validated_input(x), proba)
            out["label"] = table["label"].to_numpy()
            for k in clusters:
                out[f"prob_{k}"] = proba[:, k]
            out["prob_other"] = np.maximum(1.0 - proba[:, clusters].sum(axis=1), 0.0)
            for column in ("probability", "probability_lower", "probability_upper"):
                out[column] = table[column].to_numpy()
        else:
            labels = proba.argmax(axis=1)
            out["label"] = labels
            for k in clusters:
                out[f"prob_{k}"] = proba[:, k]
            out["probability"] = proba[np.arange(len(labels)), labels]
        out["uncertainty"] = 1.0 - out["probability"]
        out["entropy"] = membership_entropy(proba)
        out["ambiguous"] = out["probability"] < self.ambiguity_threshold_
        out["log_density"] = self.log_density(frame)
        anomaly = out["log_density"] < self.anomaly_threshold_
        incomplete = frame.isna().any(axis=1)
        if incomplete.any():  # not comparable: densities of fewer coordinates
            out["n_missing"] = frame.isna().sum(axis=1)
            anomaly = anomaly.astype("boolean").mask(incomplete)
        out["anomaly"] = anomaly
        return out

    def cluster_labels(self) -> list[int]:
        """Labels of the clusters reported: all EM components; for the Bayesian model, the
        components that are the label of some training row or hold at least
        :data:`REPORTED_SHARE` of the rows on average over the posterior (the truncation's
        other components are (nearly) empty and are summed into ``prob_other``)."""
        if self.bayes_model_ is None:
            return list(range(self.model_.n_components))
        bayes = self.bayes_model_
        labels = set(np.unique(bayes.training_membership().argmax(axis=1)).tolist())
        sizes = bayes.segment_sizes()
        labels |= set(sizes.index[sizes["share"] >= REPORTED_SHARE].tolist())
        return sorted(int(k) for k in labels)

    def comparison(self) -> pd.DataFrame:
        """EM (criterion-selected) next to the Bayesian fit on the training rows: K, its
        posterior probability, BIC, mean log density (in-sample, so optimistic for both; see
        :func:`bayesgmm.compare_with_em` for a held-out comparison) and the adjusted Rand
        index between their labels."""
        check_is_fitted(self, "em_model_")
        if self.bayes_model_ is None:
            raise ValueError("no Bayesian model was fitted (bayes='none')")
        bayes, em = self.bayes_model_, self.em_model_
        x = pd.DataFrame(bayes.training_rows_, columns=self.columns_)
        posterior = bayes.n_clusters_posterior()
        mode = int(posterior.idxmax())
        rows = [
            {"approach": f"EM ({self.criterion.upper()})",
             "model": f"{em.covariance_type}, K={em.n_components}",
             "n_clusters": em.n_components, "p_n_clusters": np.nan,
             "bic": float(em.bic(x)), "mean_log_density": float(em.score(x))},
            {"approach": f"Bayesian ({bayes.method.upper()})",
             "model": f"{bayes.covariance_type}, T={bayes.n_components}",
             "n_clusters": mode, "p_n_clusters": float(posterior[mode]), "bic": np.nan,
             "mean_log_density": float(bayes.score(x))},
        ]
        table = pd.DataFrame(rows).set_index("approach")
        table["ari_em_vs_bayes"] = adjusted_rand_score(em.predict(x), bayes.predict(x))
        return table
