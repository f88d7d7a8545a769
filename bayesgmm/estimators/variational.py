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
from bayesgmm.base.validation import check_array_input, is_real, require
from bayesgmm.core import variational
from bayesgmm.core.covariance import get_family
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.init import block_responsibilities, init_draws
from bayesgmm.core.parameters import ConjugatePrior
from bayesgmm.core.stats import (
    BlockedData,
    natural_log_prob,
    stats_from_responsibilities,
)
from bayesgmm.core.variational import VariationalParams, VariationalPrior
from bayesgmm.engine.preprocessing import AffineScaling, compute_context, compute_dtype, to_blocks
from bayesgmm.engine.streaming import ChunkedSource, chunked, prepare_stream, stream_covariance
from bayesgmm.engine.training import TrainingData
from bayesgmm.estimators.gaussian import (
    ComponentScores,
    check_mixture_parameters,
    sample_mixture,
)

WEIGHT_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


_start_responsibilities = persistent_jit(block_responsibilities,
                                        static_argnames=("n_dims", "n_components", "method"))
_fit_restarts = persistent_jit(variational.fit_restarts, static_argnames=("family", "max_iter"))
_continue_fit = persistent_jit(variational.continue_fit, static_argnames=("family", "max_iter"))


@persistent_jit(static_argnames=("family", "max_iter"))
def _scaled_start(resp, data: BlockedData, prior, reg_covar, scale, *, family, max_iter):
    """Restarts' initial states from a sample's responsibilities (R, n_blocks, block_rows, K),
    the sample's statistics multiplied by ``scale`` (rows in the data / rows in the sample)."""
    n_dims = prior.components.mean.shape[0]

    def one(r):
        stats = stats_from_responsibilities(data, r, n_dims)
        stats = jax.tree_util.tree_map(lambda a: a * scale, stats)
        return variational.initial_state(variational.m_step(stats, prior, family, reg_covar),
                                         max_iter)

    return jax.vmap(one)(resp)


@persistent_jit(static_argnames="family")
def _chunk_expectations(data: BlockedData, params: VariationalParams, stick_breaking,
                        family: CovarianceFamily):
    """One chunk's E-step sums under every restart's ``q`` (vmapped over restarts)."""
    return jax.vmap(lambda p: variational.e_step(data, p, stick_breaking, family))(params)


@persistent_jit(static_argnames=("family", "max_iter"))
def _stream_update(state, expectations, prior, reg_covar, tol, *, family, max_iter):
    """:func:`~bayesgmm.core.variational.update` for every restart still running."""
    def one(state, expectations):
        running = (state.n_iter < max_iter) & ~state.converged
        new = variational.update(state, expectations, prior, family, reg_covar, tol)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(running, a, b), new, state)

    return jax.vmap(one)(state, expectations)


@persistent_jit(static_argnames="family")
def _expected_log_prob(data: BlockedData, params: VariationalParams, stick_breaking,
                       family: CovarianceFamily):
    """``E_q[log pi_k + log N(x | mu_k, Lambda_k)]`` per block: (n_blocks, block_rows, K)."""
    natural = variational.expected_natural(params, stick_breaking, family)
    return jax.lax.map(lambda f: natural_log_prob(f, natural), data.features)


def _bound_shift(dof, n_dims: int, log_scale: float):
    """What to add to a lower bound computed in internal units (``x / s``, ``log_scale = log
    s``) to get the one in the data's units: each Wishart normaliser's ``log |W_k|`` differs
    by ``D log s``, weighted by ``dof_k``. ``dof`` (..., K) -> (...) float64."""
    return -n_dims * log_scale * np.sum(np.asarray(dof, np.float64), axis=-1)


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
        require(self, self.weight_concentration_prior_type in WEIGHT_PRIOR_TYPES,
                "weight_concentration_prior_type", f"choose one of {WEIGHT_PRIOR_TYPES}")
        for name in ("weight_concentration_prior", "mean_precision_prior"):
            value = getattr(self, name)
            require(self, value is None or (is_real(value) and value > 0), name,
                    "it must be a number > 0 or None")
        require(self, self.degrees_of_freedom_prior is None
                or is_real(self.degrees_of_freedom_prior), "degrees_of_freedom_prior",
                "it must be a number or None")

    def _resolve_priors(self, n_samples: int, mean: np.ndarray, covariance: np.ndarray) -> None:
        """Set the ``*_prior_`` attributes (scikit-learn's defaults from the data's ``mean``
        (D,) and sample ``covariance`` (D, D), ``ddof=1``), checked."""
        n_dims = mean.shape[0]
        k = self.n_components
        self.weight_concentration_prior_ = (1.0 / k if self.weight_concentration_prior is None
                                            else float(self.weight_concentration_prior))
        self.mean_precision_prior_ = (1.0 if self.mean_precision_prior is None
                                      else float(self.mean_precision_prior))
        if self.mean_prior is None:
            self.mean_prior_ = mean
        else:
            self.mean_prior_ = np.array(self.mean_prior, dtype=np.float64).reshape(-1)
            if self.mean_prior_.shape != (n_dims,) or not np.all(np.isfinite(self.mean_prior_)):
                raise ValueError(f"mean_prior must be {n_dims} finite numbers; got shape "
                                 f"{np.shape(self.mean_prior)}")
        if self.degrees_of_freedom_prior is None:
            self.degrees_of_freedom_prior_ = float(n_dims)
        elif self.degrees_of_freedom_prior > n_dims - 1.0:
            self.degrees_of_freedom_prior_ = float(self.degrees_of_freedom_prior)
        else:
            raise ValueError(f"The parameter 'degrees_of_freedom_prior' should be greater than "
                             f"{n_dims - 1}, but got {self.degrees_of_freedom_prior:.3f}.")
        name = get_family(self.covariance_type).name
        if self.covariance_prior is None:
            variances = np.diagonal(covariance).copy()
            self.covariance_prior_ = {
                "full": covariance, "tied": covariance, "diag": variances,
                "spherical": float(variances.mean()),
            }[name]
            return
        prior = np.array(self.covariance_prior, dtype=np.float64)
        expected = {"full": (n_dims, n_dims), "tied": (n_dims, n_dims), "diag": (n_dims,),
                    "spherical": ()}[name]
        if prior.shape != expected:
            raise ValueError(f"covariance_prior has shape {prior.shape}; expected {expected} "
                             f"for covariance_type={name!r}")
        if prior.ndim == 2:
            symmetric = np.allclose(prior, prior.T)
            if not symmetric or np.linalg.eigvalsh(prior)[0] <= 0:
                raise ValueError(f"'{name} covariance_prior' should be symmetric, "
                                 "positive-definite")
        elif not np.all(prior > 0):
            raise ValueError(f"'{name} covariance_prior' should be positive")
        self.covariance_prior_ = prior if prior.ndim else float(prior)

    def _internal_prior(self, scaling: AffineScaling, dtype) -> VariationalPrior:
        """The prior in internal units (``(x - center) / scale``)."""
        scale2 = scaling.scale**2
        components = ConjugatePrior(
            mean=np.asarray(scaling.transform(self.mean_prior_), dtype),
            shrinkage=np.asarray(self.mean_precision_prior_, dtype),
            dof=np.asarray(self.degrees_of_freedom_prior_, dtype),
            scale=np.asarray(np.asarray(self.covariance_prior_) / scale2, dtype))
        return VariationalPrior(components, np.asarray(self.weight_concentration_prior_, dtype),
                                np.asarray(self.weight_concentration_prior_type
                                           == "dirichlet_process"))

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
        self._resolve_priors(n_samples=len(data.x), mean=data.x.mean(axis=0),
                             covariance=np.atleast_2d(np.cov(data.x.T)))
        family = get_family(self.covariance_type)
        dtype = compute_dtype(self.dtype)
        scaling = data.scaling
        n_dims = data.x.shape[1]
        log_scale = float(np.log(scaling.scale))
        with compute_context(dtype):
            prior = self._internal_prior(scaling, dtype)
            blocks = data.blocks(family, dtype)
            reg_covar = np.asarray(self.reg_covar / scaling.scale**2, dtype)
            tol = np.asarray(self.tol, dtype)
            if warm:
                params = VariationalParams(*(jnp.asarray(a, dtype) for a in previous))
                start = previous_bound - _bound_shift(previous.dof, n_dims, log_scale)
                state = _continue_fit(params, jnp.asarray(start, dtype), blocks, prior,
                                      reg_covar, tol, family=family, max_iter=self.max_iter)
            else:
                resp = self._start_responsibilities(blocks, n_dims)
                state = _fit_restarts(resp, blocks, prior, reg_covar, tol, family=family,
                                      max_iter=self.max_iter)
            state = jax.device_get(state)
        shift = _bound_shift(state.params.dof, n_dims, log_scale)
        self._store(state, shift, scaling)
        return self

    def _fit_stream(self, source: ChunkedSource):
        """:meth:`fit` on a chunked source (:mod:`bayesgmm.engine.streaming`): the same iterations,
        each one read of the data with the E-step's sums added over chunks. The restarts start
        from a reservoir sample's responsibilities, their statistics scaled to the whole data.
        """
        if self.warm_start:
            raise ValueError("warm_start is not supported for chunked sources")
        seed = seed_from(self.random_state)
        stream = prepare_stream(source, self, self.n_components, self.reg_covar, seed)
        first, scaling = stream.first, stream.scaling
        self._resolve_priors(first.n_rows, first.mean,
                             stream_covariance(source, first.mean, first.n_rows))
        family = get_family(self.covariance_type)
        dtype = compute_dtype(self.dtype)
        n_dims = first.mean.shape[0]
        with compute_context(dtype):
            prior = self._internal_prior(scaling, dtype)
            reg_covar = np.asarray(self.reg_covar / scaling.scale**2, dtype)
            tol = np.asarray(self.tol, dtype)
            sample = stream.sample.blocks(family, dtype)
            resp = self._start_responsibilities(sample, n_dims)
            state = _scaled_start(resp, sample, prior, reg_covar,
                                  np.asarray(first.n_rows / len(first.sample), dtype),
                                  family=family, max_iter=self.max_iter)
            stick_breaking = prior.stick_breaking
            for _ in range(self.max_iter):
                total = None
                for chunk in source:
                    part = _chunk_expectations(stream.blocks_of(chunk, family, dtype),
                                               state.params, stick_breaking, family)
                    total = part if total is None else jax.tree_util.tree_map(jnp.add, total,
                                                                              part)
                state = _stream_update(state, total, prior, reg_covar, tol, family=family,
                                       max_iter=self.max_iter)
                if not np.any((np.asarray(state.n_iter) < self.max_iter)
                              & ~np.asarray(state.converged)):
                    break
            state = jax.device_get(state)
        self._store(state, _bound_shift(state.params.dof, n_dims, float(np.log(scaling.scale))),
                    scaling)
        self.n_rows_streamed_ = first.n_rows
        return self

    def _start_responsibilities(self, blocks: BlockedData, n_dims: int):
        """(n_init, n_blocks, block_rows, K) starting responsibilities from ``init_params``."""
        draws = init_draws(seed_from(self.random_state), self.n_init, self.init_params,
                           self.n_components)
        return _start_responsibilities(jnp.asarray(draws, blocks.features.dtype),
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
            self.weights_ = np.asarray(variational.mean_weights(
                jnp.asarray(params.concentration),
                self.weight_concentration_prior_type == "dirichlet_process"))
            self.mean_precision_ = params.mean_precision
            self.means_ = scaling.inverse_transform(params.means)
            self.degrees_of_freedom_ = (float(params.dof[0]) if family.name == "tied"
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
                for t in range(self.verbose_interval - 1, n_iter, self.verbose_interval):
                    change = history[t] - (history[t - 1] if t else -np.inf)
                    print(f"  Iteration {t + 1}\t lower bound {history[t]:.6f}\t "
                          f"change {change:.6f}")
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
