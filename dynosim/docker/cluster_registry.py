"""The local cluster's image registry: Debian's docker-registry as a Swarm service pinned to the
manager node, its blobs in a volume there, published in host mode on port 5000 of the manager's
cluster-network address; the nodes' engines trust it over plain HTTP (`--insecure-registry`
for the cluster's subnet). Images reach it through :mod:`dynosim.docker.cluster_images`."""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker
import docker.errors
import docker.types

from ..errors import EngineError
from . import client
from .cluster import node_client

PORT = 5000
SERVICE = "dynosim-registry"
VOLUME = "dynosim-registry"
#: Where Debian's package keeps the blobs (owned by its docker-registry user in the image).
DATA = "/var/lib/docker-registry"
MEMORY = 512 * 1024 * 1024
PIDS = 256


@client.engine_errors
def address(manager_socket: Path) -> str:
    """`ADDR:5000`: the registry as every node (and this machine) reaches it, at the manager's
    address on the cluster network (the address the Swarm advertises)."""
    with node_client(manager_socket) as manager:
        node = manager.info()["Swarm"]["NodeAddr"]
    if not node:
        raise EngineError(f"{manager_socket}: not the manager of a Swarm")
    return f"{node}:{PORT}"


@client.engine_errors
def start(manager_socket: Path, image: str, labels: dict[str, str], timeout: float) -> str:
    """Run the registry from `image` (already in the manager's store) and wait until it
    answers this machine; its address. Locked down as a dyno is: non-root (the image's
    user), no capabilities, read-only but for its volume, memory and pids limited."""
    resources = docker.types.Resources(mem_limit=MEMORY)
    resources["Limits"]["Pids"] = PIDS  # docker-py's Resources has no pids argument
    with node_client(manager_socket) as manager:
        manager.services.create(
            image,
            name=SERVICE,
            labels=labels,
            container_labels=labels,
            constraints=["node.role==manager"],
            mounts=[docker.types.Mount(DATA, VOLUME, type="volume", labels=labels)],
            endpoint_spec=docker.types.EndpointSpec(ports={PORT: (PORT, "tcp", "host")}),
            cap_drop=["ALL"],
            read_only=True,
            resources=resources,
            restart_policy=docker.types.RestartPolicy(condition="any", delay=1_000_000_000),
        )
    where = address(manager_socket)
    _wait_until_it_answers(manager_socket, where, timeout)
    return where


def _wait_until_it_answers(manager_socket: Path, where: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not answers(where):
        if time.monotonic() > deadline:
            raise EngineError(
                f"the cluster registry did not answer at {where} within {timeout:.0f} s"
                f"{_task_error(manager_socket)}"
            )
        time.sleep(0.2)


def answers(where: str, timeout: float = 2.0) -> bool:
    """Whether the registry at `where` (ADDR:PORT) speaks the registry API (`GET /v2/`),
    asked directly (never through the user's HTTP proxy, which cannot reach the cluster)."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(f"http://{where}/v2/", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _task_error(manager_socket: Path) -> str:
    """The registry task's last error, as ": …", if the manager reports one."""
    with contextlib.suppress(docker.errors.DockerException, IndexError, KeyError):
        with node_client(manager_socket) as manager:
            tasks = manager.services.get(SERVICE).tasks()
        status = max(tasks, key=lambda t: t["UpdatedAt"])["Status"]
        if status.get("Err"):
            return f": {status['Err'][:300]}"
    return ""
