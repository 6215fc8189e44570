"""One app's dyno deaths on a Swarm, as the protocol's Events: the manager's API has no task
events, so the app's tasks and the nodes are listed every second, and at once when a node's
state changes. An ended task is a death, once; so is a task still `running` on a node the
manager marks `down` (Swarm never ends it: with restart condition none it only sets its
desired state to shutdown, which is why tasks are not filtered by desired state)."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..container_engine import Event
from . import services

#: How often the app's tasks are listed.
POLL_EVERY = 1.0
#: The exit code of a dyno lost with its node (Docker's for a container that is gone).
LOST = 255
#: The states of a task that holds (or is about to hold) a container on its node.
LIVE = (services.RUNNING, *services.PENDING)
_CLOSED, _POLL_NOW = object(), object()


class TaskEvents:
    """Iterate for Events until `close`; a broken manager connection raises from the
    iteration (the monitor reopens the stream and repairs the formation)."""

    def __init__(self, api: Any, labels: list[str], superseded: set[str] | None = None) -> None:
        """`superseded`: ids of tasks a later start of their service replaced (a dyno woken
        from sleep), which the engine adds to as it starts them: their end is history, even
        when it is polled after the new task began."""
        self.api, self.labels = api, labels
        self.superseded = superseded if superseded is not None else set()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._reported: set[str] = set()  # task ids whose end was reported
        self._closed = False
        # what ended before the stream opened is not news (a task lost with its node still is)
        self._services, tasks = self._tasks()
        self._reported.update(t["ID"] for t in tasks if services.ended(t))
        self._nodes = api.events(decode=True, filters={"type": "node"})
        threading.Thread(target=self._watch_nodes, name="swarm-nodes", daemon=True).start()

    def __iter__(self) -> Iterator[Event]:
        next_poll = time.monotonic() + POLL_EVERY
        while not self._closed:
            try:
                item = self._queue.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                item = _POLL_NOW
            if item is _CLOSED:
                return
            if isinstance(item, BaseException):
                raise item
            if item is _POLL_NOW:
                next_poll = time.monotonic() + POLL_EVERY
                yield from self._poll()

    def close(self) -> None:
        self._closed = True
        self._queue.put(_CLOSED)
        with contextlib.suppress(Exception):
            self._nodes.close()

    def _tasks(self) -> tuple[set[str], list[dict[str, Any]]]:
        found = {s["ID"] for s in self.api.services(filters={"label": self.labels})}
        tasks = self.api.tasks(filters={"service": sorted(found)}) if found else []
        return found, [t for t in tasks if t.get("ServiceID") in found]

    def _poll(self) -> Iterator[Event]:
        found, tasks = self._tasks()
        down = {
            n["ID"]: n.get("Description", {}).get("Hostname", n["ID"][:12])
            for n in self.api.nodes()
            if n.get("Status", {}).get("State") == "down"
        }
        news = [
            t for t in tasks if t["ID"] not in self._reported and t["ID"] not in self.superseded
        ]
        for task in news:
            if services.ended(task):
                yield Event(task["ServiceID"], "die", services.exit_code(task))
            elif task.get("NodeID") in down and task.get("Status", {}).get("State") in LIVE:
                yield Event(task["ServiceID"], "die", LOST, f"node {down[task['NodeID']]} down")
            else:
                continue
            self._reported.add(task["ID"])
        gone, self._services = self._services - found, found
        for service_id in gone:
            yield Event(service_id, "destroy")

    def _watch_nodes(self) -> None:
        """A node's state change makes the next poll come at once."""
        try:
            for raw in self._nodes:
                if raw.get("Actor", {}).get("Attributes", {}).get("state.new"):
                    self._queue.put(_POLL_NOW)
        except Exception as exc:  # the manager went away: the iteration reports it
            if not self._closed:
                self._queue.put(exc)
