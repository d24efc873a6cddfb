"""`equisweep data generate|info`: the task's data command, with Ray behind `--address`.

The command itself lives in `equisweep.task.cli`, which never imports Ray; this module hands
it an executor that runs one shard per Ray task on the cluster at `--address`.
"""

from __future__ import annotations

from equisweep.task.cli import add_arguments

__all__ = ["add_arguments", "run"]


def run(args) -> int:
    from equisweep.task import cli

    return cli.run(args, executor_for=ray_executor_for)


def ray_executor_for(address: str):
    """A Ray executor on the cluster at `address`; UserError when it cannot be joined."""
    from equisweep.errors import UserError
    from equisweep.sweep.ray_map import ray_executor

    try:
        return ray_executor(address)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - Ray raises assorted types for a bad address
        raise UserError(f"--address: cannot join the Ray cluster at {address!r}: "
                        f"{type(exc).__name__}: {exc}") from None
