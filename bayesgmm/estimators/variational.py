"""``VariationalGaussianMixture``: scikit-learn's ``BayesianGaussianMixture``, compiled.

The same model, variational family, priors, defaults, updates, lower bound, stopping rule,
parameters, fitted attributes and methods as :class:`sklearn.mixture.BayesianGaussianMixture`
(so ``from bayesgmm.mixture import BayesianGaussianMixture`` is a drop-in), computed by
coordinate ascent in one compiled JAX program: the EM core's GEMM-shaped E-step and additive
statistics (:mod:`bayesgmm.core.variational`), the iterations in ``lax.while_loop``, the
``n_init`` restarts vmapped.

It is a class of its own rather than a mode of :class:`bayesgmm.BayesianGaussianMixture`
because a drop-in needs scikit-learn's signature and defaults (one component, Dirichlet-process
weights, ``kmeans`` start, ``max_iter=100``) and its attributes, while the Bayesian estimator
has the sampler's (ten components, a mixture of finite mixtures, posterior draws). That
estimator's ``method="vi"`` runs this one's engine.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.base.config import numpy_rng, seed_from
from bayesgmm.base.estimator_api import (
    BaseEstimator,
    DensityMixin,
    check_is_fitted,
    convergence_warning,
)
from bayesgmm.base.io import Persistable
from bayesgmm.base.program_cache import persistent_jit
from bayesgmm.base.validation import check_array_input
from bayesgmm.core import variational, variational_updates
from bayesgmm.core.covariance import get_family
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.init import init_draws, start_responsibilities
from bayesgmm.core.stats import BlockedData, natural_log_prob
from bayesgmm.core.variational_updates import VariationalParams
from bayesgmm.engine.preprocessing import AffineScaling, compute_context, compute_dtype, to_blocks
from bayesgmm.engine.restarts import print_history
from bayesgmm.engine.streaming import ChunkedSource, chunked, prepare_stream, stream_covariance
from bayesgmm.engine.streaming_variational import run_streaming_cavi, scaled_start
from bayesgmm.engine.training import TrainingData
from bayesgmm.engine.variational_prior import PriorSettings, bound_shift
from bayesgmm.estimators.mixture_api import (
    ComponentScores,
    check_mixture_parameters,
    sample_mixture,
)

_fit_restarts = persistent_jit(variational.fit_restarts, static_argnames=("family", "max_iter"))
_continue_fit = persistent_jit(variational.continue_fit, static_argnames=("family", "max_iter"))


@persistent_jit(static_argnames="family")
def _expected_log_prob(data: BlockedData, params: VariationalParams, stick_breaking,
                       family: CovarianceFamily):
    """``E_q[log pi_k + log N(x | mu_k, Lambda_k)]`` per block: (n_blocks, block_rows, K)."""
    natural = variational_updates.expected_natural(params, stick_breaking, family)
    return jax.lax.map(lambda f: natural_log_prob(f, natural), data.features)


class VariationalGaussianMixture(ComponentScores, Persistable, DensityMixin, BaseEstimator):
    """Variational Bayesian Gaussian mixture: scikit-learn's ``BayesianGaussianMixture``,
    compiled with JAX.

    The model (Bishop 2006, ch. 10; Blei & Jordan 2006) has a Dirichlet-process (stick-breaking,
    truncated at ``n_components``) or finite Dirichlet prior on the weights, and Normal-Wishart
    components: ``Lambda_k ~ Wishart(degrees_of_freedom_prior, covariance_prior^-1)``,
    ``mu_k | Lambda_k ~ N(mean_prior, (mean_precision_prior Lambda_k)^-1)``. The fit maximises
    the evidence lower bound over a factorised ``q`` by coordinate ascent: each iteration is
    one pass over the rows, as an EM iteration.

    Parameters
    ----------
    All of scikit-learn's, with the same defaults and meaning:

    n_components : int, default=1
        Upper bound on the number of components (the truncation).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Stop when the lower bound (a total over rows) changes by less than ``tol``.
    reg_covar : float, default=1e-6
    max_iter : int, default=100
    n_init : int, default=1
        Restarts, vmapped in one compiled program; the highest lower bound wins.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        The starting responsibilities (as :class:`bayesgmm.GaussianMixture`: k-means on
        columns scaled to unit variance; the random draws are not scikit-learn's).
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}
    weight_concentration_prior : float > 0, default ``1 / n_components``
    mean_precision_prior : float > 0, default 1
    mean_prior : (n_features,), default the data mean
    degrees_of_freedom_prior : float > n_features - 1, default n_features
    covariance_prior : default the data covariance (full, tied: ``np.cov``), the per-feature
        variances (diag) or their mean (spherical), all with ``ddof=1``
    random_state, warm_start, verbose, verbose_interval : as scikit-learn
        (``verbose`` lines are printed after the compiled loop has run)
    dtype : {'float64', 'float32'}, default='float64'
        Arithmetic of the compiled program (bayesgmm's addition; float64 agrees with
        scikit-learn to rounding).

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : as scikit-learn
    weight_concentration_prior_, weight_concentration_ : float; a tuple ``(a, b)`` of (K,)
        Beta parameters (Dirichlet process) or (K,) Dirichlet parameters
    mean_precision_prior_, mean_precision_ (K,), mean_prior_ (D,)
    degrees_of_freedom_prior_, degrees_of_freedom_ (K,; tied: float)
    covariance_prior_
    converged_, n_iter_, lower_bound_, lower_bounds_ : of the best restart
    n_features_in_, feature_names_in_
    """

    _private_state = ("_scaling",)  # the internal units of the fitted parameters


    def __init__(self, *, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans",
                 weight_concentration_prior_type="dirichlet_process",
                 weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
                 degrees_of_freedom_prior=None, covariance_prior=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10, dtype="float64"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.dtype = dtype

    # ------------------------------------------------------------------ parameters
    def _check_parameters(self) -> None:
        check_mixture_parameters(self)
        PriorSettings.of(self).check()

    def _resolve_priors(self, mean: np.ndarray, covariance: np.ndarray) -> PriorSettings:
        """Set the ``*_prior_`` attributes (scikit-learn's defaults from the data's ``mean``
        (D,) and sample ``covariance`` (D, D), ``ddof=1``), checked in scikit-learn's order,
        and return them as settings."""
        settings = PriorSettings.of(self)
        self.weight_concentration_prior_ = settings.resolved_weight_concentration(
            self.n_components)
        self.mean_precision_prior_ = settings.resolved_mean_precision()
        self.mean_prior_ = settings.resolved_mean(mean)
        self.degrees_of_freedom_prior_ = settings.resolved_dof(mean.shape[0])
        self.covariance_prior_ = settings.resolved_covariance(get_family(self.covariance_type),
                                                              covariance)
        return PriorSettings.fitted(self)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Fit the variational posterior by coordinate ascent (``n_init`` restarts).

        Parameters
        ----------
        X : array-like (n_samples, n_features), or data too large for memory (a
            ``numpy.memmap``, a Parquet file or directory, a chunk iterator: as
            :meth:`bayesgmm.GaussianMixture.fit`), fitted by the same iterations with one read
            of the data each, started from a reservoir sample
        y : ignored

        Returns
        -------
        self
        """
        self._fit(X)
        return self

    def fit_predict(self, X, y=None):
        """Fit, then return the labels (n_samples,) of ``X`` under the fitted model."""
        return self._fit(X).predict(X)

    def _fit(self, X):
        self._check_parameters()
        source = chunked(X)
        if source is not None:
            return self._fit_stream(source)
        warm = bool(self.warm_start) and hasattr(self, "converged_")
        previous = self._internal_params(self._scaling) if warm else None
        previous_bound = self.lower_bound_ if warm else None
        previous_features = getattr(self, "n_features_in_", None)
        data = TrainingData.prepare(X, self, self.n_components, self.reg_covar)
        if warm and data.x.shape[1] != previous_features:
            raise ValueError(f"warm_start: X has {data.x.shape[1]} features but the previous "
                             f"fit had {previous_features}")
        settings = self._resolve_priors(mean=data.x.mean(axis=0),
                                        covariance=np.atleast_2d(np.cov(data.x.T)))
        family = get_family(self.covariance_type)
        dtype = compute_dtype(self.dtype)
        scaling = data.scaling
        n_dims = data.x.shape[1]
        log_scale = float(np.log(scaling.scale))
        with compute_context(dtype):
            prior = settings.internal(scaling, dtype)
            blocks = data.blocks(family, dtype)
            reg_covar = np.asarray(self.reg_covar / scaling.scale**2, dtype)
            tol = np.asarray(self.tol, dtype)
            if warm:
                params = VariationalParams(*(jnp.asarray(a, dtype) for a in previous))
                start = previous_bound - bound_shift(previous.dof, n_dims, log_scale)
                state = _continue_fit(params, jnp.asarray(start, dtype), blocks, prior,
                                      reg_covar, tol, family=family, max_iter=self.max_iter)
            else:
                resp = self._start_responsibilities(blocks, n_dims)
                state = _fit_restarts(resp, blocks, prior, reg_covar, tol, family=family,
                                      max_iter=self.max_iter)
            state = jax.device_get(state)
        shift = bound_shift(state.params.dof, n_dims, log_scale)
        self._store(state, shift, scaling)
        return self

    def _fit_stream(self, source: ChunkedSource):
        """:meth:`fit` on a chunked source (:mod:`bayesgmm.engine.streaming_variational`): the
        same iterations, each one read of the data with the E-step's sums added over chunks.
        The restarts start from a reservoir sample's responsibilities, their statistics scaled
        to the whole data."""
        if self.warm_start:
            raise ValueError("warm_start is not supported for chunked sources")
        seed = seed_from(self.random_state)
        stream = prepare_stream(source, self, self.n_components, self.reg_covar, seed)
        first, scaling = stream.first, stream.scaling
        settings = self._resolve_priors(first.mean,
                                        stream_covariance(source, first.mean, first.n_rows))
        family = get_family(self.covariance_type)
        dtype = compute_dtype(self.dtype)
        n_dims = first.mean.shape[0]
        with compute_context(dtype):
            prior = settings.internal(scaling, dtype)
            reg_covar = np.asarray(self.reg_covar / scaling.scale**2, dtype)
            tol = np.asarray(self.tol, dtype)
            sample = stream.sample.blocks(family, dtype)
            resp = self._start_responsibilities(sample, n_dims)
            state = scaled_start(resp, sample, prior, reg_covar,
                                 np.asarray(first.n_rows / len(first.sample), dtype),
                                 family=family, max_iter=self.max_iter)
            state = run_streaming_cavi(
                state, source, lambda chunk: stream.blocks_of(chunk, family, dtype), prior,
                reg_covar, tol, family=family, max_iter=self.max_iter)
            state = jax.device_get(state)
        self._store(state, bound_shift(state.params.dof, n_dims, float(np.log(scaling.scale))),
                    scaling)
        self.n_rows_streamed_ = first.n_rows
        return self

    def _start_responsibilities(self, blocks: BlockedData, n_dims: int):
        """(n_init, n_blocks, block_rows, K) starting responsibilities from ``init_params``."""
        draws = init_draws(seed_from(self.random_state), self.n_init, self.init_params,
                           self.n_components)
        return start_responsibilities(jnp.asarray(draws, blocks.features.dtype),
                                      blocks.features, blocks.weight, n_dims=n_dims,
                                      n_components=self.n_components, method=self.init_params)

    def _store(self, state: variational.CaviState, shift: np.ndarray,
               scaling: AffineScaling) -> None:
        """Keep the restart with the highest lower bound (the first among equals), in the
        data's units, and warn if it did not converge."""
        bounds = np.asarray(state.lower_bound, np.float64) + shift
        n_iter = np.asarray(state.n_iter)
        if self.max_iter == 0:
            best = 0
        else:
            finite = np.where(np.isnan(bounds), -np.inf, bounds)
            best = int(np.argmax(finite))
        family = get_family(self.covariance_type)
        params = VariationalParams(*(np.asarray(a[best], np.float64) for a in state.params))
        if self.weight_concentration_prior_type == "dirichlet_process":
            self.weight_concentration_ = (params.concentration[0], params.concentration[1])
        else:
            self.weight_concentration_ = params.concentration[0]
        with compute_context(np.float64):
            self.weights_ = np.asarray(variational_updates.mean_weights(
                jnp.asarray(params.concentration),
                self.weight_concentration_prior_type == "dirichlet_process"))
            self.mean_precision_ = params.mean_precision
            self.means_ = scaling.inverse_transform(params.means)
            self.degrees_of_freedom_ = (float(params.dof[0]) if family.shared_covariance
                                        else params.dof)
            self.covariances_ = params.covariances * scaling.scale**2
            self.precisions_cholesky_ = params.precisions_cholesky / scaling.scale
            self.precisions_ = family.precisions(np.asarray(self.precisions_cholesky_,
                                                            np.float64))
        self.converged_ = bool(np.asarray(state.converged)[best])
        self.n_iter_ = int(n_iter[best])
        self.lower_bound_ = float(bounds[best])
        history = np.asarray(state.history[best], np.float64)[: self.n_iter_] + shift[best]
        self.lower_bounds_ = history.tolist()
        self._scaling = scaling
        self._report(state, shift, best)
        if not self.converged_ and self.max_iter > 0:
            warnings.warn("Best performing initialization did not converge. Try different "
                          "init parameters, or increase max_iter, tol, or check for degenerate "
                          "data.", convergence_warning(), stacklevel=4)

    def _report(self, state: variational.CaviState, shift: np.ndarray, best: int) -> None:
        if not self.verbose:
            return
        for i in range(len(shift)):
            n_iter = int(state.n_iter[i])
            history = np.asarray(state.history[i], np.float64)[:n_iter] + shift[i]
            print(f"Initialization {i}")
            if self.verbose >= 2:
                print_history(history, self.verbose_interval)
            done = "converged" if state.converged[i] else "did not converge"
            print(f"Initialization {done}. lower bound {history[-1] if n_iter else np.nan:.5f}"
                  + (" (best)" if i == best else ""))

    # ------------------------------------------------------------------ prediction
    def _internal_params(self, scaling: AffineScaling) -> VariationalParams:
        """The fitted variational parameters in ``scaling``'s internal units."""
        a = self.weight_concentration_
        concentration = (np.stack(a) if isinstance(a, tuple)
                         else np.stack([a, np.zeros_like(a)]))
        dof = np.broadcast_to(np.asarray(self.degrees_of_freedom_, np.float64),
                              (self.n_components,))
        return VariationalParams(concentration, self.mean_precision_,
                                 scaling.transform(self.means_), dof,
                                 self.covariances_ / scaling.scale**2,
                                 self.precisions_cholesky_ * scaling.scale)

    def _estimate_weighted_log_prob(self, X) -> np.ndarray:
        """``E_q[log pi_k] + E_q[log N(x | mu_k, Lambda_k^-1)]`` (n_samples, K), in the
        data's units: scikit-learn's ``_estimate_weighted_log_prob``."""
        check_is_fitted(self)
        X = check_array_input(X, self, reset=False)
        family = get_family(self.covariance_type)
        dtype = compute_dtype(self.dtype)
        scaling = self._scaling
        with compute_context(dtype):
            params = VariationalParams(*(jnp.asarray(a, dtype)
                                         for a in self._internal_params(scaling)))
            data = to_blocks(scaling.transform(X), dtype, family)
            log_prob = _expected_log_prob(
                data, params, self.weight_concentration_prior_type == "dirichlet_process",
                family)
        log_prob = np.asarray(log_prob, np.float64).reshape(-1, self.n_components)
        return log_prob[: X.shape[0]] - scaling.log_det(X.shape[1])

    def sample(self, n_samples=1):
        """Draw from the mixture with the fitted ``weights_``, ``means_`` and
        ``covariances_`` (as scikit-learn). Returns ``X`` (n_samples, n_features) and the
        component of each draw (n_samples,), in component order."""
        check_is_fitted(self)
        family = get_family(self.covariance_type)
        with compute_context(np.float64):
            full = np.asarray(family.as_full(jnp.asarray(self.covariances_), self.n_components,
                                             self.means_.shape[1]))
        return sample_mixture(self.weights_, self.means_, full, n_samples,
                              numpy_rng(self.random_state))
