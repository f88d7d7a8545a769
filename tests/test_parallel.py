"""Data-parallel EM (issue #6): the rows sharded over four JAX CPU devices give the one-device
result. JAX fixes its device count at start-up, so the check runs in a child process with
``--xla_force_host_platform_device_count=4``. ``select_model`` goes through the same
``TrainingData`` blocks and ``fit_batch`` as ``GaussianMixture.fit`` and is not run again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json
import numpy as np
import jax
from bayesgmm import GaussianMixture, use_devices
from bayesgmm.core.covariance import get_family
from bayesgmm.preprocessing import compute_context
from bayesgmm.training import TrainingData

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

runs = {
    "complete": lambda: fit(X),
    "missing": lambda: fit(holes, missing="marginalize"),
    "streamed": lambda: fit(lambda: (X[i:i + 17_000] for i in range(0, len(X), 17_000))),
}
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


@pytest.fixture(scope="module")
def four_devices() -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=4 "
                        + env.get("XLA_FLAGS", "")).strip()
    result = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_rows_really_are_split_over_the_four_devices(four_devices):
    assert four_devices["devices"] == 4
    assert four_devices["shards"] == 4
    assert four_devices["shard_devices"] == 4
    # each device holds a quarter of the blocks
    assert four_devices["shard_blocks"] == [four_devices["blocks"] // 4]


@pytest.mark.parametrize("run", ["complete", "missing", "streamed"])
def test_sharded_em_equals_one_device(four_devices, run):
    differences = four_devices[run]
    assert max(differences.values()) < 1e-9, differences
    single, sharded = four_devices[run + "_n_iter"]
    assert single == sharded


def test_small_data_and_one_device_are_not_sharded():
    import jax

    from bayesgmm.parallel import MIN_ROWS_PER_DEVICE, data_mesh, use_devices

    assert data_mesh(MIN_ROWS_PER_DEVICE - 1) is None
    with use_devices(1):
        assert data_mesh(10**9) is None
    with use_devices([jax.devices()[0]]):
        assert data_mesh(10**9) is None


def test_use_devices_rejects_nonsense():
    from bayesgmm.parallel import use_devices

    for bad in (0, 10**6, [], ["cpu"]):
        with pytest.raises(ValueError, match="devices"), use_devices(bad):
            pass
