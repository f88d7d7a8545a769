"""Plots. The only module that imports matplotlib (lazily, so importing bayesgmm never does)."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: mclust's names for the covariance types, for the legend.
MCLUST_NAMES = {"spherical": "VII", "diag": "VVI", "tied": "EEE", "full": "VVV"}
_MARKERS = {"spherical": "o", "diag": "s", "tied": "^", "full": "D"}


def plot_selection(table: pd.DataFrame, criterion: str = "bic", ax=None):
    """The criterion against K, one line per covariance type, in the style of mclust's BIC
    plot, but in scikit-learn's sign (lower is better).

    Degenerate (type, K) pairs are drawn as faint crosses off the lines; the selected model is
    circled.

    Parameters
    ----------
    table : DataFrame, :attr:`bayesgmm.selection.SelectionResult.table`
    criterion : {'bic', 'aic', 'icl'}
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, group in table.groupby("covariance_type", sort=False):
        group = group.sort_values("n_components")
        healthy = ~group["degenerate"].to_numpy(bool)
        (line,) = ax.plot(group["n_components"], group[criterion].where(healthy),
                          marker=_MARKERS.get(name, "o"), linewidth=1.5,
                          label=f"{name} ({MCLUST_NAMES.get(name, name)})")
        if (~healthy).any():
            ax.scatter(group["n_components"][~healthy], group[criterion][~healthy], marker="x",
                       color=line.get_color(), alpha=0.5)
    chosen = table[table["selected"]]
    ax.scatter(chosen["n_components"], chosen[criterion], s=220, facecolors="none",
               edgecolors="black", linewidths=1.5, label="selected", zorder=3)
    if table["degenerate"].any():
        ax.scatter([], [], marker="x", color="grey", label="degenerate (excluded)")
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.set_xticks(sorted(table["n_components"].unique()))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


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


def plot_posterior_k(posterior: pd.Series, ax=None):
    """Bar chart of the posterior over the number of occupied clusters."""
    ax = _axes(ax, (5.0, 3.5))
    ax.bar(posterior.index.astype(int), posterior.to_numpy(), color="steelblue")
    ax.set_xlabel("number of occupied clusters")
    ax.set_ylabel("posterior probability")
    ax.set_xticks(posterior.index.astype(int))
    ax.set_title("posterior over the number of clusters")
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
