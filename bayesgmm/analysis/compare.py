"""Side-by-side comparison of the BIC-selected EM fit and the Bayesian mixture."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import train_test_split

from bayesgmm.base.config import seed_from
from bayesgmm.engine.bayes.gibbs import rows_padded_like
from bayesgmm.estimators.bayesian import BayesianGaussianMixture


def _describe_posterior(series: pd.Series) -> str:
    return ", ".join(f"{k}: {p:.2f}" for k, p in series.items() if p >= 0.005)


def compare_with_em(X, bayes: BayesianGaussianMixture | None = None, *, test_size=0.25,
                    random_state=None, return_models: bool = False, **selection_options):
    """Fit both models on one training split and compare them on the held-out rest.

    Parameters
    ----------
    X : array-like (n_samples, n_features)
    bayes : BayesianGaussianMixture, optional
        Unfitted template (cloned); default ``BayesianGaussianMixture()``.
    test_size : float
        Share of rows held out (``sklearn.model_selection.train_test_split``).
    random_state : int or None
        Seeds the split, the EM sweep and (when ``bayes`` has none) the Bayesian fit.
    return_models : bool
        Also return the :class:`~bayesgmm.SelectionResult` and the fitted Bayesian model.
    **selection_options
        Passed to :func:`bayesgmm.select_model` (e.g. ``n_components``, ``covariance_types``).

    Returns
    -------
    table : DataFrame, one row per approach
        ``model``; ``n_clusters`` (EM: the selected K; Bayes: the posterior mode of the number
        of occupied clusters); ``p_n_clusters`` (posterior probability of that mode);
        ``posterior_n_clusters`` (the whole posterior); ``bic`` (EM, on the training split,
        lower is better); ``heldout_log_density`` (mean log predictive density per held-out
        row: EM's plug-in density, Bayes' posterior predictive); ``ari_em_vs_bayes``
        (adjusted Rand index between EM's labels and the Bayesian MAP labels on all rows).
    """
    from bayesgmm.estimators.selection import select_model

    seed = seed_from(random_state)
    train, test = train_test_split(X, test_size=test_size, random_state=seed % (2**31))
    selection = select_model(train, random_state=seed, **selection_options)
    em = selection.best_
    template = BayesianGaussianMixture() if bayes is None else bayes
    if template.random_state is None:
        template = clone(template).set_params(random_state=seed)
    if template.init_components == "bic":  # the sweep above already chose K on these rows
        template = clone(template).set_params(init_components=em.n_components)
    with rows_padded_like(len(X)):  # the full data's compiled sampler, not a second one
        model = clone(template).fit(train)
    posterior = model.n_clusters_posterior()
    mode = int(posterior.idxmax())
    weights = {"mixture_of_finite_mixtures": "MFM", "dirichlet_process": "DP",
               "dirichlet_distribution": "sparse Dirichlet"}[
        model.sampler_settings_["weight_concentration_prior_type"]]
    rows = [
        {"approach": "EM (BIC)", "model": f"{em.covariance_type}, K={em.n_components}",
         "n_clusters": em.n_components, "p_n_clusters": np.nan, "posterior_n_clusters": "",
         "bic": float(em.bic(train)), "heldout_log_density": em.score(test)},
        {"approach": f"Bayesian ({model.method.upper()})",
         "model": f"{weights} {model.covariance_type}, T={model.n_components}",
         "n_clusters": mode, "p_n_clusters": float(posterior[mode]),
         "posterior_n_clusters": _describe_posterior(posterior), "bic": np.nan,
         "heldout_log_density": model.score(test)},
    ]
    table = pd.DataFrame(rows).set_index("approach")
    table["ari_em_vs_bayes"] = adjusted_rand_score(em.predict(X), model.predict(X))
    return (table, selection, model) if return_models else table


#: The Bayesian answers of :func:`compare_cluster_counts`: row name -> weight prior type (the
#: mixture of finite mixtures needs the Gibbs sampler).
_WEIGHT_PRIORS = {"MFM": "mixture_of_finite_mixtures", "DP": "dirichlet_process",
                  "sparse": "dirichlet_distribution"}


def compare_cluster_counts(X, bayes: BayesianGaussianMixture | None = None, *,
                           labels_true=None, random_state=None, return_models: bool = False,
                           **selection_options):
    """How many clusters? BIC and ICL over the EM sweep, and the Bayesian posteriors under the
    mixture of finite mixtures (the default weights), the DP and the sparse finite mixture.

    Parameters
    ----------
    X : array-like (n_samples, n_features)
    bayes : BayesianGaussianMixture, optional
        Unfitted template for the Bayesian fits (cloned; its
        ``weight_concentration_prior_type`` is set to each weight prior; the mixture of finite
        mixtures only with ``method='gibbs'``). Default ``BayesianGaussianMixture()`` (the Gibbs
        sampler, full covariances, T = 10).
    labels_true : array-like (n_samples,), optional
        Known classes, used only to score each answer's partition (adjusted Rand index).
    random_state : int or None
        Seeds the sweep and (when ``bayes`` has none) the Bayesian fits.
    return_models : bool
        Also return ``{"selection": SelectionResult, "MFM": fit, "DP": fit, "sparse": fit}``
        (no MFM fit unless the template uses the Gibbs sampler).
    **selection_options
        Passed to :func:`bayesgmm.select_model` (e.g. ``n_components``).

    Returns
    -------
    table : DataFrame indexed by approach (``BIC``, ``ICL``, ``MFM``, ``DP``, ``sparse``)
        ``n_clusters``: the selected K (BIC, ICL; degenerate fits excluded) or the posterior
        mode of the number of occupied clusters (MFM, DP, sparse); ``probability``: the posterior
        probability of that mode (NaN for BIC and ICL); ``posterior``: the whole posterior;
        ``model``: what was fitted; ``ari_vs_truth`` with ``labels_true``.
    """
    from bayesgmm.estimators.selection import select_model

    seed = seed_from(random_state)
    # Finishing the selected model (select_model's finish_tol) changes neither K answer.
    selection_options.setdefault("finish_tol", None)
    selection = select_model(X, random_state=seed, **selection_options)
    usable = selection.table[~selection.table["degenerate"]]

    def best_by(criterion):
        row = usable.loc[usable[criterion].idxmin()]
        return selection.model(row["covariance_type"], int(row["n_components"]))

    bic_model, icl_model = best_by("bic"), best_by("icl")
    rows = {name: {"n_clusters": model.n_components, "probability": np.nan, "posterior": "",
                   "model": f"EM {model.covariance_type}, K={model.n_components}",
                   "labels": model.predict(X)}
            for name, model in (("BIC", bic_model), ("ICL", icl_model))}
    template = BayesianGaussianMixture() if bayes is None else bayes
    if template.random_state is None:
        template = clone(template).set_params(random_state=seed)
    if template.init_components == "bic":  # start the chains from the K just selected
        template = clone(template).set_params(init_components=bic_model.n_components)
    models = {"selection": selection}
    for name, weights in _WEIGHT_PRIORS.items():
        if name == "MFM" and template.method != "gibbs":
            continue
        fit = clone(template).set_params(weight_concentration_prior_type=weights).fit(X)
        posterior = fit.n_clusters_posterior()
        mode = int(posterior.idxmax())
        rows[name] = {"n_clusters": mode, "probability": float(posterior[mode]),
                      "posterior": _describe_posterior(posterior),
                      "model": f"{name} {fit.covariance_type}, T={fit.n_components}, "
                               f"{fit.method.upper()}",
                      "labels": fit.predict(X)}
        models[name] = fit
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "approach"
    if labels_true is not None:
        table["ari_vs_truth"] = [adjusted_rand_score(labels_true, labels)
                                 for labels in table["labels"]]
    table = table.drop(columns="labels").astype({"n_clusters": int, "probability": float})
    return (table, models) if return_models else table
