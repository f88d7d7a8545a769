"""Which restart of a batch of EM fits of one model to keep (host arrays, after the compiled
program of :mod:`bayesgmm.core.em`): one rule for the estimators and the model-selection sweep."""

from __future__ import annotations

import numpy as np


def usable_restarts(lower_bound: np.ndarray, degenerate: np.ndarray) -> np.ndarray:
    """(B,) bool: the restarts (host arrays: lower bounds (B,), degenerate (B, K)) that ended
    with no degenerate component and a finite lower bound."""
    return ~np.asarray(degenerate).any(axis=1) & np.isfinite(lower_bound)


def best_restart(lower_bound: np.ndarray, pool: np.ndarray) -> int:
    """Index of the highest lower bound (B,) among the restarts with ``pool`` True."""
    return int(np.argmax(np.where(pool, lower_bound, -np.inf)))


def choose_restart(lower_bound: np.ndarray, degenerate: np.ndarray) -> tuple[int, bool]:
    """The restart that represents a batch of restarts of one model (host arrays: lower
    bounds (B,), degenerate components (B, K)), and whether it is usable: the highest bound
    among the usable restarts (:func:`usable_restarts`); when none is usable, the highest
    finite bound (else the first). The estimator refuses an unusable choice; a sweep keeps
    it and marks the model degenerate."""
    lower_bound = np.asarray(lower_bound, dtype=np.float64)
    usable = usable_restarts(lower_bound, degenerate)
    pool = usable if usable.any() else np.isfinite(lower_bound)
    if not pool.any():
        pool = np.ones_like(usable)
    return best_restart(lower_bound, pool), bool(usable.any())
