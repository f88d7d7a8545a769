"""``BayesianGaussianMixture``: the scikit-learn-like shell of the NumPyro mixture.

``fit`` standardises the data, starts from an EM fit, runs NUTS or VI, relabels the draws
(Stephens 2000, started from the EM labelling) and maps them back to the data's units. All
summaries (``weights_``, ``means_``, memberships, segment sizes) are computed from relabelled
draws.
"""

from __future__ import annotations

import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted

from bayesgmm.bayes.inference import InferenceResult, prepare_nuts, run_nuts, run_svi
from bayesgmm.bayes.initial import initial_sites
from bayesgmm.bayes.models import (
    COMPONENT_TYPES,
    MixtureDraws,
    ModelSpec,
    draws_from_sites,
    missing_patterns,
)
from bayesgmm.bayes.posterior import (
    label_probability,
    membership_entropy,
    membership_probabilities,
    predictive_log_density,
    summarise_draws,
    to_data_units,
)
from bayesgmm.bayes.relabel import permute, stephens_relabel
from bayesgmm.estimator import GaussianMixture, _seed
from bayesgmm.io import Persistable
from bayesgmm.parallel import multi_process
from bayesgmm.preprocessing import AffineScaling, compute_context
from bayesgmm.validation import (
    ColumnSummary,
    check_array_input,
    check_columns_informative,
    check_enough_samples,
    check_missing_option,
    drop_empty_rows,
)

WEIGHT_PRIOR_TYPES = {"dirichlet_process": "dp", "dirichlet_distribution": "sparse"}
METHODS = ("nuts", "vi")
#: Rows used to choose the EM starting K by BIC (a random subsample of larger data).
INIT_SELECTION_ROWS = 2000
#: Points used to relabel the draws (Stephens' algorithm is O(draws x points x T^2)).
RELABEL_ROWS = 1000
#: Rows per chunk when per-draw probabilities of every point are needed.
_ROW_CHUNK = 4096


def _has_nan(x: np.ndarray) -> bool:
    """Whether rows ``x`` have missing values."""
    return bool(np.isnan(x).any())


class BayesianGaussianMixture(Persistable, DensityMixin, BaseEstimator):
    """Bayesian Gaussian mixture with Dirichlet-process or sparse Dirichlet weights, fitted by
    NUTS or variational inference in NumPyro (model: :mod:`bayesgmm.bayes.models`).

    Parameters
    ----------
    n_components : int, default=10
        Truncation level T: the largest number of clusters the model can use.
    covariance_type : {'full', 'diag'}, default='full'
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}
        Stick-breaking DP weights, or the sparse finite mixture ``Dirichlet(e0, ..., e0)``
        (prefer it to count clusters; see :mod:`bayesgmm.bayes.models`).
    weight_concentration_prior : float or None, default=None
        The DP's ``alpha`` or the Dirichlet's ``e0``. None puts a Gamma prior on it
        (``alpha ~ Gamma(2, 4)``, Escobar & West 1995; ``e0 ~ Gamma(10, 1000)``, mean 0.01).
        Unlike scikit-learn, whose None means the fixed value 1/T.
    method : {'nuts', 'vi'}, default='nuts'
    num_warmup, num_samples, num_chains : int, default 500, 500, 2
        NUTS settings. VI draws ``num_samples * num_chains`` times from the fitted guide.
    target_accept_prob : float, default=0.8
    max_tree_depth : int, default=10
    init_components : 'bic' or int, default='bic'
        K of the EM fit that starts the chains: chosen by BIC (on at most
        ``INIT_SELECTION_ROWS`` rows), or given. The other ``T - K`` components start empty.
    learning_rate, max_steps, tol, check_every, subsample_size, init_scale
        VI settings: Adam step size; step budget; stop when the mean loss per point changes by
        less than ``tol`` between chunks of ``check_every`` steps; minibatch size (None = all
        rows); initial guide scale in unconstrained space.
    credible_level : float, default=0.9
        Width of every credible interval reported.
    ambiguity_threshold : float, default=0.8
        A point is ``ambiguous`` when the posterior probability of its most probable cluster
        is below this.
    progress_bar : bool, default=True
    random_state : int, numpy Generator or RandomState, or None
    missing : {'error', 'marginalize'}, default='error'
        'marginalize' treats NaN as values missing at random: each point's likelihood is the
        density of its observed coordinates (:class:`~bayesgmm.bayes.models.
        MaskedComponentNormals`), for NUTS and VI alike, and the EM start handles them the
        same way (:class:`~bayesgmm.GaussianMixture`). Rows with no observed value are left
        out with a warning. Missing values cost one D x D factorisation per (missingness
        pattern, component) and an (N, T, D, D) gather in every gradient evaluation: fine for
        thousands of rows, heavy for 1e5.

    Attributes
    ----------
    weights_ : (T,), means_ : (T, D), covariances_ : (T, D, D)
        Posterior means of the relabelled parameters, in the data's units.
    posterior_draws_ : :class:`~bayesgmm.bayes.models.MixtureDraws`
        Relabelled draws in the data's units, shapes (S, T), (S, T, D), (S, T, D, D), with
        ``S = chains * draws`` (chain-major).
    concentration_draws_ : (S,) or None
    log_likelihood_draws_ : (S,) total log-likelihood of the training data per draw
    occupied_draws_ : (S, T) training points per cluster under sampled assignments
        These two come from one pass over all draws and the training data, run at the end
        of a NUTS fit (for its R-hat check) and on first use after VI.
    sample_stats_ : dict of (chains, draws) arrays (NUTS)
    inference_info_ : dict
    em_start_ : GaussianMixture
        The EM fit (on standardised data) the inference started from.
    n_features_in_, feature_names_in_
    """

    def __init__(self, n_components=10, *, covariance_type="full",
                 weight_concentration_prior_type="dirichlet_process",
                 weight_concentration_prior=None, method="nuts", num_warmup=500,
                 num_samples=500, num_chains=2, target_accept_prob=0.8, max_tree_depth=10,
                 init_components="bic", learning_rate=0.01, max_steps=5000, tol=1e-4,
                 check_every=200, subsample_size=None, init_scale=0.01, credible_level=0.9,
                 ambiguity_threshold=0.8, progress_bar=True, random_state=None,
                 missing="error"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.method = method
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
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
    def _check_parameters(self, n_samples: int) -> None:
        def require(ok, name, what):
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: {what}")

        def positive_int(value):
            return isinstance(value, numbers.Integral) and not isinstance(value, bool) \
                and value >= 1

        def positive_real(value):
            return isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0

        require(positive_int(self.n_components) and self.n_components >= 2, "n_components",
                "the truncation level must be an integer >= 2")
        require(self.covariance_type in COMPONENT_TYPES, "covariance_type",
                f"choose one of {COMPONENT_TYPES}")
        require(self.weight_concentration_prior_type in WEIGHT_PRIOR_TYPES,
                "weight_concentration_prior_type", f"choose one of {tuple(WEIGHT_PRIOR_TYPES)}")
        require(self.weight_concentration_prior is None
                or positive_real(self.weight_concentration_prior),
                "weight_concentration_prior", "it must be None (Gamma prior) or a number > 0")
        require(self.method in METHODS, "method", f"choose one of {METHODS}")
        require(isinstance(self.num_warmup, numbers.Integral) and self.num_warmup >= 0,
                "num_warmup", "it must be an integer >= 0")
        for name in ("num_samples", "num_chains", "max_tree_depth", "max_steps", "check_every"):
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
        weights = WEIGHT_PRIOR_TYPES[self.weight_concentration_prior_type]
        fixed = (None if self.weight_concentration_prior is None
                 else float(self.weight_concentration_prior))
        return ModelSpec(self.n_components, n_features, self.covariance_type, weights,
                         alpha=fixed if weights == "dp" else None,
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
        seed = _seed(self.random_state)
        key = jax.random.PRNGKey(seed)
        if self.method == "nuts":  # compiles on the other core during the EM start
            prepare_nuts(spec, x.shape[0], **self._nuts_settings())
        with compute_context(np.float64):
            standardised = scaling.transform(x)
            self.em_start_ = self._em_start(standardised, seed)
            start = initial_sites(self.em_start_.weights_, self.em_start_.means_,
                                  self.em_start_._full_covariances(), spec, x.shape[0])
            result = self._infer(standardised, spec, start, jax.random.fold_in(key, 1))
            draws, concentration = self._relabelled_draws(result, spec, standardised)
            self._store(x, scaling, spec, result, to_data_units(draws, scaling), concentration,
                        jax.random.fold_in(key, 2))
        self._warn_about_diagnostics()
        return self

    def _em_start(self, y: np.ndarray, seed: int) -> GaussianMixture:
        """The EM fit (standardised units) that starts the chains; see ``init_components``.

        With K chosen by BIC on all rows, the selected fit itself (3 restarts) is the start;
        chosen on a subsample, K is refitted on all rows. (Refitting the selected K on the
        same rows had cost a second compiled program, ~2 s of a 272-row NUTS fit, for the
        same fit.)
        """
        from bayesgmm.selection import select_model

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
                                      random_state=seed, missing=missing)
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
        return dict(num_warmup=self.num_warmup, num_samples=self.num_samples,
                    target_accept_prob=self.target_accept_prob,
                    max_tree_depth=self.max_tree_depth)

    def _infer(self, y: np.ndarray, spec: ModelSpec, start: dict, key) -> InferenceResult:
        y = jnp.asarray(y, jnp.float64)
        if self.method == "nuts":
            return run_nuts(y, spec, start, key, num_chains=self.num_chains,
                            progress_bar=self.progress_bar, **self._nuts_settings())
        return run_svi(y, spec, start, key, learning_rate=self.learning_rate,
                       max_steps=self.max_steps, tol=self.tol, check_every=self.check_every,
                       subsample_size=self.subsample_size,
                       num_draws=self.num_samples * self.num_chains,
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
        rows = np.random.default_rng(0).permutation(y.shape[0])[:RELABEL_ROWS]
        points = jnp.asarray(y[rows])
        prob = np.asarray(membership_probabilities(points, MixtureDraws(
            *(jnp.asarray(a) for a in draws)), patterns=missing_patterns(points)))
        reference = np.zeros((len(rows), spec.n_components))
        em = self.em_start_
        order = np.argsort(-em.weights_, kind="stable")[: spec.n_components]
        reference[:, : len(order)] = em.predict_proba(y[rows])[:, order]
        perms, _ = stephens_relabel(prob, reference)
        self._relabel_permutations = perms
        return MixtureDraws(permute(draws.log_weights, perms), permute(draws.means, perms),
                            permute(draws.scale_tril, perms)), concentration

    def _store(self, x, scaling, spec, result, draws: MixtureDraws, concentration, key) -> None:
        self._scaling = scaling
        self._model_spec = spec
        self._x_train = x
        self.posterior_draws_ = draws
        self.concentration_draws_ = concentration
        self.sample_stats_ = result.sample_stats
        self.inference_info_ = result.info
        covariances = draws.scale_tril @ np.swapaxes(draws.scale_tril, -1, -2)
        self.weights_ = np.exp(draws.log_weights).mean(axis=0)
        self.means_ = draws.means.mean(axis=0)
        self.covariances_ = covariances.mean(axis=0)
        self._summary_key = key
        self._training_summary = None
        if self.method == "nuts":  # the R-hat check at the end of fit needs them
            self._summaries()

    def _summaries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean membership (N, T), log-likelihood per draw (S,), occupancy (S, T)) of the
        training data: one pass over all draws, computed on first use and kept."""
        if self._training_summary is None:
            self._training_summary = self._summarise(self._x_train, self._summary_key)
        return self._training_summary

    @property
    def log_likelihood_draws_(self) -> np.ndarray:
        """(S,) total log-likelihood of the training data under each draw."""
        check_is_fitted(self)
        return self._summaries()[1]

    @property
    def occupied_draws_(self) -> np.ndarray:
        """(S, T) training points per cluster under assignments sampled from each draw."""
        check_is_fitted(self)
        return self._summaries()[2]

    def _device_draws(self) -> MixtureDraws:
        return MixtureDraws(*(jnp.asarray(a, jnp.float64) for a in self.posterior_draws_))

    def _summarise(self, x: np.ndarray, key):
        with compute_context(np.float64):
            out = summarise_draws(jnp.asarray(x, jnp.float64), self._device_draws(), key,
                                  patterns=missing_patterns(x))
            return tuple(np.asarray(a) for a in out)

    def _warn_about_diagnostics(self) -> None:
        from bayesgmm.diagnostics import diagnostics_warnings
        for message in diagnostics_warnings(self):
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    # ------------------------------------------------------------------ prediction
    def _validated(self, X) -> np.ndarray:
        check_is_fitted(self)
        return check_array_input(X, self, reset=False,
                                 allow_nan=check_missing_option(self.missing))

    def predict_proba(self, X):
        """Posterior-mean membership probabilities, (n_samples, T)."""
        x = self._validated(X)
        return self._summarise(x, jax.random.PRNGKey(0))[0]

    def predict(self, X):
        """Cluster with the largest posterior-mean membership, (n_samples,)."""
        return self.predict_proba(X).argmax(axis=1)

    def fit_predict(self, X, y=None):
        return self.fit(X).predict(X)

    def score_samples(self, X):
        """Posterior predictive log density of each sample, (n_samples,)."""
        x = self._validated(X)
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
        rng = np.random.default_rng(_seed(self.random_state))
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
        """Posterior of the number of occupied clusters (at least one training point under
        assignments sampled from each draw), indexed by that number."""
        check_is_fitted(self)
        counts = (self.occupied_draws_ > 0).sum(axis=1)
        values, frequency = np.unique(counts, return_counts=True)
        return pd.Series(frequency / len(counts), index=pd.Index(values, name="n_clusters"),
                         name="probability")

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
        membership = (self._summaries()[0] if X is None
                      else self._summarise(x, jax.random.PRNGKey(0))[0])
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

    def to_inference_data(self):
        """ArviZ ``InferenceData``: relabelled posterior, sample_stats, observed_data and the
        *marginal* pointwise log-likelihood (for ``az.loo``/``az.waic``)."""
        from bayesgmm.diagnostics import to_inference_data
        return to_inference_data(self)

    def diagnostics(self) -> pd.DataFrame:
        """R-hat, bulk and tail ESS of the label-invariant quantities and of the relabelled
        parameters of the occupied clusters."""
        from bayesgmm.diagnostics import diagnostics
        return diagnostics(self)
