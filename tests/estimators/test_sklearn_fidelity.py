"""Drop-in fidelity: scikit-learn's own ``GaussianMixture`` tests, run against bayesgmm's.

The test functions come from the module installed with scikit-learn
(``sklearn/mixture/tests/test_gaussian_mixture.py``); only its ``GaussianMixture`` name is
pointed at ours. Chosen are the tests of behaviour bayesgmm promises to share: the messages for
bad ``weights_init``, ``means_init`` and ``precisions_init``, the non-convergence warning,
``sample(0)``, warm starts that detect convergence one iteration at a time, and a likelihood
that never decreases between iterations. ``benchmarks/sklearn_tests.py`` runs the whole
module (``test_warm_start`` and ``test_init`` too) and lists what fails, with the reasons, in
``benchmarks/README.md``.
"""

import numpy as np
import pytest

from bayesgmm import GaussianMixture

scikit_learn_tests = pytest.importorskip("sklearn.mixture.tests.test_gaussian_mixture")

# As scikit-learn marks these tests: their short fits warn by design.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def bayesgmm_in_place_of_scikit_learn(monkeypatch):
    monkeypatch.setattr(scikit_learn_tests, "GaussianMixture", GaussianMixture)


@pytest.mark.parametrize("name", [
    "test_check_weights",
    "test_check_means",
    "test_check_precisions",
    "test_gaussian_mixture_fit_convergence_warning",
    "test_convergence_detected_with_warm_start",
    "test_monotonic_likelihood",
    "test_sample",
])
def test_scikit_learns_own_test_passes(name):
    getattr(scikit_learn_tests, name)()


def test_the_bound_never_decreases_even_at_the_rounding_floor(faithful):
    """With ``tol=0`` EM runs into the fixed point, where the E-step's bound moves by rounding
    only; the loop stops there (converged) instead of reporting a lower bound."""
    for covariance_type in ("full", "spherical"):  # a matrix type and an elementwise one
        model = GaussianMixture(3, covariance_type=covariance_type, tol=0.0, max_iter=2000,
                                random_state=0).fit(faithful)
        bounds = np.asarray(model.lower_bounds_)
        assert np.all(np.diff(bounds) >= 0), covariance_type
        assert model.converged_ and model.n_iter_ < 2000
        assert model.lower_bound_ == bounds[-1]


def test_messages_add_bayesgmm_advice_after_scikit_learns(faithful):
    with pytest.raises(ValueError, match=r"should be normalized.*weights_init must sum to 1"):
        GaussianMixture(2, weights_init=[0.3, 0.3]).fit(faithful)
    with pytest.raises(ValueError, match=r"'tied precision' should have the shape of \(2, 2\), "
                                         r"but got \(3, 3\).*precisions_init"):
        GaussianMixture(2, covariance_type="tied", precisions_init=np.eye(3)).fit(faithful)
