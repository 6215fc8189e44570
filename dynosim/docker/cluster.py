"""A local Swarm cluster's nodes: Docker engines in containers on the local engine, on a bridge
network of their own, each engine's API bind-mounted out as a unix socket, joined into one
Swarm. Everything made carries the cluster's label, so removal finds only its own objects."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import docker.types

from ..errors import EngineError, one_line
from . import client

#: The cluster an object belongs to (its id); `client.LABEL` is "cluster" on all of them.
LABEL_CLUSTER = "dynosim.cluster"
ROLE = "cluster"
#: Where a node's engine puts its API socket, inside the node; a host folder is mounted there.
API_DIR = "/dynosim-api"
#: A node needs what dockerd needs (namespaces, mounts, iptables, cgroups) but not
#: CAP_SYS_RESOURCE, which these machines refuse (so no --privileged).
SECURITY_OPT = ["seccomp=unconfined", "apparmor=unconfined"]
#: The CLI's `--security-opt systempaths=unconfined`: nothing in /proc or /sys masked or
#: read-only (dockerd writes /proc/sys for its networks).
UNMASKED = {"MaskedPaths": [], "ReadonlyPaths": []}


#: Nodes report to the manager every second (Swarm's default: 5 s), so a node that dies is
#: marked down in seconds rather than in about 12 (docs/architecture.md, "A node that fails").
HEARTBEAT_NS = 1_000_000_000
#: The iptables chain in each node that keeps its containers off the cluster network.
NODE_CHAIN = "DYNOSIM-NODE"


@dataclass(frozen=True)
class Node:
    """One node: the engine it runs on (a DOCKER_HOST), its container and volume names,
    hostname and the host folder of its socket."""

    engine: str
    container: str
    hostname: str
    volume: str
    api_dir: Path

    @property
    def socket(self) -> Path:
        return self.api_dir / "docker.sock"


@dataclass(frozen=True)
class NodeState:
    """A node as the Swarm manager sees it."""

    hostname: str
    role: str  # manager or worker
    state: str  # ready, down, unknown, disconnected


@dataclass(frozen=True)
class Owned:
    """The cluster's objects on the local engine, found by its label."""

    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.containers or self.volumes or self.networks)


def local_engine() -> str:
    """The engine DOCKER_HOST names now (where a new cluster's nodes go)."""
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def host(engine: str) -> docker.DockerClient:
    """The engine a cluster's nodes run on: the usual client while DOCKER_HOST still names it
    (after `export DOCKER_HOST=<the manager>` it names the cluster instead)."""
    return client.client() if engine == local_engine() else _other(engine)


@functools.cache
def _other(engine: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=engine, timeout=120)


def labels(cluster: str) -> dict[str, str]:
    return {client.LABEL: ROLE, LABEL_CLUSTER: cluster}


@client.engine_errors
def create_network(engine: str, name: str, cluster: str) -> str:
    """The cluster's bridge network; its subnet (which the nodes' engines trust as an
    insecure registry: the cluster's own, over plain HTTP)."""
    network = host(engine).networks.create(name, driver="bridge", labels=labels(cluster))
    network.reload()
    return network.attrs["IPAM"]["Config"][0]["Subnet"]


@client.engine_errors
def start_node(node: Node, image: str, network: str, cluster: str, command: list[str]) -> None:
    """Create and start a node: its engine's data in its own volume (so the engine's
    overlay2 sits on the volume's filesystem, not on another overlay), the host's cgroups
    writable, /run a tmpfs, the socket folder mounted at API_DIR."""
    engine = host(node.engine)
    engine.volumes.create(node.volume, labels=labels(cluster))
    api = engine.api
    host_config = api.create_host_config(
        network_mode=network,
        init=True,
        cap_add=["ALL"],
        cap_drop=["SYS_RESOURCE"],
        security_opt=SECURITY_OPT,
        tmpfs={"/run": ""},
        binds={
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            str(node.api_dir): {"bind": API_DIR, "mode": "rw"},
        },
        mounts=[docker.types.Mount("/var/lib/docker", node.volume, type="volume")],
        log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}},
    )
    created = api.create_container(
        image,
        command,
        name=node.container,
        hostname=node.hostname,
        labels=labels(cluster),
        host_config={**host_config, **UNMASKED},
    )
    api.start(created["Id"])


@client.engine_errors
def address(node: Node, network: str) -> str:
    """The node's address on the cluster network (where Swarm's ports and published ports
    are)."""
    attrs = host(node.engine).api.inspect_container(node.container)
    return attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


@contextlib.contextmanager
def node_client(socket: Path) -> Iterator[docker.DockerClient]:
    """A client of the node engine at `socket`, closed after use."""
    engine = docker.DockerClient(base_url=f"unix://{socket}", timeout=60)
    try:
        yield engine
    finally:
        engine.close()


@client.engine_errors
def wait_for_engine(node: Node, timeout: float) -> None:
    """Until the node's engine answers on its socket; EngineError with the engine's last log
    line when its container stopped or `timeout` passed."""
    deadline = time.monotonic() + timeout
    while True:
        if node.socket.exists():
            with contextlib.suppress(docker.errors.DockerException):
                with node_client(node.socket) as engine:
                    engine.ping()
                return
        state = host(node.engine).api.inspect_container(node.container)["State"]
        if not state["Running"] or time.monotonic() > deadline:
            why = "stopped" if not state["Running"] else f"did not answer within {timeout:.0f} s"
            raise EngineError(f"cluster node {node.hostname}: its Docker engine {why}{_last(node)}")
        time.sleep(0.2)


def _last(node: Node) -> str:
    with contextlib.suppress(docker.errors.DockerException):
        lines = host(node.engine).api.logs(node.container, tail=1).decode(errors="replace")
        if lines.strip():
            return f": {lines.strip()[:300]}"
    return ""


def lockdown_rules(subnet: str) -> list[list[str]]:
    """iptables commands for a node: a new connection that comes from the node's own
    containers (any interface but the cluster network's eth0 and lo) to the cluster network
    or to the node itself is dropped. So dynos reach neither the registry, nor other nodes'
    Swarm ports, nor this machine's bridge address; published ports and overlay traffic come
    in on eth0, and replies are not new. In `mangle` PREROUTING: after conntrack, before the
    node's DNAT of published ports (which would hide that the node was the destination)."""
    chain = ["iptables", "-w", "-t", "mangle"]
    return [
        [*chain, "-N", NODE_CHAIN],
        [*chain, "-A", NODE_CHAIN, "-i", "eth0", "-j", "RETURN"],
        [*chain, "-A", NODE_CHAIN, "-i", "lo", "-j", "RETURN"],
        [*chain, "-A", NODE_CHAIN, "-d", subnet, "-j", "DROP"],
        [*chain, "-A", NODE_CHAIN, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DROP"],
        [*chain, "-I", "PREROUTING", "-m", "conntrack", "--ctstate", "NEW", "-j", NODE_CHAIN],
    ]


@client.engine_errors
def form_swarm(manager: Node, workers: list[Node], network: str) -> None:
    """`swarm init` on the manager, advertising its cluster address, with a short heartbeat;
    every worker joins it."""
    advertise = address(manager, network)
    with node_client(manager.socket) as engine:
        engine.swarm.init(
            advertise_addr=advertise,
            listen_addr=f"{advertise}:2377",
            dispatcher_heartbeat_period=HEARTBEAT_NS,
        )
        engine.swarm.reload()
        token = engine.swarm.attrs["JoinTokens"]["Worker"]
    for worker in workers:
        with node_client(worker.socket) as engine:
            engine.swarm.join(
                remote_addrs=[f"{advertise}:2377"],
                join_token=token,
                advertise_addr=address(worker, network),
            )


def nodes(socket: Path) -> list[NodeState]:
    """The Swarm's nodes as the manager at `socket` lists them; EngineError when it does not
    answer (its container stopped, e.g. after the local engine restarted)."""
    try:
        with node_client(socket) as engine:
            found = engine.nodes.list()
    except docker.errors.DockerException as exc:
        reason = one_line(getattr(exc, "explanation", None) or str(exc))
        raise EngineError(
            f"the cluster's Swarm manager does not answer ({reason}); dynosim cluster:destroy"
            " removes what is left of the cluster"
        ) from None
    return [
        NodeState(
            node.attrs["Description"]["Hostname"],
            node.attrs["Spec"]["Role"],
            node.attrs["Status"]["State"],
        )
        for node in found
    ]


def wait_until_ready(manager: Node, count: int, timeout: float) -> None:
    """Until the manager lists `count` nodes, all ready."""
    deadline = time.monotonic() + timeout
    while True:
        states = nodes(manager.socket)
        ready = [n for n in states if n.state == "ready"]
        if len(ready) >= count:
            return
        if time.monotonic() > deadline:
            raise EngineError(
                f"only {len(ready)} of {count} cluster nodes became ready within {timeout:.0f} s"
            )
        time.sleep(0.2)


@client.engine_errors
def owned(engine_url: str, cluster: str) -> Owned:
    engine = host(engine_url)
    wanted = {"label": f"{LABEL_CLUSTER}={cluster}"}
    return Owned(
        [c.name for c in engine.containers.list(all=True, ignore_removed=True, filters=wanted)],
        [v.name for v in engine.volumes.list(filters=wanted)],
        [n.name for n in engine.networks.list(filters=wanted)],
    )


@client.engine_errors
def remove(engine: str, found: Owned, grace: float) -> None:
    """Stop the node containers (their engines stop their own containers, so nothing is left
    in the host's cgroups), all at once; then remove them, their volumes and the network."""
    api = host(engine).api

    def stop_and_remove(name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            api.stop(name, timeout=int(grace))
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(name, v=True, force=True)

    if found.containers:
        with concurrent.futures.ThreadPoolExecutor(len(found.containers)) as pool:
            list(pool.map(stop_and_remove, found.containers))
    for volume in found.volumes:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_volume(volume, force=True)
    for network in found.networks:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_network(network)


def is_swarm_manager(engine: str) -> bool:
    """Whether the engine at `engine` (a DOCKER_HOST URL) answers as a Swarm manager."""
    try:
        with contextlib.closing(docker.DockerClient(base_url=engine, timeout=10)) as found:
            return bool(found.info().get("Swarm", {}).get("ControlAvailable"))
    except docker.errors.DockerException:
        return False
