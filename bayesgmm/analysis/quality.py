"""How good is a clustering? Internal metrics, agreement with known classes, and whether the
stated membership probabilities are calibrated.

Everything here is built on scikit-learn's metrics; nothing is reimplemented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from bayesgmm.analysis.fitted import FittedClusters
from bayesgmm.base.config import AMBIGUITY_THRESHOLD
from bayesgmm.engine.bayes.posterior import membership_entropy


def match_labels(labels, labels_true) -> dict:
    """Pair each cluster label with a true class, maximising the number of agreeing points.

    Hungarian matching (``scipy.optimize.linear_sum_assignment``) on the contingency table.

    Parameters
    ----------
    labels, labels_true : array-like (n,)

    Returns
    -------
    dict label -> true class. With more clusters than classes, the smallest matches are left
    out, so a label missing from the dict matches no class.
    """
    contingency = pd.crosstab(np.asarray(labels), np.asarray(labels_true))
    rows, cols = linear_sum_assignment(-contingency.to_numpy())
    return {contingency.index[r].item(): contingency.columns[c].item()
            for r, c in zip(rows, cols, strict=True)}


def assignment_calibration(probability, labels, labels_true, n_bins: int = 5) -> pd.DataFrame:
    """Are the stated membership probabilities honest?

    Among points assigned with probability about p, a share of about p should be in the class
    matched to their label (:func:`match_labels`). Binned with
    ``sklearn.calibration.calibration_curve`` (quantile bins: equal numbers of points).

    Parameters
    ----------
    probability : array-like (n,), the stated probability of each point's label
    labels, labels_true : array-like (n,)
    n_bins : int

    Returns
    -------
    DataFrame, one row per bin: ``stated`` (mean stated probability) and ``observed`` (share
    of points whose label matches their true class). The overall accuracy is in
    ``.attrs["accuracy"]``.
    """
    from sklearn.calibration import calibration_curve

    labels, labels_true = np.asarray(labels), np.asarray(labels_true)
    matched = match_labels(labels, labels_true)
    correct = np.array([matched.get(k.item(), None) == t.item()
                        for k, t in zip(labels, labels_true, strict=True)])
    observed, stated = calibration_curve(correct, np.asarray(probability, float),
                                         n_bins=n_bins, strategy="quantile", pos_label=True)
    table = pd.DataFrame({"stated": stated, "observed": observed})
    table.attrs["accuracy"] = float(correct.mean())
    return table


#: Rows used for the silhouette (O(n^2) distances) when there are more.
SILHOUETTE_SAMPLE = 5000


@dataclass
class ClusterQuality:
    """Result of :func:`cluster_quality`.

    Attributes
    ----------
    metrics : Series
        ``silhouette`` (mean over ``silhouette_rows`` rows; higher is better, in [-1, 1]),
        ``davies_bouldin`` (lower is better), ``calinski_harabasz`` (higher is better),
        ``mean_entropy`` (nats, of the membership probabilities), ``share_ambiguous``
        (probability of the label below the ambiguity threshold, 0.8 unless a Bayesian model
        or a ``Clustering`` sets another), ``n_clusters`` (occupied) and ``silhouette_rows``;
        with ``labels_true`` also ``adjusted_rand`` and ``normalized_mutual_info``.
    silhouette : DataFrame (silhouette_rows, 2)
        ``cluster`` and ``silhouette`` of each sampled row (for the silhouette plot).
    contingency : DataFrame or None
        Rows: true classes; columns: clusters (with ``labels_true``).
    """

    metrics: pd.Series
    silhouette: pd.DataFrame
    contingency: pd.DataFrame | None


def cluster_quality(model, X, labels_true=None, sample_size: int = SILHOUETTE_SAMPLE,
                    random_state=0) -> ClusterQuality:
    """Is the clustering any good? scikit-learn's metrics on the model's MAP labels.

    Parameters
    ----------
    model : fitted GaussianMixture, AutoGaussianMixture, BayesianGaussianMixture or
        workflow.Clustering
    X : array-like (n, D), rows in the units the model was fitted on (raw table for a
        ``Clustering``)
    labels_true : array-like (n,), optional, known classes
    sample_size : int, default 5000
        The silhouette needs all pairwise distances (O(n^2)): above this many rows it is
        computed on a random subsample of this size (seeded by ``random_state``).
    random_state : int or None

    Notes
    -----
    The distance-based metrics (silhouette, Davies–Bouldin, Calinski–Harabasz) are computed in
    the space the model was fitted in (standardised columns when a ``Clustering`` was fitted
    with ``standardize=True``). They reward compact, round, separated clusters, which a
    mixture with elongated components need not produce: read them next to the entropy.
    With a single occupied cluster they are undefined (NaN).
    """
    from sklearn import metrics as skm

    view = FittedClusters.of(model, X).complete_rows()  # distances need whole rows
    x, labels = view.model_input, view.labels
    n_clusters = len(np.unique(labels))
    values = {"silhouette": np.nan, "davies_bouldin": np.nan, "calinski_harabasz": np.nan}
    rng = np.random.default_rng(random_state)
    rows = (np.sort(rng.choice(len(x), sample_size, replace=False)) if len(x) > sample_size
            else np.arange(len(x)))
    silhouette = pd.DataFrame({"cluster": labels[rows], "silhouette": np.nan})
    if 1 < n_clusters < len(x):
        sampled = labels[rows]
        if len(np.unique(sampled)) > 1:
            silhouette["silhouette"] = skm.silhouette_samples(x[rows], sampled)
            values["silhouette"] = float(silhouette["silhouette"].mean())
        values["davies_bouldin"] = skm.davies_bouldin_score(x, labels)
        values["calinski_harabasz"] = skm.calinski_harabasz_score(x, labels)
    probability = view.membership.max(axis=1)
    values["mean_entropy"] = float(membership_entropy(view.membership).mean())
    threshold = getattr(model, "ambiguity_threshold_",  # a Clustering; else a Bayesian model
                        getattr(model, "ambiguity_threshold", AMBIGUITY_THRESHOLD))
    values["share_ambiguous"] = float((probability < threshold).mean())
    values["n_clusters"] = n_clusters
    values["silhouette_rows"] = len(rows)
    contingency = None
    if labels_true is not None:
        truth = np.asarray(labels_true)
        if truth.shape != labels.shape:
            raise ValueError(f"labels_true has shape {truth.shape}; X has {len(labels)} rows")
        values["adjusted_rand"] = skm.adjusted_rand_score(truth, labels)
        values["normalized_mutual_info"] = skm.normalized_mutual_info_score(truth, labels)
        contingency = pd.crosstab(pd.Series(truth, name="true class"),
                                  pd.Series(labels, name="cluster"))
    return ClusterQuality(pd.Series(values, name="value"), silhouette, contingency)
