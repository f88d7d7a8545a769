"""The passes of a fitted :class:`~bayesgmm.estimators.bayesian.BayesianGaussianMixture` over
rows with its posterior draws: which draws a pass uses, the memberships of rows, and the
per-draw log-likelihood and occupancy of the training rows (kept once computed).

:class:`PosteriorDraws` is a mixin of the estimator: it reads the fitted state that
:class:`~bayesgmm.estimators.bayesian_fitting.PosteriorFitting` stores (``posterior_draws_``,
``_x_train``, ``_chain_shape``, ``_trace``, ``_summary_key``, ``_scaling``) and keeps its
cache in ``_training_summary``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.base.estimator_api import check_is_fitted
from bayesgmm.base.validation import check_array_input, check_missing_option
from bayesgmm.engine.bayes import variational
from bayesgmm.engine.bayes.coclustering import evenly_spaced
from bayesgmm.engine.bayes.models import MixtureDraws, ModelSpec, missing_patterns
from bayesgmm.engine.bayes.posterior import summarise_draws
from bayesgmm.engine.preprocessing import compute_context

#: Draws used by the passes over rows (memberships, densities, intervals) of Gibbs fits:
#: every draw while draws x rows is at most PASS_ROW_DRAWS, else evenly spaced draws within
#: each chain, as many as the budget allows but at least PASS_DRAWS.
PASS_ROW_DRAWS = 20_000_000
PASS_DRAWS = 1000


class PosteriorDraws:
    """Passes over rows with the fitted draws (a mixin of ``BayesianGaussianMixture``)."""

    @property
    def chain_shape_(self) -> tuple[int, int]:
        """(chains, kept draws per chain) of the fit; the draws are stored chain-major."""
        check_is_fitted(self)
        return self._chain_shape

    @property
    def training_rows_(self) -> np.ndarray:
        """The training rows (N, D) in the data's units (NaN where missing)."""
        check_is_fitted(self)
        return self._x_train

    @property
    def model_spec_(self) -> ModelSpec:
        """The fitted model's :class:`~bayesgmm.engine.bayes.models.ModelSpec` (its covariance
        type, weight prior and hyperparameters)."""
        check_is_fitted(self)
        return self._model_spec

    def validated_input(self, X) -> np.ndarray:
        """The rows of ``X`` (n, D) checked against the fitted model (its columns, finite
        values; NaN only with ``missing='marginalize'``), as a float array."""
        check_is_fitted(self)
        return check_array_input(X, self, reset=False,
                                 allow_nan=check_missing_option(self.missing))

    def device_draws(self, most: int | None = None) -> MixtureDraws:
        """The pass draws on the device, float64, shapes (S', T), (S', T, D), (S', T, D, D):
        every draw (NUTS, VI; Gibbs while draws x training rows is at most
        :data:`PASS_ROW_DRAWS`), else evenly spaced draws within each chain. With ``most``,
        at most that many of them, evenly spaced (the label-free summaries use
        :data:`~bayesgmm.estimators.bayesian_summaries.SUMMARY_DRAWS`)."""
        index = self._pass_index()
        if most is not None:
            index = index[evenly_spaced(len(index), most)]
        return MixtureDraws(*(jnp.asarray(a[index], jnp.float64)
                              for a in self.posterior_draws_))

    def _pass_index(self) -> np.ndarray:
        """Indices (S',) into the chain-major draws of the draws used by passes over rows
        (see :meth:`device_draws`): at least ``PASS_DRAWS`` of them."""
        chains, n_draws = self._chain_shape
        wanted = max(PASS_DRAWS, PASS_ROW_DRAWS // max(1, self._x_train.shape[0]))
        if self.method != "gibbs" or chains * n_draws <= wanted:
            return np.arange(chains * n_draws)
        per_chain = min(n_draws, -(-wanted // chains))
        within = np.unique(np.linspace(0, n_draws - 1, per_chain).round().astype(int))
        return (np.arange(chains)[:, None] * n_draws + within[None, :]).reshape(-1)

    def _summarise(self, x: np.ndarray, key) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean membership (n, T), log-likelihood per pass draw (S',), occupancy sampled
        with ``key`` (S', T)) of validated rows ``x`` (n, D)."""
        with compute_context(np.float64):
            out = summarise_draws(jnp.asarray(x, jnp.float64), self.device_draws(), key,
                                  patterns=missing_patterns(x))
            return tuple(np.asarray(a) for a in out)

    def _memberships(self, x: np.ndarray) -> np.ndarray:
        """Posterior-mean memberships (n, T) of validated rows ``x`` (n, D); ``q(z)`` for
        method='vi'."""
        if self.method == "vi":
            return self._variational_membership(x)
        return self._summarise(x, jax.random.PRNGKey(0))[0]

    def _variational_membership(self, x: np.ndarray) -> np.ndarray:
        """``q(z_i = k)`` (n, T) of validated rows ``x`` (method='vi')."""
        return variational.memberships(self._scaling.transform(x), self.variational_params_,
                                       self._stick_breaking(), self.covariance_type)

    def _stick_breaking(self) -> bool:
        return self.sampler_settings_["weight_concentration_prior_type"] == "dirichlet_process"

    def _summaries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean membership (N, T), log-likelihood per draw (S,), occupancy (S, T)) of the
        training data, computed on first use and kept: one pass over the draws (NUTS, VI), or
        the sampler's own log-likelihood and assignments with a pass over the pass draws for
        the memberships (Gibbs)."""
        if self._training_summary is None:
            membership, log_likelihood, occupancy = self._summarise(self._x_train,
                                                                    self._summary_key)
            if self.method == "vi":
                membership, occupancy = self.training_membership(), self._trace[1]
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

    def training_membership(self) -> np.ndarray:
        """Posterior-mean memberships of the training rows (N, T); ``q(z)`` for VI."""
        if self.method == "vi":
            return self._variational_training_membership
        return self._summaries()[0]
