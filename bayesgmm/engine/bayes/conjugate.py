"""The conjugate mixture as a NumPyro model: the statement of what the Gibbs sampler of
:mod:`bayesgmm.core.gibbs` samples, used to check it (a Geweke test against the model's own
prior simulation, agreement with NumPyro's NUTS, simulation-based calibration).

The model (standardised units; the priors' values are in :mod:`bayesgmm.engine.bayes.gibbs`)::

    S0             ~ Wishart(scale_dof, scale_scale)        (site "scale"; diag: Gamma per
                                                            feature; fixed without hierarchy)
    c              ~ F(6, 3) or Gamma(shape, rate)          ("concentration", unless fixed)
    K - 1          ~ BNB(1, 4, 3) truncated to 0..T-1      ("n_components_minus_one"; K = T
                                                            for the DP and sparse weights)
    gamma_K        = c / K (dynamic) or c (static)
    G_k            ~ Gamma(gamma_K, 1),  k = 1..T           ("weight_gamma")
    eta_k          = G_k 1[k <= K] / sum_{j <= K} G_j
    Sigma_k        ~ inverse-Wishart(dof, S0)              ("covariances"; diag: inverse-gamma
                                                            per feature)
    mu_k | Sigma_k ~ Normal(mean, Sigma_k / shrinkage)     ("means")
    z_i            ~ Categorical(eta)                       ("labels", in plate "data")
    y_i | z_i      ~ Normal(mu_z, Sigma_z)                  ("y")

A random number of components has no static-shape form, so the model has T component slots
and a discrete ``K``: slots beyond ``K`` get weight 0 (their parameters are prior draws that
touch no data), which is the truncation of ``K``'s prior at T. The Gibbs sampler works with
the same T slots. With ``marginal=True`` the labels are summed out
(:class:`numpyro.distributions.MixtureSameFamily`), the form NUTS needs (with ``K`` fixed).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions.transforms import AffineTransform, ExpTransform, SigmoidTransform

from bayesgmm.core.conjugate import ConjugateDiag, ConjugateFull
from bayesgmm.core.conjugate_draws import ScaleHyperprior
from bayesgmm.core.gibbs import GibbsConfig, Hyperparameters
from bayesgmm.core.parameters import ConjugatePrior
from bayesgmm.core.partition import WeightPrior, gamma_of_k


def f_distribution(d1: float, d2: float) -> dist.Distribution:
    """The F(d1, d2) distribution: ``(d2 / d1) X / (1 - X)`` with ``X ~ Beta(d1/2, d2/2)``."""
    return dist.TransformedDistribution(
        dist.Beta(d1 / 2.0, d2 / 2.0),
        [SigmoidTransform().inv, ExpTransform(), AffineTransform(0.0, d2 / d1)])


def concentration_prior(weights: WeightPrior) -> dist.Distribution:
    kind, first, second = weights.concentration_prior
    if kind == "f":
        return f_distribution(first, second)
    return dist.Gamma(first, second)


class FullSites:
    """The distributions of the model's component sites for Normal-inverse-Wishart components
    (:class:`~bayesgmm.core.conjugate.ConjugateFull`)."""

    @staticmethod
    def scale(scale_prior: ScaleHyperprior) -> dist.Distribution:
        """``S0 ~ Wishart(dof, scale)``."""
        return dist.Wishart(scale_prior.dof, scale_matrix=scale_prior.scale)

    @staticmethod
    def covariances(prior: ConjugatePrior, scale, n_slots: int,
                    n_dims: int) -> dist.Distribution:
        """``Sigma_k ~ inverse-Wishart(dof, S0)`` for ``n_slots`` components (T, D, D)."""
        return dist.InverseWishart(prior.dof, scale_matrix=scale).expand([n_slots]).to_event(1)

    @staticmethod
    def means(prior: ConjugatePrior, covariances) -> dist.Distribution:
        """``mu_k | Sigma_k ~ N(mean, Sigma_k / shrinkage)`` (T, D)."""
        return dist.MultivariateNormal(prior.mean, covariance_matrix=covariances
                                       / prior.shrinkage).to_event(1)

    @staticmethod
    def gaussian(means, covariances) -> dist.Distribution:
        """The Gaussians ``N(mu, Sigma)`` of means (..., D) and covariances (..., D, D)."""
        return dist.MultivariateNormal(means, covariance_matrix=covariances)


class DiagSites:
    """The same per feature for Normal-inverse-gamma components
    (:class:`~bayesgmm.core.conjugate.ConjugateDiag`): variances (T, D)."""

    @staticmethod
    def scale(scale_prior: ScaleHyperprior) -> dist.Distribution:
        """``s0_d ~ Gamma(dof / 2, rate 1 / (2 scale_d))``, the one-dimensional Wishart."""
        return dist.Gamma(0.5 * scale_prior.dof, 0.5 * scale_prior.inverse_scale).to_event(1)

    @staticmethod
    def covariances(prior: ConjugatePrior, scale, n_slots: int,
                    n_dims: int) -> dist.Distribution:
        """``sigma2_kd ~ inverse-gamma(dof / 2, s0_d / 2)`` (T, D)."""
        return dist.InverseGamma(0.5 * prior.dof, 0.5 * scale).expand(
            [n_slots, n_dims]).to_event(2)

    @staticmethod
    def means(prior: ConjugatePrior, covariances) -> dist.Distribution:
        """``mu_kd | sigma2_kd ~ N(mean_d, sigma2_kd / shrinkage)`` (T, D)."""
        return dist.Normal(prior.mean, jnp.sqrt(covariances / prior.shrinkage)).to_event(2)

    @staticmethod
    def gaussian(means, covariances) -> dist.Distribution:
        """The Gaussians of means and variances (..., D), independent features."""
        return dist.Normal(means, jnp.sqrt(covariances)).to_event(1)


#: The NumPyro form of each conjugate family's sites (NumPyro stays out of the pure-JAX core).
SITES = {ConjugateFull: FullSites, ConjugateDiag: DiagSites}


def conjugate_mixture_model(n_samples: int, hyper: Hyperparameters, config: GibbsConfig,
                            weights: WeightPrior, y=None, marginal: bool = False):
    """NumPyro model of ``n_samples`` rows ``y`` (N, D) (module docstring); ``hyper`` holds
    arrays (numpy or JAX) and the sampler's encoding of ``weights``, whose static form
    decides here which sites exist."""
    prior = hyper.prior
    n_slots = config.n_components
    sites = SITES[config.family]
    n_dims = np.shape(prior.mean)[-1]
    if config.hierarchical_scale:
        scale = numpyro.sample("scale", sites.scale(hyper.scale_prior))
    else:
        scale = jnp.asarray(prior.scale)
    if weights.concentration is None:
        concentration = numpyro.sample("concentration", concentration_prior(weights))
    else:
        concentration = jnp.asarray(weights.concentration)
    if weights.random_k:
        k_probs = jnp.exp(jnp.asarray(hyper.log_k_prior))
        n_components = numpyro.sample("n_components_minus_one",
                                      dist.Categorical(probs=k_probs)) + 1
    else:
        n_components = n_slots
    gamma = gamma_of_k(weights, concentration, n_slots)[n_components - 1]
    weight_gamma = numpyro.sample("weight_gamma", dist.Gamma(gamma, 1.0).expand([n_slots])
                                  .to_event(1))
    kept = jnp.where(jnp.arange(n_slots) < n_components, weight_gamma, 0.0)
    eta = kept / jnp.sum(kept)
    covariances = numpyro.sample("covariances",
                                 sites.covariances(prior, scale, n_slots, n_dims))
    means = numpyro.sample("means", sites.means(prior, covariances))
    components = sites.gaussian(means, covariances)
    with numpyro.plate("data", n_samples):
        if marginal:
            numpyro.sample("y", dist.MixtureSameFamily(dist.Categorical(probs=eta), components),
                           obs=y)
        else:
            labels = numpyro.sample("labels", dist.Categorical(probs=eta))
            numpyro.sample("y", sites.gaussian(means[labels], covariances[labels]), obs=y)


def state_from_sites(sites: dict, config: GibbsConfig):
    """The Gibbs sampler's state (:class:`~bayesgmm.core.gibbs.GibbsState`, one chain) of a
    draw of the model's latent sites (labels included), e.g. from ``Predictive``."""
    from bayesgmm.core.gibbs import GibbsState

    family = config.family
    n_slots = config.n_components
    labels = jnp.asarray(sites["labels"]).astype(jnp.int32)
    counts = jnp.zeros(n_slots).at[labels].add(1.0)
    n_components = (jnp.asarray(sites["n_components_minus_one"]).astype(jnp.int32) + 1
                    if "n_components_minus_one" in sites
                    else jnp.asarray(n_slots, jnp.int32))
    gamma = jnp.asarray(sites["weight_gamma"])
    kept = jnp.where(jnp.arange(n_slots) < n_components, gamma, 0.0)
    log_weights = jnp.log(kept) - jnp.log(jnp.sum(kept))
    components = family.from_covariance(jnp.asarray(sites["means"]),
                                        jnp.asarray(sites["covariances"]))
    return GibbsState(labels, counts, n_components, log_weights, components,
                      jnp.asarray(sites["concentration"]), jnp.asarray(sites["scale"]))


def rows_given_state(normals, labels, components):
    """Rows ``y_i = mu_z + G_z e_i`` (N, D) given labels (N,), components and standard
    normals (N, D): a draw of the data from the model's likelihood."""
    factor = components.covariance_factor[labels]
    noise = (jnp.einsum("nij,nj->ni", factor, normals) if factor.ndim == 3
             else factor * normals)
    return components.means[labels] + noise
