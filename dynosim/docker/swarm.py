"""The Swarm adapter of the container-engine protocol: each dyno a one-replica service on the
Swarm manager's API (restart condition none: dynosim's back-off decides restarts), what only a
node's engine knows through node access (`docker.nodes`), images onto every node through
`docker.cluster_images`. SDK errors become EngineError. The design and its reasons:
docs/architecture.md ("Swarm engine"); the service spec: `docker.services`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from ..container_engine import (
    FORMATION,
    Address,
    Dyno,
    DynoSpec,
    Exited,
    Line,
    Usage,
    WaitTimedOut,
)
from ..errors import EngineError, is_engine_error, one_line
from ..procfile import RELEASE
from . import client, cluster_images, dynos, images, logs, services, swarm_keeper
from .engine import accepts
from .nodes import NodeAccess
from .swarm_events import TaskEvents
from .swarm_tasks import Service, Tasks, has_container, running_or_ended
from .usage import read_usage

#: How long a new task may take to be placed and run before `address`, `node` and `follow`
#: give up on it (the manager's R10 still decides a web dyno's fate).
PLACE_TIMEOUT = 60.0
#: After the stop grace period, how long the task may take to be reported ended.
STOP_SLACK = 15.0
#: The one-offs `up` runs for a release before its formation: on the app network as its dynos.
PHASES = frozenset({RELEASE, "postdeploy"})


@dataclass(frozen=True)
class Listed:
    """A dyno as `ps` shows it from the manager (a one-off `up` does not track, too)."""

    dyno: Dyno
    since: str  # Docker's timestamp text
    command: str  # a one-off's, as the user gave it
    node: str | None  # the hostname of its task's node


class SwarmEngine:
    """Dynos as services on the Swarm whose manager is at `manager` (a DOCKER_HOST URL)."""

    def __init__(self, manager: str, nodes: NodeAccess | None = None, grace: float = 30.0):
        self.manager_url, self.nodes, self.grace = manager, nodes or NodeAccess(), grace
        try:
            self.swarm = docker.DockerClient(base_url=manager, timeout=120, max_pool_size=64)
        except docker.errors.DockerException as exc:
            raise EngineError(
                f"the Swarm manager at {manager} does not answer: {one_line(str(exc))}"
            ) from None
        self.api = self.swarm.api
        self.tasks = Tasks(self.api, self.nodes)
        self._published: dict[str, str] = {}  # local image -> the reference every node runs
        self._superseded: set[str] = set()  # tasks a later start replaced (TaskEvents)
        self._kept: dict[str, int] = {}  # app -> the release its network keeper runs
        self._closed: set[str] = set()  # apps whose network is being removed: no keeper
        self._images, self._keeping = threading.Lock(), threading.Lock()

    # the app network
    @client.engine_errors
    def ensure_network(self, app: str) -> None:
        """The app's attachable overlay network (dynos of other apps cannot reach it)."""
        with self._keeping:
            self._closed.discard(app)
        ensure_overlay(self.api, app)

    @client.engine_errors
    def remove_network(self, app: str, wait: float = 0.0) -> bool:
        """Remove it, retrying for `wait` seconds while tasks still leave it; gone once no node
        holds the app's containers or network any more (Swarm removes them a moment after the
        services, node by node). The network keeper goes first."""
        deadline = time.monotonic() + wait
        self._closed.add(app)  # first: a new keeper's dynos stop waiting for it
        with self._keeping:  # a late create must not bring the keeper back
            self._kept.pop(app, None)
        swarm_keeper.remove(self.api, app)
        while self.tasks.left_on_nodes(app, network=False) and time.monotonic() < deadline:
            self.tasks.remove_orphans(app)
            time.sleep(0.2)
        if not dynos.remove_network(app, max(0.0, deadline - time.monotonic()), self.swarm):
            return False
        while self.tasks.left_on_nodes(app, network=True):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    # dynos
    @client.engine_errors
    def list(self, app: str) -> list[Dyno]:
        return [_dyno(service, task) for service, task in self._services(app)]

    @client.engine_errors
    def listed(self, app: str) -> list[Listed]:
        """The app's dynos as `ps` shows them: with since when, their command and node."""
        return [
            Listed(
                _dyno(service, task),
                services.since(service, task),
                services.shown_command(service),
                self.tasks.where(task["NodeID"]).hostname if (task or {}).get("NodeID") else None,
            )
            for service, task in self._services(app)
        ]

    def _services(self, app: str) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """The app's dyno services, each with its newest task."""
        found = self.api.services(filters={"label": _app_labels(app)})
        tasks = self.tasks.of([s["ID"] for s in found])
        return [
            (s, services.newest([t for t in tasks if t["ServiceID"] == s["ID"]])) for s in found
        ]

    @client.engine_errors
    def get(self, container_id: str) -> Service:
        found = self.api.inspect_service(container_id)
        tasks = self.tasks.of([found["ID"]])
        return Service(found["ID"], found["Spec"]["Name"], started=bool(tasks))

    @client.engine_errors
    def create(self, spec: DynoSpec, hold: str = "") -> Service:
        """The dyno's service (zero replicas); with `hold`, its task runs that instead of the
        command (`docker.swarm_run`: an interactive one-off)."""
        local = spec.release.image_for(spec.process_type)
        config = _image_config(local, spec.process_type in spec.release.images)
        body = services.service_spec(spec, self._publish(local), config, self.grace, hold)
        if spec.role == FORMATION or spec.process_type in PHASES:
            image_ref = body["TaskTemplate"]["ContainerSpec"]["Image"]
            self._keep_network(spec.release.app, spec.release.version, image_ref)
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

    def process(self, spec: DynoSpec) -> dict[str, Any]:
        """How a dyno of `spec` runs its command: the service's Command, Args and User."""
        local = spec.release.image_for(spec.process_type)
        return services.process(
            spec, _image_config(local, spec.process_type in spec.release.images)
        )

    @client.engine_errors
    def start(self, container: Service) -> None:
        """One replica; a service that ran before (a dyno woken from sleep) gets a new task by
        a forced update."""
        container.previous = {t["ID"] for t in self.tasks.of([container.id])}
        self._superseded.update(container.previous)
        container.started = True
        self._scale(container, 1, force=bool(container.previous))

    @client.engine_errors
    def stop(self, container: Service, grace: float) -> int:
        """SIGTERM, `grace` seconds, SIGKILL: through the task's node (`docker stop` there: at
        once, the exact grace), else by zero replicas (Swarm signals a few seconds later and
        waits the service's stop grace period, the manager's, set at create). The exit code."""
        found = self.tasks.reachable(container)
        if found is not None:
            with contextlib.suppress(docker.errors.NotFound):
                found.stop(timeout=max(0, round(grace)))
                found.reload()
                return int(found.attrs["State"]["ExitCode"])
        try:
            self._scale(container, 0)
        except docker.errors.NotFound:
            return -1
        task = self.tasks.until(container, services.ended, max(grace, self.grace) + STOP_SLACK)
        return services.exit_code(task) if task is not None and services.ended(task) else -1

    @client.engine_errors
    def kill(self, container: Service) -> int:
        """SIGKILL through the task's node; without node access, a stop."""
        found = self.tasks.reachable(container)
        if found is None:
            return self.stop(container, 0)
        with contextlib.suppress(docker.errors.APIError):
            found.kill()
        task = self.tasks.until(container, services.ended, STOP_SLACK)
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
        task = self.tasks.until(container, services.ended, timeout)
        if task is None or not services.ended(task):
            raise WaitTimedOut(f"no exit within {timeout:g} seconds")
        return services.exit_code(task)

    @client.engine_errors
    def exited(self, container: Service) -> Exited | None:
        try:
            self.api.inspect_service(container.id)
        except docker.errors.NotFound:
            return Exited(255)
        task = self.tasks.current(container)
        if task is None:
            return None if container.started else Exited(0)
        if not services.ended(task):
            return None
        return Exited(services.exit_code(task), self.tasks.oom_killed(task))

    @client.engine_errors
    def address(self, container: Service, app: str) -> Address | None:
        """The node's address and the port published there, once the task runs."""
        task = self.tasks.until(container, running_or_ended, PLACE_TIMEOUT)
        if task is None or services.ended(task):
            return None
        port = services.published_port(task)
        return Address(self.tasks.where(task["NodeID"]).address, port) if port else None

    @client.engine_errors
    def node(self, container: Service) -> str | None:
        task = self.tasks.until(container, lambda t: bool(t.get("NodeID")), PLACE_TIMEOUT)
        return self.tasks.where(task["NodeID"]).hostname if task and task.get("NodeID") else None

    @client.engine_errors
    def memory(self, container: Service) -> int | None:
        found = self.tasks.node_container(container)
        return dynos.memory(found) if found is not None else None

    @client.engine_errors
    def usage(self, container: Service) -> Usage | None:
        found = self.tasks.node_container(container)
        return read_usage(found) if found is not None else None

    @client.engine_errors
    def events(self, app: str) -> TaskEvents:
        return TaskEvents(self.api, _app_labels(app), self._superseded)

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
        task = await asyncio.to_thread(self.tasks.until, container, has_container, PLACE_TIMEOUT)
        if task is None or not has_container(task):
            return
        hostname = await asyncio.to_thread(lambda: self.tasks.where(task["NodeID"]).hostname)
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

    def _keep_network(self, app: str, version: int, image_ref: str) -> None:
        """The app's network keeper on every node (`docker.swarm_keeper`), running an image of
        the release its formation runs; once per release, not per process type's image (else
        each type's start would roll it over every node), under a lock (dynos start side by
        side, and wait for a new keeper to join), and not once the app's network is being
        removed. Any engine error (a refusal, a manager that does not answer) does not fail
        the dyno."""
        with self._keeping:
            if app in self._closed or self._kept.get(app) == version:
                return
            try:
                if swarm_keeper.keep(self.api, app, image_ref):
                    swarm_keeper.until_joined(
                        self.api, app, self.tasks.network_view, lambda: app in self._closed
                    )
            except Exception as exc:
                if not is_engine_error(exc):
                    raise
                return
            self._kept[app] = version

    def _scale(self, container: Service, replicas: int, force: bool = False) -> None:
        for attempt in range(5):
            current = self.api.inspect_service(container.id)
            template = dict(current["Spec"]["TaskTemplate"])
            if force:
                template["ForceUpdate"] = int(template.get("ForceUpdate", 0)) + 1
            try:
                self.api.update_service(
                    container.id,
                    current["Version"]["Index"],
                    task_template=template,
                    mode={"Replicated": {"Replicas": replicas}},
                    fetch_current_spec=True,
                )
                return
            except docker.errors.APIError as exc:
                if "out of sequence" not in str(exc) or attempt == 4:
                    raise


def _app_labels(app: str) -> list[str]:
    return [f"{client.LABEL_APP}={app}", f"{client.LABEL}=dyno"]


def _dyno(service: dict[str, Any], task: dict[str, Any] | None) -> Dyno:
    return dynos.labelled(service["Spec"]["Labels"], services.status(task), service["ID"])


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


def ensure_overlay(api: docker.APIClient, app: str) -> str:
    """The app's attachable overlay network on the manager at `api`, made when missing (its
    dynos and add-on servers share it); its name."""
    name = dynos.network_name(app)
    if not any(n["Name"] == name for n in api.networks(names=[name])):
        try:
            api.create_network(
                name,
                driver="overlay",
                attachable=True,
                check_duplicate=True,
                labels={client.LABEL: "network", client.LABEL_APP: app},
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # made meanwhile by another run
                raise
    return name
