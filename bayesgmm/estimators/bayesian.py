"""``BayesianGaussianMixture``: the scikit-learn-like shell of the Bayesian mixtures.

``fit`` standardises the data, runs the inference (by default the Gibbs sampler of
:mod:`bayesgmm.core.gibbs` on the conjugate mixture; NUTS or VI on the NumPyro model of
:mod:`bayesgmm.engine.bayes.models`, started from an EM fit), relabels the draws (Stephens 2000) and
maps them back to the data's units. All per-cluster summaries (``weights_``, ``means_``,
memberships, segment sizes) are computed from relabelled draws; the number of clusters, the
log-likelihood and the sorted weights need no labels.

The class is assembled from mixins, one module each: the fitting paths
(:mod:`~bayesgmm.estimators.bayesian_fitting`), the passes over rows with the draws
(:mod:`~bayesgmm.estimators.bayesian_draws`) and the posterior summaries
(:mod:`~bayesgmm.estimators.bayesian_summaries`); its settings' defaults and checks are in
:mod:`~bayesgmm.estimators.bayesian_parameters`. This module holds the parameters, ``fit``,
prediction and sampling.
"""

from __future__ import annotations

import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayesgmm.base.config import AMBIGUITY_THRESHOLD, seed_from
from bayesgmm.base.estimator_api import BaseEstimator, DensityMixin, check_is_fitted
from bayesgmm.base.io import Persistable
from bayesgmm.base.validation import (
    ColumnSummary,
    check_array_input,
    check_columns_informative,
    check_enough_samples,
    check_missing_option,
    drop_empty_rows,
)
from bayesgmm.engine.bayes import variational_posterior
from bayesgmm.engine.bayes.inference import prepare_nuts
from bayesgmm.engine.bayes.models import missing_patterns
from bayesgmm.engine.bayes.posterior import predictive_log_density
from bayesgmm.engine.parallel import multi_process
from bayesgmm.engine.preprocessing import AffineScaling, compute_context
from bayesgmm.estimators.bayesian_draws import PosteriorDraws
from bayesgmm.estimators.bayesian_fitting import PosteriorFitting
from bayesgmm.estimators.bayesian_parameters import (
    check_parameters,
    model_spec,
    sampler_settings,
)
from bayesgmm.estimators.bayesian_summaries import PosteriorSummaries


class BayesianGaussianMixture(PosteriorSummaries, PosteriorDraws, PosteriorFitting, Persistable,
                              DensityMixin, BaseEstimator):
    """Bayesian Gaussian mixture with an unknown number of clusters: a mixture of finite
    mixtures (default), Dirichlet-process or sparse Dirichlet weights, fitted by a Gibbs
    sampler that moves between numbers of clusters (default), NUTS or variational inference.

    Parameters
    ----------
    n_components : int, default=10
        T: the largest number of components (the truncation of K's prior, or the DP's).
    covariance_type : {'full', 'diag'}, default='full'
    weight_concentration_prior_type : {'mixture_of_finite_mixtures', 'dirichlet_process', \
'dirichlet_distribution'} or None
        The weight prior (:mod:`bayesgmm.core.partition`). 'mixture_of_finite_mixtures' has a
        prior on the number of components K (``K - 1 ~ BNB(1, 4, 3)``) and answers "how many
        clusters" without inflating with N; 'dirichlet_process' adds small clusters as N
        grows; 'dirichlet_distribution' is the sparse finite mixture. None: the mixture of
        finite mixtures with ``method='gibbs'``, the Dirichlet process with NUTS and VI (which
        cannot sample K).
    weight_concentration_prior : float or None, default=None
        The concentration (``alpha`` for the mixture of finite mixtures and the DP, ``e0``
        for the sparse mixture); None puts a prior on it (``alpha ~ F(6, 3)``,
        ``alpha ~ Gamma(2, 4)``, ``e0 ~ Gamma(10, 1000)``). Unlike scikit-learn, whose None
        means the fixed value 1/T.
    method : {'gibbs', 'nuts', 'vi'}, default='gibbs'
        'gibbs': the conjugate (Normal-inverse-Wishart) mixture by the sampler of
        :mod:`bayesgmm.core.gibbs` (split-merge moves, the number of components sampled);
        its priors are in :mod:`bayesgmm.engine.bayes.gibbs`. 'nuts' and 'vi': the NumPyro model of
        :mod:`bayesgmm.engine.bayes.models` (LKJ correlations, log-normal scales).
    num_warmup, num_samples, num_chains, thinning : int or None
        Warm-up sweeps or steps, kept draws per chain, chains, and sweeps between kept draws
        (Gibbs). None: the method's default (gibbs 500, 500, 4, 5; nuts 500, 500, 2, 1).
        VI draws ``num_samples * num_chains`` times from the fitted guide.
    max_extensions : int, default=5
        Gibbs: while the label-invariant diagnostics fail (rank R-hat above 1.01 or bulk ESS
        below 100 per chain), the chains run further draws, 100 at a time (or
        ``num_samples`` if fewer) and checked after each, up to ``max_extensions`` times the
        kept draws (``num_samples`` rounded up to a multiple of 100) per chain (0: never).
        ``inference_info_['extra_draws']`` says how many ran. (Three times ``num_samples``
        had left 2 of 10 Old Faithful seeds at R-hat 1.015-1.017; with five, all ten reached
        1.01.)
    target_accept_prob : float, default=0.8
    max_tree_depth : int, default=10
        NUTS settings.
    init_components : 'bic' or int, default='bic'
        NUTS and VI: K of the EM fit that starts the chains, chosen by BIC (on at most
        ``INIT_SELECTION_ROWS`` rows) or given; the other ``T - K`` components start empty.
        The Gibbs chains start dispersed instead (k-means with 1, 2, 5 and 10 clusters for
        four chains and T = 10, up to T in general; see
        :func:`bayesgmm.engine.bayes.gibbs.chain_starts`).
    learning_rate, max_steps, tol, check_every, subsample_size, init_scale
        VI settings: Adam step size; step budget; stop when the mean loss per point changes by
        less than ``tol`` between chunks of ``check_every`` steps; minibatch size (None = all
        rows); initial guide scale in unconstrained space.
    credible_level : float, default=0.9
        Width of every credible interval (and credible set) reported.
    ambiguity_threshold : float, default=0.8
        A point is ``ambiguous`` when the posterior probability of its most probable cluster
        is below this.
    progress_bar : bool, default=True
    random_state : int, numpy Generator or RandomState, or None
    missing : {'error', 'marginalize'}, default='error'
        'marginalize' treats NaN as values missing at random (NUTS and VI): each point's
        likelihood is the density of its observed coordinates
        (:class:`~bayesgmm.engine.bayes.models.MaskedComponentNormals`), and the EM start
        handles them the same way. Rows with no observed value are left out with a warning.
        The Gibbs sampler needs complete rows.

    Attributes
    ----------
    weights_ : (T,), means_ : (T, D), covariances_ : (T, D, D)
        Posterior means of the relabelled parameters, in the data's units (Gibbs: means and
        covariances averaged over the draws in which the cluster is occupied).
    posterior_draws_ : :class:`~bayesgmm.engine.bayes.models.MixtureDraws`
        Relabelled draws in the data's units, shapes (S, T), (S, T, D), (S, T, D, D), with
        ``S = chains * draws`` (chain-major).
    concentration_draws_ : (S,) or None
    n_components_draws_ : (S,) K of each draw (Gibbs with the mixture of finite mixtures;
        T otherwise)
    log_likelihood_draws_ : (S,) total log-likelihood of the training data per draw
    occupied_draws_ : (S, T) training points per cluster (Gibbs: its assignments; NUTS and
        VI: assignments sampled from each draw)
    sample_stats_ : dict of (chains, draws) arrays
    inference_info_ : dict (Gibbs: split and merge acceptance, time, the starts)
    sampler_settings_ : dict, the resolved ``num_warmup``, ``num_samples``, ``num_chains``,
        ``thinning`` and weight prior
    em_start_ : GaussianMixture
        NUTS and VI: the EM fit (on standardised data) the inference started from.
    n_features_in_, feature_names_in_
    """

    #: What a file holds besides the parameters and public attributes: the internal units,
    #: the model, the training rows, the draws' (chains, draws) layout, the relabelling, the
    #: key of the summaries' passes, the sampler's own log-likelihood and occupancy, and
    #: q(z) of the training rows (method="vi"). The summaries of the training rows and the
    #: searched partitions are caches, rebuilt on first use after loading.
    _private_state = ("_scaling", "_model_spec", "_x_train", "_chain_shape",
                      "_relabel_permutations", "_summary_key", "_trace",
                      "_variational_training_membership")

    def _after_load(self) -> None:
        self._training_summary = None
        self._partitions = {}

    def __init__(self, n_components=10, *, covariance_type="full",
                 weight_concentration_prior_type=None, weight_concentration_prior=None,
                 method="gibbs", num_warmup=None, num_samples=None, num_chains=None,
                 thinning=None, max_extensions=5, target_accept_prob=0.8, max_tree_depth=10,
                 init_components="bic", learning_rate=0.01, max_steps=5000, tol=1e-4,
                 check_every=200, subsample_size=None, init_scale=0.01, credible_level=0.9,
                 ambiguity_threshold=AMBIGUITY_THRESHOLD, progress_bar=True, random_state=None,
                 missing="error"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.method = method
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
        self.thinning = thinning
        self.max_extensions = max_extensions
        self.target_accept_prob = target_accept_prob
        self.max_tree_depth = max_tree_depth
        self.init_components = init_components
        self.learning_rate = learning_rate
        self.max_steps = max_steps
        self.tol = tol
        self.check_every = check_every
        self.subsample_size = subsample_size
        self.init_scale = init_scale
        self.credible_level = credible_level
        self.ambiguity_threshold = ambiguity_threshold
        self.progress_bar = progress_bar
        self.random_state = random_state
        self.missing = missing

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Run the inference on ``X`` (n_samples, n_features); ``y`` is ignored."""
        if multi_process():
            raise ValueError("BayesianGaussianMixture does not run across several JAX "
                             "processes yet; fit it in one process (for large N, with "
                             "method='vi' and subsample_size)")
        allow_nan = check_missing_option(self.missing)
        x = check_array_input(X, self, reset=True, ensure_min_samples=2, allow_nan=allow_nan)
        if allow_nan:
            x = drop_empty_rows(x, getattr(self, "feature_names_in_", None))
        check_parameters(self, x.shape[0])
        check_enough_samples(x.shape[0], 1)
        summary = ColumnSummary.of(x)
        check_columns_informative(x, summary, getattr(self, "feature_names_in_", None))
        scaling = AffineScaling.standardise(summary.mean, summary.var)
        spec = model_spec(self, x.shape[1])._replace(missing_patterns=missing_patterns(x))
        if self.method in ("gibbs", "vi") and spec.missing:
            raise ValueError(f"method={self.method!r} needs complete rows: X has missing "
                             "values. Fit with method='nuts' or 'advi' and "
                             "missing='marginalize' (the likelihood of the observed "
                             "coordinates), or impute first")
        self.sampler_settings_ = sampler_settings(self)
        seed = seed_from(self.random_state)
        key = jax.random.PRNGKey(seed)
        if self.method == "nuts":  # compiles on the other core during the EM start
            prepare_nuts(spec, x.shape[0], self._nuts_settings())
        with compute_context(np.float64):
            standardised = scaling.transform(x)
            if self.method == "gibbs":
                self._fit_gibbs(x, standardised, scaling, spec, seed, key)
            elif self.method == "vi":
                self._fit_variational(x, standardised, scaling, spec, seed, key)
            else:  # NUTS and ADVI
                self._fit_from_em_start(x, standardised, scaling, spec, seed, key)
        self._warn_about_diagnostics()
        return self

    def _warn_about_diagnostics(self) -> None:
        from bayesgmm.engine.bayes.diagnostics import diagnostics_warnings
        for message in diagnostics_warnings(self):
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def describe(self) -> str:
        """One line on what was fitted: weights, T, method and run length."""
        check_is_fitted(self)
        settings = self.sampler_settings_
        weights = settings["weight_concentration_prior_type"].replace("_", " ")
        if self.method in ("vi", "advi"):
            draws = settings['num_samples'] * settings['num_chains']
            kind = {"cavi": "coordinate-ascent VI", "svi": "natural-gradient stochastic VI",
                    None: "automatic-differentiation VI"}[self.inference_info_.get("algorithm")]
            return (f"{weights} weights (T={self.n_components}), {kind}, {draws} draws "
                    "from the variational posterior")
        run = (f"{settings['num_chains']} chains x ({settings['num_warmup']} warm-up + "
               f"{settings['num_samples']} draws")
        if self.method == "gibbs":
            return (f"{weights} weights (T={self.n_components}), Gibbs sampler with "
                    f"split-merge moves, {run}, thinning {settings['thinning']})")
        return f"{weights} weights (T={self.n_components}), NUTS, {run})"

    # ------------------------------------------------------------------ prediction
    def predict_proba(self, X):
        """Posterior-mean membership probabilities, (n_samples, T) (VI: ``q(z)``, the
        variational posterior of the assignments)."""
        return self._memberships(self.validated_input(X))

    def predict(self, X):
        """Cluster with the largest posterior-mean membership, (n_samples,)."""
        return self.predict_proba(X).argmax(axis=1)

    def fit_predict(self, X, y=None):
        return self.fit(X).predict(X)

    def score_samples(self, X):
        """Posterior predictive log density of each sample, (n_samples,) (VI: that of ``q``, a
        mixture of Student t densities, :func:`bayesgmm.engine.bayes.variational_posterior.
        predictive_log_density`)."""
        x = self.validated_input(X)
        if self.method == "vi":
            return variational_posterior.predictive_log_density(
                self._scaling.transform(x), self.variational_params_, self._stick_breaking(),
                self.covariance_type) - self._scaling.log_det(x.shape[1])
        with compute_context(np.float64):
            return np.asarray(predictive_log_density(jnp.asarray(x, jnp.float64),
                                                     self.device_draws(),
                                                     patterns=missing_patterns(x)))

    def score(self, X, y=None):
        """Mean posterior predictive log density of ``X``."""
        return float(self.score_samples(X).mean())

    def sample(self, n_samples=1):
        """Draws from the posterior predictive: a posterior draw, then a point from it.

        Returns
        -------
        X : (n_samples, n_features)
        y : (n_samples,) cluster of each point
        """
        check_is_fitted(self)
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples={n_samples!r} is invalid: it must be an integer >= 1")
        rng = np.random.default_rng(seed_from(self.random_state))
        draws = self.posterior_draws_
        which = rng.integers(len(draws.means), size=n_samples)
        weights = np.exp(draws.log_weights[which])
        cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
        labels = np.minimum((rng.random(n_samples)[:, None] > cumulative).sum(axis=1),
                            cumulative.shape[1] - 1)
        noise = rng.standard_normal((n_samples, draws.means.shape[-1]))
        factor = draws.scale_tril[which, labels]
        return draws.means[which, labels] + np.einsum("nij,nj->ni", factor, noise), labels

    # ------------------------------------------------------------------ diagnostics
    def to_inference_data(self):
        """ArviZ ``InferenceData``: relabelled posterior, sample_stats, observed_data and the
        *marginal* pointwise log-likelihood (for ``az.loo``/``az.waic``)."""
        from bayesgmm.engine.bayes.diagnostics import to_inference_data
        return to_inference_data(self)

    def diagnostics(self) -> pd.DataFrame:
        """R-hat, bulk and tail ESS of the label-invariant quantities and of the relabelled
        parameters of the occupied clusters."""
        from bayesgmm.engine.bayes.diagnostics import diagnostics
        return diagnostics(self)
