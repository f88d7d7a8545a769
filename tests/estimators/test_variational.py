"""VariationalGaussianMixture against scikit-learn's BayesianGaussianMixture as the reference."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.mixture
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import VariationalGaussianMixture, load
from bayesgmm.mixture import BayesianGaussianMixture
from tests.helpers import DATASETS, NOT_INHERITED

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
WEIGHT_TYPES = ("dirichlet_process", "dirichlet_distribution")
FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
          "mean_precision_", "degrees_of_freedom_")


class _SklearnFrom(sklearn.mixture.BayesianGaussianMixture):
    """scikit-learn's estimator started from given responsibilities ``resp0``."""

    def _initialize_parameters(self, X, random_state, xp=None):
        self._initialize(X, self.resp0)


class _OursFrom(VariationalGaussianMixture):
    """Ours started from the same responsibilities (padding rows get none)."""

    def _start_responsibilities(self, blocks, n_dims):
        n_blocks, block_rows, _ = blocks.features.shape
        resp = np.zeros((n_blocks * block_rows, self.n_components))
        resp[: len(self.resp0)] = self.resp0
        return jnp.asarray(resp.reshape(1, n_blocks, block_rows, -1), blocks.features.dtype)


def _concentration(model):
    return np.hstack(model.weight_concentration_)


def _fit_pair(X, resp0, **kwargs):
    reference, ours = _SklearnFrom(**kwargs), _OursFrom(**kwargs)
    reference.resp0 = ours.resp0 = resp0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(X)
        ours.fit(X)
    return reference, ours


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_start_same_bounds_and_fit(dataset, covariance_type):
    """From the same responsibilities, every iteration's lower bound and the converged
    variational parameters equal scikit-learn's to 1e-8 relative (float64), for both weight
    priors (one compiled program serves both)."""
    X = DATASETS[dataset]()
    rng = np.random.default_rng(len(X))
    resp0 = rng.dirichlet(np.ones(4), size=len(X))  # a deliberately poor start
    for weight_type in WEIGHT_TYPES:
        reference, ours = _fit_pair(X, resp0, n_components=4, covariance_type=covariance_type,
                                    weight_concentration_prior_type=weight_type, tol=1e-7,
                                    max_iter=1000)
        assert reference.converged_ and ours.converged_
        assert ours.n_iter_ == reference.n_iter_
        bounds, expected = np.array(ours.lower_bounds_), np.ravel(reference.lower_bounds_)
        # The bound is a sum of terms of either sign and crosses zero on some runs: compare
        # relative to its magnitude over the run.
        scale = np.abs(expected).max()
        np.testing.assert_allclose(bounds, expected, rtol=0, atol=1e-8 * scale)
        assert ours.lower_bound_ == pytest.approx(float(np.ravel(reference.lower_bound_)[0]),
                                                  rel=1e-8)
        np.testing.assert_allclose(_concentration(ours), _concentration(reference), rtol=1e-8)
        for name in FITTED:
            actual, wanted = getattr(ours, name), getattr(reference, name)
            np.testing.assert_allclose(actual, wanted, rtol=1e-8,
                                       atol=1e-8 * np.abs(wanted).max(), err_msg=name)
        for name in ("weight_concentration_prior_", "mean_precision_prior_",
                     "degrees_of_freedom_prior_", "mean_prior_", "covariance_prior_"):
            np.testing.assert_allclose(getattr(ours, name), getattr(reference, name),
                                       rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X),
                                   atol=1e-8)
        np.testing.assert_allclose(ours.score_samples(X), reference.score_samples(X),
                                   rtol=1e-8)


def test_lower_bound_never_decreases():
    """Coordinate ascent cannot lower the bound (a property, not a comparison)."""
    X = DATASETS["wine"]()
    model = VariationalGaussianMixture(n_components=6, tol=0, max_iter=60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    steps = np.diff(model.lower_bounds_)
    assert np.all(steps >= -1e-9 * np.abs(model.lower_bounds_).max())


def test_drop_in_for_scikit_learn():
    """Same constructor parameters and defaults as scikit-learn's class, the same fitted
    attributes, and on separated clusters the same answer from each one's own k-means start."""
    ours, reference = BayesianGaussianMixture(), sklearn.mixture.BayesianGaussianMixture()
    assert ours.get_params().keys() - {"dtype"} == reference.get_params().keys()
    for name, value in reference.get_params().items():
        assert ours.get_params()[name] == value, name
    X = DATASETS["synthetic"]()
    kwargs = dict(n_components=6, max_iter=500, random_state=0)
    ours = BayesianGaussianMixture(**kwargs).fit(X)
    reference = sklearn.mixture.BayesianGaussianMixture(**kwargs).fit(X)
    for name in (*FITTED, "weight_concentration_", "converged_", "n_iter_", "lower_bound_",
                 "lower_bounds_", "n_features_in_"):
        assert hasattr(ours, name), name
    # Each starts from its own k-means (different random draws), so the local optimum may
    # differ in where the empty components' tiny weights go; the clusters must not.
    assert adjusted_rand_score(ours.predict(X), reference.predict(X)) > 0.99
    big, wanted = ours.weights_ > 0.01, reference.weights_ > 0.01
    assert big.sum() == wanted.sum()
    order, wanted_order = np.argsort(ours.means_[big, 0]), np.argsort(reference.means_[wanted, 0])
    np.testing.assert_allclose(ours.weights_[big][order],
                               reference.weights_[wanted][wanted_order], atol=0.01)
    np.testing.assert_allclose(ours.means_[big][order], reference.means_[wanted][wanted_order],
                               atol=0.02 * np.abs(X).max())
    labels = ours.fit_predict(X)
    np.testing.assert_array_equal(labels, ours.predict(X))
    draws, components = ours.sample(50)
    assert draws.shape == (50, X.shape[1]) and components.shape == (50,)


with warnings.catch_warnings():  # the documented duck-typing warning (see test_api.py)
    warnings.filterwarnings("ignore", NOT_INHERITED, UserWarning)
    ESTIMATOR_CHECKS = parametrize_with_checks([VariationalGaussianMixture()])


@ESTIMATOR_CHECKS
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_bad_priors_are_refused():
    X = DATASETS["faithful"]()
    with pytest.raises(ValueError, match="greater than 1"):
        VariationalGaussianMixture(degrees_of_freedom_prior=0.5).fit(X)
    with pytest.raises(ValueError, match="covariance_prior has shape"):
        VariationalGaussianMixture(covariance_prior=np.eye(3)).fit(X)
    with pytest.raises(ValueError, match="positive-definite"):
        VariationalGaussianMixture(covariance_prior=-np.eye(2)).fit(X)
    with pytest.raises(ValueError, match="weight_concentration_prior_type"):
        VariationalGaussianMixture(weight_concentration_prior_type="pitman-yor").fit(X)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        VariationalGaussianMixture().fit(bad)


def test_save_load_round_trip(tmp_path):
    X = DATASETS["faithful"]()
    model = VariationalGaussianMixture(n_components=3, covariance_type="diag",
                                       random_state=0).fit(X)
    again = load(model.save(tmp_path / "vb.bgmm"))
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert isinstance(again.weight_concentration_, tuple)


def test_warm_start_continues_from_the_previous_fit():
    X = DATASETS["faithful"]()
    model = VariationalGaussianMixture(n_components=3, max_iter=5, tol=0, warm_start=True,
                                       random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
        first = model.lower_bound_
        model.fit(X)
    assert model.lower_bounds_[0] >= first - 1e-9 * abs(first)


def test_streamed_fit_adds_the_same_sums_over_chunks(tmp_path):
    """A fit over chunks of a memmap (one read per iteration) equals the in-memory fit: with
    fewer rows than the reservoir the start is the same, and the chunks' E-step sums add up
    to the in-memory one."""
    from bayesgmm.engine.streaming import chunked

    X = DATASETS["synthetic"]()
    path = tmp_path / "rows.f64"
    disk = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    disk[:] = X
    disk.flush()
    kwargs = dict(n_components=4, covariance_type="tied", tol=0.0, max_iter=40, n_init=2,
                  random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 40 iterations: not converged, on purpose
        in_memory = VariationalGaussianMixture(**kwargs).fit(X)
        streamed = VariationalGaussianMixture(**kwargs).fit(chunked(
            np.memmap(path, dtype=np.float64, mode="r", shape=X.shape), chunk_rows=128))
    assert streamed.n_rows_streamed_ == len(X) and streamed.n_iter_ == in_memory.n_iter_
    assert streamed.lower_bound_ == pytest.approx(in_memory.lower_bound_, rel=1e-10)
    for name in ("weights_", "means_", "covariances_", "degrees_of_freedom_"):
        np.testing.assert_allclose(getattr(streamed, name), getattr(in_memory, name),
                                   rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(streamed.covariance_prior_, in_memory.covariance_prior_,
                               rtol=1e-12)


def test_verbose_prints_every_restart_and_its_bound_history(capsys):
    """verbose=2 with verbose_interval=1: one block per restart, every iteration's lower bound
    and its change from the previous printed bound, then the final bound; the block marked
    best ends at the fitted ``lower_bound_``."""
    x = np.random.default_rng(0).normal(size=(120, 2)) + np.repeat([[0, 0], [5, 0]], 60, 0)
    model = VariationalGaussianMixture(n_components=3, n_init=2, verbose=2, verbose_interval=1,
                                       max_iter=30, random_state=0).fit(x)
    blocks = capsys.readouterr().out.split("Initialization ")[1:]
    assert [block.splitlines()[0] for block in blocks[::2]] == ["0", "1"]
    finals = blocks[1::2]
    for header, final in zip(blocks[::2], finals, strict=True):
        bounds = [float(line.split("lower bound")[1].split()[0])
                  for line in header.splitlines()[1:]]
        changes = [float(line.rsplit("change", 1)[1]) for line in header.splitlines()[1:]]
        assert len(bounds) >= 2
        np.testing.assert_allclose(np.diff(bounds), changes[1:], atol=2e-6)
        assert float(final.split("lower bound")[1].split()[0]) == pytest.approx(bounds[-1],
                                                                               abs=1e-5)
    best = [final for final in finals if "(best)" in final]
    assert len(best) == 1
    assert float(best[0].split("lower bound")[1].split()[0]) == pytest.approx(
        model.lower_bound_, abs=1e-5)
