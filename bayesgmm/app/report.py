"""A self-contained HTML report of a :class:`~bayesgmm.app.workflow.Clustering` (images embedded).

Sections: data summary; the selection criteria by covariance type; the clusters in 2-D with
covariance ellipses; assignment uncertainty; cluster sizes and means in the data's units (with
credible intervals for a Bayesian fit); the posterior over K beside the prior the model implies,
which rows belong together (co-clustering heatmap, loss-optimal partition, belonging),
diagnostics with trace and rank plots of the label-invariant quantities, and the
EM-vs-Bayesian comparison (Bayesian fit only);
anomalies; and every warning raised during the fit.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from bayesgmm.analysis.fitted import FittedClusters
from bayesgmm.app.workflow import Clustering
from bayesgmm.base.config import __version__
from bayesgmm.engine.bayes.cluster_prior import side_by_side

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #4a7ab5; }
h2 { margin-top: 1.8em; color: #2c4f7c; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #eef3f9; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
.note { color: #555; font-size: 0.9em; }
.warn { color: #8a4b00; }
"""


def figure_html(fig, alt: str) -> str:
    """A matplotlib figure as an embedded PNG ``<img>`` (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame, digits: int = 3, index: bool = True) -> str:
    return frame.to_html(float_format=lambda v: f"{v:.{digits}f}", index=index, border=0,
                         na_rep="")


def _para(text: str, cls: str = "note") -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>'


def _component_moments(clustering: Clustering, data_units: bool = True
                       ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Means (K, D) and covariances (K, D, D) in the data's units (else in the units the model
    was fitted in), and their labels."""
    model = clustering.model_
    labels = clustering.cluster_labels()
    if clustering.bayes_model_ is not None:
        means, covs = model.means_[labels], model.covariances_[labels]
    else:
        means, covs = model.means_, model.full_covariances()
    scaling = clustering.input_scaling_
    if scaling is not None and data_units:
        means = scaling.inverse_transform(means)
        covs = covs * np.outer(scaling.scale, scaling.scale)
    return means, covs, labels


def _data_section(clustering: Clustering, frame: pd.DataFrame) -> list[str]:
    describe = frame.describe().T
    describe.insert(0, "missing", frame.isna().sum())
    parts = ["<h2>Data</h2>",
             _para(f"{len(frame)} rows x {frame.shape[1]} columns used: "
                   f"{', '.join(clustering.columns_)}."
                   + (f" Not used (not numeric): {', '.join(clustering.skipped_columns_)}."
                      if clustering.skipped_columns_ else "")
                   + (" Columns standardised to mean 0, variance 1 before clustering; "
                      "results are in the data's units." if clustering.standardize else "")),
             _table(describe)]
    missing = frame.isna().sum()
    if missing.any():
        incomplete = int(frame.isna().any(axis=1).sum())
        where = ", ".join(f"{name} ({count})" for name, count in missing[missing > 0].items())
        parts.append(_para(
            f"{int(missing.sum())} values are missing ({100 * missing.sum() / frame.size:.1f}% "
            f"of the cells) in {incomplete} rows: {where}. The models were fitted by "
            "marginalising them (missing at random assumed): each row counts through its "
            "observed values. Rows with missing values are not flagged as anomalies, and the "
            "quality and Gaussian checks below use the complete rows only.", "warn"))
    return parts


def _selection_section(clustering: Clustering) -> list[str]:
    import matplotlib.pyplot as plt

    from bayesgmm.app.plotting import plot_selection

    table = clustering.selection_.table
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    plot_selection(table, "bic", ax=axes[0])
    plot_selection(table, "icl", ax=axes[1])
    fig.tight_layout()
    best = clustering.em_model_
    shown = table.head(10).drop(columns=["n_degenerate_inits"])
    return ["<h2>Choosing K and the covariance type</h2>",
            _para(f"Selected by {clustering.criterion.upper()}: {best.covariance_type} "
                  f"covariances, K = {best.n_components}. scikit-learn's sign: lower is better "
                  "(mclust's BIC is the negative). Degenerate fits (a component collapsed onto "
                  "repeated values) are excluded from the choice."),
            figure_html(fig, "BIC and ICL by number of components and covariance type"),
            _table(shown, 2, index=False)]


def cluster_figure(clustering: Clustering, frame: pd.DataFrame, assigned: pd.DataFrame):
    """The clusters with 95% covariance ellipses beside the assignment-uncertainty plot, on the
    report's coordinates: two columns in the data's units, more on the fit's discriminant
    coordinates. ``assigned`` is ``clustering.assign(frame)``. Returns the figure and the
    :class:`~bayesgmm.app.plotting.Projection` used."""
    import matplotlib.pyplot as plt

    from bayesgmm.app.plotting import Projection, plot_clusters, plot_uncertainty

    data_units = frame.shape[1] <= 2
    shown = frame if data_units else clustering.model_input(frame)
    means, covs, labels = _component_moments(clustering, data_units)
    weights = clustering.model_.weights_[labels]
    projection = Projection(shown, (weights, means, covs))
    points = projection.points(shown.to_numpy())
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    plot_clusters(points, assigned["label"].to_numpy(),
                  {k: projection.points(m[None])[0] for k, m in zip(labels, means, strict=True)},
                  {k: projection.covariance(c) for k, c in zip(labels, covs, strict=True)},
                  projection.names, ax=axes[0])
    plot_uncertainty(points, assigned["uncertainty"].to_numpy(), projection.names, ax=axes[1])
    fig.tight_layout()
    return fig, projection


def _cluster_section(clustering: Clustering, frame: pd.DataFrame,
                     assigned: pd.DataFrame) -> list[str]:
    fig, projection = cluster_figure(clustering, frame, assigned)
    n_ambiguous = int(assigned["ambiguous"].sum())
    parts = ["<h2>Clusters</h2>", figure_html(fig, "clusters and assignment uncertainty")]
    if projection.note:
        parts.append(_para(projection.note))
    parts.append(_para(f"{n_ambiguous} of {len(assigned)} rows "
                       f"({100 * n_ambiguous / len(assigned):.1f}%) are ambiguous: the "
                       "probability of their label is below 0.8."))
    least = assigned.sort_values("probability").head(10)
    columns = [c for c in ("label", "probability", "probability_lower", "probability_upper",
                           "entropy") if c in least]
    parts += ["<h3>The ten least certain rows</h3>",
              _table(pd.concat([frame.loc[least.index], least[columns]], axis=1))]
    return parts


def _sizes_and_means(clustering: Clustering, assigned: pd.DataFrame,
                     view: FittedClusters) -> list[str]:
    import matplotlib.pyplot as plt

    from bayesgmm.app.plotting import plot_cluster_means, plot_interval_bars

    means, _, labels = _component_moments(clustering)
    columns = clustering.columns_
    parts = ["<h2>Cluster sizes and means</h2>"]
    bayes = clustering.bayes_model_
    if bayes is None:
        counts = assigned["label"].value_counts().reindex(labels, fill_value=0)
        sizes = pd.DataFrame({"weight": clustering.em_model_.weights_, "rows": counts.to_numpy(),
                              "share": counts.to_numpy() / len(assigned)},
                             index=pd.Index(labels, name="cluster"))
        fig, ax = plt.subplots(figsize=(5, 3.5))
        plot_interval_bars(sizes, "weight", None, None, "mixing weight", ax=ax)
        lower = upper = None
        parts.append(_para("EM gives point estimates; fit with a Bayesian method (--bayes vi "
                           "or nuts) for credible intervals on sizes and means."))
    else:
        sizes = bayes.segment_sizes()
        fig, ax = plt.subplots(figsize=(5, 3.5))
        plot_interval_bars(sizes, "share", "share_lower", "share_upper",
                           f"share of rows ({100 * bayes.credible_level:.0f}% interval)", ax=ax)
        draws = view.mean_draws[:, labels]  # (S, K, D), data units
        low, high = bayes.credible_interval(draws)
        lower = pd.DataFrame(low, index=labels, columns=columns)
        upper = pd.DataFrame(high, index=labels, columns=columns)
    mean_table = pd.DataFrame(means, index=pd.Index(labels, name="cluster"), columns=columns)
    parts += [figure_html(fig, "cluster sizes"), _table(sizes),
              figure_html(plot_cluster_means(mean_table, lower, upper), "cluster means"),
              "<h3>Means in the data's units</h3>", _table(mean_table)]
    if lower is not None:
        level = f"{100 * bayes.credible_level:.0f}%"
        parts += [f"<h3>{level} credible intervals of the means (lower, upper)</h3>",
                  _table(lower.add_suffix(" lower").join(upper.add_suffix(" upper")))]
    return parts


def _profile_section(view: FittedClusters) -> list[str]:
    from bayesgmm.analysis.profiles import distinctive_features, profile_clusters
    from bayesgmm.app.plotting import plot_profile_heatmap

    profile = profile_clusters(view, None)
    ax = plot_profile_heatmap(profile)
    ax.figure.tight_layout()
    shown = profile.drop(columns=[c for c in ("share_lower", "share_upper") if c in profile])
    return ["<h2>Cluster profiles</h2>",
            _para("Each cluster's rows (most probable cluster) against the rest of the data: "
                  "the standardised mean difference (Cohen's d) per feature; |d| of 0.5 is a "
                  "medium effect, 0.8 a large one."),
            figure_html(ax.figure, "cluster profile heatmap"),
            _table(distinctive_features(profile).to_frame()),
            "<h3>Per cluster and feature (data units)</h3>", _table(shown, index=False)]


def _quality_section(view: FittedClusters) -> list[str]:
    from bayesgmm.analysis.quality import cluster_quality
    from bayesgmm.app.plotting import plot_silhouette

    quality = cluster_quality(view, None)
    parts = ["<h2>Cluster quality</h2>",
             _para("scikit-learn's metrics on the most probable labels, in the space the model "
                   "was fitted in. Silhouette (higher is better, at most 1) and Davies-Bouldin "
                   "(lower is better) reward compact round clusters; the mean entropy and the "
                   "share of ambiguous rows (label probability below 0.8) measure how sure "
                   "the assignments are."),
             _table(quality.metrics.to_frame())]
    if quality.silhouette["silhouette"].notna().any():
        parts.append(figure_html(plot_silhouette(quality.silhouette).figure, "silhouette"))
    return parts


def _gaussian_section(view: FittedClusters) -> list[str]:
    from bayesgmm.analysis.normality import gaussian_checks, mahalanobis_qq
    from bayesgmm.app.plotting import plot_qq

    checks = gaussian_checks(view, None)
    return ["<h2>Is each cluster Gaussian?</h2>",
            _para("Mardia's multivariate skewness and kurtosis tests and per-feature "
                  "Shapiro-Wilk tests, Holm-corrected within each cluster; tail_ratio above 1 "
                  "means more rows far from the centre than the fitted Gaussian expects. The "
                  "QQ plots compare squared Mahalanobis distances with chi-square quantiles."),
            _table(checks),
            figure_html(plot_qq(mahalanobis_qq(view, None), view.n_features),
                        "Mahalanobis QQ plots")]


#: Rows the co-clustering section works on (a random subset of larger data).
TOGETHER_ROWS = 1000


def _together_section(clustering: Clustering, frame: pd.DataFrame) -> list[str]:
    """Which rows belong together, without labels: the similarity heatmap ordered by the
    VI-optimal partition, the partition's sizes and the least surely placed rows."""
    from bayesgmm.app.plotting import plot_similarity

    bayes = clustering.bayes_model_
    table = bayes.estimate_partition(max_rows=TOGETHER_ROWS)
    similarity = bayes.posterior_similarity(max_rows=TOGETHER_ROWS)
    searched = table[table["searched"]]
    ax = plot_similarity(similarity, searched["cluster"].to_numpy())
    sizes = table.groupby("cluster").agg(rows=("belonging", "size"),
                                         mean_belonging=("belonging", "mean"))
    level = f"{100 * bayes.credible_level:.0f}%"
    sample = (f"a random {len(searched)} of the {len(table)} training rows"
              if len(searched) < len(table) else "the training rows")
    least = table.sort_values("belonging").head(10)
    if len(frame) == len(table):  # the report is on the training rows: show their values
        least = pd.concat([frame.iloc[least.index].set_axis(least.index), least], axis=1)
    return ["<h2>Which rows belong together</h2>",
            _para("Label-free summaries: cluster labels switch between posterior draws, "
                  "partitions do not. The heatmap is the posterior probability that two rows "
                  f"share a cluster ({sample}), ordered by the partition that minimises the "
                  "posterior expected variation of information (Wade & Ghahramani 2018; "
                  "searched as SALSO does, Dahl, Johnson & Müller 2022; expected loss "
                  f"{table.attrs['expected_loss']:.3f} bits). Each row's belonging is the "
                  "probability that it shares a cluster with a member of its estimated "
                  f"cluster, averaged over the members, with its {level} credible interval."),
            figure_html(ax.figure, "posterior co-clustering heatmap"),
            _table(sizes),
            "<h3>The ten rows that belong least surely</h3>",
            _table(least)]


def _bayes_sections(clustering: Clustering, frame: pd.DataFrame) -> list[str]:
    from bayesgmm.app.plotting import plot_posterior_k, plot_trace_rank

    bayes = clustering.bayes_model_
    if bayes is None:
        return ["<h2>Bayesian analysis</h2>",
                _para("Not run. Fit with --bayes gibbs (or vi, nuts) for the posterior over the "
                      "number of clusters, credible intervals and diagnostics.")]
    posterior = bayes.n_clusters_posterior()
    prior = bayes.n_clusters_prior()
    ax = plot_posterior_k(posterior, prior)
    how = ("computed exactly" if prior.attrs["method"] == "exact"
           else "simulated from the prior")
    parts = ["<h2>Posterior over the number of clusters</h2>",
             _para(f"{bayes.describe()}. A cluster counts when at least one row is assigned "
                   f"to it in a posterior draw. Mode {posterior.attrs['mode']}; "
                   f"{bayes.credible_level:.0%} credible set "
                   f"{posterior.attrs['credible_set']}. The grey bars are the prior on the "
                   f"number of occupied clusters that the model's weight prior implies for "
                   f"{prior.attrs['n_samples']} rows ({how}; prior mean "
                   f"{prior.attrs['mean']:.2f}): how far the posterior moved from them is "
                   "what the data said."),
             figure_html(ax.figure, "prior and posterior over the number of clusters"),
             _table(side_by_side(prior, posterior))]
    parts += _together_section(clustering, frame)
    parts += ["<h2>Diagnostics</h2>",
              _para("R-hat and effective sample sizes; the label-invariant quantities "
                    "(concentration, total log-likelihood, weights sorted largest first, "
                    "indicators of the number of occupied clusters) do not depend on "
                    "relabelling. Variational fits have one 'chain' of independent draws from "
                    "the approximation, so R-hat does not apply."),
              _table(bayes.diagnostics())]
    chains, n_draws = bayes.chain_shape_
    quantities = {"log-likelihood": bayes.log_likelihood_draws_.reshape(chains, n_draws),
                  "occupied clusters": (bayes.occupied_draws_ > 0).sum(axis=1).reshape(
                      chains, n_draws)}
    if bayes.concentration_draws_ is not None:
        quantities = {"concentration": bayes.concentration_draws_.reshape(chains, n_draws),
                      **quantities}
    parts.append(figure_html(plot_trace_rank(quantities), "trace and rank plots"))
    if "diverging" in bayes.sample_stats_:
        parts.append(_para(f"Divergent transitions: {int(bayes.sample_stats_['diverging'].sum())}"))
    elif bayes.method == "gibbs":
        info = bayes.inference_info_
        parts.append(_para(f"Split-merge acceptance: splits {info['split_acceptance']:.3f}, "
                           f"merges {info['merge_acceptance']:.3f}."))
    parts += ["<h2>EM vs Bayesian</h2>",
              _para("Both on the training rows. The mean log density is in-sample (optimistic "
                    "for both); bayesgmm.compare_with_em gives a held-out comparison."),
              _table(clustering.comparison())]
    return parts


def build_report(clustering: Clustering, data: pd.DataFrame) -> str:
    """The report for ``clustering`` on ``data`` (training or new rows), as an HTML string."""
    frame = clustering.input_frame(data)
    assigned = clustering.assign(data)
    model = clustering.model_
    title = "bayesgmm clustering report"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{title}</h1>",
             _para(f"bayesgmm {__version__}; model: {type(model).__name__}; "
                   f"{len(frame)} rows reported (model fitted on {clustering.n_rows_} rows).")]
    parts += _data_section(clustering, frame)
    parts += _selection_section(clustering)
    parts += _cluster_section(clustering, frame, assigned)
    view = FittedClusters.of(clustering, frame)
    parts += _sizes_and_means(clustering, assigned, view)
    parts += _profile_section(view)
    parts += _quality_section(view)
    parts += _gaussian_section(view)
    parts += _bayes_sections(clustering, frame)
    n_anomalies = int(assigned["anomaly"].sum())
    parts += ["<h2>Anomalies</h2>",
              _para(f"{n_anomalies} rows have a log density below "
                    f"{clustering.anomaly_threshold_:.3f}, the "
                    f"{100 * clustering.anomaly_quantile:g}% quantile of the training rows' log "
                    "densities.")]
    if clustering.warnings_:
        parts.append("<h2>Warnings during the fit</h2>")
        parts += [_para(w, "warn") for w in clustering.warnings_]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(clustering: Clustering, data: pd.DataFrame, out_dir) -> Path:
    """Write ``report.html`` into ``out_dir`` (created if needed); returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(build_report(clustering, data), encoding="utf-8")
    return path
