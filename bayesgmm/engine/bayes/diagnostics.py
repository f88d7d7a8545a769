"""The ArviZ adapter: the only module that imports :mod:`arviz` (written for ArviZ 0.23's
``InferenceData``; Python 3.11 cannot install ArviZ 1.x).

Label-invariant quantities
    Mixture labels can switch between and within chains, so convergence is judged on
    quantities that do not depend on the labels
    (:func:`bayesgmm.engine.bayes.convergence.label_invariant_quantities`): the concentration
    (when it has a prior), the total log-likelihood of the training data, the weights sorted largest
    first, and the indicators ``I(K+ = k)`` of the number of occupied clusters for every
    probable ``k`` (rank-normalised R-hat of a discrete K+ itself is fragile: its many ties
    make ranks uninformative). Per-cluster parameters are diagnosed after relabelling, and only
    for clusters with a posterior-mean weight of at least ``OCCUPIED_WEIGHT`` that are occupied
    in at least ``OCCUPIED_SHARE`` of the draws (in the other draws their parameters are draws
    from the prior, which no diagnostic of the posterior should mix in). The warning at the
    end of a fit looks at the label-invariant quantities only: relabelled parameters can show
    the relabelling's own noise.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from bayesgmm.engine.bayes.convergence import bulk_ess, label_invariant_quantities, rank_rhat

#: Clusters with a posterior-mean weight below this, or occupied in a smaller share of the
#: draws than ``OCCUPIED_SHARE``, are left out of the per-parameter diagnostics.
OCCUPIED_WEIGHT = 0.01
OCCUPIED_SHARE = 0.95
#: R-hat above this triggers a warning (Vehtari et al. 2021).
RHAT_WARNING = 1.01
#: Bulk ESS below this many per chain triggers a warning (Vehtari et al. 2021: 100 per chain,
#: 400 for four chains).
ESS_PER_CHAIN_WARNING = 100


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ 0.23 warns about its 1.x refactor on import
        import arviz
    return arviz


def _by_chain(model, values: np.ndarray) -> np.ndarray:
    """(S, ...) chain-major draws -> (chains, draws, ...)."""
    return np.asarray(values).reshape(model.chain_shape_ + np.shape(values)[1:])


def _feature_names(model) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    return ([str(n) for n in names] if names is not None
            else [f"x{j}" for j in range(model.n_features_in_)])


def label_invariant_draws(model) -> dict[str, np.ndarray]:
    """(chains, draws) arrays of the label-invariant quantities (module docstring)."""
    spec = model.model_spec_
    concentration = (None if not spec.concentration_site
                     else _by_chain(model, model.concentration_draws_))
    return label_invariant_quantities(
        _by_chain(model, model.log_likelihood_draws_), concentration,
        _by_chain(model, np.exp(model.posterior_draws_.log_weights)),
        _by_chain(model, model.occupied_draws_), spec.concentration_site or "concentration")


def to_inference_data(model):
    """``InferenceData`` with posterior (relabelled, data units), sample_stats,
    observed_data and the marginal pointwise log-likelihood ``log p(x_i | theta_s)``."""
    import jax.numpy as jnp

    from bayesgmm.engine.bayes.models import missing_patterns
    from bayesgmm.engine.bayes.posterior import pointwise_log_likelihood
    from bayesgmm.engine.preprocessing import compute_context

    az = _arviz()
    draws = model.posterior_draws_
    covariances = draws.scale_tril @ np.swapaxes(draws.scale_tril, -1, -2)
    posterior = {"weights": _by_chain(model, np.exp(draws.log_weights)),
                 "means": _by_chain(model, draws.means),
                 "covariances": _by_chain(model, covariances),
                 **label_invariant_draws(model)}
    with compute_context(np.float64):
        pointwise = np.asarray(pointwise_log_likelihood(
            jnp.asarray(model.training_rows_, jnp.float64), model.device_draws(),
            patterns=missing_patterns(model.training_rows_)))
    # The pass draws: every draw, or evenly spaced ones within each chain (Gibbs).
    pointwise = pointwise.reshape(model.chain_shape_[0], -1, pointwise.shape[-1])
    names = _feature_names(model)
    coords = {"cluster": np.arange(model.n_components), "feature": names,
              "feature_": names, "obs": np.arange(len(model.training_rows_))}
    dims = {"weights": ["cluster"], "means": ["cluster", "feature"],
            "covariances": ["cluster", "feature", "feature_"], "x": ["obs", "feature"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.from_dict(
            posterior=posterior, sample_stats=dict(model.sample_stats_) or None,
            observed_data={"x": model.training_rows_},
            log_likelihood={"x": pointwise},
            coords=coords, dims=dims)


def _diagnosed_draws(model) -> dict[str, np.ndarray]:
    out = label_invariant_draws(model)
    draws = model.posterior_draws_
    names = _feature_names(model)
    often = (model.occupied_draws_ > 0).mean(axis=0) >= OCCUPIED_SHARE
    for k in np.flatnonzero((model.weights_ >= OCCUPIED_WEIGHT) & often):
        out[f"weight[{k}]"] = _by_chain(model, np.exp(draws.log_weights[:, k]))
        for j, name in enumerate(names):
            out[f"mean[{k}, {name}]"] = _by_chain(model, draws.means[:, k, j])
    return out


def diagnostics(model) -> pd.DataFrame:
    """``r_hat``, ``ess_bulk`` and ``ess_tail`` (plus posterior mean and sd) of the
    label-invariant quantities, then of the relabelled weights and means of every cluster
    with posterior-mean weight >= ``OCCUPIED_WEIGHT``."""
    az = _arviz()
    rows = {}
    for name, values in _diagnosed_draws(model).items():
        values = np.asarray(values, np.float64)
        constant = np.ptp(values) == 0
        single_chain = values.shape[0] < 2  # VI: R-hat undefined
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows[name] = {
                "mean": values.mean(), "sd": values.std(),
                "r_hat": np.nan if constant or single_chain else float(az.rhat(values)),
                "ess_bulk": np.nan if constant else float(az.ess(values, method="bulk")),
                "ess_tail": np.nan if constant else float(az.ess(values, method="tail"))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "quantity"
    return table


def label_invariant_convergence(model) -> pd.DataFrame:
    """``r_hat`` (rank-normalised split) and ``ess_bulk`` of the label-invariant quantities,
    computed without ArviZ (:mod:`bayesgmm.engine.bayes.convergence`, equal to ArviZ's to rounding):
    the end-of-fit warning needs only these, and importing ArviZ (with matplotlib) took 1 s,
    an eighth of a warm Old Faithful fit. NaN where :func:`diagnostics` gives NaN (constant
    values; R-hat of a single chain)."""
    rows = {}
    for name, values in label_invariant_draws(model).items():
        values = np.asarray(values, np.float64)
        constant = np.ptp(values) == 0
        rows[name] = {
            "r_hat": np.nan if constant or values.shape[0] < 2 else rank_rhat(values),
            "ess_bulk": np.nan if constant else bulk_ess(values)}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["r_hat", "ess_bulk"])
    table.index.name = "quantity"
    return table


def diagnostics_warnings(model) -> list[str]:
    """Messages for divergences (NUTS) and for label-invariant quantities with R-hat above
    ``RHAT_WARNING`` or bulk ESS below ``ESS_PER_CHAIN_WARNING`` per chain (MCMC with more
    than one chain)."""
    messages = []
    diverging = model.sample_stats_.get("diverging")
    if diverging is not None and diverging.sum():
        messages.append(
            f"NUTS reported {int(diverging.sum())} divergent transitions out of "
            f"{diverging.size}: the posterior summaries may be biased. Increase "
            "target_accept_prob or check the data for near-duplicate rows.")
    chains = model.chain_shape_[0]
    if model.method in ("vi", "advi") or chains < 2:
        return messages
    table = label_invariant_convergence(model)
    more = ("Run more draws (num_samples) or allow more extensions (max_extensions)"
            if model.method == "gibbs" else "Run more warm-up/draws")

    def listed(failing, column: str, digits: int) -> str:
        return ", ".join(f"{name} ({value:.{digits}f})"
                         for name, value in failing[column].head(5).items())

    high = table[table["r_hat"] > RHAT_WARNING]
    if len(high):
        messages.append(
            f"R-hat above {RHAT_WARNING} for {len(high)} label-invariant quantities "
            f"({listed(high, 'r_hat', 3)}): the chains have not mixed. {more}, or see "
            "model.diagnostics().")
    low = table[table["ess_bulk"] < ESS_PER_CHAIN_WARNING * chains]
    if len(low):
        messages.append(
            f"bulk ESS below {ESS_PER_CHAIN_WARNING * chains} ({ESS_PER_CHAIN_WARNING} per "
            f"chain) for {len(low)} label-invariant quantities ({listed(low, 'ess_bulk', 0)}): "
            f"the posterior summaries are imprecise. {more}, or see model.diagnostics().")
    return messages
