"""Checks against known classes: label matching and the calibration of stated membership
probabilities, on simulations whose true posterior probabilities are known in closed form."""

import numpy as np
import pytest
from scipy import stats

from bayesgmm.analysis.quality import assignment_calibration, match_labels
from bayesgmm.base.datasets import make_segments


def test_match_labels_undoes_a_permutation_and_leaves_extra_clusters_out():
    truth = np.repeat([0, 1, 2], [50, 30, 20])
    labels = np.array([2, 0, 1])[truth]
    labels[:3] = 7  # a tiny extra cluster matches no class
    assert match_labels(labels, truth) == {2: 0, 0: 1, 1: 2}


def _overlapping_pair(seed, n=4000):
    """Two unit-variance 1-D Gaussians 2 apart: the exact posterior probabilities."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    x = rng.normal(2.0 * truth, 1.0)
    density = np.column_stack([stats.norm.pdf(x, 0, 1), stats.norm.pdf(x, 2, 1)])
    posterior = density / density.sum(axis=1, keepdims=True)
    return posterior, truth


def test_exact_posterior_probabilities_are_calibrated():
    posterior, truth = _overlapping_pair(0)
    labels = posterior.argmax(axis=1)
    table = assignment_calibration(posterior.max(axis=1), labels, truth, n_bins=5)
    assert len(table) == 5
    # 800 points per bin: binomial sd <= 0.018
    np.testing.assert_allclose(table["observed"], table["stated"], atol=0.06)
    assert table.attrs["accuracy"] == pytest.approx(stats.norm.cdf(1.0), abs=0.02)


def test_overconfident_probabilities_are_caught():
    posterior, truth = _overlapping_pair(1)
    labels = posterior.argmax(axis=1)
    overconfident = posterior.max(axis=1) ** 0.2  # pushed towards 1
    table = assignment_calibration(overconfident, labels, truth)
    assert (table["stated"] - table["observed"]).iloc[0] > 0.15


def test_make_segments_is_reproducible_with_the_documented_shares():
    data, segment = make_segments(20000, random_state=3)
    again, _ = make_segments(20000, random_state=3)
    assert data.equals(again)
    assert list(data.columns) == ["annual_spend", "visits_per_month", "basket_size"]
    np.testing.assert_allclose(np.bincount(segment) / len(segment), [0.5, 0.3, 0.2], atol=0.015)
    occasional = data[segment == 0]
    np.testing.assert_allclose(occasional.mean(), [1100.0, 3.0, 38.0], rtol=0.02)
    assert occasional.corr().iloc[0, 1] == pytest.approx(0.5, abs=0.05)


def test_metrics_equal_scikit_learns_on_the_same_labels(faithful):
    from sklearn import metrics

    from bayesgmm import GaussianMixture
    from bayesgmm.analysis.quality import cluster_quality

    model = GaussianMixture(3, random_state=0).fit(faithful)
    labels = model.predict(faithful)
    truth = (faithful["eruptions"] > 3).astype(int).to_numpy()
    quality = cluster_quality(model, faithful, labels_true=truth)
    m = quality.metrics
    x = faithful.to_numpy()
    assert m["silhouette"] == pytest.approx(metrics.silhouette_score(x, labels), rel=1e-12)
    assert m["davies_bouldin"] == pytest.approx(metrics.davies_bouldin_score(x, labels))
    assert m["calinski_harabasz"] == pytest.approx(metrics.calinski_harabasz_score(x, labels))
    assert m["adjusted_rand"] == pytest.approx(metrics.adjusted_rand_score(truth, labels))
    assert m["normalized_mutual_info"] == pytest.approx(
        metrics.normalized_mutual_info_score(truth, labels))
    np.testing.assert_array_equal(quality.contingency.to_numpy(),
                                  metrics.cluster.contingency_matrix(truth, labels))
    proba = model.predict_proba(faithful)
    assert m["share_ambiguous"] == pytest.approx((proba.max(axis=1) < 0.8).mean())
    assert m["mean_entropy"] == pytest.approx(stats.entropy(proba, axis=1).mean())


def test_silhouette_is_subsampled_above_the_documented_size():
    from sklearn import metrics

    from bayesgmm import GaussianMixture
    from bayesgmm.analysis.quality import cluster_quality

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(size=(700, 2)), 6 + rng.normal(size=(500, 2))])
    model = GaussianMixture(2, random_state=0).fit(x)
    quality = cluster_quality(model, x, sample_size=300, random_state=4)
    assert quality.metrics["silhouette_rows"] == 300 and len(quality.silhouette) == 300
    rows = np.sort(np.random.default_rng(4).choice(len(x), 300, replace=False))
    expected = metrics.silhouette_score(x[rows], model.predict(x)[rows])
    assert quality.metrics["silhouette"] == pytest.approx(expected, rel=1e-12)
    # one cluster: the distance-based metrics are undefined, not an error
    single = cluster_quality(GaussianMixture(1).fit(x), x)
    assert np.isnan(single.metrics["silhouette"]) and single.metrics["n_clusters"] == 1
