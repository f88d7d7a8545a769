"""The settings of :class:`~bayesgmm.estimators.bayesian.BayesianGaussianMixture`: each
method's defaults for the settings left as None, the checks of every parameter (errors name
the parameter, its value and what it needs) and the model they describe.
"""

from __future__ import annotations

import numbers
from typing import Any

from bayesgmm.base.validation import is_int, is_real, require
from bayesgmm.engine.bayes.models import COMPONENT_TYPES, ModelSpec

#: The weight priors by their scikit-learn-style name -> :class:`ModelSpec` ``weights``.
WEIGHT_PRIOR_TYPES = {"mixture_of_finite_mixtures": "mfm", "dirichlet_process": "dp",
                      "dirichlet_distribution": "sparse"}
METHODS = ("gibbs", "nuts", "vi", "advi")
#: Each method's defaults for the settings left as None.
METHOD_DEFAULTS = {
    "gibbs": {"num_warmup": 500, "num_samples": 500, "num_chains": 4, "thinning": 5,
              "weight_concentration_prior_type": "mixture_of_finite_mixtures"},
    "nuts": {"num_warmup": 500, "num_samples": 500, "num_chains": 2, "thinning": 1,
             "weight_concentration_prior_type": "dirichlet_process"},
    "vi": {"num_warmup": 0, "num_samples": 500, "num_chains": 2, "thinning": 1,
           "weight_concentration_prior_type": "dirichlet_process"},
    "advi": {"num_warmup": 0, "num_samples": 500, "num_chains": 2, "thinning": 1,
             "weight_concentration_prior_type": "dirichlet_process"},
}
#: The settings whose None means the method's default, as ``sampler_settings_`` records them.
RESOLVED_SETTINGS = ("num_warmup", "num_samples", "num_chains", "thinning",
                     "weight_concentration_prior_type")


def resolved_setting(estimator, name: str) -> Any:
    """The setting ``name`` of ``estimator``: its own value, or its method's default when
    it is None."""
    value = getattr(estimator, name)
    return METHOD_DEFAULTS[estimator.method][name] if value is None else value


def sampler_settings(estimator) -> dict[str, Any]:
    """The resolved :data:`RESOLVED_SETTINGS` of ``estimator`` (its ``sampler_settings_``)."""
    return {name: resolved_setting(estimator, name) for name in RESOLVED_SETTINGS}


def check_parameters(estimator, n_samples: int) -> None:
    """Raise a ValueError naming the first invalid parameter of ``estimator``, a
    :class:`~bayesgmm.estimators.bayesian.BayesianGaussianMixture` about to be fitted on
    ``n_samples`` rows."""
    def check(ok: bool, name: str, what: str) -> None:
        require(estimator, ok, name, what)

    def positive_int(value) -> bool:
        return is_int(value) and value >= 1

    def positive_real(value) -> bool:
        return is_real(value) and value > 0

    method = estimator.method
    check(method in METHODS, "method", f"choose one of {METHODS}")
    check(positive_int(estimator.n_components) and estimator.n_components >= 2,
          "n_components", "the truncation level must be an integer >= 2")
    check(estimator.covariance_type in COMPONENT_TYPES, "covariance_type",
          f"choose one of {COMPONENT_TYPES}")
    check(estimator.weight_concentration_prior_type is None
          or estimator.weight_concentration_prior_type in WEIGHT_PRIOR_TYPES,
          "weight_concentration_prior_type",
          f"choose one of {tuple(WEIGHT_PRIOR_TYPES)} or None")
    if (method != "gibbs" and resolved_setting(estimator, "weight_concentration_prior_type")
            == "mixture_of_finite_mixtures"):
        raise ValueError(
            f"weight_concentration_prior_type='mixture_of_finite_mixtures' needs "
            f"method='gibbs' (method={method!r} cannot sample the number of "
            "components); use 'dirichlet_process' or 'dirichlet_distribution' with it")
    check(estimator.weight_concentration_prior is None
          or positive_real(estimator.weight_concentration_prior),
          "weight_concentration_prior", "it must be None (a prior) or a number > 0")
    check(estimator.num_warmup is None
          or (is_int(estimator.num_warmup) and estimator.num_warmup >= 0),
          "num_warmup", "it must be None or an integer >= 0")
    check(is_int(estimator.max_extensions) and estimator.max_extensions >= 0,
          "max_extensions", "it must be an integer >= 0")
    for name in ("num_samples", "num_chains", "thinning"):
        value = getattr(estimator, name)
        check(value is None or positive_int(value), name, "it must be None or an integer >= 1")
    for name in ("max_tree_depth", "max_steps", "check_every"):
        check(positive_int(getattr(estimator, name)), name, "it must be an integer >= 1")
    check(positive_real(estimator.target_accept_prob) and estimator.target_accept_prob < 1,
          "target_accept_prob", "it must lie in (0, 1)")
    check(estimator.init_components == "bic" or positive_int(estimator.init_components),
          "init_components", "use 'bic' or an integer >= 1")
    for name in ("learning_rate", "init_scale"):
        check(positive_real(getattr(estimator, name)), name, "it must be a number > 0")
    check(isinstance(estimator.tol, numbers.Real) and estimator.tol >= 0, "tol",
          "it must be a number >= 0")
    check(estimator.subsample_size is None
          or (positive_int(estimator.subsample_size) and estimator.subsample_size <= n_samples),
          "subsample_size", f"use None or an integer in [1, n_samples={n_samples}]")
    for name in ("credible_level", "ambiguity_threshold"):
        value = getattr(estimator, name)
        check(positive_real(value) and value < 1, name, "it must lie in (0, 1)")


def model_spec(estimator, n_features: int) -> ModelSpec:
    """The :class:`ModelSpec` (no missing patterns yet) that ``estimator``'s settings describe
    for data of ``n_features`` columns: the truncation, the component type and the weight
    prior, with the concentration fixed when ``weight_concentration_prior`` is given."""
    weights = WEIGHT_PRIOR_TYPES[resolved_setting(estimator, "weight_concentration_prior_type")]
    fixed = (None if estimator.weight_concentration_prior is None
             else float(estimator.weight_concentration_prior))
    return ModelSpec(estimator.n_components, n_features, estimator.covariance_type, weights,
                     alpha=fixed if weights != "sparse" else None,
                     e0=fixed if weights == "sparse" else None)
