"""profile_clusters, distinctive_features and feature_tests against pandas and scipy."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.datasets import load_wine

from bayesgmm import GaussianMixture
from bayesgmm.analysis.profiles import distinctive_features, feature_tests, profile_clusters
from bayesgmm.app.workflow import Clustering


def test_profile_means_equal_a_groupby_on_the_map_labels(faithful):
    model = GaussianMixture(3, random_state=0).fit(faithful)
    profile = profile_clusters(model, faithful)
    labels = model.predict(faithful)
    grouped = faithful.groupby(labels)
    for column, how in (("mean", "mean"), ("sd", "std"), ("q50", "median")):
        expected = getattr(grouped, how)().stack()
        got = profile.set_index(["cluster", "feature"])[column]
        pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(),
                                       check_names=False, rtol=1e-12)
    sizes = profile.groupby("cluster")["size"].first()
    np.testing.assert_array_equal(sizes.to_numpy(), np.bincount(labels))


def test_standardised_job_is_profiled_in_the_data_units():
    wine = load_wine(as_frame=True).data
    clustering = Clustering(n_components=[3], covariance_type="diag", standardize=True,
                            random_state=0).fit(wine)
    profile = profile_clusters(clustering, wine)
    labels = clustering.assign(wine)["label"].to_numpy()
    expected = wine.groupby(labels).mean().stack()
    got = profile.set_index(["cluster", "feature"])["mean"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)


def test_effect_size_matches_the_pooled_t_statistic(faithful):
    """Cohen's d with the pooled sd is the pooled two-sample t over sqrt(1/n1 + 1/n2)."""
    model = GaussianMixture(2, random_state=0).fit(faithful)
    profile = profile_clusters(model, faithful).set_index(["cluster", "feature"])
    labels = model.predict(faithful)
    for feature in faithful.columns:
        inside, rest = faithful[feature][labels == 0], faithful[feature][labels != 0]
        t = stats.ttest_ind(inside, rest, equal_var=True).statistic
        assert profile.loc[(0, feature), "smd"] == pytest.approx(
            t * np.sqrt(1 / len(inside) + 1 / len(rest)), rel=1e-10)


def test_distinctive_features_rank_by_effect_size():
    profile = pd.DataFrame({"cluster": [0, 0, 0, 1, 1, 1], "feature": list("abcabc"),
                            "smd": [0.2, -1.4, 0.9, -0.1, 0.3, 0.4]})
    lines = distinctive_features(profile)
    assert lines[0] == "low b (-1.4 sd), high c (+0.9 sd)"
    assert lines[1].startswith("no feature stands out")


def _two_clusters_and_noise(seed, n=400):
    """Clusters in a and b; c is independent noise with the same law in both clusters."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    return pd.DataFrame({"a": rng.normal(5.0 * truth, 1.0), "b": rng.normal(-4.0 * truth, 1.0),
                         "c": rng.normal(0.0, 1.0, n)})


def test_split_tests_find_real_differences_and_not_noise():
    p_noise = []
    for seed in range(8):
        data = _two_clusters_and_noise(seed)
        model = GaussianMixture(2, random_state=0).fit(data)
        table = feature_tests(model, data, split=True, random_state=seed)
        assert table.loc["a", "anova_p"] < 1e-10 and table.loc["b", "kruskal_p"] < 1e-10
        assert table["n_rows"].iloc[0] == 200 and table["n_clusters"].iloc[0] == 2
        p_noise.append(table.loc["c", "anova_p"])
    assert np.median(p_noise) > 0.1  # roughly uniform under no difference
    assert "held-out" in table.attrs["note"]


def test_same_data_tests_say_they_are_optimistic(faithful):
    model = GaussianMixture(2, random_state=0).fit(faithful)
    with pytest.warns(UserWarning, match="double dipping"):
        table = feature_tests(model, faithful, split=False)
    assert "double dipping" in table.attrs["note"]
    assert table["n_rows"].iloc[0] == len(faithful)


def test_per_cluster_t_tests_separate_signal_from_noise():
    data = _two_clusters_and_noise(0)
    model = GaussianMixture(2, random_state=0).fit(data)
    table = feature_tests(model, data, per_cluster=True, random_state=1)
    assert list(table.index.get_level_values("feature")) == ["a", "b", "c"] * 2
    assert (table.xs("a", level="feature")["p"] < 1e-10).all()
    # two clusters: each one's t against the rest is the other's with the sign flipped
    np.testing.assert_allclose(table.xs("b", level="feature")["t"].to_numpy(),
                               -table.xs("b", level="feature")["t"].to_numpy()[::-1])
