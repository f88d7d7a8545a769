"""``BayesianGaussianMixture``: the scikit-learn-like shell of the Bayesian mixtures.

``fit`` standardises the data, runs the inference (by default the Gibbs sampler of
:mod:`bayesgmm.core.gibbs` on the conjugate mixture; NUTS or VI on the NumPyro model of
:mod:`bayesgmm.engine.bayes.models`, started from an EM fit), relabels the draws (Stephens 2000) and
maps them back to the data's units. All per-cluster summaries (``weights_``, ``means_``,
memberships, segment sizes) are computed from relabelled draws; the number of clusters, the
log-likelihood and the sorted weights need no labels.
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
    is_int,
)
from bayesgmm.core.partition import WeightPrior
from bayesgmm.engine.bayes import variational
from bayesgmm.engine.bayes.cluster_prior import (
    StickBreakingPrior,
    occupied_prior,
    prior_series,
    side_by_side,
    simulated_occupied_prior,
)
from bayesgmm.engine.bayes.coclustering import (
    PartitionEstimate,
    belonging,
    check_loss,
    estimate_partition,
    evenly_spaced,
    member_memberships,
    similarity_from_memberships,
)
from bayesgmm.engine.bayes.gibbs import (
    SamplerSettings,
    covariance_factors_to_tril,
    flatten_chains,
    relabel_reference,
    run_gibbs,
)
from bayesgmm.engine.bayes.inference import InferenceResult, prepare_nuts, run_nuts, run_svi
from bayesgmm.engine.bayes.initial import initial_sites
from bayesgmm.engine.bayes.models import (
    COMPONENT_TYPES,
    MixtureDraws,
    ModelSpec,
    draws_from_sites,
    missing_patterns,
)
from bayesgmm.engine.bayes.posterior import (
    cluster_affinity,
    label_probability,
    membership_entropy,
    membership_probabilities,
    predictive_log_density,
    summarise_draws,
    to_data_units,
)
from bayesgmm.engine.bayes.relabel import permute, stephens_relabel
from bayesgmm.engine.parallel import multi_process
from bayesgmm.engine.preprocessing import AffineScaling, compute_context
from bayesgmm.estimators.gaussian import GaussianMixture

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
#: Rows used to choose the EM starting K by BIC (a random subsample of larger data).
INIT_SELECTION_ROWS = 2000
#: Points used to relabel the draws (Stephens' algorithm is O(draws x points x T^2)), and the
#: most per-draw memberships (draws x points x T) it may hold at once.
RELABEL_ROWS = 1000
RELABEL_BUDGET = 10_000_000
#: Draws used by the passes over rows (memberships, densities, intervals) of Gibbs fits:
#: every draw while draws x rows is at most PASS_ROW_DRAWS, else evenly spaced draws within
#: each chain, as many as the budget allows but at least PASS_DRAWS.
PASS_ROW_DRAWS = 20_000_000
PASS_DRAWS = 1000
#: Rows per chunk when per-draw probabilities of every point are needed.
_ROW_CHUNK = 4096
#: Draws used by the label-free summaries (similarity, partition, belonging): evenly spaced
#: over the pass draws.
SUMMARY_DRAWS = 1000
#: Rows per chunk of the belonging pass (draws x rows x clusters per chunk).
_BELONGING_CHUNK = 1024


def credible_set(posterior: pd.Series, level: float) -> list[int]:
    """The fewest values of a discrete posterior (index -> probability) whose probabilities
    add up to at least ``level``, taken most probable first; returned sorted."""
    ordered = posterior.sort_values(ascending=False, kind="stable")
    needed = int(np.searchsorted(np.cumsum(ordered.to_numpy()), level - 1e-12)) + 1
    return sorted(int(k) for k in ordered.index[:needed])


def _has_nan(x: np.ndarray) -> bool:
    """Whether rows ``x`` have missing values."""
    return bool(np.isnan(x).any())


class BayesianGaussianMixture(Persistable, DensityMixin, BaseEstimator):
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
        The Gibbs chains start dispersed instead (1, 2, 3, 4 clusters for four chains, see
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

    # ------------------------------------------------------------------ parameters
    def _resolved(self, name: str):
        """A setting that may be None: its own value, or the method's default."""
        value = getattr(self, name)
        return METHOD_DEFAULTS[self.method][name] if value is None else value

    def _check_parameters(self, n_samples: int) -> None:
        def require(ok, name, what):
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: {what}")

        def positive_int(value):
            return isinstance(value, numbers.Integral) and not isinstance(value, bool) \
                and value >= 1

        def positive_real(value):
            return isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0

        require(self.method in METHODS, "method", f"choose one of {METHODS}")
        require(positive_int(self.n_components) and self.n_components >= 2, "n_components",
                "the truncation level must be an integer >= 2")
        require(self.covariance_type in COMPONENT_TYPES, "covariance_type",
                f"choose one of {COMPONENT_TYPES}")
        require(self.weight_concentration_prior_type is None
                or self.weight_concentration_prior_type in WEIGHT_PRIOR_TYPES,
                "weight_concentration_prior_type",
                f"choose one of {tuple(WEIGHT_PRIOR_TYPES)} or None")
        if (self.method != "gibbs"
                and self._resolved("weight_concentration_prior_type")
                == "mixture_of_finite_mixtures"):
            raise ValueError(
                f"weight_concentration_prior_type='mixture_of_finite_mixtures' needs "
                f"method='gibbs' (method={self.method!r} cannot sample the number of "
                "components); use 'dirichlet_process' or 'dirichlet_distribution' with it")
        require(self.weight_concentration_prior is None
                or positive_real(self.weight_concentration_prior),
                "weight_concentration_prior", "it must be None (a prior) or a number > 0")
        require(self.num_warmup is None or (isinstance(self.num_warmup, numbers.Integral)
                                            and not isinstance(self.num_warmup, bool)
                                            and self.num_warmup >= 0),
                "num_warmup", "it must be None or an integer >= 0")
        require(isinstance(self.max_extensions, numbers.Integral)
                and not isinstance(self.max_extensions, bool) and self.max_extensions >= 0,
                "max_extensions", "it must be an integer >= 0")
        for name in ("num_samples", "num_chains", "thinning"):
            value = getattr(self, name)
            require(value is None or positive_int(value), name,
                    "it must be None or an integer >= 1")
        for name in ("max_tree_depth", "max_steps", "check_every"):
            require(positive_int(getattr(self, name)), name, "it must be an integer >= 1")
        require(positive_real(self.target_accept_prob) and self.target_accept_prob < 1,
                "target_accept_prob", "it must lie in (0, 1)")
        require(self.init_components == "bic" or positive_int(self.init_components),
                "init_components", "use 'bic' or an integer >= 1")
        for name in ("learning_rate", "init_scale"):
            require(positive_real(getattr(self, name)), name, "it must be a number > 0")
        require(isinstance(self.tol, numbers.Real) and self.tol >= 0, "tol",
                "it must be a number >= 0")
        require(self.subsample_size is None or (positive_int(self.subsample_size)
                                                and self.subsample_size <= n_samples),
                "subsample_size", f"use None or an integer in [1, n_samples={n_samples}]")
        for name in ("credible_level", "ambiguity_threshold"):
            value = getattr(self, name)
            require(positive_real(value) and value < 1, name, "it must lie in (0, 1)")

    def _spec(self, n_features: int) -> ModelSpec:
        weights = WEIGHT_PRIOR_TYPES[self._resolved("weight_concentration_prior_type")]
        fixed = (None if self.weight_concentration_prior is None
                 else float(self.weight_concentration_prior))
        return ModelSpec(self.n_components, n_features, self.covariance_type, weights,
                         alpha=fixed if weights != "sparse" else None,
                         e0=fixed if weights == "sparse" else None)

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
        self._check_parameters(x.shape[0])
        check_enough_samples(x.shape[0], 1)
        summary = ColumnSummary.of(x)
        check_columns_informative(x, summary, getattr(self, "feature_names_in_", None))
        scaling = AffineScaling.standardise(summary.mean, summary.var)
        spec = self._spec(x.shape[1])._replace(missing_patterns=missing_patterns(x))
        if self.method in ("gibbs", "vi") and spec.missing:
            raise ValueError(f"method={self.method!r} needs complete rows: X has missing "
                             "values. Fit with method='nuts' or 'advi' and "
                             "missing='marginalize' (the likelihood of the observed "
                             "coordinates), or impute first")
        self.sampler_settings_ = {
            name: self._resolved(name) for name in ("num_warmup", "num_samples", "num_chains",
                                                    "thinning",
                                                    "weight_concentration_prior_type")}
        seed = seed_from(self.random_state)
        key = jax.random.PRNGKey(seed)
        if self.method == "nuts":  # compiles on the other core during the EM start
            prepare_nuts(spec, x.shape[0], **self._nuts_settings())
        with compute_context(np.float64):
            standardised = scaling.transform(x)
            if self.method == "gibbs":
                self._fit_gibbs(x, standardised, scaling, spec, seed, key)
            elif self.method == "vi":
                self._fit_variational(x, standardised, scaling, spec, seed, key)
            else:
                self.em_start_ = self._em_start(standardised, seed)
                start = initial_sites(self.em_start_.weights_, self.em_start_.means_,
                                      self.em_start_.full_covariances(), spec, x.shape[0])
                result = self._infer(standardised, spec, start, jax.random.fold_in(key, 1))
                draws, concentration = self._relabelled_draws(result, spec, standardised)
                self._store(x, scaling, spec, result, to_data_units(draws, scaling),
                            concentration, jax.random.fold_in(key, 2))
        self._warn_about_diagnostics()
        return self

    def _fit_gibbs(self, x: np.ndarray, y: np.ndarray, scaling: AffineScaling,
                   spec: ModelSpec, seed: int, key) -> None:
        """Run the Gibbs sampler on standardised rows ``y`` and store its relabelled draws."""
        weights = WeightPrior.named(self._resolved("weight_concentration_prior_type"),
                                    spec.alpha if spec.weights != "sparse" else spec.e0)
        settings = SamplerSettings(self._resolved("num_warmup"), self._resolved("num_samples"),
                                   self._resolved("num_chains"), self._resolved("thinning"),
                                   self.max_extensions)
        result = run_gibbs(y, self.covariance_type, weights, self.n_components, seed,
                           settings, self.progress_bar)
        records = result.records
        self._chain_shape = tuple(records.counts.shape[:2])
        draws = MixtureDraws(flatten_chains(records.log_weights), flatten_chains(records.means),
                             covariance_factors_to_tril(flatten_chains(records.covariance_factor),
                                                        self.covariance_type))
        counts = flatten_chains(records.counts)
        # The sampler's log-likelihood is of the standardised rows: back to the data's units.
        log_likelihood = (flatten_chains(records.log_likelihood)
                          - x.shape[0] * scaling.log_det(x.shape[1]))
        perms = self._relabel(y, draws, lambda prob, rows: relabel_reference(
            prob, (counts > 0).sum(axis=1), log_likelihood, np.exp(draws.log_weights)))
        relabelled = MixtureDraws(permute(draws.log_weights, perms), permute(draws.means, perms),
                                  permute(draws.scale_tril, perms))
        chains, n_draws = self._chain_shape
        occupied = permute(counts, perms)
        n_components = flatten_chains(records.n_components)
        stats = {"n_components": n_components.reshape(chains, n_draws),
                 "n_occupied": (occupied > 0).sum(axis=1).reshape(chains, n_draws)}
        info = dict(result.info)
        info["settings"] = dict(vars(info["settings"]))
        concentration = (flatten_chains(records.concentration) if spec.concentration_site
                         else None)
        self._store(x, scaling, spec, InferenceResult({}, stats, info),
                    to_data_units(relabelled, scaling), concentration,
                    jax.random.fold_in(key, 2))
        self.n_components_draws_ = n_components
        self._trace = (log_likelihood, occupied)
        share = occupied > 0
        seen = share.sum(axis=0)
        covariances = self.posterior_draws_.scale_tril @ np.swapaxes(
            self.posterior_draws_.scale_tril, -1, -2)
        conditional = np.where(seen > 0, seen, 1)
        self.means_ = np.where((seen > 0)[:, None], np.einsum(
            "st,std->td", share, self.posterior_draws_.means) / conditional[:, None],
            self.means_)
        self.covariances_ = np.where((seen > 0)[:, None, None], np.einsum(
            "st,stij->tij", share, covariances) / conditional[:, None, None], self.covariances_)

    def _fit_variational(self, x: np.ndarray, y: np.ndarray, scaling: AffineScaling,
                         spec: ModelSpec, seed: int, key) -> None:
        """Coordinate-ascent or stochastic VI on the conjugate mixture
        (:mod:`bayesgmm.engine.bayes.variational`) from the EM start; store draws from ``q``."""
        weights = WEIGHT_PRIOR_TYPES[self._resolved("weight_concentration_prior_type")]
        prior = variational.conjugate_prior(y, self.covariance_type, weights,
                                            self.weight_concentration_prior, self.n_components)
        n_clusters = None if self.init_components == "bic" else int(self.init_components)
        start, start_info = variational.start(y, prior, self.covariance_type,
                                              self.n_components, n_clusters, tol=self.tol,
                                              seed=seed)
        fitted = variational.fit(y, start, prior, self.covariance_type, tol=self.tol,
                                 max_steps=self.max_steps, subsample_size=self.subsample_size,
                                 seed=seed)
        fitted.info.update(start_info)
        chains, n_draws = self._resolved("num_chains"), self._resolved("num_samples")
        self._chain_shape = (chains, n_draws)
        draws = variational.posterior_draws(fitted.params, weights == "dp", chains * n_draws,
                                            seed, self.covariance_type)
        self.variational_params_ = fitted.params
        # The concentration is fixed in the variational model (the hyperprior's mean).
        fixed = float(prior.concentration)
        spec = spec._replace(alpha=fixed) if weights == "dp" else spec._replace(e0=fixed)
        self._store(x, scaling, spec, InferenceResult({}, {}, fitted.info),
                    to_data_units(draws, scaling), None, jax.random.fold_in(key, 2))
        # The assignments' posterior is q(z): memberships and occupancy come from it.
        membership = fitted.memberships
        occupancy = variational.occupancy_draws(membership, chains * n_draws, seed)
        self._trace = (None, occupancy)
        self._variational_training_membership = membership

    def _variational_membership(self, x: np.ndarray) -> np.ndarray:
        """``q(z_i = k)`` (n, T) of validated rows ``x`` (method='vi')."""
        return variational.memberships(self._scaling.transform(x), self.variational_params_,
                                       self._stick_breaking(), self.covariance_type)

    def _stick_breaking(self) -> bool:
        return self.sampler_settings_["weight_concentration_prior_type"] == "dirichlet_process"

    def _em_start(self, y: np.ndarray, seed: int) -> GaussianMixture:
        """The EM fit (standardised units) that starts the chains; see ``init_components``.

        With K chosen by BIC on all rows, the selected fit itself (3 restarts) is the start;
        chosen on a subsample, K is refitted on all rows. (Refitting the selected K on the
        same rows would cost a second compiled program for the same fit.)
        """
        from bayesgmm.estimators.selection import select_model

        n_samples = y.shape[0]
        missing = "marginalize" if _has_nan(y) else "error"
        settings = dict(covariance_type=self.covariance_type, n_init=3, random_state=seed,
                        missing=missing)
        if self.init_components == "bic":
            rng = np.random.default_rng(seed)
            subsample = n_samples > INIT_SELECTION_ROWS
            rows = (rng.choice(n_samples, INIT_SELECTION_ROWS, replace=False) if subsample
                    else slice(None))
            largest = max(1, min(self.n_components, y[rows].shape[0] // 10))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                chosen = select_model(y[rows], n_components=range(1, largest + 1),
                                      covariance_types=(self.covariance_type,), n_init=3,
                                      random_state=seed, missing=missing,
                                      finish_tol=None)  # a start: the sweep's fit will do
            if not subsample:
                return chosen.best_
            n_start = chosen.best_.n_components
        else:
            n_start = min(int(self.init_components), self.n_components, n_samples)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return GaussianMixture(n_start, **settings).fit(y)

    def _nuts_settings(self) -> dict:
        """The settings that shape the compiled NUTS program."""
        return dict(num_warmup=self._resolved("num_warmup"),
                    num_samples=self._resolved("num_samples"),
                    target_accept_prob=self.target_accept_prob,
                    max_tree_depth=self.max_tree_depth)

    def _infer(self, y: np.ndarray, spec: ModelSpec, start: dict, key) -> InferenceResult:
        y = jnp.asarray(y, jnp.float64)
        if self.method == "nuts":
            return run_nuts(y, spec, start, key, num_chains=self._resolved("num_chains"),
                            progress_bar=self.progress_bar, **self._nuts_settings())
        return run_svi(y, spec, start, key, learning_rate=self.learning_rate,
                       max_steps=self.max_steps, tol=self.tol, check_every=self.check_every,
                       subsample_size=self.subsample_size,
                       num_draws=self._resolved("num_samples") * self._resolved("num_chains"),
                       init_scale=self.init_scale, progress_bar=self.progress_bar)

    def _relabelled_draws(self, result: InferenceResult, spec: ModelSpec,
                          y: np.ndarray) -> tuple[MixtureDraws, np.ndarray | None]:
        """Flatten (chain, draw), relabel by Stephens' algorithm started at the EM labels."""
        chains, n_draws = next(iter(result.sites.values())).shape[:2]
        self._chain_shape = (chains, n_draws)
        flat = {k: jnp.asarray(v.reshape((-1, *v.shape[2:]))) for k, v in result.sites.items()}
        draws = MixtureDraws(*(np.asarray(a) for a in draws_from_sites(flat, spec)))
        concentration = (np.asarray(flat[spec.concentration_site])
                         if spec.concentration_site else None)

        def em_reference(prob, rows):
            reference = np.zeros((len(rows), spec.n_components))
            em = self.em_start_
            order = np.argsort(-em.weights_, kind="stable")[: spec.n_components]
            reference[:, : len(order)] = em.predict_proba(y[rows])[:, order]
            return reference

        perms = self._relabel(y, draws, em_reference)
        return MixtureDraws(permute(draws.log_weights, perms), permute(draws.means, perms),
                            permute(draws.scale_tril, perms)), concentration

    def _relabel(self, y: np.ndarray, draws: MixtureDraws, reference_of) -> np.ndarray:
        """Stephens' permutations (S, T) of ``draws`` (standardised units), from the per-draw
        memberships of a random subset of the rows ``y``: at most ``RELABEL_ROWS``, fewer when
        draws x rows x T would exceed ``RELABEL_BUDGET``. ``reference_of(prob, rows)`` gives
        the starting reference (rows, T)."""
        n_draws, n_slots = draws.log_weights.shape
        n_rows = int(min(RELABEL_ROWS, max(50, RELABEL_BUDGET // (n_draws * n_slots))))
        rows = np.random.default_rng(0).permutation(y.shape[0])[:n_rows]
        points = jnp.asarray(y[rows])
        prob = np.asarray(membership_probabilities(points, MixtureDraws(
            *(jnp.asarray(a) for a in draws)), patterns=missing_patterns(points)))
        perms, _ = stephens_relabel(prob, reference_of(prob, rows))
        self._relabel_permutations = perms
        return perms

    def _store(self, x, scaling, spec, result, draws: MixtureDraws, concentration, key) -> None:
        self._scaling = scaling
        self._model_spec = spec
        self._x_train = x
        self.posterior_draws_ = draws
        self.concentration_draws_ = concentration
        self.n_components_draws_ = np.full(len(draws.means), self.n_components)
        self.sample_stats_ = result.sample_stats
        self.inference_info_ = result.info
        covariances = draws.scale_tril @ np.swapaxes(draws.scale_tril, -1, -2)
        self.weights_ = np.exp(draws.log_weights).mean(axis=0)
        self.means_ = draws.means.mean(axis=0)
        self.covariances_ = covariances.mean(axis=0)
        self._summary_key = key
        self._training_summary = None
        self._trace = None
        self._partitions = {}
        if self.method == "nuts":  # the R-hat check at the end of fit needs them
            self._summaries()

    def _summaries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean membership (N, T), log-likelihood per draw (S,), occupancy (S, T)) of the
        training data, computed on first use and kept: one pass over the draws (NUTS, VI), or
        the sampler's own log-likelihood and assignments with a pass over the pass draws for
        the memberships (Gibbs)."""
        if self._training_summary is None:
            membership, log_likelihood, occupancy = self._summarise(self._x_train,
                                                                    self._summary_key)
            if self.method == "vi":
                membership, occupancy = self._training_membership(), self._trace[1]
            elif self._trace is not None:
                log_likelihood, occupancy = self._trace
            self._training_summary = (membership, log_likelihood, occupancy)
        return self._training_summary

    def _draw_summary(self) -> tuple[np.ndarray, np.ndarray]:
        """(log-likelihood (S,), occupancy (S, T)) of every draw, without a pass if the
        sampler recorded them."""
        if self._trace is None or self._trace[0] is None:
            return self._summaries()[1:]
        return self._trace

    @property
    def log_likelihood_draws_(self) -> np.ndarray:
        """(S,) total log-likelihood of the training data under each draw."""
        check_is_fitted(self)
        return self._draw_summary()[0]

    @property
    def occupied_draws_(self) -> np.ndarray:
        """(S, T) training points per cluster (Gibbs: the sampler's assignments; NUTS and
        ADVI: assignments sampled from each draw; VI: assignments drawn from ``q(z)``)."""
        check_is_fitted(self)
        return self._trace[1] if self._trace is not None else self._draw_summary()[1]

    def _training_membership(self) -> np.ndarray:
        """Posterior-mean memberships of the training rows (N, T); ``q(z)`` for VI."""
        if self.method == "vi":
            return self._variational_training_membership
        return self._summaries()[0]

    def _pass_index(self) -> np.ndarray:
        """Indices of the draws used by passes over rows: every draw (NUTS, VI; Gibbs while
        draws x training rows is at most ``PASS_ROW_DRAWS``), else evenly spaced draws within
        each chain (the budget's worth, at least ``PASS_DRAWS``)."""
        chains, n_draws = self._chain_shape
        wanted = max(PASS_DRAWS, PASS_ROW_DRAWS // max(1, self._x_train.shape[0]))
        if self.method != "gibbs" or chains * n_draws <= wanted:
            return np.arange(chains * n_draws)
        per_chain = min(n_draws, -(-wanted // chains))
        within = np.unique(np.linspace(0, n_draws - 1, per_chain).round().astype(int))
        return (np.arange(chains)[:, None] * n_draws + within[None, :]).reshape(-1)

    def _device_draws(self, most: int | None = None) -> MixtureDraws:
        """The pass draws on the device; with ``most``, at most that many of them, evenly
        spaced (the label-free summaries use ``SUMMARY_DRAWS``)."""
        index = self._pass_index()
        if most is not None:
            index = index[evenly_spaced(len(index), most)]
        return MixtureDraws(*(jnp.asarray(a[index], jnp.float64)
                              for a in self.posterior_draws_))

    def _summarise(self, x: np.ndarray, key):
        with compute_context(np.float64):
            out = summarise_draws(jnp.asarray(x, jnp.float64), self._device_draws(), key,
                                  patterns=missing_patterns(x))
            return tuple(np.asarray(a) for a in out)

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
    def _validated(self, X) -> np.ndarray:
        check_is_fitted(self)
        return check_array_input(X, self, reset=False,
                                 allow_nan=check_missing_option(self.missing))

    def predict_proba(self, X):
        """Posterior-mean membership probabilities, (n_samples, T) (VI: ``q(z)``, the
        variational posterior of the assignments)."""
        x = self._validated(X)
        if self.method == "vi":
            return self._variational_membership(x)
        return self._summarise(x, jax.random.PRNGKey(0))[0]

    def predict(self, X):
        """Cluster with the largest posterior-mean membership, (n_samples,)."""
        return self.predict_proba(X).argmax(axis=1)

    def fit_predict(self, X, y=None):
        return self.fit(X).predict(X)

    def score_samples(self, X):
        """Posterior predictive log density of each sample, (n_samples,) (VI: that of ``q``, a
        mixture of Student t densities, :func:`bayesgmm.engine.bayes.variational.
        predictive_log_density`)."""
        x = self._validated(X)
        if self.method == "vi":
            return variational.predictive_log_density(
                self._scaling.transform(x), self.variational_params_, self._stick_breaking(),
                self.covariance_type) - self._scaling.log_det(x.shape[1])
        with compute_context(np.float64):
            return np.asarray(predictive_log_density(jnp.asarray(x, jnp.float64),
                                                     self._device_draws(),
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

    # ------------------------------------------------------------------ summaries
    def _interval(self, values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
        tail = (1 - self.credible_level) / 2
        return (np.quantile(values, tail, axis=axis), np.quantile(values, 1 - tail, axis=axis))

    def n_clusters_posterior(self) -> pd.Series:
        """Posterior of the number of occupied clusters K+ (clusters with at least one
        training point: the Gibbs sampler's assignments, or assignments sampled from each
        NUTS/VI draw), indexed by that number.

        ``attrs`` holds the ``mode``, the ``credible_set`` (the fewest values whose total
        probability reaches ``credible_level``, most probable first, then sorted) and the
        ``credible_level``.
        """
        check_is_fitted(self)
        counts = (self.occupied_draws_ > 0).sum(axis=1)
        values, frequency = np.unique(counts, return_counts=True)
        series = pd.Series(frequency / len(counts), index=pd.Index(values, name="n_clusters"),
                           name="probability")
        series.attrs.update(mode=int(series.idxmax()),
                            credible_set=credible_set(series, self.credible_level),
                            credible_level=self.credible_level)
        return series

    def segment_sizes(self) -> pd.DataFrame:
        """Share of training points per cluster (sampled assignments) and the weight, with
        credible intervals; clusters ordered by label, unoccupied ones dropped."""
        check_is_fitted(self)
        share = self.occupied_draws_ / self.occupied_draws_.sum(axis=1, keepdims=True)
        weights = np.exp(self.posterior_draws_.log_weights)
        share_low, share_high = self._interval(share)
        weight_low, weight_high = self._interval(weights)
        table = pd.DataFrame({"share": share.mean(axis=0), "share_lower": share_low,
                              "share_upper": share_high, "weight": weights.mean(axis=0),
                              "weight_lower": weight_low, "weight_upper": weight_high,
                              "p_occupied": (self.occupied_draws_ > 0).mean(axis=0)})
        table.index.name = "cluster"
        return table[table["share"] > 0]

    def assignment_uncertainty(self, X=None) -> pd.DataFrame:
        """How sure each point's cluster assignment is (training data when ``X`` is None).

        Columns: ``label`` (largest posterior-mean membership), ``probability`` (its posterior
        mean), ``probability_lower``/``probability_upper`` (``credible_level`` interval of the
        membership probability across draws), ``entropy`` (nats, of the posterior-mean
        memberships), ``ambiguous`` (``probability < ambiguity_threshold``).
        """
        check_is_fitted(self)
        x = self._x_train if X is None else self._validated(X)
        if X is None:
            membership = self._training_membership()
        elif self.method == "vi":
            membership = self._variational_membership(x)
        else:
            membership = self._summarise(x, jax.random.PRNGKey(0))[0]
        return self._uncertainty_table(x, membership)

    def _uncertainty_table(self, x: np.ndarray, membership: np.ndarray) -> pd.DataFrame:
        """:meth:`assignment_uncertainty` of validated rows ``x`` (n, D) whose posterior-mean
        memberships (n, T) are already computed."""
        labels = membership.argmax(axis=1)
        lower, upper = np.empty(len(x)), np.empty(len(x))
        with compute_context(np.float64):
            draws = self._device_draws()
            for start in range(0, len(x), _ROW_CHUNK):
                rows = slice(start, start + _ROW_CHUNK)
                per_draw = np.asarray(label_probability(
                    jnp.asarray(x[rows], jnp.float64), draws, jnp.asarray(labels[rows]),
                    patterns=missing_patterns(x[rows])))
                lower[rows], upper[rows] = self._interval(per_draw)
        probability = membership[np.arange(len(x)), labels]
        return pd.DataFrame({"label": labels, "probability": probability,
                             "probability_lower": lower, "probability_upper": upper,
                             "entropy": membership_entropy(membership),
                             "ambiguous": probability < self.ambiguity_threshold})

    # ------------------------------------------------------------------ label-free summaries
    def n_clusters_prior(self, n_samples: int | None = None) -> pd.Series:
        """The prior on the number of occupied clusters K+ that the fitted model's weight prior
        implies for ``n_samples`` points (default: the training rows), indexed by K+ = 1..T.

        Exact for symmetric Dirichlet weights (every Gibbs prior; the sparse finite mixture of
        the other methods): the Pólya-urn distribution of K+ summed over K and integrated over
        the concentration's prior. Simulated for truncated stick-breaking (the DP of VI, NUTS
        and ADVI). See :mod:`bayesgmm.engine.bayes.cluster_prior`; ``attrs`` holds the ``method``,
        ``n_samples`` and the prior ``mean``.
        """
        check_is_fitted(self)
        n = self._x_train.shape[0] if n_samples is None else n_samples
        if not is_int(n) or n < 1:
            raise ValueError(f"n_samples={n_samples!r} is invalid: it must be an integer >= 1")
        spec, n, t = self._model_spec, int(n), self.n_components
        if self.method != "gibbs" and spec.weights == "dp":
            fixed = spec.alpha
            return prior_series(simulated_occupied_prior(n, StickBreakingPrior(
                fixed, spec.alpha_shape, spec.alpha_rate), t, seed=seed_from(self.random_state)),
                "simulation", n)
        if self.method == "gibbs":
            weights = WeightPrior.named(self.sampler_settings_["weight_concentration_prior_type"],
                                        spec.alpha if spec.weights != "sparse" else spec.e0)
        else:  # sparse finite mixture: Dirichlet(e0), e0 fixed or Gamma(shape, shape / mean)
            weights = WeightPrior(False, False, spec.e0,
                                  ("gamma", spec.e0_shape, spec.e0_shape / spec.e0_mean))
        return prior_series(occupied_prior(n, weights, t), "exact", n)

    def n_clusters_table(self, smallest: float = 0.001) -> pd.DataFrame:
        """The prior (:meth:`n_clusters_prior`, at the training N) and the posterior
        (:meth:`n_clusters_posterior`) of K+ as two rows, ``prior`` and ``posterior``, with the
        columns where either reaches ``smallest``."""
        return side_by_side(self.n_clusters_prior(), self.n_clusters_posterior(), smallest)

    def _per_draw_memberships(self, x: np.ndarray) -> np.ndarray:
        """Per-draw membership probabilities (S, n, T) of validated rows ``x``."""
        with compute_context(np.float64):
            return np.asarray(membership_probabilities(
                jnp.asarray(x, jnp.float64), self._device_draws(SUMMARY_DRAWS),
                patterns=missing_patterns(x)))

    def _summary_rows(self, n_rows: int, max_rows) -> np.ndarray:
        """All of ``n_rows`` rows, or a random ``max_rows`` of them (sorted), seeded by
        ``random_state``."""
        if not is_int(max_rows) or max_rows < 2:
            raise ValueError(f"max_rows={max_rows!r} is invalid: it must be an integer >= 2")
        if n_rows <= max_rows:
            return np.arange(n_rows)
        rng = np.random.default_rng(seed_from(self.random_state))
        return np.sort(rng.choice(n_rows, int(max_rows), replace=False))

    def posterior_similarity(self, X=None, *, max_rows: int = 1000) -> pd.DataFrame:
        """The posterior co-clustering matrix ``P(z_i = z_j | data)`` of the training rows
        (or of the rows of ``X``), on a random ``max_rows`` of them when there are more.

        Label-free (see :mod:`bayesgmm.engine.bayes.coclustering`): the mean over draws of
        ``sum_k p_ik p_jk``. Returns a square DataFrame indexed both ways by row position.
        """
        check_is_fitted(self)
        x = self._x_train if X is None else self._validated(X)
        rows = self._summary_rows(x.shape[0], max_rows)
        similarity = similarity_from_memberships(self._per_draw_memberships(x[rows]))
        index = pd.Index(rows, name="row")
        return pd.DataFrame(similarity, index=index, columns=index.rename("row_"))

    def _partition(self, loss: str, max_rows) -> PartitionEstimate:
        """The loss-optimal partition of (a sample of) the training rows, searched once."""
        key = f"{loss}:{max_rows}"
        if not hasattr(self, "_partitions"):  # a model saved before partitions were kept
            self._partitions = {}
        if key not in self._partitions:
            rows = self._summary_rows(self._x_train.shape[0], max_rows)
            found = estimate_partition(self._per_draw_memberships(self._x_train[rows]), rows,
                                       loss, seed_from(self.random_state))
            self._partitions[key] = (found.rows, found.labels, found.expected_loss)
        rows, labels, expected = self._partitions[key]
        return PartitionEstimate(np.asarray(rows), np.asarray(labels), float(expected), loss)

    def estimate_partition(self, X=None, *, loss: str = "vi",
                           max_rows: int = 1000) -> pd.DataFrame:
        """The partition minimising the posterior expected ``loss`` ('vi': variation of
        information, Wade & Ghahramani 2018; 'binder'), with how surely each row belongs to
        its cluster. No labels are involved, so label switching cannot blur it.

        The partition is searched (SALSO-style, :mod:`bayesgmm.core.salso`) on the training
        rows, or on a random ``max_rows`` of them; every other row, and every row of ``X``,
        joins the cluster it belongs with most.

        Returns
        -------
        DataFrame, one row per training row (or row of ``X``):
            ``cluster`` (0 the largest); ``belonging``: the posterior probability that the
            row shares its component with a member of its cluster, averaged over the members
            (itself left out); ``belonging_lower``/``belonging_upper``: its
            ``credible_level`` interval across draws; ``searched``: the row was in the search.
            ``attrs``: ``loss``, ``expected_loss``, ``n_clusters``, ``n_searched``.
        """
        check_is_fitted(self)
        check_loss(loss)
        estimate = self._partition(loss, max_rows)
        x = self._x_train if X is None else self._validated(X)
        means = member_memberships(self._per_draw_memberships(self._x_train[estimate.rows]),
                                   estimate.labels)                             # (S, C, T)
        sizes = np.bincount(estimate.labels)
        member_of = np.full(x.shape[0], -1)
        if X is None:
            member_of[estimate.rows] = estimate.labels
        cluster = np.empty(x.shape[0], np.int64)
        value, lower, upper = (np.empty(x.shape[0]) for _ in range(3))
        with compute_context(np.float64):
            draws, device_means = self._device_draws(SUMMARY_DRAWS), jnp.asarray(means)
            for start in range(0, x.shape[0], _BELONGING_CHUNK):
                rows = slice(start, start + _BELONGING_CHUNK)
                affinity, overlap = (np.asarray(a) for a in cluster_affinity(
                    jnp.asarray(x[rows], jnp.float64), draws, device_means,
                    patterns=missing_patterns(x[rows])))
                per_draw = belonging(affinity, overlap, sizes, member_of[rows])
                average = per_draw.mean(axis=0)
                chosen = np.where(member_of[rows] >= 0, member_of[rows],
                                  np.nan_to_num(average, nan=-1.0).argmax(axis=1))
                picked = per_draw[:, np.arange(len(chosen)), chosen]            # (S, n)
                cluster[rows], value[rows] = chosen, picked.mean(axis=0)
                lower[rows], upper[rows] = self._interval(picked)
        table = pd.DataFrame({"cluster": cluster, "belonging": value, "belonging_lower": lower,
                              "belonging_upper": upper, "searched": member_of >= 0})
        table.attrs.update(loss=loss, expected_loss=estimate.expected_loss,
                           n_clusters=len(sizes), n_searched=len(estimate.rows))
        return table

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
