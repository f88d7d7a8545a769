"""bayesgmm: Gaussian mixture clustering with JAX-compiled EM.

Public API
----------
GaussianMixture
    scikit-learn-compatible EM estimator (full, tied, diag, spherical covariances).
select_model, SelectionResult, AutoGaussianMixture
    choice of K and covariance type by BIC, AIC or ICL in one compiled sweep per type.
MAPPrior
    mclust's conjugate prior for MAP EM (``prior="default"`` or explicit hyperparameters).
VariationalGaussianMixture
    scikit-learn's variational ``BayesianGaussianMixture`` (same model, parameters and
    attributes; agreement to rounding), by coordinate ascent in one compiled program.
    :mod:`bayesgmm.mixture` has it under scikit-learn's name, for a one-line switch.
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
set_compile_cache, compile_cache_dir
    the persistent cache of compiled programs (on by default; ``BAYESGMM_COMPILE_CACHE``).
load_faithful
    The bundled Old Faithful data set (:mod:`bayesgmm.datasets` also simulates mixtures with
    known truth).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Public names and the modules that define them. ``import bayesgmm`` loads none of them
# (PEP 562): jax, scikit-learn, NumPyro, ArviZ, pandas and matplotlib are imported when a
# name that needs them is first used.
_PUBLIC = {
    "AutoGaussianMixture": "bayesgmm.selection",
    "BayesianGaussianMixture": "bayesgmm.bayes.estimator",
    "DegenerateFitError": "bayesgmm.validation",
    "GaussianMixture": "bayesgmm.estimator",
    "MAPPrior": "bayesgmm.prior",
    "ModelFileError": "bayesgmm.io",
    "NonNumericDataError": "bayesgmm.validation",
    "SelectionResult": "bayesgmm.selection",
    "cluster_quality": "bayesgmm.quality",
    "compare_cluster_counts": "bayesgmm.bayes.compare",
    "compare_with_em": "bayesgmm.bayes.compare",
    "compile_cache_dir": "bayesgmm.compile_cache",
    "gaussian_checks": "bayesgmm.normality",
    "load": "bayesgmm.io",
    "load_faithful": "bayesgmm.datasets",
    "profile_clusters": "bayesgmm.profiles",
    "select_model": "bayesgmm.selection",
    "set_compile_cache": "bayesgmm.compile_cache",
    "use_devices": "bayesgmm.parallel",
    "VariationalGaussianMixture": "bayesgmm.variational",
}

if TYPE_CHECKING:
    from bayesgmm.bayes.compare import compare_cluster_counts, compare_with_em
    from bayesgmm.bayes.estimator import BayesianGaussianMixture
    from bayesgmm.compile_cache import compile_cache_dir, set_compile_cache
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
    from bayesgmm.variational import VariationalGaussianMixture


def __getattr__(name: str):
    """Import a public name's module on first use (PEP 562)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


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
    "VariationalGaussianMixture",
    "__version__",
    "cluster_quality",
    "compare_cluster_counts",
    "compare_with_em",
    "compile_cache_dir",
    "gaussian_checks",
    "load",
    "load_faithful",
    "profile_clusters",
    "select_model",
    "set_compile_cache",
    "use_devices",
]
