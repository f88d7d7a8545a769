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

Several processes (``jax.distributed.initialize()``, one or more per host)
    Every process calls the same fit on its own rows. The column summary (means, variances,
    ranges) and the row count are combined across processes, each process's blocks become
    its part of one global array (``jax.make_array_from_process_local_data``), the mesh is
    every device of every process, and the seed is process 0's, so that all processes run
    the same program on the same inputs. See ``docs/scaling.md`` for what is supported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import jax
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


def multi_process() -> bool:
    """Whether JAX runs as several processes (``jax.distributed.initialize()``)."""
    return jax.process_count() > 1


def data_mesh(n_rows: int) -> Mesh | None:
    """The mesh to shard ``n_rows`` rows (all processes' rows together) over, or None for one
    device (see module docstring). With several processes: always every device, ordered by
    process, so that each process's blocks land on its own devices."""
    if multi_process():
        if _chosen_devices.get() is not None:
            raise ValueError("use_devices cannot be combined with several JAX processes: the "
                             "rows are sharded over every device of every process")
        devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
        return Mesh(np.array(devices), (ROWS_AXIS,))
    devices = _chosen_devices.get() or tuple(jax.devices())
    if len(devices) < 2 or n_rows < MIN_ROWS_PER_DEVICE * len(devices):
        return None
    return Mesh(np.array(devices), (ROWS_AXIS,))


def shard_count(mesh: Mesh | None) -> int:
    """Number of shards of the block axis: the mesh's size, 1 without a mesh."""
    return 1 if mesh is None else mesh.size


def local_shard_count(mesh: Mesh | None) -> int:
    """The shards this process holds: its blocks are a multiple of this many."""
    if mesh is None:
        return 1
    return sum(d.process_index == jax.process_index() for d in mesh.devices.flat)


def put_blocks(arrays: Sequence[np.ndarray], mesh: Mesh | None) -> list[jax.Array]:
    """Move arrays with a leading block axis to the device(s): split along that axis over
    ``mesh`` (its length must be a multiple of the mesh size; with several processes, of
    this process's devices, each process passing its own blocks), or to the default
    device."""
    if mesh is None:  # device_put, unlike jnp.asarray, compiles no program for the copy
        return [jax.device_put(a) for a in arrays]
    sharding = NamedSharding(mesh, PartitionSpec(ROWS_AXIS))
    if multi_process():  # each process passes its own part of the global array
        return [jax.make_array_from_process_local_data(sharding, a) for a in arrays]
    return [jax.device_put(a, sharding) for a in arrays]


def gather_from_processes(value: np.ndarray) -> np.ndarray:
    """``value`` of every process, stacked: (n_processes, ...) (float64 kept)."""
    from jax.experimental import multihost_utils

    with jax.enable_x64(True):
        return np.asarray(multihost_utils.process_allgather(np.asarray(value)))


def seed_of_process_zero(seed: int) -> int:
    """Process 0's ``seed`` in every process (itself with one process)."""
    if not multi_process():
        return seed
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(seed)))
