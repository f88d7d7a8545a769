"""The conjugate component model: Normal-inverse-Wishart components with a Wishart prior on
the inverse-Wishart scale, updated from the EM core's additive statistics.

Per component ``k`` (``full``)::

    S0             ~ Wishart(scale_dof, scale_scale)         (hierarchical; or fixed)
    Sigma_k        ~ inverse-Wishart(dof, S0)
    mu_k | Sigma_k ~ Normal(mean, Sigma_k / shrinkage)

``diag`` is the same per feature (``D`` independent one-dimensional problems):
``sigma2_kd ~ inverse-gamma(dof / 2, s0_d / 2)``, ``mu_kd | sigma2_kd ~ N(mean_d, sigma2_kd /
shrinkage)`` and ``s0_d ~ Gamma(scale_dof / 2, rate 1 / (2 scale_scale_d))`` (the
one-dimensional Wishart).

The components' hyperparameters are a :class:`~bayesgmm.core.parameters.ConjugatePrior` (the
Normal-inverse-Wishart, also mclust's prior for MAP EM); per-component posterior
hyperparameters have the same type with a leading component axis.

A family (:class:`ConjugateFull`, :class:`ConjugateDiag`; :data:`CONJUGATE_FAMILIES` by
covariance type) is a namespace of static methods, gathered from three modules:

* :mod:`bayesgmm.core.conjugate_posterior`: posterior hyperparameters from statistics,
  marginal likelihoods, plug-in estimates
  (:class:`~bayesgmm.core.conjugate_posterior.ScaleFactor`);
* :mod:`bayesgmm.core.conjugate_draws`: draws of components and of ``S0`` from random numbers
  passed in, and their density (:class:`~bayesgmm.core.conjugate_draws.ComponentDraw`,
  :class:`~bayesgmm.core.conjugate_draws.Bartlett`,
  :class:`~bayesgmm.core.conjugate_draws.ScaleHyperprior`);
* :mod:`bayesgmm.core.moment_matching`: the maps between one component and two of the
  split-merge moves.

Everything is plain JAX (:mod:`bayesgmm.core.linalg`: no LAPACK calls) on a stack of
components.
"""

from __future__ import annotations

from bayesgmm.core.conjugate_draws import DiagDraws, FullDraws
from bayesgmm.core.conjugate_posterior import DiagPosterior, FullPosterior
from bayesgmm.core.moment_matching import DiagMomentMatching, FullMomentMatching
from bayesgmm.core.moments import DiagMoments, FullMoments


class ConjugateFull(FullPosterior, FullDraws, FullMomentMatching):
    """Normal-inverse-Wishart components with full covariance matrices."""

    name = "full"
    moments = FullMoments


class ConjugateDiag(DiagPosterior, DiagDraws, DiagMomentMatching):
    """Normal-inverse-gamma components per feature: diagonal covariances."""

    name = "diag"
    moments = DiagMoments


CONJUGATE_FAMILIES = {family.name: family for family in (ConjugateFull, ConjugateDiag)}
