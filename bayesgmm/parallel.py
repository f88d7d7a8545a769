"""Data-parallel EM: the rows' blocks sharded across JAX devices.

Every statistic EM needs is a sum over rows (:mod:`bayesgmm.core.stats`), so running it on
several devices needs no new algorithm: the blocks of feature rows are laid out in one
``jax.Array`` whose block axis is split across a one-dimensional device mesh (axis name
``"rows"``, a :class:`~jax.sharding.NamedSharding`), each device scans its own blocks, and the
per-device sums are added (an all-reduce that XLA inserts for the final sum of
:func:`~bayesgmm.core.stats.sum_blocks`). The parameters, a few kilobytes, are replicated.
Initialisation (k-means on the flat rows) is partitioned by XLA the same way. One compiled
program serves one and several devices; only the number of shards is part of its key.

Which devices
    By default every device of JAX's default backend, when the data fill at least
    :data:`MIN_ROWS_PER_DEVICE` rows per device (below that one device is faster than the
    communication). :func:`use_devices` chooses others, or one device to turn sharding off::

        with bayesgmm.use_devices(jax.devices()[:2]):
            GaussianMixture(8).fit(X)

On one host the rows are copied to the devices from the host array. Several hosts
(``jax.distributed.initialize()``) are described in ``docs/scaling.md``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

#: Name of the mesh axis the block axis is split over.
ROWS_AXIS = "rows"

#: Sharding is used only when the data have at least this many rows per device.
MIN_ROWS_PER_DEVICE = 4096

_chosen_devices: ContextVar[tuple | None] = ContextVar("bayesgmm_devices", default=None)


@contextmanager
def use_devices(devices: Sequence[jax.Device] | int | None) -> Iterator[None]:
    """Shard EM's data over ``devices`` inside the ``with`` block.

    Parameters
    ----------
    devices : sequence of ``jax.Device``, int or None
        The devices to use; an int ``n`` means the first ``n`` devices of the default backend
        (``1`` turns sharding off); None restores the default (all devices of the default
        backend).
    """
    if isinstance(devices, int | np.integer):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices={devices} must be between 1 and the {len(available)} "
                             "visible devices")
        devices = available[:devices]
    if devices is not None:
        devices = tuple(devices)
        if not devices or not all(isinstance(d, jax.Device) for d in devices):
            raise ValueError("devices must be a non-empty sequence of jax.Device, an int or "
                             "None")
    token = _chosen_devices.set(devices)
    try:
        yield
    finally:
        _chosen_devices.reset(token)


def data_mesh(n_rows: int) -> Mesh | None:
    """The mesh to shard ``n_rows`` rows over, or None for one device (see module docstring)."""
    devices = _chosen_devices.get() or tuple(jax.devices())
    if len(devices) < 2 or n_rows < MIN_ROWS_PER_DEVICE * len(devices):
        return None
    return Mesh(np.array(devices), (ROWS_AXIS,))


def shard_count(mesh: Mesh | None) -> int:
    """Number of shards of the block axis: the mesh's size, 1 without a mesh."""
    return 1 if mesh is None else mesh.size


def put_blocks(arrays: Sequence[np.ndarray], mesh: Mesh | None) -> list[jax.Array]:
    """Move arrays with a leading block axis to the device(s): split along that axis over
    ``mesh`` (its length must be a multiple of the mesh size), or to the default device."""
    if mesh is None:
        return [jnp.asarray(a) for a in arrays]
    sharding = NamedSharding(mesh, PartitionSpec(ROWS_AXIS))
    return [jax.device_put(a, sharding) for a in arrays]
