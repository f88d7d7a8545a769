"""Plots. With :mod:`bayesgmm.estimators.selection_plot`, the only modules that import
matplotlib (lazily, so importing bayesgmm never does)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# The selection plot sits with the selection result, whose ``plot`` method draws it.
from bayesgmm.estimators.selection_plot import (
    MCLUST_NAMES,
    competitive_types,
    plot_selection,
)

__all__ = ["MCLUST_NAMES", "competitive_types", "plot_selection"]


#: Radius of the ellipse holding 95% of a bivariate normal's mass (chi-square(2) quantile).
ELLIPSE_RADIUS_95 = 2.447746830680816


def _axes(ax, figsize=(6.0, 4.5)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_clusters(points, labels, means, covariances, axis_names=("x0", "x1"), ax=None):
    """Points coloured by cluster with each component's 95% covariance ellipse.

    Parameters
    ----------
    points : (n, 2) coordinates to draw (two features, or two principal components)
    labels : (n,) cluster of each point
    means : dict label -> (2,) centre; covariances : dict label -> (2, 2)
    """
    from matplotlib.patches import Ellipse

    ax = _axes(ax)
    cmap = _cluster_colours()
    for k in sorted(set(np.unique(labels)) | set(means)):
        colour = cmap(k % cmap.N)
        mask = labels == k
        ax.scatter(points[mask, 0], points[mask, 1], s=12, color=colour, alpha=0.7,
                   label=f"cluster {k} ({int(mask.sum())})")
        if k in means:
            values, vectors = np.linalg.eigh(covariances[k])
            angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
            width, height = 2 * ELLIPSE_RADIUS_95 * np.sqrt(np.maximum(values[::-1], 0))
            ax.add_patch(Ellipse(means[k], width, height, angle=angle, fill=False,
                                 edgecolor=colour, linewidth=2))
            ax.plot(*means[k], marker="x", color="black", markersize=8)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.legend(fontsize="small", loc="best")
    ax.set_title("clusters with 95% covariance ellipses")
    return ax


class Projection:
    """Two display coordinates for a table (n, D): its two columns; with D > 2, the first two
    discriminant coordinates of a fitted mixture when ``mixture`` is given
    (:func:`~bayesgmm.analysis.directions.cluster_directions`), else the first two principal
    components (one column: plotted against zero).

    ``mixture`` is ``(weights (K,), means (K, D), covariances (K, D, D))`` in the table's
    units. ``points(x)`` maps rows (n, D) to (n, 2); ``covariance(c)`` maps a (D, D)
    covariance to the (2, 2) covariance of the projected coordinates; ``names`` are the two
    axis labels and ``note`` says what was projected (empty for two columns)."""

    def __init__(self, frame: pd.DataFrame, mixture: tuple | None = None):
        x = frame.to_numpy(float)
        incomplete = np.isnan(x).any(axis=1)
        x = x[~incomplete]  # rows with missing values have no position; they are not drawn
        self.centre = x.mean(axis=0)
        if x.shape[1] <= 2:  # the columns themselves, in their own units (not centred)
            self.centre = np.zeros(x.shape[1])
            self.basis = np.eye(x.shape[1])[:, :2]
            self.names = list(frame.columns[:2])
            self.note = ""
        elif mixture is not None:
            from bayesgmm.analysis.directions import cluster_directions

            found = cluster_directions(x, *mixture)
            self.basis = found.basis[:, :2]
            self.names = [f"discriminant coordinate {i + 1}"
                          + ("" if kind == "location" else " (covariance differences)")
                          for i, kind in enumerate(found.kinds[:2])]
            self.note = ("The data have more than two columns: shown on discriminant "
                         "coordinates of the fitted clusters (MclustDR's location directions, "
                         "Scrucca 2010, 2014: the directions that separate the clusters' means "
                         "most relative to the data's spread, so the columns' units do not "
                         "matter; with two clusters the second axis is the direction in which "
                         "their covariances differ most). Each cluster's covariance is "
                         "projected onto them.")
        else:
            _, singular, vt = np.linalg.svd(x - self.centre, full_matrices=False)
            self.basis = vt[:2].T
            share = singular[:2] ** 2 / np.sum(singular**2)
            self.names = [f"PC{i + 1} ({100 * s:.0f}% of variance)" for i, s in enumerate(share)]
            self.note = ("The data have more than two columns: shown on their first two "
                         "principal components, with each component's covariance projected "
                         "onto them.")
        if incomplete.any():
            self.note = (f"{self.note} {int(incomplete.sum())} rows with missing values are "
                         "not drawn.").strip()
        if x.shape[1] == 1:  # one feature: plot it against zero
            self.basis = np.hstack([self.basis, np.zeros((1, 1))])
            self.names = [*self.names, "(none)"]

    def points(self, x: np.ndarray) -> np.ndarray:
        return (x - self.centre) @ self.basis

    def covariance(self, cov: np.ndarray) -> np.ndarray:
        return self.basis.T @ cov @ self.basis



def plot_model_clusters(model, X, ax=None):
    """Points coloured by the model's label with each cluster's 95% covariance ellipse.

    ``model`` is a fitted :class:`~bayesgmm.GaussianMixture` (any covariance type) or
    :class:`~bayesgmm.BayesianGaussianMixture` (posterior means; only clusters that hold a
    point are drawn). ``X`` (n, D) is an array or DataFrame in the units the model was fitted
    in; with D > 2 the plot is on the fit's first two discriminant coordinates
    (:mod:`bayesgmm.analysis.directions`), with the covariances projected onto them.
    """
    from bayesgmm.analysis.fitted import FittedClusters

    view = FittedClusters.of(model, X)
    shown = sorted(set(view.labels.tolist())) if view.bayesian else view.clusters
    frame = pd.DataFrame(view.model_input, columns=view.data.columns)
    weights = view.membership.mean(axis=0)[shown]
    projection = Projection(frame, (weights, view.means[shown], view.covariances[shown]))
    ax = plot_clusters(projection.points(view.model_input), view.labels,
                       {k: projection.points(view.means[k][None])[0] for k in shown},
                       {k: projection.covariance(view.covariances[k]) for k in shown},
                       projection.names, ax=ax)
    return ax


def _cluster_colours():
    import matplotlib.pyplot as plt

    return plt.get_cmap("tab10")


def plot_uncertainty(points, uncertainty, axis_names=("x0", "x1"), ax=None):
    """Points coloured by assignment uncertainty ``1 - max probability`` (larger when
    uncertain), as mclust's uncertainty plot."""

    ax = _axes(ax)
    order = np.argsort(uncertainty)  # most uncertain on top
    drawn = ax.scatter(points[order, 0], points[order, 1], c=uncertainty[order],
                       s=10 + 120 * uncertainty[order], cmap="viridis", vmin=0,
                       vmax=max(0.5, float(np.max(uncertainty))))
    ax.figure.colorbar(drawn, ax=ax, label="uncertainty (1 - probability of label)")
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title("assignment uncertainty")
    return ax


def plot_posterior_k(posterior: pd.Series, prior: pd.Series | None = None, ax=None):
    """Bars of the posterior over the number of occupied clusters, with the prior that the
    model implies at the same N beside them when ``prior`` is given (both Series indexed by
    the number of clusters, e.g. ``n_clusters_posterior()`` and ``n_clusters_prior()``)."""
    ax = _axes(ax, (6.0, 3.8))
    if prior is None:
        ax.bar(posterior.index.astype(int), posterior.to_numpy(), color="steelblue")
        ax.set_xticks(posterior.index.astype(int))
        ax.set_ylabel("posterior probability")
        ax.set_title("posterior over the number of clusters")
    else:
        values = sorted(set(posterior.index.astype(int)) | set(prior.index.astype(int)))
        shown = [k for k in values if posterior.get(k, 0.0) >= 0.001 or prior.get(k, 0.0)
                 >= 0.001]
        where = np.arange(len(shown))
        ax.bar(where - 0.2, [prior.get(k, 0.0) for k in shown], width=0.4, color="0.7",
               label=f"prior at N = {prior.attrs.get('n_samples', '?')}")
        ax.bar(where + 0.2, [posterior.get(k, 0.0) for k in shown], width=0.4,
               color="steelblue", label="posterior")
        ax.set_xticks(where, [str(k) for k in shown])
        ax.set_ylabel("probability")
        ax.legend(fontsize="small")
        ax.set_title("number of clusters: prior and posterior")
    ax.set_xlabel("number of occupied clusters")
    return ax


def plot_similarity(similarity: pd.DataFrame, clusters: np.ndarray, ax=None):
    """The posterior similarity (co-clustering) matrix as a heatmap, rows and columns ordered
    by the point-estimate partition ``clusters`` (one label per row of ``similarity``), then
    within a cluster by how strongly each row co-clusters with its cluster; lines mark the
    clusters' edges."""
    ax = _axes(ax, (5.6, 4.8))
    matrix = similarity.to_numpy()
    clusters = np.asarray(clusters)
    same = clusters[:, None] == clusters[None, :]
    within = np.where(same, matrix, 0.0).sum(axis=1) / same.sum(axis=1)
    order = np.lexsort((-within, clusters))
    drawn = ax.imshow(matrix[np.ix_(order, order)], cmap="magma_r", vmin=0.0, vmax=1.0,
                      interpolation="nearest")
    ax.figure.colorbar(drawn, ax=ax, label="P(rows i and j in the same cluster)")
    edges = np.flatnonzero(np.diff(clusters[order])) + 0.5
    for edge in edges:
        ax.axhline(edge, color="tab:blue", linewidth=0.8)
        ax.axvline(edge, color="tab:blue", linewidth=0.8)
    ax.set_xlabel("rows, ordered by estimated cluster")
    ax.set_ylabel("rows, ordered by estimated cluster")
    ax.set_title("posterior co-clustering")
    return ax


def plot_interval_bars(table: pd.DataFrame, value: str, lower: str | None, upper: str | None,
                       ylabel: str, ax=None):
    """One bar per row of ``table`` (index = cluster) with optional interval whiskers."""

    ax = _axes(ax, (5.0, 3.5))
    centre = table[value].to_numpy()
    errors = None
    if lower and upper:
        # A skewed posterior can put the mean outside its central interval: no negative whisker.
        errors = np.maximum(np.vstack([centre - table[lower].to_numpy(),
                                       table[upper].to_numpy() - centre]), 0.0)
    cmap = _cluster_colours()
    ax.bar([str(k) for k in table.index], centre, yerr=errors, capsize=4,
           color=[cmap(int(k) % cmap.N) for k in table.index])
    ax.set_xlabel("cluster")
    ax.set_ylabel(ylabel)
    return ax


def plot_cluster_means(means: pd.DataFrame, lower: pd.DataFrame | None = None,
                       upper: pd.DataFrame | None = None):
    """One panel per feature: each cluster's mean (rows of ``means``, columns = features) in
    the data's units, with interval whiskers when ``lower``/``upper`` are given."""
    import matplotlib.pyplot as plt

    n_features = means.shape[1]
    n_cols = min(n_features, 4)
    n_rows = -(-n_features // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 2.6 * n_rows),
                             squeeze=False)
    cmap = _cluster_colours()
    for j, feature in enumerate(means.columns):
        ax = axes.flat[j]
        centre = means[feature].to_numpy()
        for i, k in enumerate(means.index):
            err = None
            if lower is not None and upper is not None:
                err = np.maximum(np.array([[centre[i] - lower[feature].iloc[i]],
                                           [upper[feature].iloc[i] - centre[i]]]), 0.0)
            ax.errorbar([i], [centre[i]], yerr=err, fmt="o", capsize=4,
                        color=cmap(int(k) % cmap.N))
        ax.set_xticks(range(len(means.index)), [str(k) for k in means.index])
        ax.set_xlabel("cluster")
        ax.set_title(str(feature), fontsize="medium")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n_features:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_trace_rank(quantities: dict):
    """Trace and rank plots, one row per quantity.

    ``quantities`` maps a name to draws (chains, draws). The rank plot is the histogram of each
    chain's draws' ranks in the pooled sample (Vehtari et al. 2021): flat and alike across
    chains when the chains mix.
    """
    import matplotlib.pyplot as plt
    from scipy.stats import rankdata

    n_chains = np.asarray(next(iter(quantities.values()))).shape[0]
    n_cols = 2 if n_chains > 1 else 1  # ranks within a single chain are uniform by construction
    fig, axes = plt.subplots(len(quantities), n_cols, figsize=(5 * n_cols, 2.3 * len(quantities)),
                             squeeze=False)
    for row, (name, draws) in enumerate(quantities.items()):
        draws = np.asarray(draws, float)
        ranks = rankdata(draws.ravel()).reshape(draws.shape)
        bins = np.linspace(0, draws.size, 21)
        for chain in range(n_chains):
            axes[row, 0].plot(draws[chain], linewidth=0.6, alpha=0.8, label=f"chain {chain}")
            if n_cols == 2:
                axes[row, 1].hist(ranks[chain], bins=bins, histtype="step", linewidth=1.5)
        axes[row, 0].set_ylabel(name)
        if n_cols == 2:
            axes[row, 1].set_yticks([])
            axes[row, 1].axhline(draws.shape[1] / 20, color="grey", linestyle=":")
    axes[0, 0].set_title("trace")
    if n_cols == 2:
        axes[0, 1].set_title("rank histogram per chain (dotted: uniform)")
    axes[0, 0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_profile_heatmap(profile: pd.DataFrame, ax=None):
    """Clusters x features heatmap of the standardised mean difference (``smd`` of
    :func:`bayesgmm.analysis.profiles.profile_clusters`): red above the rest of the data,
    blue below."""
    table = profile.pivot(index="cluster", columns="feature", values="smd")
    table = table[list(dict.fromkeys(profile["feature"]))]  # the data's column order
    ax = _axes(ax, (max(4.5, 1.5 + 0.9 * table.shape[1]), max(3.0, 1.2 + 0.6 * table.shape[0])))
    limit = max(1.0, float(np.nanmax(np.abs(table.to_numpy()))))
    image = ax.imshow(table.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, f"{value:+.1f}", ha="center", va="center", fontsize="small")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(table.shape[0]), [f"cluster {k}" for k in table.index])
    ax.figure.colorbar(image, ax=ax, label="standardised mean difference vs the rest")
    ax.set_title("cluster profiles")
    return ax


def plot_qq(qq: dict, n_features: int):
    """One panel per cluster: ordered squared Mahalanobis distances against chi-square
    quantiles (:func:`bayesgmm.analysis.normality.mahalanobis_qq`). Points above the diagonal at the
    right end: heavier tails than the Gaussian component."""
    import matplotlib.pyplot as plt

    n_cols = min(len(qq), 4)
    n_rows = -(-len(qq) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.4 * n_cols, 3.2 * n_rows),
                             squeeze=False)
    cmap = _cluster_colours()
    for ax, (k, (theoretical, observed)) in zip(axes.flat, qq.items(), strict=False):
        top = max(theoretical.max(), observed.max())
        ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1)
        ax.scatter(theoretical, observed, s=8, color=cmap(int(k) % cmap.N))
        ax.set_title(f"cluster {k} ({len(observed)} rows)", fontsize="medium")
        ax.set_xlabel(f"chi-square({n_features}) quantile")
        ax.set_ylabel("squared Mahalanobis distance")
    for ax in list(axes.flat)[len(qq):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_silhouette(silhouette: pd.DataFrame, ax=None):
    """Silhouette plot: each sampled row's silhouette, sorted within its cluster
    (``ClusterQuality.silhouette``); the dashed line is the mean."""
    ax = _axes(ax, (6.0, 4.5))
    cmap = _cluster_colours()
    bottom = 0
    left = float(min(silhouette["silhouette"].min(), 0.0)) - 0.05
    for k, group in silhouette.groupby("cluster", sort=True):
        values = np.sort(group["silhouette"].to_numpy())
        ax.fill_betweenx(np.arange(bottom, bottom + len(values)), 0, values,
                         color=cmap(int(k) % cmap.N), alpha=0.8)
        ax.text(left, bottom + len(values) / 2, str(k), ha="right", va="center")
        bottom += len(values) + 10
    ax.axvline(float(silhouette["silhouette"].mean()), color="black", linestyle="--")
    ax.set_xlim(left - 0.1, 1.0)
    ax.set_xlabel("silhouette")
    ax.set_yticks([])
    ax.set_ylabel("rows, by cluster")
    ax.set_title("silhouette")
    return ax
