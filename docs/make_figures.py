"""Draw the report's pictures for three data sets into docs/figures/ (issue #20's check "by
looking at them"): Old Faithful (2 columns), scikit-learn's wine (13 columns in mixed units,
not standardised) and a 5-D synthetic mixture with known clusters.

    python docs/make_figures.py          # about two minutes on 2 cores

Per data set: ``<name>_selection.png`` (BIC by K and covariance type), ``<name>_clusters.png``
(clusters and assignment uncertainty on the report's coordinates), ``<name>_n_clusters.png``
(prior and posterior of K+), ``<name>_coclustering.png`` (similarity heatmap ordered by the
VI-optimal partition).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_wine

from bayesgmm import load_faithful
from bayesgmm.app.plotting import plot_posterior_k, plot_selection, plot_similarity
from bayesgmm.app.report import cluster_figure
from bayesgmm.app.workflow import Clustering
from bayesgmm.base.datasets import make_mixture

OUT = Path(__file__).parent / "figures"


def draw(name: str, data: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clustering = Clustering(bayes="gibbs", random_state=0, progress_bar=False).fit(data)
    bayes = clustering.bayes_model_
    ax = plot_selection(clustering.selection_.table)
    ax.figure.savefig(OUT / f"{name}_selection.png", dpi=80, bbox_inches="tight")
    plt.close(ax.figure)

    fig, _ = cluster_figure(clustering, data, clustering.assign(data))
    fig.savefig(OUT / f"{name}_clusters.png", dpi=80, bbox_inches="tight")
    plt.close(fig)

    ax = plot_posterior_k(bayes.n_clusters_posterior(), bayes.n_clusters_prior())
    ax.figure.savefig(OUT / f"{name}_n_clusters.png", dpi=80, bbox_inches="tight")
    plt.close(ax.figure)

    table = bayes.estimate_partition()
    similarity = bayes.posterior_similarity()     # on the rows the partition was searched on
    ax = plot_similarity(similarity, table["cluster"].to_numpy()[similarity.index])
    ax.figure.savefig(OUT / f"{name}_coclustering.png", dpi=80, bbox_inches="tight")
    plt.close(ax.figure)
    print(f"{name}: K+ posterior {bayes.n_clusters_posterior().round(3).to_dict()}, "
          f"partition sizes {table['cluster'].value_counts().sort_index().tolist()}")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    draw("faithful", load_faithful())
    draw("wine", load_wine(as_frame=True).data)
    data, _ = make_mixture(1500, 4, 5, random_state=3)
    draw("synthetic5d", data)


if __name__ == "__main__":
    main()
