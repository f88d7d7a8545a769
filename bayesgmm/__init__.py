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
    The bundled Old Faithful data set (:mod:`bayesgmm.base.datasets` also simulates mixtures with
    known truth).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Public names and the modules that define them. ``import bayesgmm`` loads none of them
# (PEP 562): jax, scikit-learn, NumPyro, ArviZ, pandas and matplotlib are imported when a
# name that needs them is first used.
_PUBLIC = {
    "AutoGaussianMixture": "bayesgmm.estimators.selection",
    "BayesianGaussianMixture": "bayesgmm.estimators.bayesian",
    "DegenerateFitError": "bayesgmm.base.validation",
    "GaussianMixture": "bayesgmm.estimators.gaussian",
    "MAPPrior": "bayesgmm.engine.prior",
    "ModelFileError": "bayesgmm.base.io",
    "NonNumericDataError": "bayesgmm.base.validation",
    "SelectionResult": "bayesgmm.estimators.selection",
    "cluster_quality": "bayesgmm.analysis.quality",
    "compare_cluster_counts": "bayesgmm.analysis.compare",
    "compare_with_em": "bayesgmm.analysis.compare",
    "compile_cache_dir": "bayesgmm.base.compile_cache",
    "gaussian_checks": "bayesgmm.analysis.normality",
    "load_faithful": "bayesgmm.base.datasets",
    "profile_clusters": "bayesgmm.analysis.profiles",
    "select_model": "bayesgmm.estimators.selection",
    "set_compile_cache": "bayesgmm.base.compile_cache",
    "use_devices": "bayesgmm.engine.parallel",
    "VariationalGaussianMixture": "bayesgmm.estimators.variational",
}

if TYPE_CHECKING:
    from bayesgmm.analysis.compare import compare_cluster_counts, compare_with_em
    from bayesgmm.analysis.normality import gaussian_checks
    from bayesgmm.analysis.profiles import profile_clusters
    from bayesgmm.analysis.quality import cluster_quality
    from bayesgmm.base.compile_cache import compile_cache_dir, set_compile_cache
    from bayesgmm.base.datasets import load_faithful
    from bayesgmm.base.io import ModelFileError
    from bayesgmm.base.validation import DegenerateFitError, NonNumericDataError
    from bayesgmm.engine.parallel import use_devices
    from bayesgmm.engine.prior import MAPPrior
    from bayesgmm.estimators.bayesian import BayesianGaussianMixture
    from bayesgmm.estimators.gaussian import GaussianMixture
    from bayesgmm.estimators.selection import AutoGaussianMixture, SelectionResult, select_model
    from bayesgmm.estimators.variational import VariationalGaussianMixture


#: The modules of every class a model file can hold: :func:`load` imports them, so that
#: their classes are registered with :mod:`bayesgmm.base.io` before the file is read.
_PERSISTABLE_MODULES = ("bayesgmm.estimators.gaussian", "bayesgmm.estimators.selection",
                        "bayesgmm.estimators.variational", "bayesgmm.estimators.bayesian",
                        "bayesgmm.app.workflow")


def load(path):
    """Read a model file written by ``model.save(path)``: any fitted bayesgmm model or
    selection result (see :func:`bayesgmm.base.io.load` for the format and the errors)."""
    for module in _PERSISTABLE_MODULES:
        importlib.import_module(module)
    from bayesgmm.base.io import load as read_model_file

    return read_model_file(path)


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


from bayesgmm.base.config import __version__  # noqa: E402  (no dependencies)

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
