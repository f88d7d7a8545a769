"""BayesianGaussianMixture(method='vi'): coordinate-ascent and natural-gradient stochastic VI
on the conjugate mixture, against each other, NumPyro's automatic-differentiation VI, and
known truth."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from bayesgmm import BayesianGaussianMixture
from bayesgmm.engine.bayes.variational import occupancy_draws
from tests.helpers import make_mixture

SETTINGS = dict(n_components=8, random_state=0, progress_bar=False)


@pytest.fixture(scope="module")
def three_clusters():
    x, labels = make_mixture(n=3000, seed=3)[:2]
    return x, labels


@pytest.fixture(scope="module")
def cavi(three_clusters):
    x, _ = three_clusters
    return BayesianGaussianMixture(method="vi", **SETTINGS).fit(x)


@pytest.fixture(scope="module")
def svi(three_clusters):
    """The stochastic path, forced by a minibatch size (it is automatic above 100,000
    rows)."""
    x, _ = three_clusters
    return BayesianGaussianMixture(method="vi", subsample_size=512, max_steps=3000,
                                   **SETTINGS).fit(x)


def test_coordinate_ascent_finds_the_clusters(cavi, three_clusters):
    x, labels = three_clusters
    assert cavi.inference_info_["algorithm"] == "cavi" and cavi.inference_info_["converged"]
    assert adjusted_rand_score(labels, cavi.predict(x)) > 0.95
    posterior = cavi.n_clusters_posterior()
    assert posterior.attrs["mode"] == 3 and posterior[3] > 0.9
    assert (cavi.weights_ > 0.01).sum() == 3
    sizes = cavi.segment_sizes()
    assert sizes["share"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(np.sort(sizes["share"].to_numpy())[-3:],
                               np.sort(np.bincount(labels) / len(labels)), atol=0.01)


def test_stochastic_vi_reaches_the_coordinate_ascent_answer(svi, cavi, three_clusters):
    """Natural-gradient steps on minibatches of 512 rows stop by the noisy-bound rule and
    end where coordinate ascent on all rows does: the same clustering, the same predictive
    density to 0.01 nats per point."""
    x, _ = three_clusters
    info = svi.inference_info_
    assert info["algorithm"] == "svi" and info["converged"] and info["batch_rows"] == 512
    assert info["n_iter"] < 3000
    assert adjusted_rand_score(cavi.predict(x), svi.predict(x)) > 0.99
    assert svi.n_clusters_posterior().attrs["mode"] == 3
    assert abs(svi.score(x) - cavi.score(x)) < 0.01


def test_stochastic_vi_is_chosen_above_the_documented_size(three_clusters, monkeypatch):
    """Without ``subsample_size``, data above ``STOCHASTIC_ROWS`` rows get stochastic VI on
    ``BATCH_ROWS``-row minibatches (both lowered here so that 3,000 rows cross them)."""
    import bayesgmm.engine.bayes.variational as engine

    x, labels = three_clusters
    monkeypatch.setattr(engine, "STOCHASTIC_ROWS", 2000)
    monkeypatch.setattr(engine, "BATCH_ROWS", 1024)
    model = BayesianGaussianMixture(method="vi", max_steps=3000, **SETTINGS).fit(x)
    assert model.inference_info_["algorithm"] == "svi"
    assert model.inference_info_["batch_rows"] == 1024
    assert adjusted_rand_score(labels, model.predict(x)) > 0.95


def test_vi_and_numpyro_advi_agree():
    """The NumPyro model (LKJ correlations, log-normal scales) fitted by ADVI and the
    conjugate model by coordinate ascent give the same clustering and close predictive
    densities (different priors: not identical)."""
    x = make_mixture(n=600, seed=5)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        advi = BayesianGaussianMixture(method="advi", max_steps=1500, num_samples=100,
                                       **SETTINGS).fit(x)
    cavi = BayesianGaussianMixture(method="vi", **SETTINGS).fit(x)
    assert adjusted_rand_score(advi.predict(x), cavi.predict(x)) > 0.95
    held_out = make_mixture(n=500, seed=4)[0]
    assert abs(advi.score(held_out) - cavi.score(held_out)) < 0.05


def test_occupancy_draws_match_independent_categorical_draws():
    """Counting certain rows once and sampling the rest gives the distribution of counts of
    independent categorical draws (checked against numpy's multinomial per row)."""
    rng = np.random.default_rng(0)
    resp = np.zeros((400, 4))
    resp[:300, 0] = 1.0
    resp[300:] = rng.dirichlet([1.0, 1.0, 0.2, 0.01], size=100)
    counts = occupancy_draws(resp, 4000, seed=1)
    assert np.all(counts.sum(axis=1) == 400) and np.all(counts[:, 0] >= 300)
    reference = np.stack([np.sum([rng.multinomial(1, p) for p in resp], axis=0)
                          for _ in range(400)])
    np.testing.assert_allclose(counts.mean(axis=0), resp.sum(axis=0), rtol=0.01, atol=0.05)
    np.testing.assert_allclose(counts.std(axis=0), reference.std(axis=0), rtol=0.15,
                               atol=0.05)
    occupied = (counts[:, 3] > 0).mean()
    assert occupied == pytest.approx(1 - np.prod(1 - resp[:, 3]), abs=0.03)


def test_vi_refuses_missing_values(three_clusters):
    x, _ = three_clusters
    holes = x.copy()
    holes[0, 0] = np.nan
    with pytest.raises(ValueError, match="'advi'"):
        BayesianGaussianMixture(method="vi", missing="marginalize", **SETTINGS).fit(holes)
