"""Where an add-on's server goes on the local cluster, without an engine. On the real
cluster: tests/integration/test_swarm_addons.py."""

from pathlib import Path

from dynosim import addons, cluster, cluster_addons
from dynosim.docker import swarm_servers


def made(size: int) -> cluster.Cluster:
    return cluster.Cluster("abc123", size, Path("/nowhere"), "unix:///var/run/docker.sock")


def test_add_ons_spread_over_the_workers_and_keep_their_node():
    found = [addons.new_addon("shop", "heroku-postgresql", "DATABASE_URL") for _ in range(40)]
    placed = [cluster_addons.node_of(each, made(3)) for each in found]
    assert set(placed) == {"node2", "node3"}  # never the manager, which runs the registry
    assert placed == [cluster_addons.node_of(each, made(3)) for each in found]


def test_a_cluster_of_one_holds_them_on_its_manager():
    found = addons.new_addon("shop", "heroku-redis", "REDIS_URL")
    assert cluster_addons.node_of(found, made(1)) == "node1"


def test_add_on_commands_use_the_cluster_while_docker_host_names_its_manager(monkeypatch):
    local = made(3)
    monkeypatch.setattr(cluster, "current", lambda: None)
    assert cluster_addons.here("shop") is addons.ONE_ENGINE  # no cluster: this engine
    monkeypatch.setattr(cluster, "current", lambda: local)
    monkeypatch.setenv("DOCKER_HOST", local.docker_host)
    on_cluster = cluster_addons.here("shop")
    assert type(on_cluster) is cluster_addons.OnCluster and on_cluster.made == local
    monkeypatch.setenv("DOCKER_HOST", local.engine)  # this engine, and removals on both
    monkeypatch.setattr(swarm_servers, "has_services", lambda socket, app: False)
    assert type(cluster_addons.here("shop")) is cluster_addons.AlsoOnCluster
    monkeypatch.setattr(swarm_servers, "has_services", lambda socket, app: app == "shop")
    assert type(cluster_addons.here("shop")) is cluster_addons.OnCluster  # it runs there
