"""``GaussianMixture``: the scikit-learn-compatible shell around the compiled EM core.

Validation happens in ``fit``; numpy and pandas come in, numpy goes out. All the numerical
work runs in :mod:`bayesgmm.core` as compiled JAX programs (one program for all restarts).
"""

from __future__ import annotations

import numbers
import warnings
from typing import NamedTuple

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
from bayesgmm.base.validation import (
    ILL_DEFINED_COVARIANCE,
    DegenerateFitError,
    check_array_input,
    check_initial_precisions,
    check_initial_weights,
    check_missing_option,
    is_int,
    is_real,
    require,
)
from bayesgmm.core.covariance import MixtureParams, get_family
from bayesgmm.core.em import BatchResult, EMConfig, FitInputs, InitOverride, choose_restart
from bayesgmm.core.init import INIT_METHODS, init_draws
from bayesgmm.core.missing import conditional_gaussians, conditional_means
from bayesgmm.core.stats import (
    block_log_prob,
    data_columns,
    normalise_log_prob,
    weighted_log_prob,
)
from bayesgmm.engine.parallel import multi_process, seed_of_process_zero
from bayesgmm.engine.preprocessing import (
    AffineScaling,
    compute_context,
    compute_dtype,
    to_blocks,
    to_pattern_blocks,
)
from bayesgmm.engine.prior import batch_prior, resolve_prior
from bayesgmm.engine.streaming import (
    ChunkedSource,
    chunked,
    named_chunks,
    prepare_stream,
    run_streaming_em,
)
from bayesgmm.engine.training import TrainingData


def check_mixture_parameters(estimator) -> None:
    """The checks of the parameters scikit-learn's mixtures share (``n_components``,
    ``covariance_type``, ``tol``, ``reg_covar``, ``max_iter``, ``n_init``, ``init_params``,
    ``verbose_interval``) and bayesgmm's ``dtype``."""
    require(estimator, is_int(estimator.n_components) and estimator.n_components >= 1,
            "n_components", "it must be an integer >= 1")
    get_family(estimator.covariance_type)
    require(estimator, is_real(estimator.tol) and estimator.tol >= 0, "tol",
            "it must be a number >= 0")
    require(estimator, is_real(estimator.reg_covar) and estimator.reg_covar >= 0, "reg_covar",
            "it must be a number >= 0")
    require(estimator, is_int(estimator.max_iter) and estimator.max_iter >= 0, "max_iter",
            "it must be an integer >= 0")
    require(estimator, is_int(estimator.n_init) and estimator.n_init >= 1, "n_init",
            "it must be an integer >= 1")
    require(estimator, estimator.init_params in INIT_METHODS, "init_params",
            f"choose one of {INIT_METHODS}")
    require(estimator, is_int(estimator.verbose_interval) and estimator.verbose_interval >= 1,
            "verbose_interval", "it must be an integer >= 1")
    compute_dtype(estimator.dtype)


def sample_mixture(weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
                   n_samples, rng) -> tuple[np.ndarray, np.ndarray]:
    """``n_samples`` draws from a Gaussian mixture (weights (K,), means (K, D), covariances
    (K, D, D)) with numpy's ``rng``: the rows (n_samples, D) and their components
    (n_samples,), in component order (as scikit-learn)."""
    if (not isinstance(n_samples, numbers.Integral) or isinstance(n_samples, bool)
            or n_samples < 1):
        raise ValueError(f"Invalid value for 'n_samples': {n_samples!r} . The sampling "
                         "requires at least one sample. (n_samples must be an integer >= 1.)")
    n_components, n_dims = means.shape
    counts = rng.multinomial(n_samples, weights)
    chol = np.linalg.cholesky(covariances)
    draws = [mean + rng.standard_normal((count, n_dims)) @ factor.T
             for mean, factor, count in zip(means, chol, counts, strict=True)]
    return np.vstack(draws), np.repeat(np.arange(n_components), counts)


@persistent_jit(static_argnames="family")
def _block_log_prob(data, params, family):
    """Weighted component log densities per block: (n_blocks, block_rows, K); of the observed
    coordinates for pattern blocks."""
    if data.observed is None:
        return jax.lax.map(lambda f: weighted_log_prob(f, params, family), data.features)
    return jax.lax.map(lambda block: block_log_prob(*block[:1], params, family, block[1]),
                       (data.features, data.observed))


@persistent_jit(static_argnames="family")
def _block_conditionals(data, params, family):
    """Per pattern block: memberships (n_blocks, block_rows, K), conditional means of the rows
    (n_blocks, block_rows, D), and the components' conditional Gaussians
    (:class:`~bayesgmm.core.missing.ConditionalGaussians` fields with a leading block axis)."""
    n_dims = params.means.shape[1]

    def one_block(block):
        features, observed = block
        conditional = conditional_gaussians(params, family, observed)
        resp, _ = normalise_log_prob(block_log_prob(features, params, family, observed))
        means = conditional_means(data_columns(features, n_dims), resp, conditional)
        return resp, means, conditional.regression, conditional.offset, conditional.residual

    return jax.lax.map(one_block, (data.features, data.observed))


class _Conditionals(NamedTuple):
    """What :meth:`GaussianMixture.impute` and ``sample_missing`` need about rows with missing
    values, in internal units: ``x`` (N, D) the validated rows; ``resp`` (N, K);
    ``means`` (N, D) conditional means under the mixture; per block ``regression``
    (B, K, D, D), ``offset`` (B, K, D) and ``chol`` (B, K, D, D), a factor of each component's
    conditional covariance plus the identity on the observed coordinates; ``block`` (N,) each
    row's block."""

    x: np.ndarray
    resp: np.ndarray
    means: np.ndarray
    regression: np.ndarray
    offset: np.ndarray
    chol: np.ndarray
    block: np.ndarray


def row_log_sum_exp(log_prob: np.ndarray) -> np.ndarray:
    """``log sum_k exp(log_prob[:, k])`` per row, (n,), stable (the row maximum is taken out
    first; a row of -inf gives -inf). numpy's, so scoring does not import SciPy."""
    top = log_prob.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(log_prob - top).sum(axis=1)) + top[:, 0]


class ComponentScores:
    """``score_samples``, ``score``, ``predict`` and ``predict_proba`` from a model's
    ``_estimate_weighted_log_prob(X)`` (n_samples, K), as scikit-learn's mixtures define
    them."""

    def score_samples(self, X):
        """``log sum_k exp(weighted log probability)`` per sample, (n_samples,): the log
        density for EM (for scikit-learn's variational mixture, its variational analogue)."""
        return row_log_sum_exp(self._estimate_weighted_log_prob(X))

    def score(self, X, y=None):
        """Mean of :meth:`score_samples` over ``X``."""
        return float(self.score_samples(X).mean())

    def predict(self, X):
        """Most probable component of each sample, (n_samples,)."""
        return self._estimate_weighted_log_prob(X).argmax(axis=1)

    def predict_proba(self, X):
        """Component probabilities (responsibilities) of each sample, (n_samples, K)."""
        log_prob = self._estimate_weighted_log_prob(X)
        return np.exp(log_prob - row_log_sum_exp(log_prob)[:, None])


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
        :func:`bayesgmm.core.em.degenerate_components` (too few points, or collapsed onto
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
    def _check_parameters(self) -> None:
        check_mixture_parameters(self)
        check_missing_option(self.missing)

    def _user_init(self, n_dims: int, scaling: AffineScaling) -> InitOverride:
        """weights_init / means_init / precisions_init, checked and put in internal units."""
        family = get_family(self.covariance_type)
        k = self.n_components
        weights = means = cov = prec_chol = None
        if self.weights_init is not None:
            weights = check_initial_weights(self.weights_init, k)
        if self.means_init is not None:
            means = np.array(self.means_init, dtype=np.float64)
            if means.shape != (k, n_dims):
                raise ValueError(
                    f"The parameter 'means' should have the shape of {(k, n_dims)}, but got "
                    f"{means.shape}: means_init needs one row of {n_dims} features per "
                    f"component (n_components={k}).")
            means = scaling.transform(means)
        if self.precisions_init is not None:
            precisions = check_initial_precisions(self.precisions_init, family, k, n_dims)
            cov = np.asarray(family.covariances_from_precisions(jnp.asarray(precisions)))
            cov = cov / scaling.scale**2
            cov, prec_chol = family.precisions_cholesky(jnp.asarray(cov), 0.0)
        return InitOverride(weights, means, cov, prec_chol)

    def fit(self, X, y=None):
        """Estimate the parameters with EM (``n_init`` restarts, compiled and vmapped).

        Parameters
        ----------
        X : array-like (n_samples, n_features), or data too large for memory: a
            ``numpy.memmap``, a Parquet file or directory, a callable returning an iterator of
            row chunks, or :func:`bayesgmm.engine.streaming.chunked` of one. Those are fitted by
            streaming exact EM (:mod:`bayesgmm.engine.streaming`): the same E-step summed over
            chunks, one read of the data per iteration, initialised from a reservoir sample.
        y : ignored

        Returns
        -------
        self
        """
        self._check_parameters()
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
            result, _ = self._run_from_start(data, n_init, seed_from(self.random_state),
                                             self.max_iter, warm=warm)
        self._finish(result, data.scaling, data.mean_log_det, data.missing_counts, n_init)
        return self

    def _run_from_start(self, data: TrainingData, n_init: int, seed: int, max_iter: int,
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
                        if warm else self._user_init(data.x.shape[1], scaling))
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
                          tol=self.tol if tol is None else tol)
        return result, prior

    def _finish(self, result: BatchResult, scaling: AffineScaling, log_det: float,
                missing_counts: np.ndarray, n_init: int) -> None:
        """Keep the best restart of ``result``, report it, and warn if it did not converge."""
        best = self._choose_restart(result)
        self._store_fit(result, best, scaling, log_det=log_det)
        self.n_missing_values_ = missing_counts
        self._report(result, log_det, best)
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data. (Best of "
                f"{n_init} restart(s), max_iter={self.max_iter}, tol={self.tol}.)",
                convergence_warning(), stacklevel=3)

    def _fit_stream(self, source: ChunkedSource):
        """:meth:`fit` on a chunked source (see :mod:`bayesgmm.engine.streaming`)."""
        if self.missing != "error":
            raise ValueError("missing='marginalize' is not supported for chunked sources yet; "
                             "fit in memory, or drop incomplete rows from the source")
        if self.warm_start:
            raise ValueError("warm_start is not supported for chunked sources")
        seed = seed_from(self.random_state)
        stream = prepare_stream(source, self, self.n_components, self.reg_covar, seed)
        first, scaling, sample = stream.first, stream.scaling, stream.sample
        n_dims = first.mean.shape[0]
        dtype = compute_dtype(self.dtype)
        with compute_context(dtype):
            start, prior = self._run_from_start(sample, self.n_init, seed, max_iter=0)
            params = MixtureParams(*(jnp.asarray(a, dtype) for a in start.state.params))
            result = run_streaming_em(
                source, params, scaling=scaling, family=get_family(self.covariance_type),
                dtype=dtype, reg_covar=self.reg_covar, tol=self.tol, max_iter=self.max_iter,
                feature_variance=first.var, chunk_rows=first.largest_chunk, prior=prior,
                report=self._stream_report(scaling.log_det(n_dims)))
        self._finish(result, scaling, scaling.log_det(n_dims), np.zeros(n_dims, int),
                     self.n_init)
        self.n_rows_streamed_ = first.n_rows
        return self

    def _stream_report(self, log_det: float):
        """Per-iteration lines for a streamed fit (printed live: the loop runs on the host)."""
        if not self.verbose:
            return None

        def report(iteration, lower_bounds):
            if iteration % self.verbose_interval == 0 or iteration == 1:
                print(f"Iteration {iteration}\t lower bounds "
                      + ", ".join(f"{b - log_det:.6f}" for b in lower_bounds), flush=True)

        return report

    def _choose_restart(self, result: BatchResult) -> int:
        """The best usable restart: highest lower bound among those with no degenerate
        component. Raises :class:`DegenerateFitError` if there is none."""
        lower_bound = np.asarray(result.state.lower_bound, dtype=np.float64)
        chosen, usable = choose_restart(lower_bound, result.degenerate)
        if not self.max_iter:  # the initialisation itself (often one point per component)
            return 0
        if not usable:
            sizes = np.asarray(result.state.stats.counts)
            raise DegenerateFitError(
                f"{ILL_DEFINED_COVARIANCE} All {len(lower_bound)} EM restart(s) ended with a "
                "degenerate component (a component that collapsed onto repeated values or "
                "kept fewer points than its covariance needs; smallest component sizes per "
                f"restart: {np.round(sizes.min(axis=1), 2).tolist()}). Use fewer components, "
                "increase reg_covar, use prior='default', increase n_init, or remove duplicated "
                "rows / add measurement resolution to rounded data."
                + (" In float32 a direction whose variance is below about 1e-6 of the data's "
                   "cannot be told from a collapse: try dtype='float64'."
                   if compute_dtype(self.dtype) == np.float32 else ""))
        return chosen

    def _store_fit(self, result: BatchResult, index: int, scaling: AffineScaling,
                   components: np.ndarray | None = None, *, log_det: float) -> None:
        """Set the fitted attributes from fit ``index`` of a :class:`BatchResult` (numpy),
        keeping ``components`` (default: all) of its possibly padded components. ``log_det``
        is :attr:`TrainingData.mean_log_det`, to report lower bounds in the data's units."""
        state = result.state
        keep = slice(None) if components is None else components

        def pick(a):
            return np.asarray(a[index], dtype=np.float64)

        family = get_family(self.covariance_type)
        params = MixtureParams(*(pick(a) for a in state.params))
        weights = params.weights[keep]
        self.weights_ = weights / weights.sum()
        self.means_ = scaling.inverse_transform(params.means[keep])
        per_component = family.name != "tied"
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

    def _report(self, result: BatchResult, log_det: float, best: int) -> None:
        if not self.verbose:
            return
        state, degenerate = result.state, np.asarray(result.degenerate)
        for i, (lb, n_iter, conv) in enumerate(zip(state.lower_bound, state.n_iter,
                                                   state.converged, strict=True)):
            flags = (" converged" if conv else " did not converge") + (
                ", degenerate" if degenerate[i].any() else "") + (", best" if i == best else "")
            print(f"Initialization {i}: {int(n_iter)} iterations, lower bound "
                  f"{float(lb) - log_det:.6f};{flags}")
            if self.verbose >= 2:
                history = np.asarray(state.history[i])[: int(n_iter)] - log_det
                for t in range(self.verbose_interval - 1, len(history), self.verbose_interval):
                    change = history[t] - (history[t - 1] if t else -np.inf)
                    print(f"  Iteration {t + 1}\t lower bound {history[t]:.6f}\t "
                          f"change {change:.6f}")

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
        X = check_array_input(X, self, reset=False,
                              allow_nan=check_missing_option(self.missing))
        family = get_family(self.covariance_type)
        dtype = compute_dtype(self.dtype)
        scaling = self._scaling
        n_samples, n_dims = X.shape
        observed = ~np.isnan(X)
        with compute_context(dtype):
            params = self._compute_params(dtype)
            if observed.all():
                data = to_blocks(scaling.transform(X), dtype, family)
                log_prob = np.asarray(_block_log_prob(data, params, family), np.float64)
                log_prob = log_prob.reshape(-1, self.n_components)[:n_samples]
            else:
                data, layout = self._pattern_blocks(X, dtype)
                log_prob = layout.unblock(np.asarray(_block_log_prob(data, params, family),
                                                     np.float64))
        # The density of a row's observed values is in the units of those columns only.
        log_scale = np.log(np.broadcast_to(scaling.scale, (n_dims,)))
        return log_prob - (observed @ log_scale)[:, None]

    def _compute_params(self, dtype) -> MixtureParams:
        """The fitted parameters in internal units as JAX arrays of ``dtype``."""
        return MixtureParams(*(jnp.asarray(a, dtype)
                               for a in self._internal_params(self._scaling)))

    def _pattern_blocks(self, X: np.ndarray, dtype) -> tuple:
        """Pattern blocks (:func:`~bayesgmm.engine.preprocessing.to_pattern_blocks`) of ``X`` (N, D)
        with missing values, in internal units."""
        scaling = self._scaling
        fill = np.ones(X.shape[1])  # the filled squares only matter for an EM start
        return to_pattern_blocks(scaling.transform(X), dtype, fill)

    def _conditionals(self, X) -> _Conditionals:
        """Memberships, conditional means and per-block conditional Gaussians of ``X`` with
        missing values (internal units), for :meth:`impute` and :meth:`sample_missing`."""
        check_is_fitted(self)
        X = check_array_input(X, self, reset=False, allow_nan=True)
        dtype = compute_dtype(self.dtype)
        with compute_context(dtype):
            data, layout = self._pattern_blocks(X, dtype)
            blocks = jax.device_get(_block_conditionals(data, self._compute_params(dtype),
                                                        get_family(self.covariance_type)))
        resp, means = (layout.unblock(np.asarray(a, np.float64)) for a in blocks[:2])
        regression, offset, residual = (np.asarray(a, np.float64) for a in blocks[2:])
        observed = np.asarray(data.observed, np.float64)
        # Conditional covariances are zero on the observed block; C + diag(o) factors.
        chol = np.linalg.cholesky(residual + np.eye(X.shape[1]) * observed[:, None, None, :])
        return _Conditionals(X, resp, means, regression, offset, chol,
                             layout.position // layout.block_rows)

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
        given = self._conditionals(X)
        scaling = self._scaling
        return np.where(np.isnan(given.x), scaling.inverse_transform(given.means), given.x)

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
        given = self._conditionals(X)
        rng = numpy_rng(random_state)
        scaling = self._scaling
        x = given.x
        n_samples, n_dims = x.shape
        missing = np.isnan(x)
        internal = np.where(missing, 0.0, scaling.transform(x))
        cumulative = np.cumsum(given.resp, axis=1)
        draws = np.repeat(x[None], n_imputations, axis=0)
        for t in range(n_imputations):
            k = np.minimum((rng.random(n_samples)[:, None] > cumulative).sum(axis=1),
                           self.n_components - 1)
            b = given.block
            noise = rng.standard_normal((n_samples, n_dims))
            value = (np.einsum("nij,nj->ni", given.regression[b, k], internal)
                     + given.offset[b, k] + np.einsum("nij,nj->ni", given.chol[b, k], noise))
            draws[t] = np.where(missing, scaling.inverse_transform(value), x)
        return draws

    def sample(self, n_samples=1):
        """Draw from the fitted mixture.

        Returns
        -------
        X : (n_samples, n_features)
        y : (n_samples,) component of each draw, in component order (as scikit-learn)
        """
        check_is_fitted(self)
        return sample_mixture(self.weights_, self.means_, self._full_covariances(), n_samples,
                              numpy_rng(self.random_state))

    def _full_covariances(self) -> np.ndarray:
        """Fitted covariances as (K, D, D) matrices whatever the covariance type."""
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
