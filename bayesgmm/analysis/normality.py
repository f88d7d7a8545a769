"""Does each cluster look Gaussian? Mahalanobis QQ against chi-square(D), Mardia's
multivariate skewness and kurtosis tests, per-feature Shapiro–Wilk, and a verdict in words.

Each cluster is the set of rows whose most probable component it is. For overlapping
clusters that set is truncated where the components meet, which thins the tails a little:
the checks are most informative for reasonably separated clusters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bayesgmm.analysis.fitted import FittedClusters

#: Mardia's skewness needs all pairwise products (O(n^2)): larger clusters are subsampled.
MARDIA_MAX_ROWS = 2000
#: Shapiro–Wilk's p-value is accurate up to 5000 rows: larger clusters are subsampled.
SHAPIRO_MAX_ROWS = 5000


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values (controls the family-wise error rate under
    any dependence). (m,) -> (m,)."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def mardia(x: np.ndarray) -> dict:
    """Mardia's (1970) tests of multivariate normality for rows ``x`` (n, D).

    Returns ``skewness`` (b1,p), its statistic ``n k b1 / 6`` against chi-square with
    D(D+1)(D+2)/6 degrees of freedom (``k`` is the small-sample correction, applied below 20
    rows) and p-value; ``kurtosis`` (b2,p) and ``kurtosis_z = (b2 - D(D+2)) /
    sqrt(8 D (D+2) / n)`` with its two-sided normal p-value. Positive z: heavier tails than
    Gaussian.
    """
    n, d = x.shape
    centred = x - x.mean(axis=0)
    covariance = centred.T @ centred / n  # Mardia's (biased) covariance
    gram = centred @ np.linalg.solve(covariance, centred.T)  # (n, n) of (x_i - m)' S^-1 (x_j - m)
    b1 = float(np.mean(gram**3))
    b2 = float(np.mean(np.diag(gram) ** 2))
    correction = ((d + 1) * (n + 1) * (n + 3) / (n * ((n + 1) * (d + 1) - 6))) if n < 20 else 1.0
    skew_statistic = n * correction * b1 / 6
    dof = d * (d + 1) * (d + 2) / 6
    z = (b2 - d * (d + 2)) / np.sqrt(8 * d * (d + 2) / n)
    return {"skewness": b1, "skewness_statistic": skew_statistic,
            "skewness_p": float(stats.chi2.sf(skew_statistic, dof)), "kurtosis": b2,
            "kurtosis_z": float(z), "kurtosis_p": float(2 * stats.norm.sf(abs(z)))}


def _subsample(rows: np.ndarray, limit: int, rng) -> np.ndarray:
    return rows if len(rows) <= limit else rng.choice(rows, limit, replace=False)


def mahalanobis_qq(model, X) -> dict:
    """Per cluster, the ordered squared Mahalanobis distances of its rows from its fitted
    component and the matching chi-square(D) quantiles (plotting positions (i - 0.5) / n).

    Returns dict cluster -> (theoretical (n_k,), observed (n_k,)).
    """
    return _qq(FittedClusters.of(model, X).complete_rows())


def _qq(view: FittedClusters) -> dict:
    out = {}
    for k in view.clusters:
        rows = view.model_input[view.members(k)]
        if len(rows) == 0:
            continue
        centred = rows - view.means[k]
        distances = np.sort(np.einsum("nd,nd->n", centred,
                                      np.linalg.solve(view.covariances[k], centred.T).T))
        positions = (np.arange(1, len(rows) + 1) - 0.5) / len(rows)
        out[k] = (stats.chi2.ppf(positions, df=view.n_features), distances)
    return out


def gaussian_checks(model, X, alpha: float = 0.05, random_state=0) -> pd.DataFrame:
    """Per cluster: is the Gaussian assumption tenable?

    Parameters
    ----------
    model : fitted GaussianMixture, AutoGaussianMixture, BayesianGaussianMixture or
        workflow.Clustering
    X : array-like (n, D), rows in the units the model was fitted on (raw table for a
        ``Clustering``)
    alpha : level of the tests
    random_state : seeds the subsamples of large clusters (:data:`MARDIA_MAX_ROWS`,
        :data:`SHAPIRO_MAX_ROWS`)

    Returns
    -------
    DataFrame, one row per cluster: ``n``; Mardia's ``skewness_p``, ``kurtosis_z`` and
    ``kurtosis_p``; ``shapiro_p_min`` (the smallest Holm-adjusted per-feature Shapiro–Wilk
    p-value) and ``shapiro_rejects`` (features rejected); ``tail_ratio`` (the rows' 95th
    percentile of squared Mahalanobis distance from the fitted component over the
    chi-square(D) 95% quantile: above 1 means heavier tails than the model assumes);
    ``gaussian`` (no test rejects at ``alpha`` after Holm's correction over the cluster's
    D + 2 tests); ``verdict`` in words.
    """
    view = FittedClusters.of(model, X).complete_rows()  # the tests need whole rows
    rng = np.random.default_rng(random_state)
    qq = _qq(view)
    d = view.n_features
    names = list(view.data.columns)
    rows = []
    for k in view.clusters:
        members = np.flatnonzero(view.members(k))
        n = len(members)
        row = {"cluster": k, "n": n}
        if n < max(20, 3 * d):
            row.update(gaussian=np.nan, verdict=f"too few rows ({n}) to check")
            rows.append(row)
            continue
        points = view.model_input
        test = mardia(points[_subsample(members, MARDIA_MAX_ROWS, rng)])
        shapiro_rows = points[_subsample(members, SHAPIRO_MAX_ROWS, rng)]
        shapiro_p = np.array([stats.shapiro(shapiro_rows[:, j]).pvalue for j in range(d)])
        shapiro_adjusted = holm(shapiro_p)
        together = holm(np.r_[test["skewness_p"], test["kurtosis_p"], shapiro_p])
        observed = qq[k][1]
        row.update(skewness_p=test["skewness_p"], kurtosis_z=test["kurtosis_z"],
                   kurtosis_p=test["kurtosis_p"], shapiro_p_min=float(shapiro_adjusted.min()),
                   shapiro_rejects=", ".join(f for f, p in zip(names, shapiro_adjusted,
                                                                 strict=True) if p < alpha),
                   tail_ratio=float(np.quantile(observed, 0.99) / stats.chi2.ppf(0.99, d)),
                   gaussian=bool(np.all(together >= alpha)))
        row["verdict"] = _verdict(k, together, test["kurtosis_z"], names, shapiro_p, alpha)
        rows.append(row)
    return pd.DataFrame(rows).set_index("cluster")


def _verdict(k, adjusted: np.ndarray, kurtosis_z: float, names: list, shapiro_p: np.ndarray,
             alpha: float) -> str:
    """Plain words for one cluster; ``adjusted`` = Holm-adjusted (skewness, kurtosis,
    Shapiro per feature)."""
    skewed, tails, margins = adjusted[0] < alpha, adjusted[1] < alpha, adjusted[2:] < alpha
    worst = [names[j] for j in np.argsort(shapiro_p) if margins[j]][:3]
    parts = []
    if tails and kurtosis_z > 0:
        parts.append("has heavier tails than Gaussian; consider more components or a "
                     "t-mixture")
    elif tails:
        parts.append("has lighter tails than Gaussian (flat or bounded); it may be several "
                     "groups merged or a truncated range; consider more components")
    if skewed:
        what = f" of {', '.join(worst)}" if worst else ""
        parts.append(f"is skewed; consider a transformation{what} (e.g. log) or more "
                     "components")
    if worst and not skewed:
        parts.append(f"has non-Gaussian margins in {', '.join(worst)}")
    if not parts:
        return (f"cluster {k} is consistent with a Gaussian (no test rejects at "
                f"alpha={alpha} after Holm's correction)")
    return f"cluster {k} " + "; it ".join(parts)
