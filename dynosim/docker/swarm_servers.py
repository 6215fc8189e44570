"""Add-on servers (PostgreSQL, Redis) on a Swarm: each a one-replica service constrained to the
node that holds its volume, on the app's attachable overlay network under the add-on's
hostname as service name (DNS round-robin: the name is the task's address on every node; the
overlay's virtual IPs need IPVS, which nested nodes lack), locked down as `servers.start`'s
containers are. Commands run inside through the node's own engine (node access)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import docker.types
from docker.models.containers import Container

from . import client, dynos
from .cluster import node_client
from .swarm import ensure_overlay

MEMORY = 1024 * 1024 * 1024
PIDS = 512


@dataclass(frozen=True)
class Task:
    """The server's current task: its state, and where its container is once it has one."""

    state: str  # new ... running, failed, shutdown
    node_id: str | None
    container_id: str | None
    error: str


@dataclass(frozen=True)
class Server:
    """What makes one server's service: its name (also its hostname on the overlay), an image
    reference every node can pull, the app, the node (a hostname) that holds its volume, and
    where the volume is mounted."""

    name: str
    image: str
    app: str
    environment: dict[str, str]
    node: str
    volume: str
    data: str
    labels: dict[str, str]


@client.engine_errors
def start(manager_socket: Path, server: Server) -> None:
    """Create the server's service on the app's overlay, placed on its node with its volume:
    the image's user, no capabilities, no new privileges (its entrypoint under `setpriv`: not
    a service option on API 1.41), 512 pids, 1 GB, restarted when it fails."""
    resources = docker.types.Resources(mem_limit=MEMORY)
    resources["Limits"]["Pids"] = PIDS  # docker-py's Resources has no pids argument
    labels = server.labels
    with node_client(manager_socket) as manager:
        network = ensure_overlay(manager.api, server.app)
        entrypoint = manager.api.inspect_image(server.image)["Config"]["Entrypoint"] or []
        manager.services.create(
            server.image,
            ["setpriv", "--no-new-privs", "--", *entrypoint],
            name=server.name,
            hostname=server.name,
            env=[f"{key}={value}" for key, value in server.environment.items()],
            labels=labels,
            container_labels=labels,
            constraints=[f"node.hostname=={server.node}"],
            networks=[network],
            endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
            mounts=[docker.types.Mount(server.data, server.volume, type="volume", labels=labels)],
            cap_drop=["ALL"],
            resources=resources,
            restart_policy=docker.types.RestartPolicy(condition="on-failure", delay=1_000_000_000),
            log_driver="json-file",
            log_driver_options={"max-size": "10m", "max-file": "2"},
        )


@client.engine_errors
def task(manager_socket: Path, name: str) -> Task | None:
    """The service's newest task; None when there is no such service or no task yet."""
    with node_client(manager_socket) as manager:
        try:
            tasks = manager.api.tasks(filters={"service": name})
        except docker.errors.NotFound:
            return None
    if not tasks:
        return None
    newest = max(tasks, key=lambda t: t["Version"]["Index"])
    status = newest["Status"]
    container = status.get("ContainerStatus", {}).get("ContainerID")
    return Task(status["State"], newest.get("NodeID"), container, status.get("Err", ""))


@client.engine_errors
def node_hostname(manager_socket: Path, node_id: str) -> str:
    with node_client(manager_socket) as manager:
        return manager.nodes.get(node_id).attrs["Description"]["Hostname"]


@client.engine_errors
def execute(node_socket: Path, container_id: str, command: list[str]) -> tuple[int, str]:
    """Run a command inside the server's container on its node: exit code and output."""
    with node_client(node_socket) as engine:
        result = engine.containers.get(container_id).exec_run(command)
    return result.exit_code, result.output.decode(errors="replace")


@contextlib.contextmanager
def container(node_socket: Path, container_id: str) -> Iterator[Container]:
    """The server's task container on its node, through a client of that node's engine open
    for the duration (one-off clients are made beside it on the same engine)."""
    with node_client(node_socket) as engine:
        yield client.engine_errors(engine.containers.get)(container_id)


@client.engine_errors
def last_lines(node_socket: Path, container_id: str, count: int) -> list[str]:
    with contextlib.suppress(docker.errors.NotFound), node_client(node_socket) as engine:
        output = engine.containers.get(container_id).logs(tail=count)
        return output.decode(errors="replace").splitlines()
    return []


@client.engine_errors
def remove(manager_socket: Path, name: str) -> None:
    """Remove the server's service (its task's container stops with its grace); gone already
    is fine."""
    with contextlib.suppress(docker.errors.NotFound), node_client(manager_socket) as manager:
        manager.api.remove_service(name)


@client.engine_errors
def remove_volume(node_socket: Path, volume: str, wait: float = 30.0) -> None:
    """Remove the server's data on its node, once the removed service's container has let go
    of it (retrying for `wait` seconds); gone already is fine."""
    deadline = time.monotonic() + wait
    with node_client(node_socket) as engine:
        while True:
            try:
                engine.api.remove_volume(volume)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code != 409 or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)


@client.engine_errors
def has_services(manager_socket: Path, app: str) -> bool:
    """Whether the app has services on the cluster (dynos', add-ons'): it runs there."""
    with node_client(manager_socket) as manager:
        return bool(manager.api.services(filters={"label": f"{client.LABEL_APP}={app}"}))


@client.engine_errors
def remove_unused_overlay(manager_socket: Path, app: str, wait: float = 30.0) -> None:
    """Remove the app's overlay unless a service (a dyno's, another add-on's) is on it;
    retried for `wait` seconds while a removed server's task leaves it."""
    if not has_services(manager_socket, app):
        with node_client(manager_socket) as manager:
            dynos.remove_network(app, wait, manager)
