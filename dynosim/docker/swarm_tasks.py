"""A Swarm dyno's tasks and where they run, for the Swarm adapter (`docker.swarm`): the
manager's task list (the newest since the dyno's last start is the dyno), node addresses, and
through node access the task's container on its node."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import docker.errors
from docker.models.containers import Container

from ..errors import is_engine_error
from . import client, dynos, services
from .nodes import NodeAccess

POLL = 0.1
#: The label Swarm puts on a task's container: its service's id.
SERVICE_ID = "com.docker.swarm.service.id"


@dataclass(eq=False)
class Service:
    """The protocol's handle on one dyno: its service (the id is the service's), and the tasks
    it had before its last `start`, which are history, not the dyno."""

    id: str
    name: str
    started: bool = False
    previous: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Placed:
    """A node as a task's placement names it."""

    hostname: str
    address: str


class Tasks:
    """Task lookups on the manager's API (`api`), node containers through `nodes`."""

    def __init__(self, api: Any, nodes: NodeAccess) -> None:
        self.api, self.nodes = api, nodes
        self._placed: dict[str, Placed] = {}  # node id -> where it is
        self._manager_node: str | None = None

    def of(self, service_ids: list[str]) -> list[dict[str, Any]]:
        if not service_ids:
            return []
        found = self.api.tasks(filters={"service": service_ids})
        return [t for t in found if t.get("ServiceID") in service_ids]

    def current(self, container: Service) -> dict[str, Any] | None:
        """The dyno's task: the newest since its last start."""
        fresh = [t for t in self.of([container.id]) if t["ID"] not in container.previous]
        return services.newest(fresh)

    def until(
        self, container: Service, done: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        """The dyno's task once `done` says so, or as it is after `timeout` seconds (None: it
        has none; the service gone: None)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                task = self.current(container)
            except docker.errors.NotFound:
                return None
            if (task is not None and (done(task) or services.ended(task))) or (
                time.monotonic() >= deadline
            ):
                return task
            time.sleep(POLL)

    def where(self, node_id: str) -> Placed:
        if node_id not in self._placed:
            found = self.api.inspect_node(node_id)
            self._placed[node_id] = Placed(
                found["Description"]["Hostname"], services.node_address(found)
            )
        return self._placed[node_id]

    def network_view(self, node_id: str) -> Any | None:
        """An API client of the node's own engine, which knows the node's view of a network:
        through node access, or the manager's for the manager's node; None without access."""
        engine = self.nodes.client(self.where(node_id).hostname)
        if engine is not None:
            return engine.api
        if self._manager_node is None:
            self._manager_node = self.api.info()["Swarm"]["NodeID"]
        return self.api if node_id == self._manager_node else None

    def node_container(self, container: Service) -> Container | None:
        task = self.current(container)
        if task is None or not has_container(task) or not task.get("NodeID"):
            return None
        cid = task["Status"]["ContainerStatus"]["ContainerID"]
        return self.nodes.container(self.where(task["NodeID"]).hostname, cid)

    def reachable(self, container: Service) -> Container | None:
        """The task's container on its node, or None (no access, or the node is gone)."""
        try:
            return self.node_container(container)
        except Exception as exc:
            if is_engine_error(exc):
                return None
            raise

    def oom_killed(self, task: dict[str, Any]) -> bool:
        """Whether the kernel killed it: only its node's engine knows."""
        if not has_container(task) or not task.get("NodeID"):
            return False
        cid = task["Status"]["ContainerStatus"]["ContainerID"]
        found = self.nodes.container(self.where(task["NodeID"]).hostname, cid)
        return bool(found is not None and found.attrs.get("State", {}).get("OOMKilled"))

    def remove_orphans(self, app: str) -> None:
        """Remove the app's stopped Swarm task containers whose service the manager no longer
        has: a node killed while Swarm removed a service's task can come back with its
        container, which Swarm then forgets (found by the node-loss test after a scale-down).
        A container without a service (an add-on client one-off) is not a task: left alone."""
        services = {
            s["ID"] for s in self.api.services(filters={"label": f"{client.LABEL_APP}={app}"})
        }
        wanted = {"label": f"{client.LABEL_APP}={app}", "status": ["exited", "created", "dead"]}

        def remove(engine: Any) -> bool:
            for found in engine.api.containers(all=True, filters=wanted):
                service = found["Labels"].get(SERVICE_ID)
                if service is not None and service not in services:
                    engine.api.remove_container(found["Id"], force=True)
            return False

        self._on_each_node(remove)

    def left_on_nodes(self, app: str, network: bool) -> bool:
        """Whether a node we can reach still has the app's dyno containers (or its network)."""
        labels, name = {"label": f"{client.LABEL_APP}={app}"}, dynos.network_name(app)

        def holds(engine: Any) -> bool:
            if engine.api.containers(all=True, filters=labels):
                return True
            networks = engine.api.networks(names=[name]) if network else []
            return any(n["Name"] == name for n in networks)

        return self._on_each_node(holds)

    def _on_each_node(self, fn: Callable[[Any], bool]) -> bool:
        """`fn` on the engine of each node we can reach, until one returns True; a node that
        is down (or a container gone meanwhile) holds nothing we can clean: skipped."""
        for hostname in self.nodes.hostnames():
            engine = self.nodes.client(hostname)
            if engine is None:
                continue
            try:
                if fn(engine):
                    return True
            except Exception as exc:
                if not is_engine_error(exc):
                    raise
        return False


def running_or_ended(task: dict[str, Any]) -> bool:
    return task.get("Status", {}).get("State") == services.RUNNING or services.ended(task)


def has_container(task: dict[str, Any]) -> bool:
    return bool((task.get("Status", {}).get("ContainerStatus") or {}).get("ContainerID"))
