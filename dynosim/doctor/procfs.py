"""Pure: a dyno's processes and listening sockets from the text `docker.inside.snapshot`
prints (/proc/<pid>/status and cmdline, /proc/net/tcp and tcp6), and the worker count of a
web server's process tree."""

from __future__ import annotations

import signal
from dataclasses import dataclass

from .observations import Listener

MARK = "@@doctor"
_LISTEN = "0A"
#: Docker's embedded DNS server listens inside every container on a user network.
DOCKER_DNS = "127.0.0.11"


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    command: str
    ignored: int  # SigIgn bit mask
    caught: int  # SigCgt bit mask

    def ignores(self, number: int = signal.SIGTERM) -> bool:
        return bool(self.ignored >> (number - 1) & 1)


@dataclass(frozen=True)
class Snapshot:
    processes: tuple[Process, ...]
    listeners: tuple[Listener, ...]


def parse(text: str) -> Snapshot:
    """The processes (without the snapshot's own shell and its children) and listeners."""
    head, _, tcp = text.partition(f"{MARK} tcp\n")
    processes = [p for p in (_process(block) for block in head.split(f"{MARK} pid ")) if p]
    own = {p.pid for p in processes if MARK in p.command}
    kept = tuple(p for p in processes if p.pid not in own and p.ppid not in own)
    return Snapshot(kept, tuple(_listeners(tcp)))


def _process(block: str) -> Process | None:
    lines = block.split("\n")
    if not lines[0].strip().isdigit():
        return None
    fields = dict(line.split(":", 1) for line in lines[2:] if ":" in line)
    try:
        return Process(
            int(lines[0]), int(fields.get("PPid", "0")), lines[1].strip() if len(lines) > 1 else "",
            int(fields.get("SigIgn", "0"), 16), int(fields.get("SigCgt", "0"), 16),
        )  # fmt: skip
    except ValueError:
        return None


def _listeners(tcp: str) -> list[Listener]:
    found: list[Listener] = []
    for line in tcp.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[3] != _LISTEN or ":" not in parts[1]:
            continue
        address, port = parts[1].rsplit(":", 1)
        if _host(address) != DOCKER_DNS:
            found.append(Listener(_host(address), int(port, 16)))
    return sorted(set(found), key=lambda x: (x.port, x.host))


def _host(hexed: str) -> str:
    """/proc/net/tcp's little-endian hex address as text (IPv4; IPv6 only as any/loopback)."""
    if len(hexed) == 8:
        return ".".join(str(int(hexed[i : i + 2], 16)) for i in (6, 4, 2, 0))
    if set(hexed) == {"0"}:
        return "::"
    if hexed == "00000000000000000000000001000000":
        return "::1"
    if hexed.startswith("0000000000000000FFFF0000"):  # IPv4-mapped
        return _host(hexed[24:])
    return hexed


def ignoring_sigterm(snapshot: Snapshot) -> list[str]:
    """Commands of the processes that ignore SIGTERM (PID 1, the dyno's launcher, aside)."""
    return [p.command for p in snapshot.processes if p.pid != 1 and p.ignores(signal.SIGTERM)]


def workers(snapshot: Snapshot) -> int:
    """Worker processes of the server: the children of the process with the most children
    (uWSGI's, gunicorn's or uvicorn's master), minus multiprocessing's helpers; a server
    without children is one worker."""
    children: dict[int, list[Process]] = {}
    for process in snapshot.processes:
        if "multiprocessing.resource_tracker" not in process.command:
            children.setdefault(process.ppid, []).append(process)
    servers = [p for p in snapshot.processes if p.pid != 1 and p.command.strip()]
    counts = [len(children.get(p.pid, [])) for p in servers]
    return max(counts, default=0) or 1
