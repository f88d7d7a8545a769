"""``GaussianMixture``: the scikit-learn-compatible shell around the compiled EM core.

The estimator validates its parameters and inputs (numpy and pandas come in, numpy goes out),
calls the engine and stores the results. The numerical work runs in :mod:`bayesgmm.core` as
compiled JAX programs (one program for all restarts), driven by the engine: the training data
and its fit (:mod:`bayesgmm.engine.training`), the start and choice of restarts
(:mod:`bayesgmm.engine.restarts`), streamed EM (:mod:`bayesgmm.engine.streaming_em`), scoring
(:mod:`bayesgmm.engine.scoring`) and missing values (:mod:`bayesgmm.engine.imputation`).
"""

from __future__ import annotations

import numbers
import warnings

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
from bayesgmm.base.validation import check_array_input, check_missing_option
from bayesgmm.core.covariance import get_family
from bayesgmm.core.em import BatchResult, EMConfig, FitInputs, InitOverride
from bayesgmm.core.init import init_draws
from bayesgmm.core.parameters import MixtureParams
from bayesgmm.engine import imputation
from bayesgmm.engine.parallel import multi_process, seed_of_process_zero
from bayesgmm.engine.preprocessing import AffineScaling, compute_context, compute_dtype
from bayesgmm.engine.prior import batch_prior, resolve_prior
from bayesgmm.engine.restarts import kept_restart, print_restarts, user_start
from bayesgmm.engine.scoring import rows_weighted_log_prob
from bayesgmm.engine.streaming import ChunkedSource, chunked, named_chunks
from bayesgmm.engine.streaming_em import StreamedEM, fit_streamed
from bayesgmm.engine.training import TrainingData
from bayesgmm.estimators.mixture_api import (
    ComponentScores,
    check_mixture_parameters,
    sample_mixture,
)


class GaussianMixture(ComponentScores, Persistable, DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM, compiled with JAX; a drop-in for
    :class:`sklearn.mixture.GaussianMixture`.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        EM stops when the mean log-likelihood changes by less than ``tol``.
    reg_covar : float, default=1e-6
        Added to the covariance diagonals, in the data's units (as scikit-learn).
    max_iter : int, default=100
    n_init : int, default=1
        Restarts; all run vmapped in one compiled program and the best non-degenerate lower
        bound wins.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
    weights_init : array (K,), optional
    means_init : array (K, D), optional
    precisions_init : array, optional
        Shape (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical.
    random_state : int, numpy RandomState or Generator, or None
    warm_start : bool, default=False
        Start from the previous fit's parameters (``n_init`` is then ignored).
    verbose : int, default=0
        1 prints one line per restart; 2 also prints the lower bound every
        ``verbose_interval`` iterations. The loop is compiled, so lines appear after the fit.
    verbose_interval : int, default=10
    dtype : {'float64', 'float32'}, default='float64'
        Arithmetic of the compiled EM. float64 (for agreement with scikit-learn) runs inside
        ``jax.enable_x64`` without changing the user's global JAX setting; float32 is faster.
        Data are centred and scaled internally (an exact symmetry), which keeps float32 stable.
    prior : None, 'default' or :class:`bayesgmm.MAPPrior`, default=None
        None fits by maximum likelihood (as scikit-learn). 'default' or a ``MAPPrior`` fits the
        posterior mode under mclust's conjugate prior (:mod:`bayesgmm.engine.prior`, Fraley &
        Raftery 2007): no component can collapse, and ``bic``/``aic`` use the log-likelihood
        at the MAP estimate, as mclust does. The stopping rule still watches the log-likelihood.
    missing : {'error', 'marginalize'}, default='error'
        'error' refuses NaN with a message naming the columns and rows. 'marginalize' treats
        NaN as values missing at random and runs exact EM for incomplete data (Ghahramani &
        Jordan 1994; :mod:`bayesgmm.core.missing`): memberships come from the density of each
        row's observed values, the M-step from the expected sufficient statistics. The
        log-likelihood, ``bic`` and ``aic`` are those of the observed data; ``predict``,
        ``predict_proba`` and ``score_samples`` accept NaN; :meth:`impute` and
        :meth:`sample_missing` fill the holes. Rows with no observed value are left out of the
        fit with a warning; a column with none is an error. Without NaN the fit is exactly the
        complete-data fit.

    Attributes
    ----------
    weights_ : (K,)
    means_ : (K, D)
    covariances_ : shape by ``covariance_type`` (see ``precisions_init``)
    precisions_, precisions_cholesky_ : same shape as ``covariances_``
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood of the best restart at its last E-step.
    lower_bounds_ : list of float
        Lower bound after each iteration of the best restart.
    degenerate_ : (K,) bool
        Components that are degenerate by the rule of
        :func:`bayesgmm.core.em_steps.degenerate_components` (too few points, or collapsed onto
        repeated values). Restarts with a degenerate component lose to any without one.
    n_degenerate_inits_ : int
        How many restarts ended with a degenerate component.
    n_missing_values_ : (D,) int
        Missing values per column in the training data (all 0 unless
        ``missing='marginalize'``).
    n_features_in_ : int
    feature_names_in_ : (D,) array of str, when fitted on a DataFrame with string column names

    Notes
    -----
    The parameters, attributes and methods are those of scikit-learn's ``GaussianMixture``,
    with the same parameter counts for ``bic``/``aic`` (lower is better).
    """

    _private_state = ("_scaling",)  # the internal units of the fitted parameters


    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, warm_start=False,
                 verbose=0, verbose_interval=10, dtype="float64", prior=None,
                 missing="error"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.dtype = dtype
        self.prior = prior
        self.missing = missing

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags

    # ------------------------------------------------------------------ parameters
    def check_parameters(self) -> None:
        """Check the constructor's parameters (:meth:`fit` does first; :func:`select_model`
        checks its template model): ``ValueError`` naming the parameter."""
        check_mixture_parameters(self)
        check_missing_option(self.missing)

    def fit(self, X, y=None):
        """Estimate the parameters with EM (``n_init`` restarts, compiled and vmapped).

        Parameters
        ----------
        X : array-like (n_samples, n_features), or data too large for memory: a
            ``numpy.memmap``, a Parquet file or directory, a callable returning an iterator of
            row chunks, or :func:`bayesgmm.engine.streaming.chunked` of one. Those are fitted by
            streaming exact EM (:mod:`bayesgmm.engine.streaming_em`): the same E-step summed over
            chunks, one read of the data per iteration, initialised from a reservoir sample.
        y : ignored

        Returns
        -------
        self
        """
        self.check_parameters()
        source = chunked(X)
        if source is not None:
            if multi_process():
                raise ValueError("streamed fits are not supported with several JAX processes "
                                 "yet; give each process its rows in memory")
            return self._fit_stream(source)
        warm = bool(self.warm_start) and hasattr(self, "converged_")
        previous_features = getattr(self, "n_features_in_", None)
        data = TrainingData.prepare(X, self, self.n_components, self.reg_covar, self.missing)
        n_dims = data.x.shape[1]
        if warm and n_dims != previous_features:
            raise ValueError(f"warm_start: X has {n_dims} features but the previous fit had "
                             f"{previous_features}")
        n_init = 1 if warm else self.n_init
        with compute_context(compute_dtype(self.dtype)):
            result, _ = self.run_from_start(data, n_init, seed_from(self.random_state),
                                            self.max_iter, warm=warm)
        self._finish(result, data.scaling, data.mean_log_det, data.missing_counts, n_init)
        return self

    def run_from_start(self, data: TrainingData, n_init: int, seed: int, max_iter: int,
                       warm: bool = False, tol: float | None = None,
                       summarise: bool = False):
        """The compiled fit of ``data`` from this model's start (user ``*_init``, the previous
        fit when ``warm``, else ``init_params``) and prior, ``n_init`` restarts; ``max_iter=0``
        gives the starting parameters; ``tol`` defaults to the model's; ``summarise`` also
        scores the final parameters (:func:`~bayesgmm.core.em.fit_batch`). Returns the
        :class:`BatchResult` and the batched prior. Must run inside
        ``compute_context(dtype)``."""
        family = get_family(self.covariance_type)
        dtype = compute_dtype(self.dtype)
        scaling = data.scaling
        with compute_context(np.float64):
            # A warm start continues from the previous parameters and bound (internal units).
            override = (InitOverride(*self._internal_params(scaling),
                                     lower_bound=self.lower_bound_ + data.mean_log_det)
                        if warm else user_start(self.weights_init, self.means_init,
                                                self.precisions_init, family, scaling,
                                                self.n_components, data.x.shape[1]))
        override = InitOverride(*(None if a is None
                                  else np.broadcast_to(a, (n_init, *np.shape(a)))
                                  for a in override))
        prior = batch_prior(resolve_prior(self.prior, family, data.x, self.n_components,
                                          scaling, dtype), n_init)
        draws = init_draws(seed_of_process_zero(seed), n_init, self.init_params,
                           self.n_components)
        config = EMConfig(family, self.init_params, max_iter, summarise=summarise)
        fits = FitInputs(draws, np.ones((n_init, self.n_components), bool), override, prior)
        result = data.fit(config, fits, dtype=dtype, reg_covar=self.reg_covar,
                          tol=self.tol if tol is None else tol, first_alone=True)
        return result, prior

    def _finish(self, result: BatchResult, scaling: AffineScaling, log_det: float,
                missing_counts: np.ndarray, n_init: int) -> None:
        """Keep the best restart of ``result``, report it, and warn if it did not converge."""
        best = kept_restart(result, self.max_iter, compute_dtype(self.dtype))
        self.store_fit(result, best, scaling, log_det=log_det)
        self.n_missing_values_ = missing_counts
        print_restarts(result, log_det, best, self.verbose, self.verbose_interval)
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data. (Best of "
                f"{n_init} restart(s), max_iter={self.max_iter}, tol={self.tol}.)",
                convergence_warning(), stacklevel=3)

    def _fit_stream(self, source: ChunkedSource):
        """:meth:`fit` on a chunked source (see :mod:`bayesgmm.engine.streaming_em`)."""
        if self.missing != "error":
            raise ValueError("missing='marginalize' is not supported for chunked sources yet; "
                             "fit in memory, or drop incomplete rows from the source")
        if self.warm_start:
            raise ValueError("warm_start is not supported for chunked sources")
        seed = seed_from(self.random_state)
        config = StreamedEM(self.n_components, get_family(self.covariance_type),
                            compute_dtype(self.dtype), self.reg_covar, self.tol, self.max_iter,
                            self.verbose_interval if self.verbose else None)
        fit = fit_streamed(source, self, config, seed, lambda sample: self.run_from_start(
            sample, self.n_init, seed, max_iter=0))
        self._finish(fit.result, fit.scaling, fit.log_det, np.zeros(self.n_features_in_, int),
                     self.n_init)
        self.n_rows_streamed_ = fit.n_rows
        return self

    def store_fit(self, result: BatchResult, index: int, scaling: AffineScaling,
                  components: np.ndarray | None = None, *, log_det: float) -> None:
        """Set the fitted attributes from fit ``index`` of a :class:`BatchResult` (numpy, the
        output of :meth:`run_from_start` or of a sweep), keeping ``components`` (default: all)
        of its possibly padded components. ``scaling`` gives the internal units, ``log_det``
        (:attr:`TrainingData.mean_log_det`) puts the lower bounds in the data's units."""
        state = result.state
        keep = slice(None) if components is None else components

        def pick(a):
            return np.asarray(a[index], dtype=np.float64)

        family = get_family(self.covariance_type)
        params = MixtureParams(*(pick(a) for a in state.params))
        weights = params.weights[keep]
        self.weights_ = weights / weights.sum()
        self.means_ = scaling.inverse_transform(params.means[keep])
        per_component = not family.shared_covariance
        self.covariances_ = (params.covariances[keep] if per_component
                             else params.covariances) * scaling.scale**2
        self.precisions_cholesky_ = (params.precisions_cholesky[keep] if per_component
                                     else params.precisions_cholesky) / scaling.scale
        self.precisions_ = family.precisions(np.asarray(self.precisions_cholesky_, np.float64))
        self.converged_ = bool(state.converged[index])
        self.n_iter_ = int(state.n_iter[index])
        self.lower_bound_ = float(state.lower_bound[index]) - log_det
        history = pick(state.history)[: self.n_iter_]
        self.lower_bounds_ = (history - log_det).tolist()
        self.degenerate_ = np.asarray(result.degenerate[index])[keep].copy()
        self.n_degenerate_inits_ = int(np.asarray(result.degenerate).any(axis=1).sum())
        self._scaling = scaling

    def fit_predict(self, X, y=None):
        """Fit, then return the labels (n_samples,) of ``X`` under the fitted model."""
        return self.fit(X, y).predict(X)

    # ------------------------------------------------------------------ prediction
    def _internal_params(self, scaling: AffineScaling) -> MixtureParams:
        """The fitted parameters in ``scaling``'s internal units (float64 numpy)."""
        return MixtureParams(self.weights_, scaling.transform(self.means_),
                             self.covariances_ / scaling.scale**2,
                             self.precisions_cholesky_ * scaling.scale)

    def _estimate_weighted_log_prob(self, X) -> np.ndarray:
        """``log w_k + log N(x | mu_k, S_k)`` in the data's units: (n_samples, K); of the
        observed coordinates of rows with missing values (``missing='marginalize'``). A
        chunked source is read chunk by chunk."""
        check_is_fitted(self)
        source = chunked(X)
        if source is not None:
            return np.concatenate([self._estimate_weighted_log_prob(chunk)
                                   for chunk in named_chunks(source, self)])
        return self._under_fit(rows_weighted_log_prob, X, check_missing_option(self.missing))

    def _compute_params(self, dtype) -> MixtureParams:
        """The fitted parameters in internal units as JAX arrays of ``dtype``."""
        return MixtureParams(*(jnp.asarray(a, dtype)
                               for a in self._internal_params(self._scaling)))

    def _under_fit(self, function, X, allow_nan: bool):
        """``function(x, params, family, scaling, dtype)`` (an engine function) of the
        validated rows ``X`` (n_samples, n_features) under the fitted parameters, in the
        model's internal units and compute dtype."""
        X = check_array_input(X, self, reset=False, allow_nan=allow_nan)
        dtype = compute_dtype(self.dtype)
        with compute_context(dtype):
            return function(X, self._compute_params(dtype), get_family(self.covariance_type),
                            self._scaling, dtype)

    def impute(self, X):
        """Conditional-mean imputation: each NaN replaced by ``E[x_m | x_o]`` under the fitted
        mixture (the membership-weighted mean of each component's Gaussian regression on the
        row's observed values).

        Parameters
        ----------
        X : array-like (n_samples, n_features), NaN marking missing values

        Returns
        -------
        (n_samples, n_features) a new array; observed values are returned unchanged, and a
        row with no observed value gets the mixture mean.
        """
        check_is_fitted(self)
        given = self._under_fit(imputation.conditionals, X, allow_nan=True)
        return imputation.impute(given, self._scaling)

    def sample_missing(self, X, n_imputations=5, random_state=None):
        """Multiple imputations: draws of the missing values from their conditional
        distribution given the observed ones, ``p(x_m | x_o)`` (a mixture of Gaussians).

        Each draw picks a component with the row's membership probabilities, then draws the
        missing coordinates from that component's conditional Gaussian.

        Parameters
        ----------
        X : array-like (n_samples, n_features), NaN marking missing values
        n_imputations : int, default 5
        random_state : int, numpy Generator or RandomState, or None

        Returns
        -------
        (n_imputations, n_samples, n_features), observed values unchanged
        """
        if not isinstance(n_imputations, numbers.Integral) or n_imputations < 1:
            raise ValueError(f"n_imputations={n_imputations!r} must be an integer >= 1")
        check_is_fitted(self)
        given = self._under_fit(imputation.conditionals, X, allow_nan=True)
        return imputation.sample_missing(given, self._scaling, n_imputations,
                                         numpy_rng(random_state))

    def sample(self, n_samples=1):
        """Draw from the fitted mixture.

        Returns
        -------
        X : (n_samples, n_features)
        y : (n_samples,) component of each draw, in component order (as scikit-learn)
        """
        check_is_fitted(self)
        return sample_mixture(self.weights_, self.means_, self.full_covariances(), n_samples,
                              numpy_rng(self.random_state))

    def full_covariances(self) -> np.ndarray:
        """The fitted covariances as (K, D, D) matrices, whatever the covariance type."""
        check_is_fitted(self)
        with compute_context(np.float64):
            return np.asarray(get_family(self.covariance_type).as_full(
                jnp.asarray(self.covariances_), self.n_components, self.means_.shape[1]))

    # ------------------------------------------------------------------ criteria
    def _n_parameters(self) -> int:
        return get_family(self.covariance_type).n_parameters(*self.means_.shape)

    def bic(self, X):
        """Bayesian information criterion (lower is better): ``-2 log L + p log n``."""
        n_samples = np.shape(X)[0]
        return -2 * self.score(X) * n_samples + self._n_parameters() * np.log(n_samples)

    def aic(self, X):
        """Akaike information criterion (lower is better): ``-2 log L + 2 p``."""
        return -2 * self.score(X) * np.shape(X)[0] + 2 * self._n_parameters()
