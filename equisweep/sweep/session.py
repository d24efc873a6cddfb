"""Starting or joining Ray: the one place that decides where a sweep runs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from equisweep.errors import UserError

logger = logging.getLogger(__name__)
# The embedded Ray's watchdog (equisweep.sweep.watchdog): held for the driver's lifetime.
_watchdog = None
_client_dashboard: str | None = None  # the dashboard of a cluster joined by ray://


def use_token_if_available() -> None:
    """Send the cluster's auth token when one is at hand, as `ray job submit` does.

    Ray's clients attach a token only in token mode; a user who set RAY_AUTH_MODE keeps
    their choice. It must run before Ray reads its config, i.e. before `import ray`. The
    token goes only to the cluster the user named; it is never copied into job envs, the
    store or logs.
    """
    if os.environ.get("RAY_AUTH_MODE"):
        return
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token").expanduser()
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def prepare(address: str | None) -> str | None:
    """Resolve where to run and set up auth for it; call before anything imports Ray."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address not in (None, "local"):
        use_token_if_available()
    return address


def connect(address: str | None = None, *, num_cpus: int | None = None, quiet: bool = True):
    """Join `address`, the cluster of a Ray job ($RAY_ADDRESS), or start a local Ray.

    A local Ray binds its dashboard to 127.0.0.1 only: an embedded cluster is a private
    one, never exposed on the machine's network interfaces.
    """
    address = prepare(address)
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context()
    # Quiet: Ray installs no console handler of its own, so whoever runs the sweep decides
    # where Ray's log records go (equisweep.sweep.console sends them to a file).
    kwargs = dict(
        logging_level=logging.WARNING if quiet else logging.INFO,
        log_to_driver=not quiet,
        configure_logging=not quiet,
    )
    if address in (None, "local"):
        from equisweep.sweep import watchdog

        global _watchdog
        # Before Ray starts, so there is no moment at which Ray runs unwatched.
        handle, owner = watchdog.start()
        _watchdog = handle
        os.environ[watchdog.MARKER] = owner  # inherited by every process Ray starts
        try:
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                **kwargs,
            )
        finally:
            os.environ.pop(watchdog.MARKER, None)  # not for the driver's other children
    else:
        if is_gcs_address(address):
            check_this_machine_is_a_node(address)
        try:
            ctx = ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError) as exc:
            msg = " ".join(str(exc).split())[:300]
            raise UserError(f"--address {address}: cannot reach a Ray cluster ({msg})") from None
        global _client_dashboard
        # Under Ray Client the runtime context has no dashboard URL and this process no Ray
        # node: the URL comes back with the connection (ray://, issue 20).
        _client_dashboard = getattr(ctx, "dashboard_url", None)
    return ray.get_runtime_context()


def is_gcs_address(address: str | None) -> bool:
    """A bare HOST:PORT: the cluster's GCS, joined as a driver on one of its nodes."""
    return bool(address) and address not in ("local", "auto") and "://" not in address


def check_this_machine_is_a_node(address: str, local_ips: set[str] | None = None,
                                 timeout_s: float = 5.0) -> None:
    """Refuse HOST:PORT from a machine that runs no node of that cluster, in seconds.

    A driver that joins by GCS address attaches to a raylet on its own machine, which Ray
    finds among the cluster's nodes by this machine's node IP. From elsewhere `ray.init` waits
    60 s and fails, or (no Ray session folder here) dies in a native stack trace. Outside
    the cluster, a sweep goes through the job API (`submit`) or Ray Client (`ray://`).
    """
    import socket

    host, _, port = address.rpartition(":")
    what = f"--address {address}"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise UserError(f"{what}: cannot reach a Ray cluster there ({exc})") from None
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    try:
        nodes = GcsClient(address=address).get_all_node_info(timeout=timeout_s)
    except AuthenticationError:
        raise UserError(f"{what}: the cluster uses token auth and this machine has no token "
                        "for it (set RAY_AUTH_TOKEN or ~/.ray/auth_token)") from None
    except Exception:  # an old or odd GCS: leave the verdict to ray.init
        return
    alive = {n.node_manager_address for n in nodes.values() if n.state == 0}  # 0: ALIVE
    if not alive or alive & (local_ips if local_ips is not None else _local_ips()):
        return  # (no node up yet: a cluster still starting is ray.init's to wait for)
    head = host.strip("[]")
    raise UserError(f"{what}: this machine is not a node of that cluster (its nodes: "
                    f"{', '.join(sorted(alive))}); from outside, use "
                    f"`equisweep submit SWEEP --address http://{head}:8265` or "
                    f"`--address ray://{head}:10001`")


def _local_ips() -> set[str]:
    # The address Ray itself matches against the cluster's nodes to find this machine's
    # raylet (RAY_NODE_IP_ADDRESS overrides it, as it does for Ray).
    import ray.util

    return {os.environ.get("RAY_NODE_IP_ADDRESS") or ray.util.get_node_ip_address()}


def dashboard_url() -> str | None:
    import ray

    if ray.util.client.ray.is_connected():
        url = _client_dashboard
        return f"http://{url}" if url and not url.startswith("http") else url
    try:
        url = ray.get_runtime_context().dashboard_url if hasattr(
            ray.get_runtime_context(), "dashboard_url") else None
        if not url:
            url = ray._private.worker.global_worker.node.address_info.get("webui_url")
    except Exception:  # dashboard may be disabled on the cluster
        return None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return url
