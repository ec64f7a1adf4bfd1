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

from thinkscope.core.errors import UserError

Work = Callable[[str], dict]

#: Keyword arguments of the ``--ray`` Typer option: ``--ray`` alone starts a local cluster
#: (the value ``local``), ``--ray ADDRESS`` joins that cluster.
RAY_OPTION = dict(
    is_flag=False,
    flag_value="local",
    metavar="[ADDRESS]",
    help="Shard problems over Ray workers (a local cluster, or the one at ADDRESS).",
)


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


def from_options(ray: str | None, workers: int) -> Cluster | None:
    """The cluster of ``--ray [ADDRESS]`` and ``--workers N`` (``None``: one process)."""
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if ray is None and workers == 1:
        return None
    return Cluster(workers=workers, address=None if ray in (None, "local") else ray)


__all__ = ["RAY_OPTION", "Cluster", "from_options"]
