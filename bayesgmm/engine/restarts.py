"""The restarts of a batched EM fit as an estimator sees them: where they start (the user's
initial parameters), the one it keeps, and the verbose lines about them.

The choice itself is :func:`bayesgmm.core.restart_choice.choose_restart`, shared with the
model-selection sweep; an estimator, unlike the sweep, refuses a batch whose every restart is
degenerate.
Lower bounds are printed in the data's units: ``log_det`` is the log-determinant of the map to
internal units (:meth:`~bayesgmm.engine.preprocessing.AffineScaling.log_det`), subtracted
from the internal bounds.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from bayesgmm.base.validation import (
    ILL_DEFINED_COVARIANCE,
    DegenerateFitError,
    check_initial_precisions,
    check_initial_weights,
)
from bayesgmm.core.covariance_family import CovarianceFamily
from bayesgmm.core.em import BatchResult, InitOverride
from bayesgmm.core.restart_choice import choose_restart
from bayesgmm.engine.preprocessing import AffineScaling


def user_start(weights_init, means_init, precisions_init, family: CovarianceFamily,
               scaling: AffineScaling, n_components: int, n_dims: int) -> InitOverride:
    """The user's initial parameters (scikit-learn's ``weights_init`` (K,), ``means_init``
    (K, D), ``precisions_init`` in ``family``'s shape; None where not given), checked and put
    in ``scaling``'s internal units. Must be called inside ``compute_context(np.float64)``."""
    k = n_components
    weights = means = cov = prec_chol = None
    if weights_init is not None:
        weights = check_initial_weights(weights_init, k)
    if means_init is not None:
        means = np.array(means_init, dtype=np.float64)
        if means.shape != (k, n_dims):
            raise ValueError(
                f"The parameter 'means' should have the shape of {(k, n_dims)}, but got "
                f"{means.shape}: means_init needs one row of {n_dims} features per "
                f"component (n_components={k}).")
        means = scaling.transform(means)
    if precisions_init is not None:
        precisions = check_initial_precisions(precisions_init, family, k, n_dims)
        cov = np.asarray(family.covariances_from_precisions(jnp.asarray(precisions)))
        cov = cov / scaling.scale**2
        cov, prec_chol = family.precisions_cholesky(jnp.asarray(cov), 0.0)
    return InitOverride(weights, means, cov, prec_chol)


def kept_restart(result: BatchResult, max_iter: int, dtype) -> int:
    """The restart an estimator keeps: the highest lower bound among those with no degenerate
    component (restart 0 when ``max_iter`` is 0: the initialisation itself, often one point
    per component). Raises :class:`DegenerateFitError` if every restart is degenerate;
    ``dtype`` (the compute dtype) only shapes the message."""
    lower_bound = np.asarray(result.state.lower_bound, dtype=np.float64)
    chosen, usable = choose_restart(lower_bound, result.degenerate)
    if not max_iter:
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
               if dtype == np.float32 else ""))
    return chosen


def print_restarts(result: BatchResult, log_det: float, best: int, verbose: int,
                   interval: int) -> None:
    """``verbose`` >= 1: one line per restart (iterations, final lower bound, converged,
    degenerate, best); >= 2: also the lower bound and its change every ``interval``
    iterations. Nothing when ``verbose`` is 0."""
    if not verbose:
        return
    state, degenerate = result.state, np.asarray(result.degenerate)
    for i, (lb, n_iter, conv) in enumerate(zip(state.lower_bound, state.n_iter,
                                               state.converged, strict=True)):
        flags = (" converged" if conv else " did not converge") + (
            ", degenerate" if degenerate[i].any() else "") + (", best" if i == best else "")
        print(f"Initialization {i}: {int(n_iter)} iterations, lower bound "
              f"{float(lb) - log_det:.6f};{flags}")
        if verbose >= 2:
            print_history(np.asarray(state.history[i])[: int(n_iter)] - log_det, interval)


def print_history(history: np.ndarray, interval: int) -> None:
    """One restart's lower bound (history: (n_iter,), in the data's units) and its change at
    every ``interval``-th iteration (the verbose >= 2 lines of EM and VI alike)."""
    for t in range(interval - 1, len(history), interval):
        change = history[t] - (history[t - 1] if t else -np.inf)
        print(f"  Iteration {t + 1}\t lower bound {history[t]:.6f}\t change {change:.6f}")


def iteration_printer(log_det: float, interval: int) -> Callable[[int, np.ndarray], None]:
    """``report(iteration, lower_bounds)`` for a loop that runs on the host (streamed EM):
    prints every restart's lower bound (B,) at iteration 1 and every ``interval``-th."""
    def report(iteration: int, lower_bounds: np.ndarray) -> None:
        if iteration % interval == 0 or iteration == 1:
            print(f"Iteration {iteration}\t lower bounds "
                  + ", ".join(f"{b - log_det:.6f}" for b in lower_bounds), flush=True)

    return report
