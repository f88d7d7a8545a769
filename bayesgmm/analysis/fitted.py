"""One view of any fitted model on some rows: what cluster profiles, quality metrics and the
Gaussian checks need, whichever estimator produced the clusters."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bayesgmm.base.estimator_api import check_is_fitted
from bayesgmm.base.validation import as_frame


@dataclass
class FittedClusters:
    """A fitted mixture seen on rows ``X``.

    Attributes
    ----------
    data : DataFrame (n, D), the rows in the data's own units
    model_input : ndarray (n, D), the rows as the model saw them (standardised when a
        ``Clustering`` was fitted with ``standardize=True``, else equal to ``data``)
    labels : ndarray (n,), the most probable cluster of each row
    membership : ndarray (n, K), membership probabilities (posterior means for a Bayesian fit)
    clusters : list of int, the clusters reported (all EM components; for a Bayesian fit the
        occupied ones)
    means : ndarray (K, D), covariances : ndarray (K, D, D), in model-input units
    mean_draws : ndarray (S, K, D) or None, posterior draws of the component means in the
        data's units (Bayesian fits only)
    sizes : DataFrame or None, the Bayesian ``segment_sizes()`` (shares with intervals)
    bayesian : bool
    """

    data: pd.DataFrame
    model_input: np.ndarray
    labels: np.ndarray
    membership: np.ndarray
    clusters: list
    means: np.ndarray
    covariances: np.ndarray
    mean_draws: np.ndarray | None
    sizes: pd.DataFrame | None
    bayesian: bool

    @classmethod
    def of(cls, model, X) -> FittedClusters:
        """``model``: a fitted ``GaussianMixture``, ``AutoGaussianMixture``,
        ``BayesianGaussianMixture`` or ``workflow.Clustering``; ``X``: rows in the units the
        model was fitted on (a ``Clustering`` takes the raw table). A ``FittedClusters``
        passed as ``model`` is returned as it is (``X`` ignored), so callers can share one."""
        if isinstance(model, FittedClusters):
            return model
        if hasattr(model, "assign"):  # workflow.Clustering: raw table, maybe standardised
            frame = model.input_frame(X)
            inner = model.model_
            model_frame = model.model_input(frame)
            clusters = model.cluster_labels()
            scaling = model.input_scaling_
        else:
            inner = getattr(model, "best_estimator_", model)
            check_is_fitted(inner)
            frame = as_frame(X, getattr(inner, "feature_names_in_", None)).reset_index(drop=True)
            model_frame = frame
            clusters, scaling = None, None
        bayesian = hasattr(inner, "posterior_draws_")
        named = hasattr(inner, "feature_names_in_")  # fitted on a DataFrame: give it one
        membership = np.asarray(inner.predict_proba(model_frame if named
                                                    else model_frame.to_numpy(float)))
        model_input = model_frame.to_numpy(float)
        labels = membership.argmax(axis=1)
        if bayesian:
            covariances = inner.covariances_
            sizes = inner.segment_sizes()
            if clusters is None:
                clusters = sorted(set(labels.tolist()) | set(sizes.index.tolist()))
            mean_draws = np.asarray(inner.posterior_draws_.means)
            if scaling is not None:
                mean_draws = scaling.inverse_transform(mean_draws)
        else:
            covariances = inner.full_covariances()
            clusters = clusters or list(range(inner.n_components))
            mean_draws, sizes = None, None
        return cls(frame, model_input, labels, membership, list(clusters),
                   np.asarray(inner.means_), np.asarray(covariances), mean_draws, sizes,
                   bayesian)

    def complete_rows(self) -> FittedClusters:
        """This view restricted to the rows with no missing value (NaN), for the summaries
        that need every coordinate (distances, Mahalanobis distances, normality tests)."""
        keep = ~np.isnan(self.model_input).any(axis=1)
        if keep.all():
            return self
        return replace(self, data=self.data[keep].reset_index(drop=True),
                       model_input=self.model_input[keep], labels=self.labels[keep],
                       membership=self.membership[keep])

    @property
    def n_features(self) -> int:
        return self.data.shape[1]

    def members(self, k: int) -> np.ndarray:
        """(n,) bool: the rows whose most probable cluster is ``k``."""
        return self.labels == k
