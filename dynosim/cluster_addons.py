"""Add-ons on the local Swarm cluster: the same servers, images, credentials and URLs as on one
engine (:mod:`dynosim.addons`), run as one-replica services pinned to the node that holds
their volume, on the app's overlay under the add-on's name, so that `DATABASE_URL` and
`REDIS_URL` resolve from dynos on every node. Their images reach the nodes through the
cluster's registry. The node is a function of the add-on's name and the cluster's size, so
a server started again lands where its data is. `OnCluster` is this behind `addons.Servers`,
for `up --engine swarm` and for the add-on commands while DOCKER_HOST names the cluster."""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from . import addons, cluster
from .cluster import Cluster
from .docker import client as docker_client
from .docker import cluster as docker_cluster
from .docker import cluster_images, swarm_servers
from .errors import EngineError
from .progress import Progress, quiet
from .store import Addon


def node_of(found: Addon, made: Cluster) -> str:
    """The node that holds the add-on's volume: a worker chosen by its name (the manager, in a
    cluster of one), so add-ons spread over the workers and keep their place."""
    workers = made.nodes[1:] or made.nodes
    return workers[zlib.crc32(found.name.encode()) % len(workers)].hostname


class OnCluster:
    """`addons.Servers` on the local cluster `made`."""

    def __init__(self, made: Cluster) -> None:
        self.made = made

    def start(self, found: Addon, progress: Progress) -> str | None:
        return start(found, self.made, progress)

    def stop(self, found: Addon) -> None:
        stop(found, self.made)

    def remove(self, found: Addon) -> None:
        destroy(found, self.made)

    def tidy(self, app: str) -> None:
        swarm_servers.remove_unused_overlay(self.made.nodes[0].socket, app)

    @contextlib.contextmanager
    def reach(self, found: Addon) -> Iterator[addons.Reached]:
        """The server's task container through its node's engine, where its clients run as
        one-off containers on the app's overlay; started for the duration (and removed with
        the overlay after) when nothing ran it."""
        task = swarm_servers.task(self.made.nodes[0].socket, found.name)
        started = task is None or task.state != "running"
        try:
            start(found, self.made, quiet)  # as on one engine, silently; adopts a running one
            placed = _placed(found, self.made)
            if placed is None:
                raise EngineError(f"{found.name} stopped running on the cluster")
            socket, container_id = placed
            with swarm_servers.container(socket, container_id) as server:
                yield addons.Reached(server, f"unix://{socket}")
        finally:
            if started and not addons.served(found.app):
                self.stop(found)
                self.tidy(found.app)


class AlsoOnCluster(OnCluster):
    """DOCKER_HOST's engine, and for removal the local cluster too (an add-on that ran on it
    under `up --engine swarm` left its data on a node)."""

    def start(self, found: Addon, progress: Progress) -> str | None:
        return addons.ONE_ENGINE.start(found, progress)

    def stop(self, found: Addon) -> None:
        addons.ONE_ENGINE.stop(found)

    def remove(self, found: Addon) -> None:
        addons.ONE_ENGINE.remove(found)
        with contextlib.suppress(EngineError):  # a cluster not running: cluster:destroy's
            destroy(found, self.made)

    def tidy(self, app: str) -> None:
        addons.ONE_ENGINE.tidy(app)

    def reach(self, found: Addon) -> contextlib.AbstractContextManager[addons.Reached]:
        return addons.ONE_ENGINE.reach(found)


def here(app: str) -> addons.Servers:
    """Where the add-on commands run `app`'s servers: the local cluster while DOCKER_HOST
    names its manager (as after `eval "$(dynosim cluster:create N)"`) or the app runs there
    (an `up --engine swarm` serves it), else DOCKER_HOST's engine (and, to remove one, the
    cluster as well when there is one)."""
    made = cluster.in_use()
    if made is None:
        return addons.ONE_ENGINE
    if docker_cluster.local_engine() == made.docker_host or _runs_on(made, app):
        return OnCluster(made)
    return AlsoOnCluster(made)


def _runs_on(made: Cluster, app: str) -> bool:
    try:
        return swarm_servers.has_services(made.nodes[0].socket, app)
    except EngineError:  # a cluster that is not running runs nothing
        return False


def start(found: Addon, made: Cluster, progress: Progress) -> str:
    """Make its image (once), publish it, start the server on its node (adopting one that
    runs: a killed `up`'s, or `addons:create`'s while an `up` serves) and wait until it
    serves; the node."""
    chosen = addons.SERVICES[found.service]
    addons.ensure_image(chosen, progress)
    manager = made.nodes[0].socket
    node = node_of(found, made)
    running = swarm_servers.task(manager, found.name)
    if running is not None and running.state == "running":
        _wait_ready(found, made)
        return node
    swarm_servers.remove(manager, found.name)  # one that failed or never ran: a new one
    progress(f"Starting {found.name} on {node}")
    labels = {
        docker_client.LABEL: addons.ROLE,
        docker_client.LABEL_APP: found.app,
        addons.L_ADDON: found.name,
    }
    server = swarm_servers.Server(
        name=found.name,
        image=cluster_images.publish(chosen.image, manager),
        app=found.app,
        node=node,
        volume=addons.container_name(found),
        data=chosen.data,
        environment=chosen.environment(found),
        labels=labels,
    )
    swarm_servers.start(manager, server)
    try:
        _wait_ready(found, made)
    except BaseException:
        swarm_servers.remove(manager, found.name)
        raise
    return node


def _wait_ready(found: Addon, made: Cluster) -> None:
    """Until the server's ready command succeeds inside its task's container (through its
    node's engine); EngineError with its last lines after addons.READY_TIMEOUT."""
    ready = addons.SERVICES[found.service].ready_command(found)
    deadline = time.monotonic() + addons.READY_TIMEOUT
    placed = None
    while time.monotonic() < deadline:
        placed = _placed(found, made)
        if placed and swarm_servers.execute(*placed, ready)[0] == 0:
            return
        time.sleep(0.2)
    task = swarm_servers.task(made.nodes[0].socket, found.name)
    tail = swarm_servers.last_lines(*placed, 20) if placed else []
    why = " / ".join(tail[-5:]) or (task.error if task else "") or "no task was started"
    raise EngineError(f"{found.name} did not start serving on the cluster: {why}")


def _placed(found: Addon, made: Cluster) -> tuple[Path, str] | None:
    """The socket of the node that runs the server's task, and the task's container; None
    while it does not run."""
    manager = made.nodes[0].socket
    task = swarm_servers.task(manager, found.name)
    if not (task and task.state == "running" and task.container_id and task.node_id):
        return None
    hostname = swarm_servers.node_hostname(manager, task.node_id)
    sockets = {node.hostname: node.socket for node in made.nodes}
    return (sockets[hostname], task.container_id) if hostname in sockets else None


def stop(found: Addon, made: Cluster) -> None:
    """Remove the server's service; its volume stays on its node for the next start."""
    swarm_servers.remove(made.nodes[0].socket, found.name)


def destroy(found: Addon, made: Cluster) -> None:
    """Remove the server and its data."""
    stop(found, made)
    node = node_of(found, made)
    socket = next(n.socket for n in made.nodes if n.hostname == node)
    swarm_servers.remove_volume(socket, addons.container_name(found))
