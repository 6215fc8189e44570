"""Add-on servers on the session's real Swarm (the `swarm_cluster` fixture): heroku-postgresql
as a one-replica service pinned to a worker with its volume there, on the app's overlay under
its own name, answers a client on each other node by that name over TLS with the app's
credentials; removed, it leaves no service and no volume."""

from __future__ import annotations

import json
import secrets
import time

import docker.types
import pytest

from dynosim import addons, cluster, cluster_addons
from dynosim.docker import cluster_images, dynos


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
        client_image = cluster_images.publish(
            addons.POSTGRESQL.image, swarm_cluster.node_sockets[0]
        )
        others = sorted({"node1", "node2", "node3"} - {node})
        answers = {
            other: _query(swarm_cluster, app, found, client_image, other) for other in others
        }
    finally:
        cluster_addons.destroy(found, on_the_cluster)
    database = found.settings["database"]
    assert answers == {other: f"{database} on" for other in others}  # by name, over TLS
    _assert_gone(swarm_cluster, found, node)
    with swarm_cluster.client() as manager:
        manager.networks.get(dynos.network_name(app)).remove()


def _query(swarm_cluster, app, found, image, node) -> str:
    """`psql` as the app would connect (PGHOST is the add-on's name), from a one-off service
    on `node` on the app's overlay: the database's name and whether TLS is on."""
    environment = addons.client_environment(found)
    with swarm_cluster.client() as manager:
        service = manager.services.create(
            image,
            ["psql", "-tAc", "select current_database() || ' ' || current_setting('ssl')"],
            name=f"psql-{found.name}-{node}",
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
