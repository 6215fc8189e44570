"""`cluster:create N` / `cluster:destroy`: a real Docker Swarm on this machine, N Docker engines
as containers on the local engine (one manager), for the Swarm engine's tests and for users who
want to try it. The manager's API is an owner-only unix socket in the state folder, never TCP.

The node image is made offline from Debian like the stacks (`stack.debootstrap`) and kept for
the next cluster. What the cluster is for and how: docs/architecture.md ("Swarm engine").
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import stack
from .docker import cluster as docker_cluster
from .docker import cluster_images, cluster_registry, images
from .errors import UsageError
from .options import GRACE
from .progress import Progress
from .store import data_dir

if TYPE_CHECKING:
    from .docker.swarm import SwarmEngine

IMAGE = "dynosim/cluster-node:bookworm-1"
PACKAGES = ["docker.io", "iptables", "ca-certificates"]
#: The cluster's image registry: Debian's docker-registry (2.8), made offline as IMAGE is.
REGISTRY_IMAGE = "dynosim/cluster-registry:bookworm-1"
REGISTRY_CONFIG = "/etc/docker/registry/config.yml"
#: Debian's config less its htpasswd auth (no password file; the registry is reachable from
#: the cluster network and this machine only), with deletes allowed and quieter logs.
REGISTRY_SETTINGS = """\
version: 0.1
log:
  level: warn
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""
MAX_NODES = 9
#: A unix socket's path is at most 107 bytes (sun_path).
MAX_SOCKET_PATH = 107
ENGINE_TIMEOUT, READY_TIMEOUT, STOP_GRACE = 90.0, 60.0, 20.0
REGISTRY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Cluster:
    """A cluster made here: its id (in every name and label), the engine its nodes run on
    (DOCKER_HOST when it was made) and its nodes, node1 the manager."""

    id: str
    size: int
    folder: Path
    engine: str

    @property
    def network(self) -> str:
        return f"dynosim-cluster-{self.id}"

    @property
    def nodes(self) -> list[docker_cluster.Node]:
        return [
            docker_cluster.Node(
                self.engine,
                f"{self.network}-node{n}",
                f"node{n}",
                f"{self.network}-node{n}",
                self.folder / f"node{n}",
            )
            for n in range(1, self.size + 1)
        ]

    @property
    def docker_host(self) -> str:
        """DOCKER_HOST for the Swarm manager's API."""
        return f"unix://{self.nodes[0].socket}"


@dataclass(frozen=True)
class SwarmTarget:
    """Where `up --engine swarm` runs dynos: the Swarm manager (a DOCKER_HOST URL), node
    access (hostname -> the node engine's socket; none for a cluster dynosim did not make),
    and the engine apps are built on (the local cluster's host engine, where the stacks are;
    else the manager)."""

    manager: str
    nodes: dict[str, Path]
    builds_on: str
    cluster: Cluster | None = None  # the local cluster it is, when dynosim made it


def swarm_target(manager: str | None = None) -> SwarmTarget:
    """The Swarm at `manager` (a DOCKER_HOST URL; default: DOCKER_HOST's): a local cluster
    when it is one's manager (or, from its own state folder, the engine it runs on), else that
    engine if it is a Swarm manager; UsageError otherwise."""
    host = manager or docker_cluster.local_engine()
    made = current()
    if made is None or host not in (made.docker_host, made.engine):
        made = named_by(host)
    if made is not None:
        nodes = {node.hostname: node.socket for node in made.nodes}
        return SwarmTarget(made.docker_host, nodes, made.engine, made)
    if docker_cluster.is_swarm_manager(host):
        return SwarmTarget(host, {}, host)
    named = "DOCKER_HOST" if manager is None else "the Swarm it last ran on"
    raise UsageError(
        f"--engine swarm: {named} ({host}) is not a Swarm manager; dynosim cluster:create N"
        " makes a cluster on this machine and prints the DOCKER_HOST to use"
    )


class _Switched:
    """DOCKER_HOST as it was before the `docker_host` blocks that hold now, and how many."""

    lock = threading.Lock()
    before: str | None = None
    holding = 0


def building_on(target: SwarmTarget) -> contextlib.AbstractContextManager[None]:
    """DOCKER_HOST names the engine `target`'s apps are built on (their images are there),
    within (`docker_host`)."""
    return docker_host(target.builds_on)


@contextlib.contextmanager
def docker_host(engine: str) -> Iterator[None]:
    """DOCKER_HOST names `engine` within; as it was once the last of such blocks ends, in
    whatever order they end (apps started on Swarm stop in any order). UsageError while
    another block points it elsewhere."""
    with _Switched.lock:
        now = os.environ.get("DOCKER_HOST")
        if not _Switched.holding:
            _Switched.before = now
        elif now != engine:
            raise UsageError(
                f"another app on Swarm builds on {now} now; stop it before starting one that"
                f" builds on {engine}"
            )
        _Switched.holding += 1
        os.environ["DOCKER_HOST"] = engine
    try:
        yield
    finally:
        with _Switched.lock:
            _Switched.holding -= 1
            if not _Switched.holding:
                if _Switched.before is None:
                    os.environ.pop("DOCKER_HOST", None)
                else:
                    os.environ["DOCKER_HOST"] = _Switched.before


def swarm_engine(target: SwarmTarget, grace: float = GRACE) -> SwarmEngine:
    """The Swarm adapter on `target`'s manager, with its node access."""
    from .docker.nodes import NodeAccess
    from .docker.swarm import SwarmEngine

    return SwarmEngine(target.manager, NodeAccess(target.nodes), grace=grace)


def folder() -> Path:
    """The cluster's state: cluster.json and one owner-only folder per node's socket."""
    return data_dir() / "cluster"


def export_line(cluster: Cluster) -> str:
    """The shell line to use the cluster (quoted, for `eval`, should the path need it)."""
    return f"export DOCKER_HOST={shlex.quote(cluster.docker_host)}"


def dockerd_command(gid: int, subnet: str) -> list[str]:
    """A node's command: the lockdown rules, then its engine, at every start of the node (a
    restarted node's network namespace is new). The engine listens on its own socket as
    usual and on one in API_DIR (mounted out to the host) that the owner's group may use; the
    folder around it is the owner's only. The storage driver is dockerd's choice (overlay2 on
    the node's volume where the host allows it). It pulls from the cluster's registry, on the
    cluster network's `subnet`, over plain HTTP."""
    engine = [
        "dockerd",
        "--host=unix:///var/run/docker.sock",
        f"--host=unix://{docker_cluster.API_DIR}/docker.sock",
        f"--group={gid}",
        f"--insecure-registry={subnet}",
    ]
    rules = [shlex.join(rule) for rule in docker_cluster.lockdown_rules(subnet)]
    return ["sh", "-c", " && ".join([*rules, f"exec {shlex.join(engine)}"])]


def current() -> Cluster | None:
    """The cluster this state folder made, if any."""
    return _recorded(folder())


def in_use() -> Cluster | None:
    """The local cluster whose manager DOCKER_HOST names, else the one this state folder made."""
    return named_by(docker_cluster.local_engine()) or current()


def named_by(host: str) -> Cluster | None:
    """The local cluster whose manager socket `host` (a DOCKER_HOST URL) is, whatever state
    folder made it: a user's cluster, used from a test's private DYNOSIM_HOME."""
    if not host.startswith("unix://"):
        return None
    at = Path(host.removeprefix("unix://")).parent.parent  # FOLDER/node1/docker.sock
    found = _recorded(at) if at.name == folder().name else None
    return found if found is not None and found.docker_host == host else None


def _recorded(at: Path) -> Cluster | None:
    try:
        recorded = json.loads((at / "cluster.json").read_text())
        return Cluster(str(recorded["id"]), int(recorded["nodes"]), at, str(recorded["engine"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{at / 'cluster.json'}: unreadable ({exc})") from None


def ensure_image(progress: Progress) -> None:
    """The node image and the registry's, each made once."""
    if not images.exists(IMAGE):
        progress("Making the cluster node image from Debian (once)")
        stack.debootstrap(
            IMAGE,
            "bookworm",
            PACKAGES,
            progress,
            changes=["LABEL dynosim=cluster-image", 'CMD ["dockerd"]'],
            what="the cluster node image",
        )
    if not images.exists(REGISTRY_IMAGE):
        progress("Making the cluster registry image from Debian (once)")
        stack.debootstrap(
            REGISTRY_IMAGE,
            "bookworm",
            ["docker-registry"],
            progress,
            hooks=[f'printf %s {shlex.quote(REGISTRY_SETTINGS)} >"$1"{REGISTRY_CONFIG}'],
            changes=[
                "LABEL dynosim=cluster-image",
                "USER docker-registry",
                # no-new-privileges is not a service option on API 1.41 (docs/architecture.md)
                'ENTRYPOINT ["setpriv", "--no-new-privs", "--", "/usr/bin/docker-registry",'
                f' "serve", "{REGISTRY_CONFIG}"]',
            ],
            what="the cluster registry image",
        )


def create(size: int, progress: Progress) -> Cluster:
    """Make the cluster (image once, network, N nodes, the Swarm) or, failing, nothing."""
    if not 1 <= size <= MAX_NODES:
        raise UsageError(f"cluster:create takes 1 to {MAX_NODES} nodes, not {size}")
    found = current()
    if found is not None:
        raise UsageError(
            f"a cluster of {found.size} nodes exists already ({found.docker_host});"
            " remove it first with: dynosim cluster:destroy"
        )
    made = Cluster(secrets.token_hex(3), size, folder(), docker_cluster.local_engine())
    if len(str(made.nodes[-1].socket)) > MAX_SOCKET_PATH:
        raise UsageError(
            f"{made.nodes[-1].socket}: too long for a unix socket; set DYNOSIM_HOME to a"
            " shorter folder"
        )
    ensure_image(progress)
    _record(made)
    try:
        _start(made, progress)
    except BaseException:
        _remove(made)
        raise
    return made


def _record(made: Cluster) -> None:
    """cluster.json first, so a create that is killed halfway can still be destroyed (a
    folder without it is what such a destroy left: it goes)."""
    shutil.rmtree(made.folder, ignore_errors=True)
    made.folder.mkdir(parents=True, mode=0o700)
    made.folder.chmod(0o700)
    for node in made.nodes:
        node.api_dir.mkdir(mode=0o700)
        node.api_dir.chmod(0o700)
    record = {"id": made.id, "nodes": made.size, "engine": made.engine}
    (made.folder / "cluster.json").write_text(json.dumps(record) + "\n")


def _start(made: Cluster, progress: Progress) -> None:
    progress(f"Creating network {made.network}")
    subnet = docker_cluster.create_network(made.engine, made.network, made.id)
    progress(f"Starting {made.size} Docker engines")
    command = dockerd_command(os.getgid(), subnet)
    for node in made.nodes:
        docker_cluster.start_node(node, IMAGE, made.network, made.id, command)
    for node in made.nodes:
        docker_cluster.wait_for_engine(node, ENGINE_TIMEOUT)
    manager, *workers = made.nodes
    progress(f"Forming the Swarm: {manager.hostname} manager, {len(workers)} workers")
    docker_cluster.form_swarm(manager, workers, made.network)
    docker_cluster.wait_until_ready(manager, made.size, READY_TIMEOUT)
    progress(f"Starting the cluster's image registry on {manager.hostname}")
    cluster_images.transfer(REGISTRY_IMAGE, manager.socket)
    where = cluster_registry.start(
        manager.socket, REGISTRY_IMAGE, docker_cluster.labels(made.id), REGISTRY_TIMEOUT
    )
    progress(f"Registry at {where}")


def destroy(progress: Progress) -> Cluster:
    """Remove the cluster's nodes, their volumes, its network and its state folder."""
    found = current()
    if found is None:
        raise UsageError("no cluster to destroy here; dynosim cluster:create N makes one")
    progress(f"Stopping and removing {found.size} nodes, their volumes and {found.network}")
    _remove(found)
    return found


def _remove(made: Cluster) -> None:
    docker_cluster.remove(made.engine, docker_cluster.owned(made.engine, made.id), STOP_GRACE)
    shutil.rmtree(made.folder, ignore_errors=True)


def registry(made: Cluster) -> tuple[str, bool]:
    """The cluster's registry (ADDR:5000) and whether it answers."""
    address = cluster_registry.address(made.nodes[0].socket)
    return address, cluster_registry.answers(address)


def node_states(made: Cluster) -> list[docker_cluster.NodeState]:
    """The Swarm's nodes as its manager lists them."""
    return docker_cluster.nodes(made.nodes[0].socket)
