"""bayesgmm and scikit-learn from the same initial parameters reach the same fit."""

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGMM

from bayesgmm import GaussianMixture
from tests.helpers import DATASETS

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _shared_start(X, covariance_type, n_components=3):
    """Initial parameters from one scikit-learn iteration (deliberately not converged)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = SklearnGMM(n_components, covariance_type=covariance_type, max_iter=1,
                           random_state=1).fit(X)
    return dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_, covariance_type=covariance_type,
                tol=1e-10, max_iter=1000)


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_start_same_fit(dataset, covariance_type):
    X = DATASETS[dataset]()
    kwargs = _shared_start(X, covariance_type)
    reference = SklearnGMM(3, **kwargs).fit(X)
    ours = GaussianMixture(3, **kwargs).fit(X)

    assert ours.converged_ and reference.converged_
    assert abs(ours.n_iter_ - reference.n_iter_) <= 1
    assert ours.lower_bound_ == pytest.approx(reference.lower_bound_, rel=1e-6)
    scale = np.abs(X).max()
    np.testing.assert_allclose(ours.weights_, reference.weights_, atol=1e-6)
    np.testing.assert_allclose(ours.means_, reference.means_, atol=1e-6 * scale)
    np.testing.assert_allclose(ours.covariances_, reference.covariances_, rtol=1e-5,
                               atol=1e-6 * scale**2)
    np.testing.assert_allclose(ours.precisions_, reference.precisions_, rtol=1e-4,
                               atol=1e-8)
    np.testing.assert_allclose(ours.score_samples(X), reference.score_samples(X), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_criteria_equal_sklearn_at_same_parameters(covariance_type, faithful):
    """bic/aic (and so the parameter counts) equal scikit-learn's evaluated at our parameters."""
    X = faithful.to_numpy()
    ours = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    reference = SklearnGMM(3, covariance_type=covariance_type)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_",
                 "precisions_"):
        setattr(reference, name, getattr(ours, name))
    assert ours._n_parameters() == reference._n_parameters()
    assert ours.bic(X) == pytest.approx(reference.bic(X), rel=1e-10)
    assert ours.aic(X) == pytest.approx(reference.aic(X), rel=1e-10)
    assert ours.score(X) == pytest.approx(reference.score(X), rel=1e-10)
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))


def test_faithful_matches_mclust_published_fit(faithful):
    """mclust's Mclust(faithful, G=2, modelNames="VVV") reports log-likelihood -1130.264."""
    model = GaussianMixture(2, n_init=5, tol=1e-8, random_state=0).fit(faithful)
    assert model.score(faithful) * len(faithful) == pytest.approx(-1130.264, abs=5e-3)
