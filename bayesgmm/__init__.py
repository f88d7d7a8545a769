"""bayesgmm: Gaussian mixture clustering with JAX-compiled EM.

Public API
----------
GaussianMixture
    scikit-learn-compatible EM estimator (full, tied, diag, spherical covariances).
select_model, SelectionResult, AutoGaussianMixture
    choice of K and covariance type by BIC, AIC or ICL in one compiled sweep per type.
MAPPrior
    mclust's conjugate prior for MAP EM (``prior="default"`` or explicit hyperparameters).
load_faithful
    The bundled Old Faithful data set.
"""

from bayesgmm.datasets import load_faithful
from bayesgmm.estimator import GaussianMixture
from bayesgmm.prior import MAPPrior
from bayesgmm.selection import AutoGaussianMixture, SelectionResult, select_model
from bayesgmm.validation import DegenerateFitError, NonNumericDataError

__version__ = "0.1.0"

__all__ = [
    "AutoGaussianMixture",
    "DegenerateFitError",
    "GaussianMixture",
    "MAPPrior",
    "NonNumericDataError",
    "SelectionResult",
    "__version__",
    "load_faithful",
    "select_model",
]
