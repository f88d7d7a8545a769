"""Missing values (NaN, missing at random): exact EM, imputation, prediction and selection.

References are independent of the library: scipy's Gaussian densities of the observed
coordinates, the closed-form Gaussian regression for conditional means and covariances (numpy,
row by row), simulations with known truth, and the complete-data fit.
"""

import dataclasses
import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.metrics import adjusted_rand_score

from bayesgmm import BayesianGaussianMixture, GaussianMixture, load, select_model
from bayesgmm.app.cli import main
from bayesgmm.app.workflow import Clustering
from bayesgmm.core.covariance import get_family
from bayesgmm.core.moments import FullMoments
from bayesgmm.core.parameters import MixtureParams
from bayesgmm.core.stats import e_step
from bayesgmm.engine.preprocessing import compute_context, to_blocks, to_pattern_blocks

TYPES = ("full", "tied", "diag", "spherical")
TRUE_MEANS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])
TRUE_COVS = np.array([
    [[1.0, 0.8, 0.6], [0.8, 1.0, 0.7], [0.6, 0.7, 1.0]],
    [[1.0, -0.7, 0.5], [-0.7, 1.0, -0.6], [0.5, -0.6, 1.0]],
    [[0.8, 0.5, 0.6], [0.5, 0.9, 0.6], [0.6, 0.6, 1.0]],
])


def correlated_mixture(n=900, seed=0):
    """Three 3-D clusters with strong within-cluster correlations (so the observed coordinates
    carry information about the missing ones)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=[0.4, 0.35, 0.25])
    x = np.stack([rng.multivariate_normal(TRUE_MEANS[k], TRUE_COVS[k]) for k in labels])
    return x, labels


def remove(x, seed, mechanism, rate=0.2):
    """NaN out about ``rate`` of the values: MCAR anywhere, or MAR (columns 1 and 2 missing
    more often when the always-observed column 0 is large)."""
    rng = np.random.default_rng(seed + 100)
    out = x.copy()
    if mechanism == "mcar":
        out[rng.random(x.shape) < rate] = np.nan
    else:
        high = x[:, 0] > np.median(x[:, 0])
        probability = np.where(high, 2.5 * rate, 0.5 * rate)[:, None]
        out[:, 1:][rng.random((len(x), 2)) < probability] = np.nan
    return out


def scipy_weighted_log_prob(model, x, params=None):
    """``log w_k + log N(x_o | mu_o, S_oo)`` row by row with scipy: (N, K), for a fitted
    ``model`` or for ``params`` = (weights, means, covariances (K, D, D))."""
    weights, means, cov = params or (model.weights_, model.means_, model.full_covariances())
    out = np.zeros((len(x), len(weights)))
    for i, row in enumerate(x):
        o = ~np.isnan(row)
        for k in range(len(weights)):
            density = (multivariate_normal(means[k][o], cov[k][np.ix_(o, o)])
                       .logpdf(row[o]) if o.any() else 0.0)
            out[i, k] = np.log(weights[k]) + density
    return out


@pytest.fixture(scope="module")
def holes():
    x, _ = correlated_mixture(600)
    return remove(x, 0, "mcar", 0.25)


@pytest.fixture(scope="module")
def fits(holes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows with every value missing are left out
        return {t: GaussianMixture(3, covariance_type=t, missing="marginalize", tol=1e-8,
                                   max_iter=60, random_state=0).fit(holes) for t in TYPES}


@pytest.mark.parametrize("covariance_type", TYPES)
def test_densities_of_observed_values_match_scipy(covariance_type, fits, holes):
    model = fits[covariance_type]
    expected = scipy_weighted_log_prob(model, holes)
    np.testing.assert_allclose(model._estimate_weighted_log_prob(holes), expected, atol=1e-9)
    np.testing.assert_allclose(model.score_samples(holes), logsumexp(expected, axis=1),
                               atol=1e-9)
    np.testing.assert_allclose(model.predict_proba(holes),
                               np.exp(expected - logsumexp(expected, axis=1, keepdims=True)),
                               atol=1e-9)
    # The stored lower bound is the observed-data mean log-likelihood of the rows fitted (the
    # 1-2 rows with nothing observed are left out) at the last E-step's parameters.
    assert np.all(np.diff(model.lower_bounds_) >= -1e-10)  # EM never decreases it
    kept = ~np.isnan(holes).all(axis=1)
    final = logsumexp(expected, axis=1)[kept].mean()
    assert model.lower_bound_ <= final + 1e-9 and final - model.lower_bound_ < 1e-6


def test_expected_statistics_match_row_by_row_gaussian_regression():
    """The E-step's expected sums against the textbook conditional Gaussian, row by row."""
    rng = np.random.default_rng(3)
    n, d, k = 40, 4, 3
    x = rng.normal(size=(n, d))
    x[rng.random((n, d)) < 0.3] = np.nan
    x[np.isnan(x).all(axis=1), 0] = 0.5
    a = rng.normal(size=(k, d, d))
    cov = a @ np.swapaxes(a, 1, 2) + np.eye(d)
    means, weights = rng.normal(size=(k, d)), np.array([0.5, 0.3, 0.2])
    family = get_family("full")
    with compute_context(np.float64):
        cov_j, chol = family.precisions_cholesky(jnp.asarray(cov), 0.0)
        params = MixtureParams(jnp.asarray(weights), jnp.asarray(means), cov_j, chol)
        blocks, _ = to_pattern_blocks(x, np.float64, np.ones(d))
        stats = e_step(blocks, params, family)
        second = np.asarray(FullMoments.to_matrix(stats.sum_second, d))
    counts, sum_x, sum_xx, loglik = np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d)), 0.0
    for row in x:
        o, m = ~np.isnan(row), np.isnan(row)
        log_p = np.array([np.log(weights[j]) + multivariate_normal(
            means[j][o], cov[j][np.ix_(o, o)]).logpdf(row[o]) for j in range(k)])
        resp = np.exp(log_p - logsumexp(log_p))
        loglik += logsumexp(log_p)
        for j in range(k):
            gain = cov[j][np.ix_(m, o)] @ np.linalg.inv(cov[j][np.ix_(o, o)])
            filled = row.copy()
            filled[m] = means[j][m] + gain @ (row[o] - means[j][o])
            residual = np.zeros((d, d))
            residual[np.ix_(m, m)] = cov[j][np.ix_(m, m)] - gain @ cov[j][np.ix_(o, m)]
            counts[j] += resp[j]
            sum_x[j] += resp[j] * filled
            sum_xx[j] += resp[j] * (np.outer(filled, filled) + residual)
    np.testing.assert_allclose(stats.counts, counts, rtol=1e-10)
    np.testing.assert_allclose(stats.sum_x, sum_x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(second, sum_xx, rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(stats.loglik, loglik, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_masked_path_without_holes_is_the_complete_data_e_step(covariance_type, fits):
    x, _ = correlated_mixture(200, seed=1)
    family = get_family(covariance_type)
    model = fits[covariance_type]  # any valid parameters will do
    with compute_context(np.float64):
        params = model._compute_params(np.float64)
        internal = model._scaling.transform(x)
        complete = e_step(to_blocks(internal, np.float64, family), params, family)
        blocks, _ = to_pattern_blocks(internal, np.float64, np.ones(3))
        all_observed = dataclasses.replace(blocks, observed=jnp.ones_like(blocks.observed))
        masked = e_step(all_observed, params, family)
    for name in ("counts", "sum_x", "sum_second", "loglik"):
        np.testing.assert_allclose(getattr(masked, name), getattr(complete, name), rtol=1e-11,
                                   atol=1e-11)


def test_marginalize_without_holes_is_the_complete_data_fit():
    x, _ = correlated_mixture(200, seed=1)
    plain = GaussianMixture(3, random_state=0).fit(x)
    same = GaussianMixture(3, random_state=0, missing="marginalize").fit(x)
    for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(same, name), getattr(plain, name))


def _parameter_error(model):
    """Distance of the fitted means and covariances from the truth, components matched."""
    cov = model.full_covariances()
    cost = ((model.means_[:, None] - TRUE_MEANS[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    mean_error = np.sqrt(cost[rows, cols].mean())
    cov_error = np.sqrt(np.mean((cov[rows] - TRUE_COVS[cols]) ** 2))
    return mean_error + cov_error


@pytest.mark.filterwarnings("ignore:X has .* row.s. with every value missing:UserWarning")
@pytest.mark.parametrize("mechanism", ["mcar", "mar"])
def test_exact_em_beats_listwise_deletion_and_mean_imputation(mechanism):
    errors = []
    for seed in range(3):
        x, _ = correlated_mixture(900, seed)
        holes = remove(x, seed, mechanism)
        assert 0.1 <= np.isnan(holes).mean() <= 0.3
        settings = dict(n_components=3, n_init=3, random_state=seed)
        exact = GaussianMixture(**settings, missing="marginalize").fit(holes)
        complete_rows = ~np.isnan(holes).any(axis=1)
        listwise = GaussianMixture(**settings).fit(holes[complete_rows])
        mean_filled = np.where(np.isnan(holes), np.nanmean(holes, axis=0), holes)
        imputed = GaussianMixture(**settings).fit(mean_filled)
        errors.append([_parameter_error(m) for m in (exact, listwise, imputed)])
    # (exact, listwise, mean-imputed) per seed (3 seeds); measured margins: MCAR listwise 1.1-2x the
    # exact error, MAR 2-2.5x, mean imputation 2.5-6x.
    errors = np.array(errors)
    assert np.all(errors[:, 0].mean() < errors[:, 1:].mean(axis=0)), errors
    assert np.all((errors[:, :1] < errors[:, 1:]).sum(axis=0) >= 2), errors


@pytest.mark.filterwarnings("ignore:X has .* row.s. with every value missing:UserWarning")
def test_imputation_is_the_gaussian_regression_and_draws_have_its_spread():
    rng = np.random.default_rng(5)
    cov = TRUE_COVS[0] * 2.0
    x = rng.multivariate_normal([1.0, -2.0, 3.0], cov, size=500)
    holes = x.copy()
    holes[rng.random(x.shape) < 0.15] = np.nan
    before = holes.copy()
    model = GaussianMixture(1, missing="marginalize").fit(holes)
    filled = model.impute(holes)
    np.testing.assert_array_equal(holes, before)  # the input is not modified
    mu, s = model.means_[0], model.covariances_[0]
    for row, out in zip(holes, filled, strict=True):
        o, m = ~np.isnan(row), np.isnan(row)
        np.testing.assert_array_equal(out[o], row[o])
        if m.any() and o.any():
            expected = mu[m] + s[np.ix_(m, o)] @ np.linalg.solve(s[np.ix_(o, o)], row[o] - mu[o])
            np.testing.assert_allclose(out[m], expected, rtol=1e-8, atol=1e-8)
    # Multiple imputations of one row with column 2 missing: mean and variance of the draws
    # are the conditional mean and variance (4000 draws: standard errors ~1.6% of sd).
    row = holes[np.isnan(holes[:, 2]) & ~np.isnan(holes[:, :2]).any(axis=1)][:1]
    draws = model.sample_missing(np.repeat(row, 4000, axis=0), n_imputations=1,
                                 random_state=0)[0]
    gain = s[2, :2] @ np.linalg.inv(s[:2, :2])
    cond_mean = mu[2] + gain @ (row[0, :2] - mu[:2])
    cond_var = s[2, 2] - gain @ s[:2, 2]
    assert abs(draws[:, 2].mean() - cond_mean) < 4 * np.sqrt(cond_var / 4000)
    assert abs(draws[:, 2].var() / cond_var - 1) < 0.1
    np.testing.assert_array_equal(draws[:, :2], np.repeat(row[:, :2], 4000, axis=0))


def test_selection_uses_observed_data_log_likelihood(holes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(holes, n_components=[2, 3], covariance_types=["full"],
                              n_init=2, random_state=0, missing="marginalize")
    kept = holes[~np.isnan(holes).all(axis=1)]
    for row in result.table.itertuples():
        model = result.model(row.covariance_type, row.n_components)
        loglik = scipy_weighted_log_prob(model, kept)
        assert row.log_likelihood == pytest.approx(logsumexp(loglik, axis=1).sum(), rel=1e-9)
        assert row.n_parameters == get_family(row.covariance_type).n_parameters(
            row.n_components, 3)
        assert row.bic == pytest.approx(-2 * row.log_likelihood
                                        + row.n_parameters * np.log(len(kept)))
    best = result.table.iloc[0]
    assert (best.covariance_type, best.n_components) == ("full", 3)


def test_edge_cases_have_clear_messages(holes):
    x = holes.copy()
    with pytest.raises(ValueError, match="missing='marginalize'"):
        GaussianMixture(2).fit(x)
    with pytest.raises(ValueError, match="missing="):
        GaussianMixture(2, missing="drop").fit(x)
    empty_column = x.copy()
    empty_column[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 1 has no observed value"):
        GaussianMixture(2, missing="marginalize").fit(empty_column)
    infinite = x.copy()
    infinite[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"infinite.*column 0.*rows 3"):
        GaussianMixture(2, missing="marginalize").fit(infinite)
    empty_row = x.copy()
    empty_row[7] = np.nan
    with pytest.warns(UserWarning, match=r"every value missing \(rows .*7"):
        model = GaussianMixture(2, missing="marginalize", random_state=0).fit(empty_row)
    np.testing.assert_array_equal(np.isnan(empty_row), np.isnan(x) | (np.arange(len(x)) == 7)[
        :, None])  # the caller's array is unchanged
    assert model.n_missing_values_.sum() == np.isnan(empty_row[~np.isnan(empty_row).all(1)]
                                                     ).sum()
    # A row with nothing observed: membership = the weights, density of nothing = 1.
    np.testing.assert_allclose(model.predict_proba(empty_row[7:8])[0], model.weights_)
    assert model.score_samples(empty_row[7:8])[0] == pytest.approx(0.0)


@pytest.fixture(scope="module", params=["nuts", "advi"])
def bayes_with_holes(request):
    x, labels = correlated_mixture(240, seed=7)
    holes = remove(x, 7, "mcar", 0.15)
    kept = ~np.isnan(holes).all(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BayesianGaussianMixture(
            6, method=request.param, num_warmup=100, num_samples=100, num_chains=1,
            max_tree_depth=6, max_steps=1000,
            random_state=0, progress_bar=False, missing="marginalize").fit(holes)
    return model, holes[kept], labels[kept]


@pytest.mark.slow
def test_bayesian_model_marginalises_missing_coordinates(bayes_with_holes):
    model, holes, labels = bayes_with_holes
    assert np.isnan(holes).any(axis=1).mean() > 0.3
    # The pointwise log-likelihood given to ArviZ is the density of the observed values.
    pointwise = model.to_inference_data().log_likelihood["x"].values.reshape(-1, len(holes))
    draws = model.posterior_draws_
    for s in (0, len(pointwise) // 2, len(pointwise) - 1):
        cov = draws.scale_tril[s] @ np.swapaxes(draws.scale_tril[s], -1, -2)
        params = np.exp(draws.log_weights[s]), draws.means[s], cov
        direct = logsumexp(scipy_weighted_log_prob(None, holes, params), axis=1)
        np.testing.assert_allclose(pointwise[s], direct, rtol=1e-8, atol=1e-8)
    # The sampler or optimiser moved (a point scored -inf would freeze them at the EM start):
    # the posterior sd of a cluster mean is near sigma / sqrt(n_k) ~ 0.1, not 0.
    assert np.isfinite(model.log_likelihood_draws_).all()
    largest = int(np.argmax(model.weights_))
    spread = draws.means[:, largest].std(axis=0)
    assert np.all((spread > 0.03) & (spread < 0.5)), spread
    # The clusters are found: three components hold the weight (a DP keeps small spare
    # ones), and the labels agree with those of the true mixture on the same observed values
    # (the truth itself is not separable from them).
    assert np.sort(model.weights_)[-3:].sum() > 0.95
    weights = np.bincount(labels, minlength=3) / len(labels)
    best = scipy_weighted_log_prob(None, holes, (weights, TRUE_MEANS, TRUE_COVS)).argmax(1)
    assert adjusted_rand_score(best, model.predict(holes)) > 0.85  # EM: 0.91, measured


def test_command_line_fits_a_table_with_holes(tmp_path, holes):
    frame = pd.DataFrame(holes, columns=["a", "b", "c"])
    frame.insert(0, "id", [f"r{i}" for i in range(len(frame))])
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"NaN.*--missing marginalize"):
        Clustering(n_components=[3], covariance_type="full").fit(frame)
    assert main(["fit", str(path), "--k", "3", "--covariance", "full", "--missing",
                 "marginalize", "--quiet", "--out", str(out)]) == 0
    assigned = pd.read_csv(out / "assignments.csv")
    incomplete = frame[["a", "b", "c"]].isna().any(axis=1).to_numpy()
    np.testing.assert_array_equal(assigned["n_missing"].fillna(0),
                                  frame[["a", "b", "c"]].isna().sum(axis=1))
    assert assigned.loc[incomplete, "anomaly"].isna().all()
    assert assigned.loc[~incomplete, "anomaly"].notna().all()
    # Labels and log densities are the model's on the observed values (scipy reference).
    model = load(out / "model.bgmm").em_model_
    expected = scipy_weighted_log_prob(model, holes)
    np.testing.assert_allclose(assigned["log_density"], logsumexp(expected, axis=1), atol=1e-8)
    np.testing.assert_array_equal(assigned["label"], expected.argmax(axis=1))
    report = (out / "report.html").read_text()
    n_missing = int(np.isnan(holes).sum())
    assert f"{n_missing} values are missing" in report


def test_nuts_target_density_is_the_observed_data_likelihood():
    """What NUTS samples (NumPyro's potential energy) scores rows with NaN by their observed
    values: the model's likelihood site equals the scipy observed-data density at prior draws,
    and the potential's gradient is finite (NumPyro's default support check made it -inf)."""
    import jax
    import numpyro
    from numpyro.infer.util import potential_energy, unconstrain_fn

    from bayesgmm.engine.bayes.models import (
        ModelSpec,
        draws_from_sites,
        missing_patterns,
        mixture_model,
    )

    x, _ = correlated_mixture(120, seed=2)
    holes = remove(x, 2, "mcar", 0.2)
    holes = holes[~np.isnan(holes).all(axis=1)]
    spec = ModelSpec(4, 3, missing_patterns=missing_patterns(holes))
    @jax.jit  # compiled: NumPyro's model run op by op took ~40 s
    def prior_draw_and_gradient(y):
        trace = numpyro.handlers.trace(numpyro.handlers.seed(mixture_model, 0)).get_trace(y, spec)
        sites = {k: v["value"] for k, v in trace.items()
                 if v["type"] == "sample" and not v.get("is_observed", False)}
        likelihood = jnp.sum(trace["y"]["fn"].log_prob(trace["y"]["value"]))
        z = unconstrain_fn(mixture_model, (y, spec), {}, sites)
        gradient = jax.grad(lambda u: potential_energy(mixture_model, (y, spec), {}, u))(z)
        return sites, likelihood, gradient

    with compute_context(np.float64):
        sites, likelihood, gradient = jax.device_get(prior_draw_and_gradient(jnp.asarray(holes)))
        draw = draws_from_sites(sites, spec)
        model_value = float(likelihood)
    tril = np.asarray(draw.scale_tril)
    cov = tril @ np.swapaxes(tril, -1, -2)
    params = np.exp(np.asarray(draw.log_weights)), np.asarray(draw.means), cov
    expected = logsumexp(scipy_weighted_log_prob(None, holes, params), axis=1).sum()
    assert model_value == pytest.approx(expected, rel=1e-10)
    assert all(np.isfinite(np.asarray(g)).all() for g in gradient.values())
