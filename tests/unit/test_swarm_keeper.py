"""The app's network keeper on a Swarm (`docker.swarm_keeper`): one idle task per node holds the
app's overlay network joined, so that a dyno moving to a node never joins it while a peer is
dead (libnetwork's bulk sync waits out a 10 s dial timeout then)."""

from types import SimpleNamespace

import docker.errors
import pytest
import requests

from dynosim.docker import client, dynos, services, swarm, swarm_keeper

IMAGE = "10.0.0.2:5000/dynosim/app-shop@sha256:abc"


def test_the_keeper_is_a_global_locked_down_sleep_on_the_app_network():
    body = swarm_keeper.spec("shop", IMAGE)
    task, container = body["TaskTemplate"], body["TaskTemplate"]["ContainerSpec"]
    assert body["Name"] == "dynosim-shop-network"
    assert body["Mode"] == {"Global": {}}
    assert task["Networks"] == [{"Target": dynos.network_name("shop")}]
    assert container["Image"] == IMAGE
    assert container["Command"] == [*services.NO_NEW_PRIVS, "sleep", "infinity"]
    assert container["User"] == dynos.CONTAINER_USER
    assert container["CapabilityDrop"] == ["ALL"] and container["ReadOnly"] is True
    assert (container["StopSignal"], container["StopGracePeriod"]) == ("SIGKILL", 0)
    assert task["Resources"]["Limits"] == {"MemoryBytes": 16 * 1024 * 1024, "Pids": 8}
    # not a dyno: `ps`, the task events and reconcile list services labelled dynosim=dyno only
    labels = {client.LABEL: "network-keeper", client.LABEL_APP: "shop"}
    assert body["Labels"] == container["Labels"] == labels
    assert body["UpdateConfig"]["Order"] == "start-first"


class Api:
    """The manager's service calls the keeper makes, recorded."""

    def __init__(self, running: str | None = None, refuse: bool = False) -> None:
        self.running, self.refuse, self.calls = running, refuse, []

    def inspect_service(self, name):
        if self.running is None:
            raise docker.errors.NotFound(name)
        spec = {"TaskTemplate": {"ContainerSpec": {"Image": self.running}}}
        return {"ID": "k1", "Version": {"Index": 4}, "Spec": spec}

    def create_service(self, task_template, name, labels, mode, update_config):
        if self.refuse:
            raise docker.errors.APIError("no", SimpleNamespace(status_code=500, reason="no"))
        self.calls.append(("create", name, task_template["ContainerSpec"]["Image"]))

    def update_service(self, service_id, version, task_template, **more):
        self.calls.append(("update", service_id, task_template["ContainerSpec"]["Image"]))

    def remove_service(self, name):
        if self.running is None:
            raise docker.errors.NotFound(name)
        self.calls.append(("remove", name))

    def nodes(self):  # a made keeper is waited for: on no node here
        return []

    def tasks(self, filters):
        return []


@pytest.mark.parametrize(
    ("running", "calls"),
    [
        (None, [("create", "dynosim-shop-network", IMAGE)]),
        (IMAGE, []),
        ("old@sha256:0", [("update", "k1", IMAGE)]),
    ],
)
def test_keep_makes_the_keeper_or_moves_it_to_the_release_image(running, calls):
    api = Api(running)
    assert swarm_keeper.keep(api, "shop", IMAGE) is (running is None)  # made: wait for it
    assert api.calls == calls


def test_remove_takes_the_keeper_away_and_a_missing_one_is_fine():
    api = Api(IMAGE)
    swarm_keeper.remove(api, "shop")
    assert api.calls == [("remove", "dynosim-shop-network")]
    swarm_keeper.remove(Api(None), "shop")


def _engine(monkeypatch, api):
    manager = SimpleNamespace(api=api, close=lambda: None)
    monkeypatch.setattr(swarm.docker, "DockerClient", lambda **settings: manager)
    monkeypatch.setattr(swarm, "ensure_overlay", lambda api, app: None)
    return swarm.SwarmEngine("unix:///home/you/cluster/node1/docker.sock")


def test_a_keeper_the_manager_refuses_does_not_fail_the_dyno(monkeypatch):
    engine = _engine(monkeypatch, Api(refuse=True))
    engine._keep_network("shop", 3, IMAGE)  # no exception: the keeper is a shortcut
    engine.api.refuse = False
    engine._keep_network("shop", 3, IMAGE)  # tried again at the next dyno's create
    engine._keep_network("shop", 3, IMAGE)  # and once made, not again
    assert engine.api.calls == [("create", "dynosim-shop-network", IMAGE)]


def test_a_manager_that_does_not_answer_does_not_fail_the_dyno(monkeypatch):
    class Unanswered(Api):
        def create_service(self, *args, **kwargs):
            raise requests.exceptions.ConnectionError("connection refused")

    engine = _engine(monkeypatch, Unanswered())
    engine._keep_network("shop", 3, IMAGE)  # no exception
    assert engine._kept == {}  # tried again at the next dyno's create


def test_other_errors_are_not_swallowed(monkeypatch):
    class Broken(Api):
        def create_service(self, *args, **kwargs):
            raise KeyError("TaskTemplate")

    with pytest.raises(KeyError):
        _engine(monkeypatch, Broken())._keep_network("shop", 3, IMAGE)


def test_the_keeper_follows_the_release_not_each_process_types_image(monkeypatch):
    """With heroku.yml's per-type images, a worker's start must not roll the keeper over every
    node to its own image (and the web's back again)."""
    engine = _engine(monkeypatch, Api())
    engine._keep_network("shop", 3, IMAGE)  # web
    engine._keep_network("shop", 3, "worker@sha256:def")  # worker, same release
    engine._keep_network("shop", 4, "web@sha256:new")  # the next release
    assert engine.api.calls == [
        ("create", "dynosim-shop-network", IMAGE),
        ("create", "dynosim-shop-network", "web@sha256:new"),
    ]


def test_a_late_create_after_the_network_went_does_not_bring_the_keeper_back(monkeypatch):
    engine = _engine(monkeypatch, Api())
    monkeypatch.setattr(engine.tasks, "left_on_nodes", lambda app, network: False)
    monkeypatch.setattr(swarm.dynos, "remove_network", lambda app, wait, manager: True)
    engine.remove_network("shop")
    engine._keep_network("shop", 3, IMAGE)  # a crash restart's create finishing late
    assert engine.api.calls == []
    engine.ensure_network("shop")  # the app starts again: the keeper with it
    engine._keep_network("shop", 3, IMAGE)
    assert engine.api.calls == [("create", "dynosim-shop-network", IMAGE)]


A, B, C = "10.1.0.2", "10.1.0.3", "10.1.0.4"
NODES = {"n1": A, "n2": B, "n3": C}


def _task(node, state, index=1):
    return {"NodeID": node, "Status": {"State": state}, "Version": {"Index": index}}


@pytest.mark.parametrize(
    ("tasks", "seen", "waited"),
    [
        # the orchestrator has not placed every task yet, or its image is being pulled
        ([_task("n1", "running"), _task("n2", "preparing")], {}, {"n2", "n3"}),
        # all run; n2 does not know yet that n3 joined, n3 has no network yet
        (
            [_task(n, "running") for n in NODES],
            {"n1": {A, B, C}, "n2": {A, B}, "n3": None},
            {"n2", "n3"},
        ),
        # every view lists every node (a node lists itself): settled
        ([_task(n, "running") for n in NODES], {n: {A, B, C} for n in NODES}, set()),
        # a node whose view cannot be read (no node access) is not waited for once it runs
        ([_task(n, "running") for n in NODES], {"n1": {A, B, C}}, set()),
        # n3's newest task failed (an image without sleep): not waited for, nor expected
        (
            [
                _task("n1", "running"),
                _task("n2", "running"),
                _task("n3", "running", 1),
                _task("n3", "rejected", 2),
            ],
            {"n1": {A, B}, "n2": {A, B}},
            set(),
        ),
    ],
)
def test_the_first_dynos_wait_until_every_node_runs_the_keeper_and_sees_all_of_them(
    tasks, seen, waited
):
    assert swarm_keeper.unsettled(NODES, tasks, seen) == waited


class Cluster:
    """A manager and its nodes' engines whose views of the app network fill in over polls."""

    def __init__(self, views):
        self.views, self.polls = views, 0

    def nodes(self):
        self.polls += 1
        state = {"State": "ready", "Addr": ""}
        return [{"ID": n, "Status": {**state, "Addr": a}, "Spec": {"Availability": "active"}}
                for n, a in NODES.items()]  # fmt: skip

    def tasks(self, filters):
        assert filters == {"service": "dynosim-shop-network"}
        return [_task(n, "running") for n in NODES]

    def view(self, node):
        cluster = self

        class Engine:
            def inspect_network(self, name, verbose, scope):
                assert (name, verbose, scope) == ("dynosim-shop", True, "swarm")
                shown = cluster.views[min(cluster.polls, len(cluster.views)) - 1][node]
                if shown is None:
                    raise docker.errors.NotFound(name)
                return {"Peers": [{"Name": "abc", "IP": ip} for ip in shown]}

        return Engine()


def test_until_joined_returns_once_the_views_converge(monkeypatch):
    monkeypatch.setattr(swarm_keeper.time, "sleep", lambda seconds: None)
    every = {n: {A, B, C} for n in NODES}
    cluster = Cluster([{"n1": {A}, "n2": None, "n3": {C}}, {**every, "n2": {A, B}}, every])
    swarm_keeper.until_joined(cluster, "shop", cluster.view)
    assert cluster.polls == 3


def test_until_joined_gives_up_after_its_timeout(monkeypatch):
    monkeypatch.setattr(swarm_keeper.time, "sleep", lambda seconds: None)
    cluster = Cluster([{"n1": {A}, "n2": {B}, "n3": {C}}])  # never converges
    swarm_keeper.until_joined(cluster, "shop", cluster.view, timeout=0.05)
    assert cluster.polls > 1


def test_until_joined_stops_waiting_when_the_app_goes_away(monkeypatch):
    """Ctrl-C while the first dynos wait: `remove_network` marks the app closed first."""
    monkeypatch.setattr(swarm_keeper.time, "sleep", lambda seconds: None)
    cluster = Cluster([{"n1": {A}, "n2": {B}, "n3": {C}}])  # never converges
    swarm_keeper.until_joined(cluster, "shop", cluster.view, lambda: cluster.polls >= 2)
    assert cluster.polls == 2
