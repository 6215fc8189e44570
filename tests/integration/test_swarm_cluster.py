"""`dynosim cluster:create` against the real engine: N Docker engines in containers joined into
a Swarm that schedules over every node and carries overlay traffic between them, reached
through the owner-only socket it prints; a create that fails leaves nothing. The session's
cluster (the `swarm_cluster` fixture) is destroyed at the end and checked to leave nothing."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker.errors
import docker.types
import pytest
from conftest import SWARM_NODES, dynosim, running_tasks

from dynosim import cluster, runtime, stack
from dynosim.docker import client as docker_client
from dynosim.errors import EngineError

#: What the Swarm service runs: the stack's run image, as a dyno's non-root user.
SERVER = ["python3", "-m", "http.server", "5000"]
PROBE = (
    "import socket, sys, urllib.request\n"
    "ips = sorted(socket.gethostbyname_ex('tasks.' + sys.argv[1])[2])\n"
    "for ip in ips:\n"
    "    print(ip, urllib.request.urlopen(f'http://{ip}:5000/', timeout=10).status)\n"
)


def test_the_printed_docker_host_is_a_swarm_manager_with_every_node_ready(swarm_cluster):
    with swarm_cluster.client() as manager:
        nodes = manager.nodes.list()
        info = manager.info()
    assert sorted(n.attrs["Description"]["Hostname"] for n in nodes) == [
        f"node{n}" for n in range(1, SWARM_NODES + 1)
    ]
    assert {n.attrs["Status"]["State"] for n in nodes} == {"ready"}
    assert sorted(n.attrs["Spec"]["Role"] for n in nodes) == ["manager"] + ["worker"] * (
        SWARM_NODES - 1
    )
    assert info["Swarm"]["ControlAvailable"]  # the printed socket is the manager's
    shown = dynosim("cluster", env={**os.environ, "DYNOSIM_HOME": str(swarm_cluster.home)})
    assert shown.stdout.splitlines()[1:] == [
        "node1: ready (manager)",
        *(f"node{n}: ready (worker)" for n in range(2, SWARM_NODES + 1)),
        f"registry: {info['Swarm']['NodeAddr']}:5000 (up)",
        f"export DOCKER_HOST={swarm_cluster.docker_host}",
    ]


def test_the_managers_api_is_a_socket_in_folders_only_the_owner_can_enter(swarm_cluster):
    socket = swarm_cluster.node_sockets[0]
    assert stat.S_ISSOCK(os.stat(socket).st_mode)
    for folder in (socket.parent, socket.parent.parent):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert os.stat(folder).st_uid == os.getuid()


def test_a_service_spreads_over_every_node_and_its_tasks_answer_across_the_overlay(
    swarm_cluster,
):
    image = _image_on_every_node(swarm_cluster)
    with swarm_cluster.client() as manager:
        network = manager.networks.create("probe-net", driver="overlay", attachable=True)
        service = manager.services.create(
            image,
            SERVER,
            name="probe-web",
            user="1000:1000",
            cap_drop=["ALL"],
            networks=["probe-net"],
            mode=docker.types.ServiceMode("replicated", replicas=SWARM_NODES),
            maxreplicas=1,
            restart_policy=docker.types.RestartPolicy(condition="none"),
        )
        try:
            placed = running_tasks(service, SWARM_NODES)
            assert len({task["NodeID"] for task in placed}) == SWARM_NODES
            answers = manager.containers.run(
                image,
                ["python3", "-c", PROBE, "probe-web"],
                user="1000",
                network="probe-net",
                remove=True,
            ).decode()
        finally:
            service.remove()
            _remove_when_detached(network)
    assert [line.split()[1] for line in answers.splitlines()] == ["200"] * SWARM_NODES


def test_a_create_that_fails_leaves_nothing_and_says_why_in_one_line(docker_client, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", tempfile.mkdtemp(prefix="dynosim-"))
    engines_that_die = lambda gid, subnet: ["false"]  # noqa: E731
    monkeypatch.setattr(cluster, "dockerd_command", engines_that_die)
    before = _cluster_objects(docker_client)
    with pytest.raises(EngineError) as failed:
        cluster.create(2, print)
    assert str(failed.value).startswith("cluster node node1: its Docker engine stopped")
    assert "\n" not in str(failed.value)
    assert not cluster.folder().exists()
    assert _cluster_objects(docker_client) == before


def test_ctrl_c_while_the_engines_start_leaves_nothing(docker_client):
    home = tempfile.mkdtemp(prefix="dynosim-")
    before = _cluster_objects(docker_client)
    creating = subprocess.Popen(
        [sys.executable, "-m", "dynosim", "cluster:create", "2"],
        env={**os.environ, "DYNOSIM_HOME": home, "PYTHONUNBUFFERED": "1"},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert creating.stderr
    for line in creating.stderr:
        if line.startswith("Starting 2 Docker engines"):
            break
    creating.send_signal(signal.SIGINT)
    assert creating.wait(120) != 0
    assert not (Path(home) / "cluster").exists()
    assert _cluster_objects(docker_client) == before


def _cluster_objects(engine) -> set[str]:
    """Every cluster's containers, volumes and networks on the engine, by name."""
    mine = {"label": f"{docker_client.LABEL}=cluster"}
    return {
        *(c.name for c in engine.containers.list(ignore_removed=True, all=True, filters=mine)),
        *(v.name for v in engine.volumes.list(filters=mine)),
        *(n.name for n in engine.networks.list(filters=mine)),
    }


def _image_on_every_node(swarm_cluster) -> str:
    """The stack's run image loaded into each node's own image store (nodes pull from no
    registry yet: the Swarm engine's registry is to come)."""
    chosen = runtime.stack_by_suite("bookworm")
    stack.ensure(chosen, print)
    with tempfile.NamedTemporaryFile() as saved:
        for chunk in docker_client.client().api.get_image(chosen.run_image):
            saved.write(chunk)
        saved.flush()

        def load(socket) -> None:
            with swarm_cluster.client(socket) as node, open(saved.name, "rb") as data:
                node.api.load_image(data)

        with concurrent.futures.ThreadPoolExecutor(SWARM_NODES) as pool:
            list(pool.map(load, swarm_cluster.node_sockets))
    return chosen.run_image


def _remove_when_detached(network, timeout: float = 60) -> None:
    """Remove an overlay network once the removed service's tasks have left it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            network.remove()
            return
        except docker.errors.APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
