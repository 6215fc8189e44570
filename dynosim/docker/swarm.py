"""The Swarm adapter of the container-engine protocol: each dyno a one-replica service on the
Swarm manager's API (restart condition none: dynosim's back-off decides restarts), what only a
node's engine knows through node access (`docker.nodes`), images onto every node through
`docker.cluster_images`. SDK errors become EngineError. The design and its reasons:
docs/architecture.md ("Swarm engine"); the service spec: `docker.services`."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from ..container_engine import Address, Dyno, DynoSpec, Exited, Line, Usage, WaitTimedOut
from ..errors import EngineError
from . import client, cluster_images, dynos, images, logs, services
from .engine import accepts
from .nodes import NodeAccess
from .swarm_events import TaskEvents
from .usage import read_usage

#: How long a new task may take to be placed and run before `address`, `node` and `follow`
#: give up on it (the manager's R10 still decides a web dyno's fate).
PLACE_TIMEOUT = 60.0
POLL = 0.1
#: After the stop grace period, how long the task may take to be reported ended.
STOP_SLACK = 15.0


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


class SwarmEngine:
    """Dynos as services on the Swarm whose manager is at `manager` (a DOCKER_HOST URL)."""

    def __init__(self, manager: str, nodes: NodeAccess | None = None, grace: float = 30.0):
        self.manager_url, self.nodes, self.grace = manager, nodes or NodeAccess(), grace
        self.swarm = docker.DockerClient(base_url=manager, timeout=120, max_pool_size=64)
        self.api = self.swarm.api
        self._placed: dict[str, Placed] = {}  # node id -> where it is
        self._published: dict[str, str] = {}  # local image -> the reference every node runs
        self._images = threading.Lock()

    # the app network
    @client.engine_errors
    def ensure_network(self, app: str) -> None:
        """The app's attachable overlay network (dynos of other apps cannot reach it)."""
        name = services.network_name(app)
        if any(n["Name"] == name for n in self.api.networks(names=[name])):
            return
        try:
            self.api.create_network(
                name,
                driver="overlay",
                attachable=True,
                check_duplicate=True,
                labels={client.LABEL: "network", client.LABEL_APP: app},
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise

    @client.engine_errors
    def remove_network(self, app: str, wait: float = 0.0) -> bool:
        """Remove it, retrying for `wait` seconds while tasks still leave it."""
        return dynos.remove_network(app, wait, self.swarm)

    # dynos
    @client.engine_errors
    def list(self, app: str) -> list[Dyno]:
        found = self.api.services(filters={"label": _app_labels(app)})
        tasks = self._tasks([s["ID"] for s in found])
        return [
            _dyno(s, services.newest([t for t in tasks if t["ServiceID"] == s["ID"]]))
            for s in found
        ]

    @client.engine_errors
    def get(self, container_id: str) -> Service:
        found = self.api.inspect_service(container_id)
        tasks = self._tasks([found["ID"]])
        return Service(found["ID"], found["Spec"]["Name"], started=bool(tasks))

    @client.engine_errors
    def create(self, spec: DynoSpec) -> Service:
        local = spec.release.image_for(spec.process_type)
        config = _image_config(local, spec.process_type in spec.release.images)
        body = services.service_spec(spec, self._publish(local), config, self.grace)
        for attempt in range(10):
            try:
                made = self.api.create_service(
                    body["TaskTemplate"],
                    name=body["Name"],
                    labels=body["Labels"],
                    mode=body["Mode"],
                    endpoint_spec=body.get("EndpointSpec"),
                )
                return Service(made["ID"], body["Name"])
            except docker.errors.APIError as exc:
                if exc.status_code != 409 or attempt == 9:
                    raise
            with contextlib.suppress(docker.errors.NotFound):  # a leftover of a killed run
                self.api.remove_service(body["Name"])
            time.sleep(0.1)
        raise AssertionError("unreachable")

    @client.engine_errors
    def start(self, container: Service) -> None:
        container.previous = {t["ID"] for t in self._tasks([container.id])}
        container.started = True
        self._scale(container, 1)

    @client.engine_errors
    def stop(self, container: Service, grace: float) -> int:
        """Zero replicas: Swarm sends SIGTERM, waits the service's stop grace period (the
        manager's, set at create), then SIGKILL; the task's exit code."""
        try:
            self._scale(container, 0)
        except docker.errors.NotFound:
            return -1
        task = self._until(container, services.ended, max(grace, self.grace) + STOP_SLACK)
        return services.exit_code(task) if task is not None and services.ended(task) else -1

    @client.engine_errors
    def kill(self, container: Service) -> int:
        """SIGKILL through the task's node; without node access, a stop."""
        found = self._node_container(container)
        if found is None:
            return self.stop(container, 0)
        with contextlib.suppress(docker.errors.APIError):
            found.kill()
        task = self._until(container, services.ended, STOP_SLACK)
        return services.exit_code(task) if task is not None and services.ended(task) else 137

    def remove(self, container: Service | str) -> None:
        service_id = container if isinstance(container, str) else container.id
        with contextlib.suppress(docker.errors.DockerException):
            self.api.remove_service(service_id)

    def pause(self, container: Service) -> None:
        raise EngineError("Swarm services cannot be paused: on --engine swarm sleeping dynos stop")

    unpause = pause

    @client.engine_errors
    def wait(self, container: Service, timeout: float) -> int:
        task = self._until(container, services.ended, timeout)
        if task is None or not services.ended(task):
            raise WaitTimedOut(f"no exit within {timeout:g} seconds")
        return services.exit_code(task)

    @client.engine_errors
    def exited(self, container: Service) -> Exited | None:
        try:
            self.api.inspect_service(container.id)
        except docker.errors.NotFound:
            return Exited(255)
        task = self._task(container)
        if task is None:
            return None if container.started else Exited(0)
        if not services.ended(task):
            return None
        return Exited(services.exit_code(task), self._oom_killed(task))

    @client.engine_errors
    def address(self, container: Service, app: str) -> Address | None:
        """The node's address and the port published there, once the task runs."""
        task = self._until(container, _running_or_ended, PLACE_TIMEOUT)
        if task is None or services.ended(task):
            return None
        port = services.published_port(task)
        return Address(self._where(task["NodeID"]).address, port) if port else None

    @client.engine_errors
    def node(self, container: Service) -> str | None:
        task = self._until(container, lambda t: bool(t.get("NodeID")), PLACE_TIMEOUT)
        return self._where(task["NodeID"]).hostname if task and task.get("NodeID") else None

    @client.engine_errors
    def memory(self, container: Service) -> int | None:
        found = self._node_container(container)
        return dynos.memory(found) if found is not None else None

    @client.engine_errors
    def usage(self, container: Service) -> Usage | None:
        found = self._node_container(container)
        return read_usage(found) if found is not None else None

    @client.engine_errors
    def events(self, app: str) -> TaskEvents:
        return TaskEvents(self.api, _app_labels(app), self._hostname)

    async def accepts(self, address: Address) -> bool:
        return await accepts(address)

    async def follow(
        self,
        container: Service,
        since: dt.datetime | None,
        line: Line,
        printed: Callable[[], None],
    ) -> None:
        """From the task's node (one stream, as on one engine); else `service logs`."""
        import asyncio

        task = await asyncio.to_thread(self._until, container, _has_container, PLACE_TIMEOUT)
        if task is None or not _has_container(task):
            return
        hostname = await asyncio.to_thread(lambda: self._where(task["NodeID"]).hostname)
        socket = self.nodes.socket(hostname)
        cid = task["Status"]["ContainerStatus"]["ContainerID"]
        found = await asyncio.to_thread(self.nodes.container, hostname, cid)
        if socket is not None and found is not None:
            await logs.follow(found, since, line, printed, socket=str(socket))
            return
        stamp = int(since.timestamp()) if since is not None else None
        asked = dict(follow=True, stdout=True, stderr=True, timestamps=True, since=stamp)
        await logs.follow_chunks(
            lambda: self.api.service_logs(container.id, **asked), line, printed
        )

    def close(self) -> None:
        self.nodes.close()
        with contextlib.suppress(Exception):
            self.swarm.close()

    # plumbing
    def _publish(self, image: str) -> str:
        """The reference every node runs for a local image, published once (under a lock: the
        dynos of a new release wait for the one copy)."""
        with self._images:
            if image not in self._published:
                socket = _unix_socket(self.manager_url)
                self._published[image] = (
                    cluster_images.publish(image, socket) if socket is not None else image
                )
            return self._published[image]

    def _scale(self, container: Service, replicas: int) -> None:
        for attempt in range(5):
            version = self.api.inspect_service(container.id)["Version"]["Index"]
            try:
                self.api.update_service(
                    container.id,
                    version,
                    mode={"Replicated": {"Replicas": replicas}},
                    fetch_current_spec=True,
                )
                return
            except docker.errors.APIError as exc:
                if "out of sequence" not in str(exc) or attempt == 4:
                    raise

    def _tasks(self, service_ids: list[str]) -> list[dict[str, Any]]:
        if not service_ids:
            return []
        found = self.api.tasks(filters={"service": service_ids})
        return [t for t in found if t.get("ServiceID") in service_ids]

    def _task(self, container: Service) -> dict[str, Any] | None:
        """The dyno's task: the newest since its last start."""
        fresh = [t for t in self._tasks([container.id]) if t["ID"] not in container.previous]
        return services.newest(fresh)

    def _until(
        self, container: Service, done: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        """The dyno's task once `done` says so, or as it is after `timeout` seconds (None: it
        has none; the service gone: None)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                task = self._task(container)
            except docker.errors.NotFound:
                return None
            if (task is not None and (done(task) or services.ended(task))) or (
                time.monotonic() >= deadline
            ):
                return task
            time.sleep(POLL)

    def _where(self, node_id: str) -> Placed:
        if node_id not in self._placed:
            found = self.api.inspect_node(node_id)
            self._placed[node_id] = Placed(
                found["Description"]["Hostname"], services.node_address(found)
            )
        return self._placed[node_id]

    def _hostname(self, node_id: str) -> str:
        try:
            return self._where(node_id).hostname
        except docker.errors.DockerException:
            return node_id[:12]

    def _node_container(self, container: Service) -> Container | None:
        task = self._task(container)
        if task is None or not _has_container(task) or not task.get("NodeID"):
            return None
        cid = task["Status"]["ContainerStatus"]["ContainerID"]
        return self.nodes.container(self._where(task["NodeID"]).hostname, cid)

    def _oom_killed(self, task: dict[str, Any]) -> bool:
        """Whether the kernel killed it: only its node's engine knows."""
        if not _has_container(task) or not task.get("NodeID"):
            return False
        cid = task["Status"]["ContainerStatus"]["ContainerID"]
        found = self.nodes.container(self._where(task["NodeID"]).hostname, cid)
        return bool(found is not None and found.attrs.get("State", {}).get("OOMKilled"))


def _app_labels(app: str) -> list[str]:
    return [f"{client.LABEL_APP}={app}", f"{client.LABEL}=dyno"]


def _dyno(service: dict[str, Any], task: dict[str, Any] | None) -> Dyno:
    return dynos.labelled(service["Spec"]["Labels"], services.status(task), service["ID"])


def _running_or_ended(task: dict[str, Any]) -> bool:
    return task.get("Status", {}).get("State") == services.RUNNING or services.ended(task)


def _has_container(task: dict[str, Any]) -> bool:
    return bool((task.get("Status", {}).get("ContainerStatus") or {}).get("ContainerID"))


def _image_config(image: str, own_dockerfile: bool) -> services.ImageConfig:
    """What the local image runs (a service's command replaces its entrypoint)."""
    config = client.client().api.inspect_image(image)["Config"]
    return services.ImageConfig(
        list(config.get("Entrypoint") or []),
        list(config.get("Cmd") or []),
        images.image_user(image) if own_dockerfile else None,
    )


def _unix_socket(url: str) -> Path | None:
    return Path(url.removeprefix("unix://")) if url.startswith("unix://") else None
