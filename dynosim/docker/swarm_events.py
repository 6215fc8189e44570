"""One app's dyno deaths on a Swarm, as the protocol's Events: the manager's API has no task
events, so the app's tasks are listed every second (an ended task is a death, once); node
events come at once, and every running task of a node marked `down` is a death then
(Swarm marks neither them nor reschedules them: restart condition none)."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..container_engine import Event
from . import services

#: How often the app's tasks are listed.
POLL_EVERY = 1.0
#: The exit code of a dyno lost with its node (Docker's for a container that is gone).
LOST = 255
_CLOSED = object()


class TaskEvents:
    """Iterate for Events until `close`; a broken manager connection raises from the
    iteration (the monitor reopens the stream and repairs the formation)."""

    def __init__(self, api: Any, labels: list[str], hostname: Callable[[str], str]) -> None:
        self.api, self.labels, self.hostname = api, labels, hostname
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._reported: set[str] = set()  # task ids whose end was reported
        self._services: set[str] = set()
        self._closed = False
        for _ in self._poll():  # what ended before the stream opened is not news
            pass
        self._nodes = api.events(decode=True, filters={"type": "node"})
        threading.Thread(target=self._watch_nodes, name="swarm-nodes", daemon=True).start()

    def __iter__(self) -> Iterator[Event]:
        next_poll = time.monotonic() + POLL_EVERY
        while not self._closed:
            try:
                item = self._queue.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _CLOSED:
                return
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Event):
                yield item
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + POLL_EVERY
                yield from self._poll()

    def close(self) -> None:
        self._closed = True
        self._queue.put(_CLOSED)
        with contextlib.suppress(Exception):
            self._nodes.close()

    def _poll(self) -> Iterator[Event]:
        found = {s["ID"] for s in self.api.services(filters={"label": self.labels})}
        tasks = self.api.tasks(filters={"service": sorted(found)}) if found else []
        ended = [t for t in tasks if t.get("ServiceID") in found and services.ended(t)]
        with self._lock:
            news = [t for t in ended if t["ID"] not in self._reported]
            self._reported.update(t["ID"] for t in news)
            gone, self._services = self._services - found, found
        for task in news:
            yield Event(task["ServiceID"], "die", services.exit_code(task))
        for service_id in gone:
            yield Event(service_id, "destroy")

    def _watch_nodes(self) -> None:
        try:
            for raw in self._nodes:
                attributes = raw.get("Actor", {}).get("Attributes", {})
                if raw.get("Action") == "update" and attributes.get("state.new") == "down":
                    self._node_down(raw["Actor"]["ID"])
        except Exception as exc:  # the manager went away: the iteration reports it
            if not self._closed:
                self._queue.put(exc)

    def _node_down(self, node_id: str) -> None:
        """Every running dyno task on the node is dead now."""
        name = self.hostname(node_id)
        tasks = self.api.tasks(filters={"node": node_id, "desired-state": "running"})
        with self._lock:
            lost = [
                t
                for t in tasks
                if t.get("ServiceID") in self._services and t["ID"] not in self._reported
            ]
            self._reported.update(t["ID"] for t in lost)
        for task in lost:
            self._queue.put(Event(task["ServiceID"], "die", LOST, f"node {name} down"))
