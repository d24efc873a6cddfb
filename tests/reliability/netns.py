"""Hosts on one machine for the multi-host test: Linux network, mount and UTS namespaces.

Each host is a network namespace with a veth pair onto a private bridge (a /24 of
10.213.0.0/16 picked per run; the root namespace holds the bridge's .1, so the test itself
reaches every host the way a laptop reaches a cluster) and runs its processes in a mount
namespace of their own: a per-host folder bound over /tmp and another over /home (HOME is
/home/equisweep), and a fresh tmpfs on /dev/shm. No host sees another's files; the test reads
a host's folders afterwards, as one would read the disk of a dead machine. Each host has its
own host name too, so the store's `node` column names it.

Every process runs inside its namespace; `ip netns pids` finds all of them (Ray's workers
call setsid, so a process group would miss some), and `kill_host` / `Hosts.close` end them
by pid.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PYTHON_BIN = str(Path(sys.executable).parent)


def unavailable() -> str | None:
    """Why namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command"
    probe = f"eqsprobe{os.getpid()}"
    try:
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if made.returncode != 0:
            return f"`ip netns add` refused: {made.stderr.strip()[:200]}"
        inner = subprocess.run(
            ["ip", "netns", "exec", probe, "unshare", "-m", "-u", "--propagation", "private",
             "sh", "-c", "mount -t tmpfs tmpfs /dev/shm && hostname eqsprobe"],
            capture_output=True, text=True)
        if inner.returncode != 0:
            return f"`unshare -m -u` refused: {inner.stderr.strip()[:200]}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()}")


def netns_pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def kill_all_in(ns: str, timeout: float = 60) -> list[int]:
    """SIGKILL every process in namespace `ns`, by pid, until none is left (a process
    forked meanwhile is caught by the next pass). Returns the pids killed."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while pids := netns_pids(ns):
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes outlive SIGKILL in {ns}: {pids}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)  # until the kernel has reaped them out of the namespace
    return killed


class Hosts:
    """Namespaces named `<tag>-<host>` on the bridge `<tag>br`, host i at `<net>.<10+i>`."""

    def __init__(self, tag: str, net: str, root: Path):
        self.tag, self.net, self.root = tag, net, root
        self.bridge = f"{tag}br"
        self.ips: dict[str, str] = {}
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[str, Path] = {}

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def start_bridge(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.net}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add(self, host: str) -> str:
        """A namespace on the bridge; its IP."""
        ns, ip = self.ns(host), f"{self.net}.{10 + len(self.ips)}"
        outer = f"{self.tag}{len(self.ips)}"  # IFNAMSIZ: 15 characters at most
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        self.ips[host] = ip
        _ip("link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", outer, "master", self.bridge)
        _ip("link", "set", outer, "up")
        _ip("link", "set", "lo", "up", ns=ns)
        _ip("addr", "add", f"{ip}/24", "dev", "eth0", ns=ns)
        _ip("link", "set", "eth0", "up", ns=ns)
        self.root.mkdir(parents=True, exist_ok=True)
        names = "".join(f"{a} {self.ns(h)}\n" for h, a in self.ips.items())
        (self.root / "hosts").write_text(f"127.0.0.1 localhost\n{names}")
        for d in ("tmp", "home/equisweep"):
            (self.root / host / d).mkdir(parents=True, exist_ok=True)
        return ip

    def tmp(self, host: str) -> Path:
        return self.root / host / "tmp"

    def home(self, host: str) -> Path:
        return self.root / host / "home" / "equisweep"

    def run(self, host: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Start `argv` on `host` with its private /tmp, /home, /dev/shm and host name; the
        process keeps the Popen's pid (every step execs), its output goes to a log."""
        d = self.root / host
        script = "; ".join([
            "set -e",
            f"hostname {shlex.quote(self.ns(host))}",
            # The hosts' names resolve as a cluster's DNS would resolve them: Ray falls back
            # to its host name for its own IP where no default route exists (none does here:
            # no traffic leaves the bridge), and 127.0.0.1 is not a node of the cluster.
            # Before /tmp: every source lies under the machine's /tmp, hidden once bound.
            f"mount --bind {shlex.quote(str(self.root / 'hosts'))} /etc/hosts",
            f"mount --bind {shlex.quote(str(d / 'home'))} /home",
            f"mount --bind {shlex.quote(str(d / 'tmp'))} /tmp",
            "mount -t tmpfs -o size=512m tmpfs /dev/shm",
            "cd /tmp",
            "exec " + shlex.join(argv),
        ])
        log = self.root / f"{host}.log"
        self.logs[host] = log
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(host), "unshare", "-m", "-u",
                 "--propagation", "private", "bash", "-c", script],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def close(self) -> list[str]:
        """End every process in every namespace by pid, then delete the namespaces and the
        bridge (a veth goes with its namespace). Returns what could not be cleaned."""
        problems = []
        for host in self.ips:
            try:
                kill_all_in(self.ns(host))
            except RuntimeError as exc:
                problems.append(str(exc))
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append(f"pid {proc.pid} did not exit")
        for i, host in enumerate(self.ips):
            # The veth first, both ends at once: a namespace's deletion frees its devices
            # asynchronously, after `ip netns del` has returned.
            subprocess.run(["ip", "link", "del", f"{self.tag}{i}"], capture_output=True)
            out = subprocess.run(["ip", "netns", "del", self.ns(host)], capture_output=True,
                                 text=True)
            if out.returncode != 0:
                problems.append(out.stderr.strip())
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        return problems

    def leftovers(self) -> list[str]:
        """Namespaces, links and processes of this run that still exist."""
        left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout.split() if n.startswith(self.tag)]
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        left += [w for w in links.split() if w.rstrip(":").split("@")[0].startswith(self.tag)]
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if f"{self.net}." in cmd or f"{self.tag}-" in cmd:
                left.append(f"pid {pid}: {cmd[:120]}")
        return left
