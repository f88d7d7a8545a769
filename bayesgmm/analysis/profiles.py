"""What is each cluster? Per-cluster, per-feature profiles in the data's units, effect sizes
against the rest of the data, and (with their caveat) tests of differences between clusters."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from bayesgmm.analysis.fitted import FittedClusters
from bayesgmm.base.config import seed_from

#: What every p-value from :func:`feature_tests` on the clustered data carries with it.
DOUBLE_DIPPING = (
    "These p-values test differences between clusters that were found on the same data, so "
    "they are optimistic (double dipping): clusters are built to differ. With split=True the "
    "clusters come from one half of the rows and are tested on the other half.")


def profile_clusters(model, X, quantiles=(0.25, 0.5, 0.75), credible_level: float = 0.9
                     ) -> pd.DataFrame:
    """Tidy profile: one row per (cluster, feature), in the data's own units.

    Parameters
    ----------
    model : fitted GaussianMixture, AutoGaussianMixture, BayesianGaussianMixture or
        workflow.Clustering
    X : array-like (n, D), the rows to profile (in the units the model was fitted on; a
        ``Clustering`` takes the raw table)
    quantiles : quantiles of each feature within each cluster
    credible_level : width of the Bayesian intervals

    Returns
    -------
    DataFrame with columns ``cluster``, ``feature``, ``size`` (rows whose most probable
    cluster it is), ``share``, ``mean``, ``sd``, one ``q<percent>`` column per quantile, and
    ``smd``: the standardised mean difference against the rest of the rows,
    ``(mean - mean_rest) / pooled sd`` (Cohen's d), which ranks the features that describe a
    cluster best. A Bayesian fit adds ``share_lower``/``share_upper`` (share of rows under
    assignments sampled from the posterior) and ``component_mean`` with
    ``component_mean_lower``/``component_mean_upper`` (posterior of the component's mean).
    Clusters with no row are left out. Missing values (NaN) are skipped feature by feature
    (``size`` counts rows; the statistics use the rows where the feature is observed).
    """
    view = FittedClusters.of(model, X)
    x = view.data.to_numpy(float)
    tail = (1 - credible_level) / 2
    rows = []
    for k in view.clusters:
        inside = view.members(k)
        if not inside.any():
            continue
        rest = x[~inside]
        for j, feature in enumerate(view.data.columns):
            values = _observed(x[inside, j])
            row = {"cluster": k, "feature": feature, "size": int(inside.sum()),
                   "share": float(inside.mean()),
                   "mean": values.mean() if len(values) else np.nan,
                   "sd": values.std(ddof=1) if len(values) > 1 else np.nan}
            levels = np.quantile(values, quantiles) if len(values) else np.full(
                len(quantiles), np.nan)
            for q, value in zip(quantiles, levels, strict=True):
                row[f"q{round(100 * q):02d}"] = value
            row["smd"] = _cohens_d(values, _observed(rest[:, j]))
            if view.bayesian:
                sizes = view.sizes
                row["share_lower"] = sizes.loc[k, "share_lower"] if k in sizes.index else 0.0
                row["share_upper"] = sizes.loc[k, "share_upper"] if k in sizes.index else 0.0
                draws = view.mean_draws[:, k, j]
                row["component_mean"] = draws.mean()
                row["component_mean_lower"], row["component_mean_upper"] = np.quantile(
                    draws, [tail, 1 - tail])
            rows.append(row)
    return pd.DataFrame(rows)


def _observed(values: np.ndarray) -> np.ndarray:
    """The values that are not missing (NaN)."""
    return values[~np.isnan(values)]


def _cohens_d(inside: np.ndarray, rest: np.ndarray) -> float:
    if len(rest) < 2 or len(inside) < 2:
        return np.nan
    pooled = np.sqrt(((len(inside) - 1) * inside.var(ddof=1) + (len(rest) - 1) * rest.var(ddof=1))
                     / (len(inside) + len(rest) - 2))
    return float((inside.mean() - rest.mean()) / pooled) if pooled > 0 else np.nan


def distinctive_features(profile: pd.DataFrame, top: int = 3, min_effect: float = 0.5
                         ) -> pd.Series:
    """One line per cluster naming its most distinctive features, e.g.
    ``"high waiting (+1.9 sd), high eruptions (+1.8 sd)"``.

    Features are ranked by ``|smd|`` from :func:`profile_clusters`; those below
    ``min_effect`` (a medium effect by Cohen's convention) are not named.
    """
    lines = {}
    for k, group in profile.groupby("cluster", sort=True):
        ranked = group.reindex(group["smd"].abs().sort_values(ascending=False).index)
        named = [f"{'high' if d > 0 else 'low'} {f} ({d:+.1f} sd)"
                 for f, d in zip(ranked["feature"], ranked["smd"], strict=True)
                 if np.isfinite(d) and abs(d) >= min_effect][:top]
        lines[k] = ", ".join(named) if named else "no feature stands out (all |smd| < "\
            f"{min_effect})"
    return pd.Series(lines, name="distinctive features").rename_axis("cluster")


def feature_tests(model, X, split: bool = True, test_size: float = 0.5, random_state=None,
                  per_cluster: bool = False) -> pd.DataFrame:
    """Do the features differ between clusters? One-way ANOVA and Kruskal–Wallis per feature,
    or (``per_cluster=True``) Welch's t-test of each cluster against the rest.

    Parameters
    ----------
    model : a fitted model (see :func:`profile_clusters`)
    X : array-like (n, D)
    split : bool, default True
        Refit an unfitted copy of ``model`` (same settings) on a random ``1 - test_size`` of
        the rows and test the clusters it assigns to the other rows. The p-values are then
        valid for the held-out rows (given the clustering). With ``split=False`` the tests run
        on the clusters ``model`` found on ``X`` itself, and the p-values are optimistic.
    test_size : share of rows held out when ``split``
    random_state : seeds the split
    per_cluster : bool, default False

    Returns
    -------
    DataFrame indexed by feature: ``anova_f``, ``anova_p``, ``kruskal_h``, ``kruskal_p``,
    ``n_rows`` (tested rows) and ``n_clusters``. With ``per_cluster``, indexed by (cluster,
    feature): ``t`` and ``p`` of Welch's two-sample t-test (cluster vs the other rows) and
    ``n_rows``. ``.attrs["note"]`` says what the p-values mean (:data:`DOUBLE_DIPPING`).
    """
    if split:
        frame = FittedClusters.of(model, X).data
        train, test = train_test_split(frame, test_size=test_size,
                                       random_state=seed_from(random_state))
        refitted = clone(model).fit(train)
        view = FittedClusters.of(refitted, test)
    else:
        warnings.warn(DOUBLE_DIPPING, UserWarning, stacklevel=2)
        view = FittedClusters.of(model, X)
    x = view.data.to_numpy(float)
    groups = [k for k in view.clusters if view.members(k).sum() >= 2]
    table = (_cluster_vs_rest(view, x, groups) if per_cluster
             else _across_clusters(view, x, groups))
    table.attrs["note"] = (DOUBLE_DIPPING if not split else
                           "Clusters fitted on one part of the rows, tested on the held-out "
                           "part: the p-values are valid for the groups the fitted rule "
                           "defines on those rows (evidence that they differ, not that "
                           "clusters exist).")
    return table


def _cluster_vs_rest(view: FittedClusters, x: np.ndarray, groups: list) -> pd.DataFrame:
    rows = {}
    for k in groups:
        inside = view.members(k)
        for j, feature in enumerate(view.data.columns):
            test = stats.ttest_ind(_observed(x[inside, j]), _observed(x[~inside, j]),
                                   equal_var=False)
            rows[(k, feature)] = {"t": test.statistic, "p": test.pvalue, "n_rows": len(x)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["cluster", "feature"])


def _across_clusters(view: FittedClusters, x: np.ndarray, groups: list) -> pd.DataFrame:
    rows = {}
    for j, feature in enumerate(view.data.columns):
        samples = [_observed(x[view.members(k), j]) for k in groups]
        if len(samples) < 2:
            rows[feature] = dict.fromkeys(("anova_f", "anova_p", "kruskal_h", "kruskal_p"),
                                          np.nan)
        else:
            anova = stats.f_oneway(*samples)
            kruskal = stats.kruskal(*samples)
            rows[feature] = {"anova_f": anova.statistic, "anova_p": anova.pvalue,
                             "kruskal_h": kruskal.statistic, "kruskal_p": kruskal.pvalue}
        rows[feature].update(n_rows=len(x), n_clusters=len(groups))
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("feature")
