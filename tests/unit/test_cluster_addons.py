"""Where an add-on's server goes on the local cluster, and how pg:* and redis:cli reach it on
its node (started for the duration, removed after), without an engine. On the real cluster:
tests/integration/test_swarm_addons.py and test_swarm_addons_app.py."""

import contextlib
from pathlib import Path

import pytest

from dynosim import addons, cluster, cluster_addons
from dynosim.docker import swarm_servers
from dynosim.errors import EngineError, UsageError


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


class Swarm:
    """The manager's and nodes' answers `OnCluster.reach` uses: the server's task (None: no
    service), the node that runs it, the task's container; and what was done."""

    def __init__(self, monkeypatch, task: swarm_servers.Task | None) -> None:
        self.task, self.done = task, []
        monkeypatch.setattr(swarm_servers, "task", lambda manager, name: self.task)
        monkeypatch.setattr(swarm_servers, "node_hostname", lambda manager, node_id: "node3")
        monkeypatch.setattr(swarm_servers, "container", self.container)
        monkeypatch.setattr(cluster_addons, "start", self.start)
        monkeypatch.setattr(cluster_addons, "stop", lambda found, made: self.done.append("stop"))
        monkeypatch.setattr(swarm_servers, "remove_unused_overlay",
                            lambda manager, app: self.done.append(f"tidy {app}"))  # fmt: skip

    def start(self, found, made, progress):
        self.task = RUNNING
        self.done.append("start")
        return "node3"

    @contextlib.contextmanager
    def container(self, socket, container_id):
        self.done.append(f"beside {container_id} on {socket.parent.name}")
        yield f"container {container_id}"


RUNNING = swarm_servers.Task("running", "n3", "c0ffee", "")
SERVED = {"app": "shop"}


@pytest.fixture
def served(monkeypatch):
    """Whether an `up` serves the app (SERVED["app"] names the one that is)."""
    monkeypatch.setattr(addons, "served", lambda app: app == SERVED["app"])


def test_a_server_that_did_not_run_is_reached_on_its_node_and_removed_after(monkeypatch, served):
    swarm = Swarm(monkeypatch, None)
    found = addons.new_addon("other", "heroku-postgresql", "DATABASE_URL")  # no `up` serves it
    with cluster_addons.OnCluster(made(3)).reach(found) as reached:
        assert reached == addons.Reached("container c0ffee", "unix:///nowhere/node3/docker.sock")
    assert swarm.done == ["start", "beside c0ffee on node3", "stop", "tidy other"]


def test_a_running_server_is_adopted_and_left_running(monkeypatch, served):
    swarm = Swarm(monkeypatch, RUNNING)
    found = addons.new_addon("other", "heroku-redis", "REDIS_URL")
    with cluster_addons.OnCluster(made(3)).reach(found):
        pass
    assert swarm.done == ["start", "beside c0ffee on node3"]  # start adopts: waits until ready


def test_a_server_an_up_serves_stays_even_when_the_command_started_it(monkeypatch, served):
    swarm = Swarm(monkeypatch, None)
    found = addons.new_addon("shop", "heroku-postgresql", "DATABASE_URL")
    with cluster_addons.OnCluster(made(3)).reach(found):
        pass
    assert swarm.done == ["start", "beside c0ffee on node3"]


def test_a_failure_beside_the_server_still_removes_what_the_command_started(monkeypatch, served):
    swarm = Swarm(monkeypatch, None)
    found = addons.new_addon("other", "heroku-postgresql", "DATABASE_URL")
    with pytest.raises(UsageError), cluster_addons.OnCluster(made(3)).reach(found):
        raise UsageError("psql failed")
    assert swarm.done[-2:] == ["stop", "tidy other"]


def test_a_server_whose_task_went_away_is_one_line(monkeypatch, served):
    swarm = Swarm(monkeypatch, None)

    def started_without_a_task(found, made, progress):
        swarm.done.append("start")

    monkeypatch.setattr(cluster_addons, "start", started_without_a_task)
    found = addons.new_addon("other", "heroku-redis", "REDIS_URL")
    with (
        pytest.raises(EngineError, match=r"^redis-\S+ stopped running on the cluster$"),
        cluster_addons.OnCluster(made(3)).reach(found),
    ):
        pass
    assert swarm.done == ["start", "stop", "tidy other"]


def test_on_this_engine_the_commands_reach_this_engine_s_server(monkeypatch):
    found = addons.new_addon("shop", "heroku-redis", "REDIS_URL")
    monkeypatch.setattr(addons.ONE_ENGINE, "reach", lambda addon: f"reach {addon.name}")
    assert cluster_addons.AlsoOnCluster(made(3)).reach(found) == f"reach {found.name}"
