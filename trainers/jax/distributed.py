"""Several jax processes as one run (a TPU slice of several hosts, or CPU processes on one machine):
joining them, which process this is, and the arrays that cross between the host and the global mesh.

Every process runs the same program on the same data: each builds the whole batch, places only the
rows of its own devices, and takes part in every collective (a gather for export, a broadcast)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
import numpy as np

# jax reads JAX_COORDINATOR_ADDRESS itself; these two name the rest where nothing detects them (a
# TPU slice's metadata does: there ``jax.distributed.initialize()`` needs no argument).
NUM_PROCESSES = "TUNIX_RT_NUM_PROCESSES"
PROCESS_ID = "TUNIX_RT_PROCESS_ID"
# Generous: on a loaded machine or a slice the other hosts may start a minute later.
INITIALIZATION_TIMEOUT_S = 300


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number") from None


def initialize() -> tuple[int, int]:
    """Join the run's other processes (before anything starts a jax backend); return this
    process's index and the number of processes. Coordinator, count and index come from
    ``JAX_COORDINATOR_ADDRESS``, ``TUNIX_RT_NUM_PROCESSES`` and ``TUNIX_RT_PROCESS_ID`` where set,
    else from the cluster jax detects (a Cloud TPU slice)."""
    if not jax.distributed.is_initialized():
        jax.distributed.initialize(
            num_processes=_env_int(NUM_PROCESSES),
            process_id=_env_int(PROCESS_ID),
            initialization_timeout=INITIALIZATION_TIMEOUT_S,
        )
    return jax.process_index(), jax.process_count()


def is_primary() -> bool:
    """Whether this process writes what the run leaves on disk besides checkpoint shards."""
    return jax.process_index() == 0


def global_batch(batch: Mapping[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """The batch as global arrays whose rows are split over every device of ``mesh`` (both axes):
    each process copies only the rows of its own devices, so no row is fed twice."""
    spec = jax.sharding.PartitionSpec(mesh.axis_names)
    sharding = jax.sharding.NamedSharding(mesh, spec)
    return {
        name: jax.make_array_from_callback(array.shape, sharding, lambda index, a=array: a[index])
        for name, array in batch.items()
    }


def host_array(array: jax.Array) -> np.ndarray:
    """The whole of ``array`` on this host; an array spread over several processes is gathered
    from all of them, so every process must call this for the same arrays in the same order."""
    if array.is_fully_addressable:
        return np.asarray(jax.device_get(array))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def broadcast_ints(values: list[int]) -> list[int]:
    """Process 0's ``values`` on every process (each passes a list of the same length)."""
    if jax.process_count() == 1:
        return list(values)
    from jax.experimental import multihost_utils

    sent = np.asarray(values, dtype=np.int32)  # jax keeps 32-bit integers unless x64 is on
    return [int(v) for v in multihost_utils.broadcast_one_to_all(sent)]


def gather_ints(value: int) -> list[int]:
    """Every process's ``value``, in the order of the processes' indices."""
    if jax.process_count() == 1:
        return [value]
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(np.asarray(value, dtype=np.int32))
    return [int(v) for v in np.ravel(gathered)]


def barrier(name: str) -> None:
    """Wait until every process of the run reaches ``name``; nothing to wait for in one process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
