"""Drop-in fidelity: scikit-learn's own ``GaussianMixture`` tests, run against bayesgmm's.

The test functions come from the module installed with scikit-learn
(``sklearn/mixture/tests/test_gaussian_mixture.py``); only its ``GaussianMixture`` name is
pointed at ours. Chosen are the tests of behaviour bayesgmm promises to share: the messages for
bad ``weights_init``, ``means_init`` and ``precisions_init``, the non-convergence warning,
``sample(0)``, warm starts that detect convergence one iteration at a time, a likelihood
that never decreases between iterations, and more restarts never ending below one.
``benchmarks/sklearn_tests.py`` runs the whole module (``test_warm_start`` and ``test_init``
too) and lists what fails, with the reasons, in ``benchmarks/README.md``.
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


def test_more_restarts_never_end_below_one():
    """``n_init=10`` keeps a restart at least as good as ``n_init=1``'s, bit for bit: its first
    restart is the one-restart fit. The seeds and data are scikit-learn's ``test_init``'s; with
    the ten restarts in one vectorised batch, these five ended 4.4e-16 below (the batch size
    changed the order of the floating-point sums)."""
    for max_iter, seed in [(1, 16), (1, 28), (100, 3), (100, 15), (100, 24)]:
        data = scikit_learn_tests.RandomData(np.random.RandomState(seed), n_samples=50, scale=1)
        one, ten = (GaussianMixture(data.n_components, n_init=n_init, max_iter=max_iter,
                                    random_state=seed).fit(data.X["full"]) for n_init in (1, 10))
        assert ten.lower_bound_ >= one.lower_bound_, (max_iter, seed)


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
