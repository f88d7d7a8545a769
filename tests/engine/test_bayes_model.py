"""The NumPyro model's priors and the relabelling, against independent references (scipy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import Predictive
from scipy import stats

from bayesgmm.engine.bayes.models import (
    MixtureDraws,
    ModelSpec,
    draws_from_sites,
    mixture_distribution,
    mixture_model,
    stick_breaking_log_weights,
)
from bayesgmm.engine.bayes.relabel import permute, stephens_relabel

N_PRIOR_DRAWS = 4000


def _prior_draws(spec: ModelSpec, seed=0) -> dict:
    y = jnp.zeros((3, spec.n_features))
    with jax.enable_x64(True):
        draws = Predictive(mixture_model, num_samples=N_PRIOR_DRAWS)(
            jax.random.PRNGKey(seed), y.astype(jnp.float64), spec)
        return {k: np.asarray(v) for k, v in draws.items()}


def _weights(sites: dict, spec: ModelSpec) -> np.ndarray:
    with jax.enable_x64(True):
        return np.asarray(draws_from_sites(sites, spec).weights)


def test_dp_sticks_follow_beta_one_alpha():
    """Non-centred sticks 1 - u^(1/alpha) are Beta(1, alpha) (KS test against scipy), and the
    k-th weight has the closed-form mean E[w_k] = alpha^(k-1) / (1+alpha)^k."""
    alpha = 0.7
    spec = ModelSpec(6, 2, alpha=alpha)
    sites = _prior_draws(spec)
    weights = _weights(sites, spec)
    assert stats.kstest(weights[:, 0], stats.beta(1, alpha).cdf).pvalue > 1e-3
    second_stick = weights[:, 1] / (1 - weights[:, 0])
    assert stats.kstest(second_stick, stats.beta(1, alpha).cdf).pvalue > 1e-3
    k = np.arange(1, 6)
    expected = alpha ** (k - 1) / (1 + alpha) ** k
    np.testing.assert_allclose(weights[:, :5].mean(axis=0), expected, atol=0.02)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)


def test_sparse_weights_follow_dirichlet():
    """g = G u^(1/e0) with G ~ Gamma(e0+1) is Gamma(e0), so the weights are Dirichlet(e0):
    the marginal of one weight is Beta(e0, (T-1) e0)."""
    e0, t = 0.3, 4
    spec = ModelSpec(t, 2, weights="sparse", e0=e0)
    weights = _weights(_prior_draws(spec, seed=1), spec)
    for k in range(t):
        assert stats.kstest(weights[:, k], stats.beta(e0, (t - 1) * e0).cdf).pvalue > 1e-3


def test_concentration_priors_are_the_documented_gammas():
    dp = _prior_draws(ModelSpec(5, 2))["alpha"]
    assert stats.kstest(dp, stats.gamma(2.0, scale=1 / 4.0).cdf).pvalue > 1e-3
    sparse = _prior_draws(ModelSpec(5, 2, weights="sparse"), seed=2)["e0"]
    assert stats.kstest(sparse, stats.gamma(10.0, scale=0.01 / 10.0).cdf).pvalue > 1e-3


def test_tail_weights_do_not_underflow():
    """Log weights are computed in log space: deep sticks stay finite where exp underflows."""
    log_u = jnp.full((1, 49), -5.0, jnp.float32)
    log_w = stick_breaking_log_weights(log_u, jnp.asarray([0.05], jnp.float32))
    assert np.all(np.isfinite(np.asarray(log_w)))
    assert float(log_w[0, -1]) < -1000


def test_mixture_log_prob_matches_scipy():
    rng = np.random.default_rng(0)
    spec = ModelSpec(3, 2)
    sites = {k: v[0] for k, v in _prior_draws(spec, seed=3).items() if k != "y"}
    with jax.enable_x64(True):
        draw = draws_from_sites(sites, spec)
        x = rng.normal(size=(7, 2))
        ours = np.asarray(mixture_distribution(draw).log_prob(jnp.asarray(x)))
        weights = np.asarray(draw.weights)
    tril = np.asarray(draw.scale_tril)
    covs = tril @ np.swapaxes(tril, -1, -2)
    dens = sum(w * stats.multivariate_normal(m, c).pdf(x)
               for w, m, c in zip(weights, np.asarray(draw.means), covs, strict=True))
    np.testing.assert_allclose(ours, np.log(dens), rtol=1e-10)


def test_minibatch_likelihood_is_scaled_to_the_whole_data():
    """With ``n_total``, the model's log density is the prior plus ``n_total / batch`` times
    the batch's mixture log-likelihood (scipy), i.e. an unbiased estimate of the whole data's
    when the batch is drawn uniformly with replacement."""
    from numpyro.infer.util import log_density

    rng = np.random.default_rng(1)
    spec = ModelSpec(3, 2)
    sites = {k: v[0] for k, v in _prior_draws(spec, seed=4).items() if k != "y"}
    batch = rng.normal(size=(5, 2))
    with jax.enable_x64(True):
        y = jnp.asarray(batch)
        whole, _ = log_density(mixture_model, (y, spec), {}, sites)
        scaled, trace = log_density(mixture_model, (y, spec, 1000), {}, sites)
        draw = draws_from_sites(sites, spec)
        weights, means = np.asarray(draw.weights), np.asarray(draw.means)
    tril = np.asarray(draw.scale_tril)
    covs = tril @ np.swapaxes(tril, -1, -2)
    batch_loglik = np.sum(np.log(sum(
        w * stats.multivariate_normal(m, c).pdf(batch)
        for w, m, c in zip(weights, means, covs, strict=True))))
    assert trace["y"]["scale"] == pytest.approx(200.0)
    prior = float(whole) - batch_loglik
    assert float(scaled) == pytest.approx(prior + 200.0 * batch_loglik, rel=1e-10)


@pytest.mark.parametrize("n_components", [3, 6])
def test_relabelling_restores_permuted_draws(n_components):
    """Draws scrambled by random permutations are put back in the original labelling."""
    rng = np.random.default_rng(n_components)
    n_draws, n_points = 200, 60
    truth = rng.dirichlet(np.full(n_components, 0.3), size=n_points)        # (n, T)
    noisy = truth[None] * rng.uniform(0.8, 1.2, size=(n_draws, n_points, n_components))
    noisy /= noisy.sum(axis=2, keepdims=True)
    scramble = np.array([rng.permutation(n_components) for _ in range(n_draws)])
    scrambled = permute(noisy, scramble, axis=2)
    perms, _ = stephens_relabel(scrambled, reference=truth)
    np.testing.assert_allclose(permute(scrambled, perms, axis=2), noisy)
    # Without a reference the labelling is restored up to one global permutation.
    perms, _ = stephens_relabel(scrambled)
    restored = permute(scrambled, perms, axis=2)
    global_perm = np.argmax(np.einsum("ik,sij->kj", truth, restored), axis=1)
    np.testing.assert_allclose(restored[:, :, global_perm], noisy)


def test_chain_program_samples_the_posterior_numpyro_mcmc_samples():
    """Our compiled chains (flattened unconstrained sites, EM start, compiled from shapes
    ahead of the data) target the same posterior as NumPyro's own ``MCMC`` on the same model:
    the label-invariant summaries agree within Monte Carlo error."""
    from numpyro.infer import MCMC, NUTS

    from bayesgmm.engine.bayes.diagnostics import _arviz
    from bayesgmm.engine.bayes.inference import NutsSettings, run_nuts
    from bayesgmm.engine.bayes.initial import initial_sites

    spec = ModelSpec(3, 1, covariance_type="diag")
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-1.5, 0.5, 25), rng.normal(1.5, 0.5, 15)])[:, None]
    y = (x - x.mean()) / x.std()
    start = initial_sites(np.array([0.6, 0.4]), np.array([[-0.9], [1.1]]),
                          np.full((2, 1, 1), 0.1), spec, len(y))
    az = _arviz()

    def summaries(sites: dict) -> dict:
        flat = {k: jnp.asarray(v.reshape(-1, *v.shape[2:])) for k, v in sites.items()}
        draws = draws_from_sites(flat, spec)
        log_lik = jax.vmap(lambda lw, m, s: mixture_distribution(
            type(draws)(lw, m, s)).log_prob(jnp.asarray(y)).sum())(*draws)
        largest = jnp.max(draws.weights, axis=-1)
        return {"alpha": np.asarray(flat["alpha"]), "log_likelihood": np.asarray(log_lik),
                "largest_weight": np.asarray(largest)}

    with jax.enable_x64(True):
        ours = run_nuts(jnp.asarray(y), spec, start, jax.random.PRNGKey(0),
                        NutsSettings(num_warmup=400, num_samples=800, num_chains=2,
                                     target_accept_prob=0.8, max_tree_depth=10),
                        progress_bar=False)
        def reference_draws(key):
            mcmc = MCMC(NUTS(mixture_model), num_warmup=400, num_samples=800, num_chains=2,
                        chain_method="sequential", progress_bar=False)
            mcmc.run(key, jnp.asarray(y), spec)
            return mcmc.get_samples(group_by_chain=True)

        ours_summary = summaries(ours.sites)
        # NumPyro's run traced as one program (run eagerly, its set-up compiled hundreds of
        # single operations one at a time)
        reference = summaries({k: np.asarray(v) for k, v in
                               jax.jit(reference_draws)(jax.random.PRNGKey(1)).items()})
    for name, values in ours_summary.items():
        other = reference[name]
        standard_error = np.hypot(*(np.std(v) / np.sqrt(az.ess(v.reshape(2, -1)))
                                    for v in (values, other)))
        assert abs(np.mean(values) - np.mean(other)) < 4.5 * standard_error, name
        assert 0.8 < np.std(values) / np.std(other) < 1.25, name


@pytest.mark.parametrize("n_dims, n_components", [(3, 5), (6, 3)])
def test_passes_over_draws_match_scipy_far_from_the_origin(n_dims, n_components):
    """The passes over draws (expanded quadratic form when D < 2T, the whitened points
    otherwise) give scipy's log densities and memberships on data a million units from the
    origin, in mixed units, with one component 100 times narrower than the others."""
    from scipy.special import logsumexp as scipy_logsumexp
    from scipy.special import softmax

    from bayesgmm.engine.bayes.posterior import membership_probabilities, pointwise_log_likelihood

    rng = np.random.default_rng(4)
    units = np.geomspace(0.1, 10.0, n_dims)
    x = 1e6 + rng.normal(size=(40, n_dims)) * units
    n_draws = 3
    means = 1e6 + rng.normal(size=(n_draws, n_components, n_dims)) * units
    factors = rng.normal(size=(n_draws, n_components, n_dims, n_dims)) * 0.3 + np.eye(n_dims)
    covs = factors @ np.swapaxes(factors, -1, -2) * np.outer(units, units)
    covs[:, 0] *= 1e-4                                    # a thin component
    means[:, 0] = x[0]                                    # ... that holds a point
    weights = rng.dirichlet(np.ones(n_components), size=n_draws)
    draws = MixtureDraws(np.log(weights), means, np.linalg.cholesky(covs))
    expected = np.array([[stats.multivariate_normal(m, c).logpdf(x) + np.log(w)
                          for w, m, c in zip(weights[s], means[s], covs[s], strict=True)]
                         for s in range(n_draws)])                        # (S, T, N)
    with jax.enable_x64(True):
        device = MixtureDraws(*(jnp.asarray(a) for a in draws))
        log_lik = np.asarray(pointwise_log_likelihood(jnp.asarray(x), device))
        membership = np.asarray(membership_probabilities(jnp.asarray(x), device))
    np.testing.assert_allclose(log_lik, scipy_logsumexp(expected, axis=1), rtol=1e-12,
                               atol=1e-8)
    np.testing.assert_allclose(membership, np.swapaxes(softmax(expected, axis=1), 1, 2),
                               atol=1e-9)
