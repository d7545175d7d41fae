"""Data parallelism with JAX's own runtime: one mesh axis `data` over every device of every host.

The train state and the (small) dataset are replicated; each step's batch indices are
sharded along `data`, so every device gathers and computes only its share, and XLA
inserts the gradient all-reduce. The same jitted step serves 1 CPU, 8 GPUs or many hosts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from charjax.errors import CharjaxError


def initialize(config: ml_collections.ConfigDict) -> None:
    """Joins the processes of a multi-host run (config.distributed); a no-op for a single
    process."""
    if jax.distributed.is_initialized():
        return
    explicit = bool(config.coordinator_address) or config.num_processes > 1
    if not (explicit or config.auto_detect):
        return
    if config.cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", config.cpu_collectives)
    if explicit:
        if not (config.coordinator_address and config.num_processes > 1
                and 0 <= config.process_id < config.num_processes):
            raise CharjaxError(
                "multi-host needs config.distributed.coordinator_address (host:port), "
                "num_processes (> 1) and process_id (0..num_processes-1) together; got "
                f"{config.coordinator_address!r}, {config.num_processes}, {config.process_id}"
            )
        jax.distributed.initialize(
            config.coordinator_address, config.num_processes, config.process_id
        )
    else:
        jax.distributed.initialize()


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where arrays live: replicated (state, dataset) or split along `data` (batches)."""

    mesh: jax.sharding.Mesh

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    @property
    def batch(self) -> NamedSharding:
        return NamedSharding(self.mesh, P("data"))

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    def replicate(self, tree: Any) -> Any:
        """Host or single-device arrays -> global arrays replicated on every device.

        Built from each process's own copy (they are identical), so it also works when
        the mesh spans devices this process cannot address.
        """

        def put(x):
            if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                data = put(jax.random.key_data(x))
                return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, self.replicated, lambda i: host[i])

        return jax.tree_util.tree_map(put, tree)

    def check_batch_size(self, batch_size: int, name: str = "batch_size") -> None:
        if batch_size % self.num_devices:
            raise CharjaxError(
                f"config.{name}={batch_size} must divide evenly over the {self.num_devices} "
                f"devices of the mesh; use a multiple of {self.num_devices}"
            )


def data_placement() -> Placement:
    """A 1-D mesh `data` over all devices of all processes.

    Auto axis types: the step is written once for any device count and lets XLA place
    the collectives; jax 0.10's default (Explicit) would work too but adds nothing for
    pure data parallelism.
    """
    mesh = jax.make_mesh(
        (jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,)
    )
    return Placement(mesh)


def is_main_process() -> bool:
    """Only process 0 writes logs, plots and metrics files."""
    return jax.process_index() == 0
