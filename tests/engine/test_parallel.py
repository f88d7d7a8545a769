"""Data-parallel EM (issue #6) and VI (issue #21): the rows sharded over four JAX CPU devices
give the one-device result. JAX fixes its device count at start-up, so the check runs in a
child process with ``--xla_force_host_platform_device_count=4``. ``select_model`` goes through
the same ``TrainingData`` blocks and ``fit_batch`` as ``GaussianMixture.fit`` and is not run
again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT

CHILD = r"""
import json
import numpy as np
import jax
from bayesgmm import GaussianMixture, VariationalGaussianMixture, use_devices
from bayesgmm.core.covariance import get_family
from bayesgmm.engine.preprocessing import compute_context
from bayesgmm.engine.training import TrainingData

rng = np.random.default_rng(0)
centres = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 5.0, -2.0]])
X = np.concatenate([rng.normal(c, 1.0, (7000, 3)) for c in centres])
holes = X.copy()
holes[rng.random(X.shape) < 0.1] = np.nan
holes[np.isnan(holes).all(axis=1), 0] = 0.0

def fit(data, **options):
    model = GaussianMixture(3, n_init=2, tol=1e-9, max_iter=40, random_state=0, **options)
    return model.fit(data)

def relative_difference(a, b):
    return {name: float(np.max(np.abs(getattr(a, name) - getattr(b, name)))
                        / np.max(np.abs(getattr(a, name))))
            for name in ("weights_", "means_", "covariances_", "lower_bound_")}

# Missing values: pattern blocks, the masked E-step and the sharding at once. (Complete data
# on four devices: the two-process test below. Streamed chunks go through the same blocks.)
# Coordinate-ascent VI: its E-step sums are summed per device and added the same way.
runs = {"missing": lambda: fit(holes, missing="marginalize"),
        "vi": lambda: VariationalGaussianMixture(n_components=4, n_init=2, tol=1e-9,
                                                 max_iter=15, random_state=0).fit(X)}
out = {"devices": len(jax.devices())}
for name, run in runs.items():
    with use_devices(1):
        single = run()
    sharded = run()
    out[name] = relative_difference(single, sharded)
    out[name + "_n_iter"] = [int(single.n_iter_), int(sharded.n_iter_)]

training = TrainingData.prepare(X, GaussianMixture(3), 3, 1e-6)
with compute_context(np.float64):
    blocks = training.blocks(get_family("full"), np.float64)
out["shards"] = blocks.shards
out["shard_devices"] = len({s.device for s in blocks.features.addressable_shards})
out["shard_blocks"] = sorted({s.data.shape[0] for s in blocks.features.addressable_shards})
out["blocks"] = blocks.features.shape[0]
print(json.dumps(out))
"""


def _run_four_device_child() -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=4 "
                        + env.get("XLA_FLAGS", "")).strip()
    result = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_four_devices_hold_a_quarter_of_the_rows_each_and_give_the_one_device_fit():
    """One test (one child process): xdist would run a module fixture once per worker."""
    four = _run_four_device_child()
    assert four["devices"] == 4
    assert four["shards"] == 4
    assert four["shard_devices"] == 4
    assert four["shard_blocks"] == [four["blocks"] // 4]  # a quarter of the blocks each
    for run in ("missing", "vi"):
        assert max(four[run].values()) < 1e-9, (run, four[run])
        single, sharded = four[run + "_n_iter"]
        assert single == sharded, run


def test_small_data_and_one_device_are_not_sharded():
    import jax

    from bayesgmm.engine.parallel import MIN_ROWS_PER_DEVICE, data_mesh, use_devices

    assert data_mesh(MIN_ROWS_PER_DEVICE - 1) is None
    with use_devices(1):
        assert data_mesh(10**9) is None
    with use_devices([jax.devices()[0]]):
        assert data_mesh(10**9) is None


def test_use_devices_rejects_nonsense():
    from bayesgmm.engine.parallel import use_devices

    for bad in (0, 10**6, [], ["cpu"]):
        with pytest.raises(ValueError, match="devices"), use_devices(bad):
            pass


@pytest.mark.slow
def test_two_processes_each_with_its_own_rows_fit_as_one():
    """examples/multihost_em.py: two JAX processes (jax.distributed, two CPU devices each),
    each given half of the rows, end with the fit of all the rows in one process (the same
    row order: process 0's rows, then process 1's)."""
    import runpy

    from bayesgmm import GaussianMixture

    example = runpy.run_path(str(ROOT / "examples" / "multihost_em.py"))
    result = example["launch"](2)
    assert (result["processes"], result["devices"], result["rows_here"]) == (2, 4, 15_000)
    rows = example["all_rows"]()
    single = GaussianMixture(3, n_init=2, tol=1e-9, random_state=0).fit(
        np.concatenate([rows[0::2], rows[1::2]]))
    assert result["n_iter"] == single.n_iter_
    for name in ("weights", "means", "covariances", "lower_bound"):
        ours, reference = np.asarray(result[name]), getattr(single, name + "_")
        assert np.max(np.abs(ours - reference)) <= 1e-9 * np.max(np.abs(reference)), name


def test_summaries_of_parts_merge_into_the_summary_of_the_whole():
    """What each process contributes (row count, column mean, variance, range) combines into
    numpy's summary of all rows."""
    from bayesgmm.base.validation import ColumnSummary

    rng = np.random.default_rng(3)
    parts = [rng.normal(loc, scale, (n, 3)) for loc, scale, n in
             [(1e6, 0.1, 5), (1e6 + 1.0, 2.0, 1000), (1e6 - 3.0, 0.5, 37)]]
    whole = np.concatenate(parts)
    summaries = [ColumnSummary.of(p) for p in parts]
    merged = ColumnSummary.merge(
        np.array([len(p) for p in parts]),
        np.stack([[s.mean, s.var, s.minimum, s.maximum] for s in summaries]))
    np.testing.assert_allclose(merged.mean, whole.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(merged.var, whole.var(axis=0), rtol=1e-9)
    np.testing.assert_array_equal(merged.minimum, whole.min(axis=0))
    np.testing.assert_array_equal(merged.maximum, whole.max(axis=0))


def test_what_several_processes_do_not_support_is_refused_clearly(monkeypatch):
    """With several JAX processes (simulated: ``multi_process`` patched to True), each
    unsupported option raises a clear error before any collective would be called."""
    import jax

    import bayesgmm.engine.parallel
    import bayesgmm.engine.prior
    import bayesgmm.engine.training
    import bayesgmm.estimators.bayesian
    import bayesgmm.estimators.gaussian
    from bayesgmm import BayesianGaussianMixture, GaussianMixture, MAPPrior, use_devices
    from bayesgmm.core.covariance import get_family
    from bayesgmm.engine.parallel import data_mesh
    from bayesgmm.engine.preprocessing import AffineScaling
    from bayesgmm.engine.prior import resolve_prior

    for module in (bayesgmm.estimators.bayesian, bayesgmm.estimators.gaussian,
                   bayesgmm.engine.parallel,
                   bayesgmm.engine.prior, bayesgmm.engine.training):
        monkeypatch.setattr(module, "multi_process", lambda: True)
    x = np.random.default_rng(0).normal(size=(50, 2))
    holes = x.copy()
    holes[0, 0] = np.nan
    with pytest.raises(ValueError, match="missing='marginalize' is not supported with several"):
        GaussianMixture(2, missing="marginalize").fit(holes)
    with pytest.raises(ValueError, match="streamed fits are not supported with several"):
        GaussianMixture(2).fit(lambda: iter([x]))
    with pytest.raises(ValueError, match="does not run across several JAX processes"):
        BayesianGaussianMixture(3).fit(x)
    with pytest.raises(ValueError, match="MAP prior is not supported with several"):
        resolve_prior(MAPPrior(), get_family("full"), x, 2, AffineScaling.fit(x), np.float64)
    with use_devices([jax.devices()[0]]), pytest.raises(ValueError, match="use_devices"):
        data_mesh(10**6)
