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
    swarm_keeper.keep(api, "shop", IMAGE)
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
