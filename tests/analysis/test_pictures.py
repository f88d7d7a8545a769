"""The pictures of issue #20: discriminant coordinates against scikit-learn's linear
discriminant analysis, the BIC plot's scale, the prior-and-posterior bars and the similarity
heatmap's ordering."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from bayesgmm.analysis.directions import cluster_directions
from bayesgmm.app.plotting import (
    competitive_types,
    plot_posterior_k,
    plot_selection,
    plot_similarity,
)


def _plug_in(x, labels):
    """Class proportions, means and (biased) covariances of a labelled sample."""
    classes = np.unique(labels)
    weights = np.array([np.mean(labels == k) for k in classes])
    means = np.array([x[labels == k].mean(axis=0) for k in classes])
    covs = np.array([np.cov(x[labels == k], rowvar=False, bias=True) for k in classes])
    return weights, means, covs


def test_location_directions_are_linear_discriminant_directions():
    """With the plug-in moments of a labelled sample, the location directions are LDA's
    (scikit-learn's eigen solver), direction by direction, and do not depend on the columns'
    units."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (4, 5))
    labels = np.repeat(np.arange(4), 150)
    mixing = rng.normal(size=(5, 5))
    x = centres[labels] + rng.normal(size=(600, 5)) @ mixing
    x *= np.array([1.0, 1000.0, 0.01, 5.0, 1.0])          # mixed units
    found = cluster_directions(x, *_plug_in(x, labels))
    assert found.kinds[:3] == ("location",) * 3
    lda = LinearDiscriminantAnalysis(solver="eigen").fit(x, labels)
    reference = lda.scalings_[:, :3] / np.linalg.norm(lda.scalings_[:, :3], axis=0)
    cosines = np.abs(np.sum(found.basis[:, :3] * reference, axis=0))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-8)


def test_two_clusters_get_a_covariance_direction():
    """Two clusters at different means along x0, one stretched along x2: the first direction
    separates the means, the second is the stretched axis (from the scale kernel)."""
    rng = np.random.default_rng(1)
    n = 4000
    a = rng.normal(size=(n, 4)) + np.array([4.0, 0, 0, 0])
    b = rng.normal(size=(n, 4)) * np.array([1.0, 1.0, 4.0, 1.0])
    x = np.vstack([a, b])
    labels = np.repeat([0, 1], n)
    found = cluster_directions(x, *_plug_in(x, labels))
    assert found.kinds[:2] == ("location", "scale")
    assert abs(found.basis[0, 0]) > 0.99
    assert abs(found.basis[2, 1]) > 0.99


def _table(spherical_offset):
    rows = []
    for name, base in (("full", 7000.0), ("tied", 7050.0), ("diag", 7100.0),
                       ("spherical", 7000.0 + spherical_offset)):
        for k in range(1, 6):
            rows.append({"covariance_type": name, "n_components": k,
                         "bic": base + 60.0 * (k - 3) ** 2, "icl": base + 70.0 * (k - 3) ** 2,
                         "degenerate": False})
    table = pd.DataFrame(rows)
    table["selected"] = (table["covariance_type"] == "full") & (table["n_components"] == 3)
    return table


def test_bic_plot_keeps_the_competitive_models_readable():
    """A type 20,000 worse (wine's spherical models) is left off the scale and labelled; the
    axis spans the competitive curves. When every type competes nothing is cut."""
    table = _table(20_000.0)
    assert competitive_types(table) == ["full", "tied", "diag"]
    ax = plot_selection(table)
    low, high = ax.get_ylim()
    selected = table[table["covariance_type"] == "full"]["bic"]
    assert low <= selected.min() and high >= selected.max()
    assert high < selected.max() + 0.1 * (selected.max() - selected.min())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("spherical (VII): off scale, best 27,000") for t in labels)

    close = _table(30.0)
    assert competitive_types(close) == ["full", "tied", "diag", "spherical"]
    ax = plot_selection(close)
    assert not any("off scale" in t.get_text() for t in ax.get_legend().get_texts())


def test_prior_and_posterior_bars():
    posterior = pd.Series([0.2, 0.7, 0.1], index=[2, 3, 4])
    prior = pd.Series([0.6, 0.25, 0.1, 0.04, 0.01], index=[1, 2, 3, 4, 5])
    prior.attrs["n_samples"] = 272
    ax = plot_posterior_k(posterior, prior)
    heights = [p.get_height() for p in ax.patches]
    assert heights[:5] == pytest.approx(prior.tolist())
    assert heights[5:] == pytest.approx([0.0, 0.2, 0.7, 0.1, 0.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4", "5"]


def test_similarity_heatmap_is_ordered_by_cluster():
    rng = np.random.default_rng(2)
    clusters = rng.permutation(np.repeat([0, 1, 2], [5, 3, 2]))
    similarity = np.where(clusters[:, None] == clusters[None, :], 0.9, 0.05)
    np.fill_diagonal(similarity, 1.0)
    ax = plot_similarity(pd.DataFrame(similarity), clusters)
    shown = ax.images[0].get_array()
    ordered = np.sort(clusters)
    assert np.array_equal(np.asarray(shown) > 0.5, ordered[:, None] == ordered[None, :])
    assert len(ax.lines) == 4        # two edges, each drawn across and down
