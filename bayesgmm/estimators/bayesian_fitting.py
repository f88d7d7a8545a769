"""The fitting paths of :class:`~bayesgmm.estimators.bayesian.BayesianGaussianMixture`, after
``fit`` has validated and standardised the data: the Gibbs sampler, variational inference
on the conjugate mixture, and NUTS/ADVI on the NumPyro model started from an EM fit; the
relabelling of their draws (Stephens 2000) and the fitted state they store.

:class:`PosteriorFitting` is a mixin of the estimator. Every path ends in :meth:`_store`,
which sets the public fitted attributes and the persisted private state (``_scaling``,
``_model_spec``, ``_x_train``, ``_chain_shape``, ``_relabel_permutations``, ``_summary_key``,
``_trace``, ``_variational_training_membership``).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.core.partition import WeightPrior
from bayesgmm.engine.bayes import variational
from bayesgmm.engine.bayes.gibbs import (
    SamplerSettings,
    flatten_chains,
    relabel_reference,
    run_gibbs,
)
from bayesgmm.engine.bayes.inference import (
    InferenceResult,
    NutsSettings,
    SviSettings,
    run_nuts,
    run_svi,
)
from bayesgmm.engine.bayes.initial import initial_sites
from bayesgmm.engine.bayes.models import (
    MixtureDraws,
    ModelSpec,
    draws_from_sites,
    missing_patterns,
)
from bayesgmm.engine.bayes.posterior import membership_probabilities, to_data_units
from bayesgmm.engine.bayes.relabel import permute, stephens_relabel
from bayesgmm.engine.bayes.variational_posterior import posterior_draws
from bayesgmm.engine.preprocessing import AffineScaling
from bayesgmm.estimators.bayesian_parameters import WEIGHT_PRIOR_TYPES, resolved_setting
from bayesgmm.estimators.gaussian import GaussianMixture

#: Rows used to choose the EM starting K by BIC (a random subsample of larger data).
INIT_SELECTION_ROWS = 2000
#: Points used to relabel the draws (Stephens' algorithm is O(draws x points x T^2)), and the
#: most per-draw memberships (draws x points x T) it may hold at once.
RELABEL_ROWS = 1000
RELABEL_BUDGET = 10_000_000


def _has_nan(x: np.ndarray) -> bool:
    """Whether rows ``x`` have missing values."""
    return bool(np.isnan(x).any())


def _permuted(draws: MixtureDraws, perms: np.ndarray) -> MixtureDraws:
    """``draws`` with each draw's components reordered by its permutation (S, T)."""
    return MixtureDraws(permute(draws.log_weights, perms), permute(draws.means, perms),
                        permute(draws.scale_tril, perms))


class PosteriorFitting:
    """The inference, relabelling and storing steps of ``fit`` (a mixin of
    ``BayesianGaussianMixture``). ``x`` is the validated data (N, D) in its own units, ``y``
    the standardised rows, ``scaling`` the map between them."""

    def _fit_gibbs(self, x: np.ndarray, y: np.ndarray, scaling: AffineScaling,
                   spec: ModelSpec, seed: int, key) -> None:
        """Run the Gibbs sampler on standardised rows ``y`` and store its relabelled draws."""
        weights = WeightPrior.named(resolved_setting(self, "weight_concentration_prior_type"),
                                    spec.alpha if spec.weights != "sparse" else spec.e0)
        settings = SamplerSettings(*(resolved_setting(self, name) for name in (
            "num_warmup", "num_samples", "num_chains", "thinning")), self.max_extensions)
        result = run_gibbs(y, self.covariance_type, weights, self.n_components, seed,
                           settings, self.progress_bar)
        records = result.records
        self._chain_shape = tuple(records.counts.shape[:2])
        draws = MixtureDraws(flatten_chains(records.log_weights), flatten_chains(records.means),
                             result.config.family.cholesky_of_factors(
                                 flatten_chains(records.covariance_factor)))
        counts = flatten_chains(records.counts)
        # The sampler's log-likelihood is of the standardised rows: back to the data's units.
        log_likelihood = (flatten_chains(records.log_likelihood)
                          - x.shape[0] * scaling.log_det(x.shape[1]))
        perms = self._relabel(y, draws, lambda prob, rows: relabel_reference(
            prob, (counts > 0).sum(axis=1), log_likelihood, np.exp(draws.log_weights)))
        relabelled = _permuted(draws, perms)
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
        self._average_where_occupied(occupied > 0)

    def _average_where_occupied(self, share: np.ndarray) -> None:
        """``means_`` and ``covariances_`` of the clusters occupied in some draw: averages
        over the draws where they are occupied (``share``, (S, T) bool)."""
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
        weights = WEIGHT_PRIOR_TYPES[resolved_setting(self, "weight_concentration_prior_type")]
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
        chains = resolved_setting(self, "num_chains")
        n_draws = resolved_setting(self, "num_samples")
        self._chain_shape = (chains, n_draws)
        draws = posterior_draws(fitted.params, weights == "dp", chains * n_draws,
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

    def _fit_from_em_start(self, x: np.ndarray, y: np.ndarray, scaling: AffineScaling,
                           spec: ModelSpec, seed: int, key) -> None:
        """NUTS or ADVI on the NumPyro model, started from an EM fit of ``y``; store the
        relabelled draws."""
        self.em_start_ = self._em_start(y, seed)
        start = initial_sites(self.em_start_.weights_, self.em_start_.means_,
                              self.em_start_.full_covariances(), spec, x.shape[0])
        result = self._infer(y, spec, start, jax.random.fold_in(key, 1))
        draws, concentration = self._relabelled_draws(result, spec, y)
        self._store(x, scaling, spec, result, to_data_units(draws, scaling),
                    concentration, jax.random.fold_in(key, 2))

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

    def _nuts_settings(self) -> NutsSettings:
        """The settings of the NUTS run (all but ``num_chains`` shape its compiled program)."""
        return NutsSettings(resolved_setting(self, "num_warmup"),
                            resolved_setting(self, "num_samples"),
                            resolved_setting(self, "num_chains"), self.target_accept_prob,
                            self.max_tree_depth)

    def _infer(self, y: np.ndarray, spec: ModelSpec, start: dict, key) -> InferenceResult:
        """NUTS or ADVI (``method``) on standardised rows ``y`` from the ``start`` sites."""
        y = jnp.asarray(y, jnp.float64)
        if self.method == "nuts":
            return run_nuts(y, spec, start, key, self._nuts_settings(),
                            progress_bar=self.progress_bar)
        settings = SviSettings(self.learning_rate, self.max_steps, self.tol, self.check_every,
                               self.subsample_size,
                               num_draws=(resolved_setting(self, "num_samples")
                                          * resolved_setting(self, "num_chains")),
                               init_scale=self.init_scale)
        return run_svi(y, spec, start, key, settings, progress_bar=self.progress_bar)

    def _relabelled_draws(self, result: InferenceResult, spec: ModelSpec,
                          y: np.ndarray) -> tuple[MixtureDraws, np.ndarray | None]:
        """Flatten (chain, draw), relabel by Stephens' algorithm started at the EM labels.
        Returns the draws (S, T, ...) in standardised units and the concentration (S,) when
        the model samples it."""
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
        return _permuted(draws, perms), concentration

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

    def _store(self, x: np.ndarray, scaling: AffineScaling, spec: ModelSpec,
               result: InferenceResult, draws: MixtureDraws, concentration: np.ndarray | None,
               key) -> None:
        """Keep the fit: the training rows ``x`` (N, D), the relabelled ``draws`` in data
        units, the concentration draws (S,) or None, the posterior-mean parameters and the
        ``key`` of the summaries' passes; the caches start empty."""
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
