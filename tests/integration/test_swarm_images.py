"""Images on the session's real Swarm (the `swarm_cluster` fixture): `cluster_images.publish`
puts an image built here into the cluster's registry, a service on a worker node pulls it by
digest and runs it; publishing it again moves nothing; the registry answers this machine and
the nodes, never a container on a node."""

from __future__ import annotations

import io
import re
import secrets
import time

import docker.types
import pytest
from conftest import running_tasks

from dynosim import runtime, stack
from dynosim.docker import cluster_images, cluster_registry
from dynosim.errors import EngineError, UsageError

#: GET argv[1] with GATEWAY as the container's default gateway (its node, on its bridge).
PROBE = (
    "import socket, struct, sys, urllib.request\n"
    "routes = [line.split() for line in open('/proc/net/route').read().splitlines()[1:]]\n"
    "hexa = next(r[2] for r in routes if r[1] == '00000000')\n"
    "gateway = socket.inet_ntoa(struct.pack('<L', int(hexa, 16)))\n"
    "try:\n"
    "    url = sys.argv[1].replace('GATEWAY', gateway)\n"
    "    print(urllib.request.urlopen(url, timeout=3).status)\n"
    "except OSError as exc:\n"
    "    print('unreachable', exc)\n"
)


@pytest.fixture(scope="module")
def small_image(docker_client):
    """A small image of this test's own (a token file on the stack's run image), removed
    afterwards: its name, its id and the token."""
    chosen = runtime.stack_by_suite("bookworm")
    stack.ensure(chosen, print)
    token = secrets.token_hex(8)
    name = f"dynosim/test-published:{token}"
    dockerfile = f"FROM {chosen.run_image}\nRUN echo {token} > /token\nUSER 1000\n"
    built, _ = docker_client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()),
        tag=name,
        rm=True,  # no intermediate containers
    )
    yield name, built.id, token
    docker_client.images.remove(name, force=True)


def test_a_published_image_runs_on_a_worker_node_by_digest(swarm_cluster, small_image):
    name, image_id, token = small_image
    manager_socket = swarm_cluster.node_sockets[0]
    reference = cluster_images.publish(name, manager_socket)
    address = cluster_registry.address(manager_socket)
    assert re.fullmatch(
        rf"{re.escape(address)}/dynosim/test-published@sha256:[0-9a-f]{{64}}", reference
    )
    with swarm_cluster.client() as manager:
        service = manager.services.create(
            reference,
            ["sh", "-c", "cat /token && exec sleep 600"],
            name=f"published-{token}",
            constraints=["node.role==worker"],
            cap_drop=["ALL"],
            restart_policy=docker.types.RestartPolicy(condition="none"),
        )
        try:
            (task,) = running_tasks(service, 1)
            node = manager.nodes.get(task["NodeID"]).attrs["Description"]["Hostname"]
            assert node != "node1"  # a worker: it pulled from the registry
            assert _first_log_line(service) == token
        finally:
            service.remove()
    with swarm_cluster.client(swarm_cluster.node_sockets[int(node[-1]) - 1]) as worker:
        assert worker.images.get(reference).id == image_id  # the very image built here


def test_publishing_again_transfers_and_pushes_nothing(swarm_cluster, small_image, monkeypatch):
    name, _, _ = small_image
    manager_socket = swarm_cluster.node_sockets[0]
    first = cluster_images.publish(name, manager_socket)

    def refused(*args, **kwargs):
        raise AssertionError("a second publish moved the image again")

    monkeypatch.setattr(cluster_images, "transfer", refused)
    monkeypatch.setattr(cluster_images, "_push", refused)
    assert cluster_images.publish(name, manager_socket) == first


def test_publishing_an_image_that_does_not_exist_is_one_line(swarm_cluster):
    with pytest.raises(UsageError) as refused:
        cluster_images.publish("dynosim/no-such-image:1", swarm_cluster.node_sockets[0])
    assert str(refused.value) == (
        "no image dynosim/no-such-image:1 on the Docker engine to publish to the cluster"
    )


def test_the_registry_answers_this_machine_and_the_nodes_but_no_container_on_them(
    swarm_cluster, small_image
):
    """Dynos on any node (the manager's own too, through its bridges) cannot reach it; the
    node's own network namespace (a host-network container) can: it is the lockdown, not the
    route, that stops them."""
    name, _, _ = small_image
    manager_socket = swarm_cluster.node_sockets[0]
    reference = cluster_images.publish(name, manager_socket)
    address = cluster_registry.address(manager_socket)
    assert cluster_registry.answers(address)
    url = f"http://{address}/v2/"
    for socket in swarm_cluster.node_sockets:
        with swarm_cluster.client(socket) as node:
            assert _probe(node, reference, url, "host") == "200"
            assert _probe(node, reference, url, "bridge").startswith("unreachable")
    with swarm_cluster.client(manager_socket) as manager:  # the manager through its bridge
        url = f"http://GATEWAY:{cluster_registry.PORT}/v2/"
        assert _probe(manager, reference, url, "bridge").startswith("unreachable")


def _probe(node, image: str, url: str, network: str) -> str:
    output = node.containers.run(
        image, ["python3", "-c", PROBE, url], network_mode=network, remove=True, user="1000"
    )
    return output.decode().strip()


def _first_log_line(service, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        lines = b"".join(service.logs(stdout=True, stderr=True)).decode().splitlines()
        if lines:
            return lines[0]
        assert time.monotonic() < deadline, "the service printed nothing"
        time.sleep(0.5)


def test_without_its_registry_publish_says_so_in_one_line(swarm_cluster, docker_client):
    """As on a cluster made before it had one: the registry's service scaled to 0 (and back)."""
    manager_socket = swarm_cluster.node_sockets[0]
    address = cluster_registry.address(manager_socket)
    fresh, _ = docker_client.images.build(
        fileobj=io.BytesIO(b"FROM scratch\nLABEL dynosim.test=unpublished\n"),
        tag=f"dynosim/test-unpublished:{secrets.token_hex(4)}",
        rm=True,
    )
    with swarm_cluster.client() as manager:
        registry = manager.services.get(cluster_registry.SERVICE)
        registry.scale(0)
        try:
            deadline = time.monotonic() + 60
            while cluster_registry.answers(address) and time.monotonic() < deadline:
                time.sleep(0.5)
            with pytest.raises(EngineError) as refused:
                cluster_images.publish(fresh.tags[0], manager_socket)
        finally:
            registry.reload()  # scale() updates the version it was found at
            registry.scale(1)
            docker_client.images.remove(fresh.id, force=True)
            deadline = time.monotonic() + 60
            while not cluster_registry.answers(address) and time.monotonic() < deadline:
                time.sleep(0.5)
    assert str(refused.value) == (
        f"the cluster's registry does not answer at {address} (a cluster made before dynosim"
        " had one?); make the cluster again: dynosim cluster:destroy, then dynosim"
        " cluster:create N"
    )
    assert cluster_registry.answers(address)
