"""Pure JAX functions on pytrees: covariance families, sufficient statistics, EM, initialisation.

Nothing in this sub-package touches numpy-in/numpy-out conventions, pandas or I/O; the
scikit-learn-compatible shell lives in :mod:`bayesgmm.estimators.gaussian`.
"""

from bayesgmm.base.compile_cache import configure_from_environment

configure_from_environment()
