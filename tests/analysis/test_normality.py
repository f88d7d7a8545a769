"""Gaussian checks: Holm against a worked example, Mardia's statistics against their known
expectations and invariances, and the whole check on simulations with known truth."""

import numpy as np
import pytest
from scipy import stats

from bayesgmm import GaussianMixture
from bayesgmm.analysis.normality import gaussian_checks, holm, mahalanobis_qq, mardia

CENTRES = np.array([[0.0, 0.0, 0.0], [12.0, 0.0, 0.0], [0.0, 12.0, 0.0]])


def test_holm_worked_example():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    assert holm([0.9, 0.8]).max() == 1.0


def test_mardia_statistics_match_their_gaussian_expectations():
    rng = np.random.default_rng(0)
    d = 3
    x = rng.multivariate_normal(np.zeros(d), [[2, 0.5, 0], [0.5, 1, 0.3], [0, 0.3, 1]], 20000)
    result = mardia(x[:3000])
    # E b2 = D(D+2)(n-1)/(n+1), sd sqrt(8 D (D+2) / n) = 0.2 at n = 3000
    assert abs(result["kurtosis"] - d * (d + 2) * 2999 / 3001) < 4 * 0.2
    # n b1 / 6 is chi-square with D(D+1)(D+2)/6 = 10 degrees of freedom: mean 10, sd 4.5
    assert abs(result["skewness_statistic"] - 10) < 4 * 4.5
    # affine invariance: the statistics do not change under x -> x A + b
    a = rng.normal(size=(d, d)) + 3 * np.eye(d)
    moved = mardia(x[:3000] @ a + 7.0)
    for key in ("skewness", "kurtosis", "kurtosis_z"):
        assert moved[key] == pytest.approx(result[key], rel=1e-8)


def test_mardia_kurtosis_sees_tails_both_ways():
    rng = np.random.default_rng(1)
    assert mardia(rng.standard_t(3, size=(800, 2)))["kurtosis_z"] > 5
    assert mardia(rng.uniform(size=(800, 2)))["kurtosis_z"] < -5


def _mixture(seed, draw):
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=600, p=[0.4, 0.35, 0.25])
    return CENTRES[labels] + draw(rng, (600, 3)), labels


def test_gaussian_clusters_pass_at_the_nominal_rate():
    rejected, checked = 0, 0
    for seed in range(15):
        x, _ = _mixture(seed, lambda rng, size: rng.normal(size=size))
        checks = gaussian_checks(GaussianMixture(3, random_state=0).fit(x), x, alpha=0.05)
        rejected += int((~checks["gaussian"].astype(bool)).sum())
        checked += len(checks)
        assert (checks["tail_ratio"].between(0.6, 1.4)).all()
    assert checked == 45
    assert rejected / checked <= 0.10


def test_student_t_clusters_are_flagged_for_heavy_tails():
    for seed in range(3):
        x, _ = _mixture(seed, lambda rng, size: rng.standard_t(3, size=size))
        checks = gaussian_checks(GaussianMixture(3, random_state=0).fit(x), x)
        assert not checks["gaussian"].astype(bool).any()
        assert (checks["kurtosis_z"] > 0).all()
        assert checks["verdict"].str.contains("heavier tails than Gaussian").all()
        assert (checks["tail_ratio"] > 1).all()


def test_qq_of_gaussian_clusters_follows_the_chi_square():
    x, _ = _mixture(0, lambda rng, size: rng.normal(size=size))
    qq = mahalanobis_qq(GaussianMixture(3, random_state=0).fit(x), x)
    assert sorted(qq) == [0, 1, 2]
    for theoretical, observed in qq.values():
        assert np.corrcoef(theoretical, observed)[0, 1] > 0.98
        assert theoretical[-1] == pytest.approx(stats.chi2.ppf(1 - 0.5 / len(observed), 3))


def test_small_clusters_are_not_judged():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(size=(300, 2)), 20 + rng.normal(size=(8, 2))])
    checks = gaussian_checks(GaussianMixture(2, random_state=0).fit(x), x)
    small = checks[checks["n"] == 8]
    assert small["verdict"].iloc[0] == "too few rows (8) to check"
