"""``sample`` draws from the fitted distribution: check its moments."""

import numpy as np
import pytest

from bayesgmm import GaussianMixture


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_sample_moments(covariance_type, faithful):
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(faithful)
    n = 200_000
    x, labels = model.sample(n)
    assert x.shape == (n, 2) and labels.shape == (n,)
    assert np.all(np.diff(labels) >= 0)  # scikit-learn orders draws by component
    # Component proportions: binomial, 5 standard errors.
    share = np.bincount(labels, minlength=2) / n
    np.testing.assert_allclose(share, model.weights_, atol=5 * np.sqrt(0.25 / n))
    covs = model.full_covariances()
    for k in range(2):
        drawn = x[labels == k]
        se = np.sqrt(np.diag(covs[k]) / len(drawn))
        assert np.all(np.abs(drawn.mean(0) - model.means_[k]) <= 5 * se)
        np.testing.assert_allclose(np.cov(drawn.T), covs[k], rtol=0.03,
                                   atol=0.03 * np.sqrt(np.outer(np.diag(covs[k]),
                                                                np.diag(covs[k]))).max())
    # Mixture mean and covariance (law of total variance).
    mean = model.weights_ @ model.means_
    spread = sum(w * (c + np.outer(m - mean, m - mean))
                 for w, m, c in zip(model.weights_, model.means_, covs, strict=True))
    assert np.all(np.abs(x.mean(0) - mean) <= 5 * np.sqrt(np.diag(spread) / n))
    np.testing.assert_allclose(np.cov(x.T), spread, rtol=0.03)


def test_sample_reproducible_and_validated(faithful):
    model = GaussianMixture(2, random_state=3).fit(faithful)
    np.testing.assert_array_equal(model.sample(5)[0], model.sample(5)[0])
    with pytest.raises(ValueError, match="at least one sample"):
        model.sample(0)
