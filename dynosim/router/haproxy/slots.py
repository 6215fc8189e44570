"""HAProxy's server slots: one per web dyno, set over its admin socket as the dyno manager adds and
removes dynos, and what they report (requests in flight, idle connections)."""

from __future__ import annotations

import asyncio
import collections
import csv
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .child import Child

SLOTS = 256  # server slots: 100 web dynos, twice over while a release rolls out, and spare


class Slots:
    """The web dynos as HAProxy's servers web/dyno1 to web/dyno256."""

    def __init__(self, child: Child) -> None:
        """Slots of the HAProxy `child` runs."""
        self._child = child
        self._slots: dict[str, int] = {}  # backend key -> server slot
        self._free = collections.deque(range(1, SLOTS + 1))  # oldest-freed first
        self._labels: dict[str, str] = {}  # "dynoN" -> dyno name, kept after removal for logs

    def add(self, key: str, host: str, port: int, name: str | None) -> None:
        """HAProxy routes to a dyno from now on, logged as `name` (default: `key`)."""
        slot = self._slots.get(key) or self._free.popleft()
        self._slots[key] = slot
        self._labels[f"dyno{slot}"] = name or key
        self._set_server(slot, host, port)

    def remove(self, key: str) -> None:
        """HAProxy routes no new request to a dyno; its slot is free for another."""
        slot = self._slots.pop(key, None)
        if slot is not None:
            self._child.command(f"set server web/dyno{slot} state maint")
            self._free.append(slot)

    def restore(self, backends: dict[str, tuple[str, int]]) -> None:
        """Set the servers again on a new HAProxy: `backends`, key -> (host, port)."""
        for key, (host, port) in backends.items():
            self._set_server(self._slots[key], host, port)

    def _set_server(self, slot: int, host: str, port: int) -> None:
        address = f"[{host}]" if ":" in host else host
        self._child.command(
            f"set server web/dyno{slot} addr {address} port {port}",
            f"set server web/dyno{slot} state ready",
        )

    def slot(self, key: str) -> int | None:
        """The server slot of the backend `key`, if it has one."""
        return self._slots.get(key)

    def label(self, slot: str) -> str:
        """The dyno name logged for a server ("dynoN"), kept after the dyno is removed."""
        return self._labels.get(slot, slot)

    async def in_flight(self, server: int | None = None) -> int:
        """Requests the dyno in a server slot (or all of them) is serving or has queued."""
        what = f"4 {server}" if server is not None else "2 -1"
        answer = await asyncio.to_thread(self._child.admin, f"show stat web {what}")
        rows = list(csv.DictReader(io.StringIO(answer.lstrip("# "))))
        return sum(int(row["scur"] or 0) + int(row["qcur"] or 0) for row in rows)

    @property
    def idle_connections(self) -> int:
        """Connections to dynos HAProxy keeps open for the next request."""
        rows = self._child.admin("show servers conn web").splitlines()[1:]
        return sum(int(row.split()[12]) for row in rows if row.strip())  # idle_cur
