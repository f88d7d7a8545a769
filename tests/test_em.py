"""The compiled EM loop: monotonicity, restarts, stopping, warm start, recompilation."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from bayesgmm import GaussianMixture
from bayesgmm.core.em import fit_batch
from bayesgmm.estimator import _seed
from tests.conftest import make_mixture, run_core_batch

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_lower_bound_never_decreases(covariance_type, faithful):
    """EM's defining property, from one-point seeds far from the optimum."""
    model = GaussianMixture(3, covariance_type=covariance_type, init_params="k-means++",
                            tol=1e-7, max_iter=2000, random_state=3).fit(faithful)
    bounds = np.asarray(model.lower_bounds_)
    assert len(bounds) == model.n_iter_ > 5
    assert np.all(np.diff(bounds) >= -1e-10 * np.abs(bounds[1:]))


def test_recovers_known_mixture():
    x, labels, means, _ = make_mixture(n=1500, seed=4)
    model = GaussianMixture(3, n_init=3, random_state=0).fit(x)
    assert adjusted_rand_score(labels, model.predict(x)) > 0.99
    order = [np.argmin(np.linalg.norm(model.means_ - m, axis=1)) for m in means]
    np.testing.assert_allclose(model.means_[order], means, atol=0.15)
    np.testing.assert_allclose(model.weights_[order], [0.5, 0.3, 0.2], atol=0.04)


def test_best_restart_wins(faithful):
    """The estimator keeps the restart with the highest lower bound of the vmapped batch."""
    x = faithful.to_numpy()
    model = GaussianMixture(3, n_init=6, init_params="random_from_data", random_state=11,
                            max_iter=500).fit(x)
    result, scaling = run_core_batch(x, 6, 3, max_iter=500, seed=_seed(11))
    bounds = np.asarray(result.state.lower_bound) - scaling.log_det(2)
    assert len(np.unique(np.round(bounds, 6))) > 1, "restarts should differ"
    usable = ~np.asarray(result.degenerate).any(axis=1)
    assert model.lower_bound_ == pytest.approx(bounds[usable].max(), rel=1e-10)


def test_stopping_rule_and_convergence_warning(faithful):
    with pytest.warns(ConvergenceWarning):
        model = GaussianMixture(2, tol=0.0, max_iter=7, random_state=0).fit(faithful)
    assert model.n_iter_ == 7 and not model.converged_
    loose = GaussianMixture(2, tol=1.0, random_state=0).fit(faithful)
    assert loose.converged_ and loose.n_iter_ == 2  # the first change is from -inf


def test_max_iter_zero_returns_initialisation(faithful):
    x = faithful.to_numpy()
    means = np.array([[2.0, 55.0], [4.5, 80.0]])
    model = GaussianMixture(2, max_iter=0, means_init=means).fit(x)
    assert model.n_iter_ == 0
    np.testing.assert_allclose(model.means_, means)


def test_warm_start_continues(faithful):
    full = GaussianMixture(2, tol=1e-8, max_iter=500, random_state=0).fit(faithful)
    warm = GaussianMixture(2, max_iter=1, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bounds = [warm.fit(faithful).lower_bound_ for _ in range(20)]  # full fit: 7 iterations
    assert np.all(np.diff(bounds) >= -1e-10)
    np.testing.assert_allclose(np.sort(warm.means_, axis=0), np.sort(full.means_, axis=0),
                               rtol=1e-4)


def test_same_shapes_do_not_recompile(faithful):
    x = faithful.to_numpy()
    GaussianMixture(2, random_state=0).fit(x)
    before = fit_batch._cache_size()
    GaussianMixture(2, random_state=1).fit(x[::-1] + 1.0)
    GaussianMixture(2, random_state=2, tol=1e-4, reg_covar=1e-5).fit(x[:265])  # same bucket
    assert fit_batch._cache_size() == before


def test_verbose_reports_every_restart(faithful, capsys):
    GaussianMixture(2, n_init=3, verbose=2, verbose_interval=1, random_state=0).fit(faithful)
    out = capsys.readouterr().out
    assert out.count("Initialization") == 3 and "best" in out and "Iteration 1" in out


def test_large_batches_run_as_equal_runs_of_one_program(monkeypatch):
    """XLA's CPU runtime deadlocked on ~150 full-covariance fits in one program (see
    ``MAX_FITS_PER_RUN``): 150 restarts run as three runs of 50 fits of one program, and
    their results come back as one batch of 150."""
    import bayesgmm.training as training

    sizes = []
    compiled = training.fit_batch

    def spy(draws, active, *args, **options):
        sizes.append(len(active))
        return compiled(draws, active, *args, **options)

    monkeypatch.setattr(training, "fit_batch", spy)
    x = make_mixture(n=200, seed=4)[0]
    model = GaussianMixture(3, n_init=150, random_state=0).fit(x)
    assert sizes == [50, 50, 50]
    assert model.converged_
