"""scikit-learn's ``sklearn.mixture`` names, for a one-line switch::

    from bayesgmm.mixture import BayesianGaussianMixture, GaussianMixture

``GaussianMixture`` is :class:`bayesgmm.GaussianMixture` (EM) and ``BayesianGaussianMixture``
is :class:`bayesgmm.VariationalGaussianMixture` (variational inference): the same parameters,
defaults, fitted attributes and methods as scikit-learn's classes, computed by compiled JAX
programs. (:class:`bayesgmm.BayesianGaussianMixture`, the library's own Bayesian estimator
with a sampler and a posterior over the number of clusters, is a different class.)
"""

from bayesgmm.estimators.gaussian import GaussianMixture
from bayesgmm.estimators.variational import VariationalGaussianMixture as BayesianGaussianMixture

__all__ = ["BayesianGaussianMixture", "GaussianMixture"]
