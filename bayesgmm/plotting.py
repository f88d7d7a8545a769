"""Plots. The only module that imports matplotlib (lazily, so importing bayesgmm never does)."""

from __future__ import annotations

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
