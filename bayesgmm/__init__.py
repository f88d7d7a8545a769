"""bayesgmm: Gaussian mixture clustering with JAX-compiled EM.

Public API
----------
GaussianMixture
    scikit-learn-compatible EM estimator (full, tied, diag, spherical covariances).
load_faithful
    The bundled Old Faithful data set.
"""

from bayesgmm.datasets import load_faithful
from bayesgmm.estimator import GaussianMixture
from bayesgmm.validation import DegenerateFitError, NonNumericDataError

__version__ = "0.1.0"

__all__ = [
    "DegenerateFitError",
    "GaussianMixture",
    "NonNumericDataError",
    "__version__",
    "load_faithful",
]
