"""bayesgmm: Gaussian mixture clustering with JAX-compiled EM.

Public API
----------
GaussianMixture
    scikit-learn-compatible EM estimator (full, tied, diag, spherical covariances).
select_model, SelectionResult, AutoGaussianMixture
    choice of K and covariance type by BIC, AIC or ICL in one compiled sweep per type.
MAPPrior
    mclust's conjugate prior for MAP EM (``prior="default"`` or explicit hyperparameters).
BayesianGaussianMixture, compare_with_em
    Dirichlet-process / sparse finite Gaussian mixture in NumPyro (NUTS or VI), with the
    posterior over the number of clusters and per-point assignment uncertainty; and its
    side-by-side comparison with the BIC-selected EM fit.
load, ModelFileError
    read a model saved with ``model.save(path)`` (versioned npz + JSON, never pickle).
load_faithful
    The bundled Old Faithful data set.
"""

from bayesgmm.bayes.compare import compare_with_em
from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.datasets import load_faithful
from bayesgmm.estimator import GaussianMixture
from bayesgmm.io import ModelFileError, load
from bayesgmm.prior import MAPPrior
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
    "compare_with_em",
    "load",
    "load_faithful",
    "select_model",
]
