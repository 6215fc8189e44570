"""Add-on servers on the session's real Swarm (the `swarm_cluster` fixture): heroku-postgresql
and heroku-redis as one-replica services pinned to a worker with their volume there, on the
app's overlay under their own names, answer clients on other nodes by those names over TLS
with the app's credentials; removed, they leave no service and no volume."""

from __future__ import annotations

import json
import secrets
import time

import docker.types
import pytest

from dynosim import addons, cluster, cluster_addons
from dynosim.docker import cluster_images, dynos, swarm_servers


@pytest.fixture
def on_the_cluster(swarm_cluster, monkeypatch):
    """The session's cluster as dynosim.cluster sees it (its state folder)."""
    monkeypatch.setenv("DYNOSIM_HOME", str(swarm_cluster.home))
    made = cluster.current()
    assert made is not None
    return made


def test_postgres_on_one_node_answers_by_its_name_from_every_other_node(
    swarm_cluster, on_the_cluster
):
    app = f"addons{secrets.token_hex(3)}"
    found = addons.new_addon(app, "heroku-postgresql", "DATABASE_URL")
    node = cluster_addons.start(found, on_the_cluster, print)
    try:
        assert node != "node1"  # add-ons go to the workers
        assert _locked_down(swarm_cluster, found, node) == [
            "CapEff:\t0000000000000000",
            "NoNewPrivs:\t1",
            "postgres",
        ]
        client_image = cluster_images.publish(
            addons.POSTGRESQL.image, swarm_cluster.node_sockets[0]
        )
        others = sorted({"node1", "node2", "node3"} - {node})
        sql = "select current_database() || ' ' || current_setting('ssl')"
        command, environment = ["psql", "-tAc", sql], addons.client_environment(found)
        answers = {
            other: _one_off(swarm_cluster, app, client_image, other, command, environment)
            for other in others
        }
    finally:
        cluster_addons.destroy(found, on_the_cluster)
    database = found.settings["database"]
    assert answers == {other: f"{database} on" for other in others}  # by name, over TLS
    _assert_gone(swarm_cluster, found, node)
    with swarm_cluster.client() as manager:
        manager.networks.get(dynos.network_name(app)).remove()


def test_redis_on_one_node_answers_by_its_name_over_tls_from_another(swarm_cluster, on_the_cluster):
    app = f"addons{secrets.token_hex(3)}"
    found = addons.new_addon(app, "heroku-redis", "REDIS_URL")
    node = cluster_addons.start(found, on_the_cluster, print)
    try:
        client_image = cluster_images.publish(addons.REDIS.image, swarm_cluster.node_sockets[0])
        command, environment = addons.client_command(found)  # --tls, -h <its name>
        other = "node1"  # the manager: add-ons are on the workers
        answer = _one_off(swarm_cluster, app, client_image, other, [*command, "ping"], environment)
    finally:
        cluster_addons.destroy(found, on_the_cluster)
    assert answer == "PONG"
    _assert_gone(swarm_cluster, found, node)
    with swarm_cluster.client() as manager:
        manager.networks.get(dynos.network_name(app)).remove()


def _one_off(swarm_cluster, app, image, node, command, environment) -> str:
    """`command` as the app's dyno would run it (with `environment`), as a one-off service on
    `node` on the app's overlay: its output."""
    with swarm_cluster.client() as manager:
        service = manager.services.create(
            image,
            command,
            name=f"one-off-{app}-{node}",
            env=[f"{key}={value}" for key, value in environment.items()],
            constraints=[f"node.hostname=={node}"],
            networks=[dynos.network_name(app)],
            cap_drop=["ALL"],
            restart_policy=docker.types.RestartPolicy(condition="none"),
        )
        try:
            _finished(service)
            return b"".join(service.logs(stdout=True, stderr=True)).decode().strip()
        finally:
            service.remove()


def _locked_down(swarm_cluster, found, node) -> list[str]:
    """The server's capabilities, no-new-privileges flag and user, from inside its task's
    container on its node (as `servers.start` locks a server down on one engine)."""
    manager = swarm_cluster.node_sockets[0]
    task = swarm_servers.task(manager, found.name)
    assert task is not None and task.container_id
    socket = swarm_cluster.node_sockets[int(node.removeprefix("node")) - 1]
    status, output = swarm_servers.execute(
        socket,
        task.container_id,
        ["sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/1/status; whoami"],
    )
    assert status == 0, output
    return output.splitlines()


def _finished(service) -> None:
    """Until the one-off's task completes; fails when it failed."""
    deadline = time.monotonic() + 120
    while True:
        states = [t["Status"] for t in service.tasks()]
        if any(s["State"] == "complete" for s in states):
            return
        assert not any(s["State"] in ("failed", "rejected") for s in states), json.dumps(states)
        assert time.monotonic() < deadline, states
        time.sleep(0.5)


def _assert_gone(swarm_cluster, found, node) -> None:
    with swarm_cluster.client() as manager:
        assert manager.services.list(filters={"name": found.name}) == []
    socket = swarm_cluster.node_sockets[int(node.removeprefix("node")) - 1]
    with swarm_cluster.client(socket) as engine:
        assert engine.volumes.list(filters={"name": addons.container_name(found)}) == []
