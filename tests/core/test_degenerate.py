"""Collapsed and starved components: flagged, never NaN, never chosen, clear error if all."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGMM

from bayesgmm import DegenerateFitError, GaussianMixture
from bayesgmm.core.covariance import get_family
from bayesgmm.core.em_steps import degenerate_components
from bayesgmm.core.stats import SuffStats
from bayesgmm.engine.preprocessing import compute_context
from tests.helpers import run_core_batch


def _stats(points_per_component, weights=None):
    """Exact statistics of hard assignments: component k owns points_per_component[k]."""
    counts, sum_x, sum_second = [], [], []
    for points in points_per_component:
        points = np.asarray(points, float)
        counts.append(len(points))
        sum_x.append(points.sum(0))
        rows, cols = np.triu_indices(points.shape[1])
        sum_second.append((points[:, rows] * points[:, cols]).sum(0))
    return SuffStats(*(jnp.asarray(np.array(a, float)) for a in (counts, sum_x, sum_second)),
                     jnp.asarray(0.0), jnp.asarray(float(sum(counts))))


def test_rule_flags_collapse_and_starvation_only():
    rng = np.random.default_rng(1)
    healthy = rng.normal(size=(50, 2))
    on_a_line = np.column_stack([rng.normal(size=30), np.full(30, 2.0)])  # repeated y value
    starved = rng.normal(size=(2, 2))  # fewer than D + 1 points
    with compute_context(np.float64):
        flags = degenerate_components(_stats([healthy, on_a_line, starved]), 0.0,
                                      get_family("full"), jnp.ones(2))
    assert np.asarray(flags).tolist() == [False, True, True]


def test_rounded_data_collapse_is_flagged_and_avoided(faithful):
    """Old Faithful's whole-minute waiting times: with K=5 some restarts put a component on
    points sharing one waiting value. scikit-learn's best restart is such a collapse (its
    smallest covariance eigenvalue equals reg_covar); ours must not be."""
    x = faithful.to_numpy()
    result, _ = run_core_batch(x, 40, 5)
    state, degenerate = result.state, result.degenerate
    collapsed = np.asarray(degenerate).any(axis=1)
    bounds = np.asarray(state.lower_bound)
    assert 0 < collapsed.sum() < len(collapsed)
    for leaf in jax.tree_util.tree_leaves(state.params):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # The collapsed restarts have the higher (spurious) likelihood.
    assert bounds[collapsed].max() > bounds[~collapsed].max() + 0.1

    reference = SklearnGMM(5, n_init=40, init_params="random_from_data", random_state=0).fit(x)
    assert np.linalg.eigvalsh(reference.covariances_).min() < 2e-6  # sklearn picked a collapse

    model = GaussianMixture(5, n_init=40, init_params="random_from_data",
                            random_state=0).fit(x)
    assert not model.degenerate_.any()
    assert model.n_degenerate_inits_ >= 1
    assert np.linalg.eigvalsh(model.covariances_).min() > 100 * model.reg_covar


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_all_restarts_degenerate_raise_clear_error(dtype, covariance_type):
    """Four distinct points, each repeated: every component collapses onto one of them, in
    both restarts (two: the first runs as a one-restart program and so does the second, one
    compiled program for the pair)."""
    x = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0], [7.0, 7.0]]), 25, axis=0)
    model = GaussianMixture(4, covariance_type=covariance_type, n_init=2, dtype=dtype,
                            random_state=0)
    with pytest.raises(DegenerateFitError, match="reg_covar") as error:
        model.fit(x)
    assert "fewer components" in str(error.value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_collapsed_components_keep_finite_parameters(dtype):
    x = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]]), 30, axis=0)
    x = x + np.random.default_rng(0).normal(size=x.shape) * [1e-9, 0]
    result, _ = run_core_batch(x, 8, 3, init="kmeans", max_iter=50, dtype=dtype, reg_covar=0.0)
    state, degenerate = result.state, result.degenerate
    assert np.asarray(degenerate).all(axis=1).any()
    for leaf in jax.tree_util.tree_leaves(state.params):
        assert np.all(np.isfinite(np.asarray(leaf)))
