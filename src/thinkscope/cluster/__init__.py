"""Ray sharding of any stage that works in named units and writes one atomic shard per unit.

A stage hands :meth:`Cluster.map` a picklable ``factory`` and the names of its unfinished
units. Each Ray worker (an actor: one per GPU when the cluster has GPUs, else one CPU process)
calls ``factory()`` once (loading the model once) and then ``work(unit)`` for each unit it is
given; ``work`` writes the unit's shard into the run folder itself and returns a small dict of
counts, which the driver uses for progress. ``ray.util.ActorPool`` hands out the units.
On a multi-machine cluster the run folder must be on a filesystem every worker sees.

Resuming: a shard is written atomically, so a killed worker leaves no partial shard; Ray
restarts the actor and retries its unit (``max_restarts``/``max_task_retries``), and a rerun of a
killed driver with ``--resume`` skips every unit whose shard exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from pydantic import Field

from thinkscope.core.errors import UserError
from thinkscope.core.spec import Spec

Work = Callable[[str], dict]


class _Worker:
    """A Ray actor: builds the stage's ``work`` once, then runs units."""

    def __init__(self, factory: Callable[[], Work]) -> None:
        self.work = factory()

    def run(self, unit: str) -> dict:
        return self.work(unit)


def _ray():
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'thinkscope[cluster]'") from None
    return ray


@dataclass(frozen=True)
class Cluster:
    """``workers`` Ray workers on the cluster at ``address`` (``None``: start a local one)."""

    workers: int = 2
    address: str | None = None
    retries: int = 2

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}")

    def map(self, factory: Callable[[], Work], units: Sequence[str]) -> Iterator[dict]:
        """Run ``work(unit)`` for every unit on the workers; yield results as they finish."""
        if not units:
            return
        ray = _ray()
        from ray.util import ActorPool

        started = not ray.is_initialized()
        if started:
            if self.address:
                ray.init(address=self.address, include_dashboard=False)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False)
        try:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
            worker = ray.remote(_Worker).options(
                num_cpus=1,
                num_gpus=gpus,
                max_restarts=self.retries,
                max_task_retries=self.retries,
            )
            actors = [worker.remote(factory) for _ in range(min(self.workers, len(units)))]
            yield from ActorPool(actors).map_unordered(lambda a, unit: a.run.remote(unit), units)
        finally:
            if started:
                ray.shutdown()


class ClusterSpec(Spec):
    """Where a stage runs: the ``--ray``, ``--ray-address`` and ``--workers`` options (plain
    options, none takes an optional value) and the one mapping from them to a :class:`Cluster`."""

    ray: bool = Field(
        False,
        description="Shard the work over Ray workers on a local cluster.",
        json_schema_extra={"flag": "--ray"},  # a plain flag, no --no-ray
    )
    ray_address: str | None = Field(
        None, description="Shard the work over the Ray cluster at this address instead."
    )
    workers: int = Field(1, ge=1, description="Ray workers (> 1 starts a local cluster).")

    def cluster(self) -> Cluster | None:
        """The cluster these options ask for (``None``: one process, no Ray)."""
        if not (self.ray or self.ray_address or self.workers > 1):
            return None
        return Cluster(workers=self.workers, address=self.ray_address)


__all__ = ["Cluster", "ClusterSpec"]
