"""Ray-backed `map` for dataset generation, so shards build across the cluster's CPUs.

task/ never imports Ray; it accepts any executor with a concurrent.futures-style `map`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator


class RayExecutor:
    """`map(fn, items)` as one Ray task per item, results yielded in input order."""

    def __init__(self, num_cpus: float = 1):
        self.num_cpus = num_cpus

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        import ray

        remote = ray.remote(num_cpus=self.num_cpus)(fn)
        refs = [remote.remote(item) for item in items]
        for ref in refs:
            yield ray.get(ref)


def ray_executor(address: str | None = None) -> RayExecutor:
    """Join the cluster at `address` (or the one already initialised) and return an executor."""
    from equisweep.sweep.session import connect

    connect(address)
    return RayExecutor()
