"""MAP EM under mclust's conjugate prior (Fraley & Raftery 2007)."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import invgamma, invwishart, multivariate_normal

from bayesgmm import GaussianMixture, MAPPrior, select_model
from bayesgmm.core.covariance import get_family
from bayesgmm.core.parameters import ConjugatePrior
from bayesgmm.core.stats import SuffStats, m_step
from bayesgmm.engine.preprocessing import compute_context


def _stats_one_component(x, family):
    """Exact statistics of all rows assigned to one component (K=1)."""
    rows, cols = np.triu_indices(x.shape[1])
    second = ((x[:, rows] * x[:, cols]).sum(0) if family.moments.__name__ == "FullMoments"
              else (x**2).sum(0))
    return SuffStats(jnp.asarray([float(len(x))]), jnp.asarray(x.sum(0)[None]),
                     jnp.asarray(second[None]), jnp.asarray(0.0), jnp.asarray(float(len(x))))


def _log_posterior(x, mean, cov, prior, covariance_type):
    """log p(x | mean, cov) + log p(mean | cov) + log p(cov), written with scipy."""
    d = x.shape[1]
    full_cov = {"full": cov, "diag": np.diag(cov) if np.ndim(cov) == 1 else cov,
                "spherical": cov * np.eye(d)}[covariance_type]
    value = multivariate_normal(mean, full_cov).logpdf(x).sum()
    value += multivariate_normal(prior["mean"], full_cov / prior["shrinkage"]).logpdf(mean)
    if covariance_type == "full":
        value += invwishart(df=prior["dof"], scale=prior["scale"]).logpdf(cov)
    elif covariance_type == "diag":
        value += invgamma(prior["dof"] / 2, scale=prior["scale"] / 2).logpdf(cov).sum()
    else:
        value += invgamma(prior["dof"] / 2, scale=prior["scale"] / 2).logpdf(cov)
    return value


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_map_step_maximises_the_log_posterior(covariance_type):
    """The M-step's estimate beats every nearby (mean, covariance) under scipy's densities."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)) * [1.0, 2.0] + [1.0, -1.0]
    family = get_family(covariance_type)
    prior = dict(mean=np.array([0.5, 0.0]), shrinkage=2.0, dof=5.0,
                 scale=np.array([[1.0, 0.3], [0.3, 2.0]]) if covariance_type == "full" else 1.5)
    with compute_context(np.float64):
        params = m_step(_stats_one_component(x, family), family, 0.0,
                        prior=ConjugatePrior(*(jnp.asarray(prior[k]) for k in
                                               ("mean", "shrinkage", "dof", "scale"))))
    mean, cov = np.asarray(params.means[0]), np.asarray(params.covariances[0])
    best = _log_posterior(x, mean, cov, prior, covariance_type)
    for _ in range(200):
        step = 1e-3 * rng.normal(size=cov.shape)
        if covariance_type == "full":
            step = (step + step.T) / 2
        other = _log_posterior(x, mean + 1e-3 * rng.normal(size=2), cov + step, prior,
                               covariance_type)
        assert other <= best + 1e-9


def _flat_prior_limit(family, t, n_dims, n_active):
    """A prior whose strength t -> 0 gives the maximum-likelihood M-step (an improper limit:
    dof makes each MAP denominator equal to the ML one)."""
    counts = jnp.zeros(n_active)
    offset = family.map_denominator(counts, n_dims, n_active, 0.0) - family.ml_denominator(
        counts, n_dims)
    scale = t * (np.eye(n_dims) if family.name in ("full", "tied") else 1.0)
    return ConjugatePrior(jnp.zeros(n_dims), jnp.asarray(t), jnp.asarray(t - float(
        np.ravel(offset)[0])), jnp.asarray(scale))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_vanishing_prior_approaches_maximum_likelihood(covariance_type):
    from bayesgmm.core.stats import stats_from_responsibilities
    from tests.helpers import blocked, random_params

    family = get_family(covariance_type)
    x, resp, *_ = random_params(family)
    with compute_context(np.float64):
        stats = stats_from_responsibilities(blocked(x, family),
                                            jnp.asarray(resp).reshape(2, 100, 4), 3)
        ml = m_step(stats, family, 1e-6)
        errors = []
        for t in (1e-1, 1e-3, 1e-5):
            map_fit = m_step(stats, family, 1e-6, prior=_flat_prior_limit(family, t, 3, 4))
            errors.append(max(float(jnp.max(jnp.abs(a - b))) for a, b in
                              zip(map_fit[1:3], ml[1:3], strict=True)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-4


def test_default_prior_prevents_collapse(faithful):
    """The collapse-prone fit of the degenerate tests: no degenerate restart with the prior."""
    x = faithful.to_numpy()
    ml = GaussianMixture(5, n_init=40, init_params="random_from_data", random_state=0).fit(x)
    assert ml.n_degenerate_inits_ > 0
    map_fit = GaussianMixture(5, n_init=40, init_params="random_from_data", random_state=0,
                              prior="default").fit(x)
    assert map_fit.n_degenerate_inits_ == 0 and not map_fit.degenerate_.any()
    table = select_model(x, n_components=[4, 5], covariance_types=["full"], n_init=5,
                         random_state=0, prior="default").table
    assert not table["degenerate"].any()


def test_prior_validation(faithful):
    for prior, message in [("mclust", "prior="), (MAPPrior(shrinkage=0), "shrinkage"),
                           (MAPPrior(dof=0.5), "dof"), (MAPPrior(scale=-1.0), "scale"),
                           (MAPPrior(mean=[1.0]), "mean")]:
        covariance_type = "diag" if message == "scale" else "full"
        with pytest.raises(ValueError, match=message):
            GaussianMixture(2, covariance_type=covariance_type, prior=prior).fit(faithful)
