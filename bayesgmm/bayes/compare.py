"""Side-by-side comparison of the BIC-selected EM fit and the Bayesian mixture."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import train_test_split

from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.estimator import _seed


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
    from bayesgmm.selection import select_model

    seed = _seed(random_state)
    train, test = train_test_split(X, test_size=test_size, random_state=seed % (2**31))
    selection = select_model(train, random_state=seed, **selection_options)
    em = selection.best_
    template = BayesianGaussianMixture() if bayes is None else bayes
    if template.random_state is None:
        template = clone(template).set_params(random_state=seed)
    model = clone(template).fit(train)
    posterior = model.n_clusters_posterior()
    mode = int(posterior.idxmax())
    weights = {"dirichlet_process": "DP", "dirichlet_distribution": "sparse Dirichlet"}[
        model.weight_concentration_prior_type]
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
