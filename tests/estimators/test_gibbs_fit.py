"""The default Bayesian fit (Gibbs sampler, mixture of finite mixtures) end to end: its
convergence rule against ArviZ, its answer on data with known truth, its diagnostics on Old
Faithful, the extension rule, reproducibility and persistence."""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayesgmm import BayesianGaussianMixture, load
from bayesgmm.base.datasets import make_mixture
from bayesgmm.engine.bayes.convergence import bulk_ess, label_invariant_quantities, rank_rhat
from bayesgmm.estimators.bayesian_summaries import credible_set


def _chains(case: int, rng: np.random.Generator) -> np.ndarray:
    if case == 0:                                  # independent normals
        return rng.normal(size=(4, 500))
    if case == 1:                                  # AR(1), rho = 0.9
        out = np.zeros((4, 500))
        for t in range(1, 500):
            out[:, t] = 0.9 * out[:, t - 1] + rng.normal(size=4)
        return out
    if case == 2:                                  # chains that disagree
        return rng.normal(size=(4, 500)) + 0.3 * np.arange(4)[:, None]
    if case == 3:                                  # an indicator (many ties)
        return (rng.random((4, 300)) < 0.3).astype(float)
    if case == 4:                                  # heavy tails, odd length
        return rng.standard_cauchy(size=(2, 501))
    return np.cumsum(rng.normal(size=(3, 200)), axis=1)  # random walks: not converged


@pytest.mark.parametrize("case", range(6))
def test_convergence_rule_agrees_with_arviz(case):
    """The sampler's own R-hat and bulk ESS (used to decide on extensions, without importing
    ArviZ) are ArviZ's rank-normalised split R-hat and bulk ESS."""
    draws = _chains(case, np.random.default_rng(case))
    assert rank_rhat(draws) == pytest.approx(float(az.rhat(draws, method="rank")), rel=1e-10)
    assert bulk_ess(draws) == pytest.approx(float(az.ess(draws, method="bulk")), rel=1e-10)


def test_credible_set_takes_the_most_probable_values_first():
    posterior = pd.Series({2: 0.22, 3: 0.65, 4: 0.12, 5: 0.01})
    assert credible_set(posterior, 0.9) == [2, 3, 4]
    assert credible_set(posterior, 0.6) == [3]
    assert credible_set(posterior, 0.87) == [2, 3]       # 0.65 + 0.22 = 0.87 reaches it
    assert credible_set(posterior, 0.999) == [2, 3, 4, 5]


def test_default_fit_on_old_faithful(faithful, tmp_path):
    """The demo's fit, in one test (one fit; xdist would repeat a shared fixture per worker).

    Issue #19's criterion: four chains started dispersed (from 1 cluster to T, over-fitted;
    four different numbers of clusters), no convergence
    warning, and every label-invariant quantity with R-hat <= 1.01 and bulk ESS >= 400
    (recomputed by ArviZ from the stored draws). K+ is 2 or 3 (mclust's BIC picks 3 with
    full covariances; the third cluster is a small group between the two eruption types);
    the mode and credible set are those of the reported posterior, which counts the occupied
    clusters of the sampler's own partitions. Saving and loading keeps all of it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = BayesianGaussianMixture(random_state=0, progress_bar=False).fit(faithful)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "R-hat" in m or "ESS" in m], messages
    starts = list(model.inference_info_["starts"])
    assert min(starts) == 1 and max(starts) == model.n_components and len(set(starts)) == 4
    from bayesgmm.engine.bayes.diagnostics import label_invariant_draws
    quantities = label_invariant_draws(model)
    assert {"alpha", "log_likelihood", "sorted_weight[0]", "I(K+ = 3)"} <= set(quantities)
    for name, draws in quantities.items():
        assert draws.shape[0] == 4
        assert float(az.rhat(draws, method="rank")) <= 1.01, name
        assert float(az.ess(draws, method="bulk")) >= 400, name
    table = model.diagnostics()
    assert table.loc[list(quantities), "r_hat"].max() <= 1.01
    # The chains stopped at the first block of 100 draws that met the targets: without that
    # block, some quantity (chosen, as the sampler chose them, from the shorter draws) fails.
    extra = model.inference_info_["extra_draws"]
    assert extra % 100 == 0 and extra <= 5 * 500
    if extra:
        chains, n_draws = model.sample_stats_["n_occupied"].shape

        def shorter(values):
            values = np.asarray(values)
            return values.reshape(chains, n_draws, *values.shape[1:])[:, :-100]

        before = label_invariant_quantities(
            shorter(model.log_likelihood_draws_), shorter(model.concentration_draws_),
            shorter(np.exp(model.posterior_draws_.log_weights)),
            shorter(model.occupied_draws_))
        assert any(float(az.rhat(d, method="rank")) > 1.01
                   or float(az.ess(d, method="bulk")) < 400 for d in before.values())

    posterior = model.n_clusters_posterior()
    assert posterior.attrs["mode"] == posterior.idxmax() in (2, 3)
    expected = credible_set(posterior, 0.9)
    assert posterior.attrs["credible_set"] == expected and {2, 3} <= set(expected)
    occupied = model.sample_stats_["n_occupied"].reshape(-1)
    assert posterior[3] == pytest.approx(np.mean(occupied == 3))
    assert model.segment_sizes()["share"].nlargest(2).sum() > 0.85
    assert "mixture of finite mixtures" in model.describe()

    loaded = load(model.save(tmp_path / "gibbs.bgmm"))
    np.testing.assert_array_equal(loaded.predict_proba(faithful), model.predict_proba(faithful))
    assert loaded.n_clusters_posterior().equals(posterior)
    assert loaded.n_clusters_posterior().attrs == posterior.attrs
    assert loaded.diagnostics().equals(table)
    np.testing.assert_array_equal(loaded.n_components_draws_, model.n_components_draws_)
    assert loaded.describe() == model.describe()
    for key in ("extra_draws", "settings", "n_sweeps"):
        assert loaded.inference_info_[key] == model.inference_info_[key]


@pytest.mark.parametrize("n_components, n_features, seed", [(2, 2, 1), (3, 2, 2), (4, 2, 3)])
def test_recovers_the_true_number_of_clusters(n_components, n_features, seed):
    """Simulations with known truth (separated but overlapping, rotated, elongated, unequal
    weights; 600 rows): the posterior mode of K+ is the truth, with probability > 0.8
    (measured 0.9x-1.0 with the default run length; with the 200 warm-up sweeps and 200
    draws here, 0.98, 0.95 and 0.97). All three in 2-D, so they share one compiled program;
    recovery over D = 2-5 and N = 300-3,000 is ``benchmarks/gibbs.py --suite recovery``."""
    x, _ = make_mixture(600, n_components, n_features, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model = BayesianGaussianMixture(num_warmup=200, num_samples=200, max_extensions=0,
                                        random_state=0, progress_bar=False).fit(x)
    posterior = model.n_clusters_posterior()
    assert posterior.attrs["mode"] == n_components
    assert posterior[n_components] > 0.8, posterior.to_dict()


@pytest.mark.filterwarnings("ignore:R-hat above 1.01:RuntimeWarning")  # short chains
def test_short_chains_are_extended_and_then_warned_about(faithful):
    """Chains too short for the targets are extended (here by one block of 100 draws at a
    time) up to ``max_extensions * num_samples`` draws; if they still fail, the fit says so.
    The same seed gives the same draws, and the user's data frame is left as it was."""
    data = faithful.copy()
    # The default block of sweeps (100 draws x thinning 5): the program is compiled once.
    settings = dict(num_warmup=500, num_samples=100, max_extensions=2, random_state=3,
                    progress_bar=False)
    with pytest.warns(RuntimeWarning, match="ESS"):
        model = BayesianGaussianMixture(**settings).fit(data)
    assert model.inference_info_["extra_draws"] == 200
    assert model.posterior_draws_.means.shape[0] == 4 * 100 * 3
    assert model.inference_info_["n_sweeps"] == 500 + 3 * 100 * 5
    pd.testing.assert_frame_equal(data, faithful)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        again = BayesianGaussianMixture(**settings).fit(data)
    np.testing.assert_array_equal(again.log_likelihood_draws_, model.log_likelihood_draws_)
    np.testing.assert_array_equal(again.n_components_draws_, model.n_components_draws_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        unextended = BayesianGaussianMixture(**{**settings, "max_extensions": 0}).fit(data)
    assert unextended.inference_info_["extra_draws"] == 0
    assert unextended.posterior_draws_.means.shape[0] == 4 * 100


def test_a_training_split_runs_the_whole_data_sets_program():
    """compare_with_em fits its 75% split inside ``rows_padded_like(len(X))``: the split is
    padded with zero-weight rows to the whole data's size, so one sampler program serves
    both fits; its own rows and weights are those of the unpadded split."""
    import jax

    from bayesgmm.engine.bayes.gibbs import mixture_data, rows_padded_like

    split = np.random.default_rng(0).normal(size=(204, 2))
    with jax.enable_x64(True):
        own = mixture_data(split, "full")
        with rows_padded_like(272):
            like_whole = mixture_data(split, "full")
        with rows_padded_like(100):  # fewer rows than the split: its own size
            smaller = mixture_data(split, "full")
    assert own.weight.shape == smaller.weight.shape == (208,)  # round_up_size(204)
    assert like_whole.weight.shape == (272,)
    weight = np.asarray(like_whole.weight)
    assert weight.sum() == 204 and weight[:204].min() == 1
    for mine, theirs in zip(jax.tree_util.tree_leaves(like_whole.features),
                            jax.tree_util.tree_leaves(own.features), strict=True):
        np.testing.assert_array_equal(np.asarray(mine)[:204], np.asarray(theirs)[:204])
