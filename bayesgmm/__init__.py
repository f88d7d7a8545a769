"""bayesgmm: Gaussian mixture clustering with JAX-compiled EM.

Public API
----------
GaussianMixture
    scikit-learn-compatible EM estimator (full, tied, diag, spherical covariances).
select_model, SelectionResult, AutoGaussianMixture
    choice of K and covariance type by BIC, AIC or ICL in one compiled sweep per type.
MAPPrior
    mclust's conjugate prior for MAP EM (``prior="default"`` or explicit hyperparameters).
BayesianGaussianMixture, compare_with_em, compare_cluster_counts
    Bayesian Gaussian mixture with an unknown number of clusters: a mixture of finite
    mixtures by a Gibbs sampler with split-merge moves (default), or Dirichlet-process /
    sparse finite weights by NUTS or VI on the NumPyro model; the posterior over the number
    of clusters and per-point assignment uncertainty; its side-by-side comparison with the
    BIC-selected EM fit; and the answers to "how many clusters?" (BIC, ICL and the
    posteriors) in one table.
profile_clusters, cluster_quality, gaussian_checks
    what each cluster is (per-feature profiles, effect sizes), whether the clustering is any
    good (scikit-learn's metrics), whether each cluster looks Gaussian (Mardia, Shapiro-Wilk,
    Mahalanobis QQ) with a verdict in words.
load, ModelFileError
    read a model saved with ``model.save(path)`` (versioned npz + JSON, never pickle).
load_faithful
    The bundled Old Faithful data set (:mod:`bayesgmm.datasets` also simulates mixtures with
    known truth).
"""

from bayesgmm.bayes.compare import compare_cluster_counts, compare_with_em
from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.datasets import load_faithful
from bayesgmm.estimator import GaussianMixture
from bayesgmm.io import ModelFileError, load
from bayesgmm.normality import gaussian_checks
from bayesgmm.parallel import use_devices
from bayesgmm.prior import MAPPrior
from bayesgmm.profiles import profile_clusters
from bayesgmm.quality import cluster_quality
from bayesgmm.selection import AutoGaussianMixture, SelectionResult, select_model
from bayesgmm.validation import DegenerateFitError, NonNumericDataError

__version__ = "0.1.0"

__all__ = [
    "AutoGaussianMixture",
    "BayesianGaussianMixture",
    "DegenerateFitError",
    "GaussianMixture",
    "MAPPrior",
    "ModelFileError",
    "NonNumericDataError",
    "SelectionResult",
    "__version__",
    "cluster_quality",
    "compare_cluster_counts",
    "compare_with_em",
    "gaussian_checks",
    "load",
    "load_faithful",
    "profile_clusters",
    "select_model",
    "use_devices",
]
