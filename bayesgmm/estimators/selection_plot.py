"""The model-selection plot (criterion against K per covariance type), drawn by
:meth:`SelectionResult.plot <bayesgmm.estimators.selection.SelectionResult.plot>` and
re-exported by :mod:`bayesgmm.app.plotting`. matplotlib is imported when a plot is drawn."""

from __future__ import annotations

import pandas as pd

#: mclust's names for the covariance types, for the legend.
MCLUST_NAMES = {"spherical": "VII", "diag": "VVI", "tied": "EEE", "full": "VVV"}
_MARKERS = {"spherical": "o", "diag": "s", "tied": "^", "full": "D"}


def competitive_types(table: pd.DataFrame, criterion: str = "bic") -> list[str]:
    """The covariance types whose best (non-degenerate) criterion value lies within the
    selected type's own range over K of the overall best: the models worth comparing. A type
    far worse than that (spherical models on data whose columns are correlated) would
    otherwise stretch the plot's axis until the competitive curves are flat lines."""
    healthy = table[~table["degenerate"].to_numpy(bool)]
    if healthy.empty:
        return list(table["covariance_type"].unique())
    best = healthy.groupby("covariance_type", sort=False)[criterion].min()
    winner = healthy[healthy["covariance_type"] == best.idxmin()][criterion]
    spread = max(float(winner.max() - winner.min()), 1e-6 * abs(float(best.min())), 1e-12)
    return [name for name, value in best.items() if value - best.min() <= spread]


def plot_selection(table: pd.DataFrame, criterion: str = "bic", ax=None):
    """The criterion against K, one line per covariance type, in the style of mclust's BIC
    plot, but in scikit-learn's sign (lower is better).

    Degenerate (type, K) pairs are drawn as faint crosses off the lines; the selected model is
    circled. When a type is far worse than the competitive ones (:func:`competitive_types`), the
    y-axis runs from the best value to the selected type's worst, and the far-worse type's
    legend entry says it is off the scale, with its best value.

    Parameters
    ----------
    table : DataFrame, :attr:`bayesgmm.estimators.selection.SelectionResult.table`
    criterion : {'bic', 'aic', 'icl'}
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.2))
    shown = competitive_types(table, criterion)
    for name, group in table.groupby("covariance_type", sort=False):
        group = group.sort_values("n_components")
        healthy = ~group["degenerate"].to_numpy(bool)
        label = f"{name} ({MCLUST_NAMES.get(name, name)})"
        if name not in shown:
            label += f": off scale, best {group[criterion].where(healthy).min():,.0f}"
        (line,) = ax.plot(group["n_components"], group[criterion].where(healthy),
                          marker=_MARKERS.get(name, "o"), linewidth=1.5, label=label)
        if (~healthy).any():
            ax.scatter(group["n_components"][~healthy], group[criterion][~healthy], marker="x",
                       color=line.get_color(), alpha=0.5)
    chosen = table[table["selected"]]
    ax.scatter(chosen["n_components"], chosen[criterion], s=220, facecolors="none",
               edgecolors="black", linewidths=1.5, label="selected", zorder=3)
    if table["degenerate"].any():
        ax.scatter([], [], marker="x", color="grey", label="degenerate (excluded)")
    if len(shown) < table["covariance_type"].nunique():
        # From the best value to the selected type's worst: its whole curve, the competitive
        # types where they are near it, and none of the far-worse ones.
        healthy = table[~table["degenerate"].to_numpy(bool)]
        low = float(healthy[criterion].min())
        winner = healthy.loc[healthy[criterion].idxmin(), "covariance_type"]
        high = float(healthy[healthy["covariance_type"] == winner][criterion].max())
        pad = 0.05 * max(high - low, 1e-9 * abs(high) + 1e-12)
        ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.set_xticks(sorted(table["n_components"].unique()))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax
