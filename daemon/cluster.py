"""Several processes, one dataflow: Bytewax's cluster mode.

Every process runs the same flow (`daemon.runner.run_daemon`) with its ``process_id`` and the
``addresses`` of all of them; Bytewax spreads the input's partitions over all their workers and
routes the group's training to one worker of one process. `Member` is one process's place;
`run_local_cluster` is ``headwater run --processes N``: it starts N such processes on this
machine, as ``python -m bytewax.testing -p N`` does, and supervises them. On Kubernetes each pod
is one process and Bytewax's own variables say where it stands (`Member.from_env`).

A cluster lives and dies as one: Bytewax cannot go on without a member, so when one process
fails the supervisor stops the others, and exits with the failure's code. A restart resumes
every process from the recovery store (``runtime.recovery_dir``, which every process must see).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from daemon.config import load_settings

__all__ = ["Member", "free_addresses", "run_local_cluster"]

log = logging.getLogger("headwater")

PR_SET_PDEATHSIG = 1  # prctl(2)


@dataclass(frozen=True)
class Member:
    """One process of a cluster: its index in ``addresses`` (host:port of every process)."""

    process_id: int
    addresses: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.process_id < len(self.addresses):
            msg = f"process id {self.process_id} is not an index of the {len(self.addresses)} addresses"
            raise ValueError(msg)

    @property
    def first(self) -> bool:
        """The process that prepares the shared state (topics, recovery store, first champion)."""
        return self.process_id == 0

    @classmethod
    def parse(cls, process_id: int, addresses: str) -> Member:
        return cls(process_id, tuple(a.strip() for a in addresses.split(";") if a.strip()))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Member | None:
        """The member Bytewax's variables describe (``BYTEWAX_PROCESS_ID`` and ``BYTEWAX_ADDRESSES``,
        or a StatefulSet's ``BYTEWAX_POD_NAME`` and a ``BYTEWAX_HOSTFILE_PATH``), if any."""
        env = dict(os.environ) if env is None else env
        pid = env.get("BYTEWAX_PROCESS_ID")
        if pid is None and "BYTEWAX_POD_NAME" in env and "BYTEWAX_STATEFULSET_NAME" in env:
            pid = env["BYTEWAX_POD_NAME"].removeprefix(env["BYTEWAX_STATEFULSET_NAME"] + "-")
        if pid is None:
            return None
        addresses = env.get("BYTEWAX_ADDRESSES")
        if addresses is None and "BYTEWAX_HOSTFILE_PATH" in env:
            addresses = ";".join(Path(env["BYTEWAX_HOSTFILE_PATH"]).read_text().split())
        if addresses is None:
            msg = "BYTEWAX_PROCESS_ID is set but neither BYTEWAX_ADDRESSES nor BYTEWAX_HOSTFILE_PATH is"
            raise ValueError(msg)
        return cls.parse(int(pid), addresses)


def free_addresses(n: int, host: str = "127.0.0.1") -> list[str]:
    """``n`` ports free on this machine now, for a local cluster's processes to listen on."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [f"{host}:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_local_cluster(
    config: Path, processes: int, extra: Sequence[str] = (), *, grace_s: float = 10.0, poll_s: float = 0.2
) -> int:
    """Run ``processes`` members of one cluster on this machine until they end; return the exit
    code (0 when all ended cleanly, else the first failure's; a signal's as 128 + its number).

    Member ``i`` serves its admin API on ``admin.port + i`` (all on free ports with 0).
    SIGTERM or SIGINT is passed to every member as one SIGTERM (each finishes its micro-batches
    and snapshots); a second one kills them. Members die with the supervisor (SIGTERM). A member
    that fails stops the others: SIGTERM, then SIGKILL after ``grace_s`` (without a member they
    cannot finish a snapshot; the recovery store has the last).
    """
    addresses = ";".join(free_addresses(processes))
    argv = [sys.executable, "-m", "daemon.cli", "run", "--config", str(config), *extra, "--addresses", addresses]
    # Each member in a process group of its own: a terminal's Ctrl-C reaches only this supervisor,
    # which passes one SIGTERM on (a member given both would take the second as "stop now").
    # On one machine each member's admin API needs a port of its own: admin.port, the next, ...
    base = load_settings(config).admin.port
    ports = [{"HEADWATER_ADMIN__PORT": str(base + i)} if base else {} for i in range(processes)]
    members = [
        subprocess.Popen(
            [*argv, "--process-id", str(i)], process_group=0, preexec_fn=_die_with_parent, env=os.environ | ports[i]
        )
        for i in range(processes)
    ]
    log.info("headwater cluster of %d processes: pids %s, addresses %s", processes,
             [p.pid for p in members], addresses)  # fmt: skip
    signalled: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)
        for p in members:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL if len(signalled) > 1 else signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        failed: int | None = None
        while any(p.poll() is None for p in members):
            if failed is None:
                failed = next((_code(p) for p in members if p.poll() not in (None, 0)), None)
                if failed is not None:
                    log.error("a member of the cluster exited with %d: stopping the others", failed)
                    _stop(members, grace_s)
            time.sleep(poll_s)
        codes = [_code(p) for p in members]
        return failed if failed is not None else next((c for c in codes if c != 0), 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _die_with_parent() -> None:
    """In a member, before it starts: SIGTERM when the supervisor dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so that a member never serves on alone."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(members: list[subprocess.Popen[bytes]], grace_s: float) -> None:
    alive = [p for p in members if p.poll() is None]
    for p in alive:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in alive:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _code(p: subprocess.Popen[bytes]) -> int:
    rc = p.returncode if p.returncode is not None else 0
    return 128 - rc if rc < 0 else rc  # killed by a signal: as a shell reports it
