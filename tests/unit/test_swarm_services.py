"""Dynos as Swarm services, the pure half (no engine): names, the service spec a DynoSpec
becomes (one replica once started, no restarts by Swarm, the lockdown, host-mode $PORT for web
dynos), a task's state as a dyno's status, and the task events made from listings."""

import datetime as dt
from types import SimpleNamespace

import docker.errors
import pytest
from click.testing import CliRunner

from dynosim.cli import main
from dynosim.container_engine import FORMATION, ONE_OFF, DynoSpec, Event, memory_limit_mb
from dynosim.docker import services
from dynosim.docker.swarm_events import LOST, TaskEvents
from dynosim.errors import UsageError
from dynosim.formation import size
from dynosim.options import ManagerOptions, ServeOptions
from dynosim.store import Release

RELEASE = Release(
    app="shop",
    version=7,
    image="sha256:app",
    source_hash="h",
    description="Deploy",
    process_types={"web": "uwsgi uwsgi.ini", "worker": "python worker.py"},
    config={"SECRET_KEY": "s3cret"},
    created_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC),
)
LAUNCH = services.ImageConfig(["/usr/local/bin/dyno-launch"], [], None)


def test_a_service_is_named_after_the_container_with_dashes():
    assert services.service_name("shop", "web.1", 7) == "dynosim-shop-web-1-v7"
    assert services.service_name("shop", "run.4821", 7) == "dynosim-shop-run-4821-v7"


def test_a_web_dyno_is_one_locked_down_service_publishing_port_in_host_mode():
    body = services.service_spec(DynoSpec(RELEASE, "web", 2), "sha256:app", LAUNCH, 30.0)
    task = body["TaskTemplate"]
    container = task["ContainerSpec"]
    assert body["Name"] == "dynosim-shop-web-2-v7"
    assert body["Mode"] == {"Replicated": {"Replicas": 0}}  # one once started
    assert task["RestartPolicy"] == {"Condition": "none"}  # dynosim's back-off restarts
    assert container["Command"] == ["setpriv", "--no-new-privs", "/usr/local/bin/dyno-launch"]
    assert container["Args"] == ["uwsgi uwsgi.ini"]
    assert container["CapabilityDrop"] == ["ALL"]
    assert "User" not in container  # the stack image's own non-root user
    assert container["StopGracePeriod"] == 30_000_000_000
    env = dict(item.split("=", 1) for item in container["Env"])
    assert (env["DYNO"], env["PORT"], env["SECRET_KEY"]) == ("web.2", "5000", "s3cret")
    standard = size("Standard-1X")
    assert task["Resources"] == {  # the quota reserved, the R15 point the limit
        "Limits": {"MemoryBytes": memory_limit_mb(standard) * 1024 * 1024, "Pids": standard.pids},
        "Reservations": {"MemoryBytes": 512 * 1024 * 1024},
    }
    assert task["Networks"] == [{"Target": "dynosim-shop"}]
    assert body["EndpointSpec"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 5000, "PublishMode": "host"}
    ]
    labels = body["Labels"]
    assert labels == container["Labels"]
    assert (labels["dynosim.app"], labels["dynosim.type"], labels["dynosim.index"]) == (
        "shop",
        "web",
        "2",
    )
    assert (labels["dynosim.release"], labels["dynosim.role"]) == ("7", "formation")


def test_workers_and_one_offs_publish_nothing():
    worker = services.service_spec(DynoSpec(RELEASE, "worker", 1), "x", LAUNCH, 30.0)
    one_off = DynoSpec(RELEASE, "run", 4821, role=ONE_OFF, command="python manage.py migrate")
    run = services.service_spec(one_off, "x", LAUNCH, 30.0)
    assert "EndpointSpec" not in worker and "EndpointSpec" not in run
    assert run["TaskTemplate"]["ContainerSpec"]["Args"] == ["python manage.py migrate"]
    assert run["Labels"]["dynosim.role"] == ONE_OFF


def test_a_held_one_off_runs_its_hold_and_its_labels_and_ps_name_the_users_command():
    one_off = DynoSpec(RELEASE, "run", 4821, role=ONE_OFF, command="python manage.py shell")
    held = services.service_spec(one_off, "x", LAUNCH, 30.0, hold="exec sleep infinity")
    container = held["TaskTemplate"]["ContainerSpec"]
    assert container["Args"] == ["exec sleep infinity"]
    assert held["Labels"]["dynosim.command"] == container["Labels"]["dynosim.command"]
    assert services.shown_command({"Spec": held}) == "python manage.py shell"
    # formation dynos carry no command label (`ps` shows the release's); a bare one-off's
    # Args are its command (a service made before the label)
    web = services.service_spec(DynoSpec(RELEASE, "web", 1), "x", LAUNCH, 30.0)
    assert "dynosim.command" not in web["Labels"]
    bare = services.service_spec(one_off, "x", LAUNCH, 30.0)
    del bare["Labels"]["dynosim.command"]
    assert services.shown_command({"Spec": bare}) == "python manage.py shell"


def test_a_dyno_is_in_its_state_since_its_tasks_last_change_else_its_services_creation():
    service = {"CreatedAt": "2026-12-06T21:00:00.1Z"}
    assert services.since(service, None) == "2026-12-06T21:00:00.1Z"
    running = {
        **task("running"),
        "Status": {"State": "running", "Timestamp": "2026-12-06T21:01:02.5Z"},
    }
    assert services.since(service, running) == "2026-12-06T21:01:02.5Z"


def test_a_heroku_yml_image_runs_its_command_with_sh_or_its_own_cmd_as_non_root():
    own = Release(**{**RELEASE.__dict__, "images": {"web": "sha256:own"}})
    image = services.ImageConfig(["/entry"], ["serve", "--port=5000"], None)
    spec = services.process(DynoSpec(own, "web", 1), image)
    assert spec == {
        "Command": ["setpriv", "--no-new-privs", "/bin/sh", "-c"],
        "Args": ["uwsgi uwsgi.ini"],
        "User": "1000:1000",
    }
    bare = Release(**{**own.__dict__, "process_types": {"web": ""}})
    named = services.ImageConfig(["/entry"], ["serve"], "app")
    assert services.process(DynoSpec(bare, "web", 1), named) == {
        "Command": ["setpriv", "--no-new-privs", "/entry"],
        "Args": ["serve"],
        "User": "app",
    }


def task(state, exit_code=None, index=1, **extra):
    status = {"State": state}
    if exit_code is not None:
        status["ContainerStatus"] = {"ContainerID": "c1", "ExitCode": exit_code}
    return {"ID": f"t{index}", "ServiceID": "s1", "Version": {"Index": index}, "Status": status}


def test_a_tasks_state_is_a_dyno_status_in_dockers_words():
    assert services.status(None) == "created"
    assert services.status(task("preparing")) == "running"  # started: reconcile sees it
    assert services.status(task("running")) == "running"
    for ended in ("complete", "failed", "shutdown", "rejected", "orphaned"):
        assert services.status(task(ended, 1)) == "exited"
    assert services.exit_code(task("failed", 3)) == 3
    assert services.exit_code(task("rejected")) == -1
    assert services.newest([task("failed", 1, index=4), task("running", index=9)])["ID"] == "t9"


def test_the_published_port_and_a_nodes_address():
    ports = {"Ports": [{"TargetPort": 5000, "PublishedPort": 30002, "PublishMode": "host"}]}
    assert services.published_port({"Status": {"State": "running", "PortStatus": ports}}) == 30002
    assert services.published_port(task("running")) is None
    worker = {"Status": {"Addr": "172.30.0.3"}}
    manager = {"Status": {"Addr": "0.0.0.0"}, "ManagerStatus": {"Addr": "172.30.0.2:2377"}}
    assert services.node_address(worker) == "172.30.0.3"
    assert services.node_address(manager) == "172.30.0.2"


class Manager:
    """The manager API calls task events make, over lists a test edits."""

    def __init__(self, listed_services, listed_tasks, listed_nodes=()):
        self.listed_services, self.listed_tasks = listed_services, listed_tasks
        self.listed_nodes = list(listed_nodes)

    def services(self, filters):
        return self.listed_services

    def tasks(self, filters):
        return self.listed_tasks

    def nodes(self):
        return self.listed_nodes

    def events(self, decode, filters):
        return iter(())


def test_task_events_report_an_ended_task_once_and_a_removed_service():
    manager = Manager([{"ID": "s1"}], [task("running", index=1)])
    events = TaskEvents(manager, ["dynosim.app=shop"])
    assert list(events._poll()) == []
    manager.listed_tasks = [task("failed", 3, index=1)]
    assert list(events._poll()) == [Event("s1", "die", 3)]
    assert list(events._poll()) == []  # once
    manager.listed_services, manager.listed_tasks = [], []
    assert list(events._poll()) == [Event("s1", "destroy")]
    events.close()


def test_the_end_of_a_task_a_later_start_replaced_is_not_a_death():
    """A dyno stopped for sleep and woken before the next poll: its old task's end is polled
    after the new task began, for the same service."""
    manager = Manager([{"ID": "s1"}], [task("running", index=1)])
    superseded: set[str] = set()
    events = TaskEvents(manager, ["dynosim.app=shop"], superseded)
    superseded.add("t1")  # the engine's start of s1 again
    manager.listed_tasks = [task("shutdown", 0, index=1), {**task("running", index=2)}]
    assert list(events._poll()) == []
    events.close()


def test_a_task_still_running_on_a_node_marked_down_is_a_death_once():
    """Swarm sets such a task's desired state to shutdown and leaves its state `running`."""
    lost = {**task("running", index=1), "NodeID": "n3", "DesiredState": "shutdown"}
    elsewhere = {**task("running", index=2), "ID": "t2", "ServiceID": "s2", "NodeID": "n2"}
    other_app = {**task("running", index=3), "ID": "t3", "ServiceID": "other", "NodeID": "n3"}
    nodes = [
        {"ID": "n2", "Status": {"State": "ready"}, "Description": {"Hostname": "node2"}},
        {"ID": "n3", "Status": {"State": "ready"}, "Description": {"Hostname": "node3"}},
    ]
    manager = Manager([{"ID": "s1"}, {"ID": "s2"}], [lost, elsewhere, other_app], nodes)
    events = TaskEvents(manager, ["dynosim.app=shop"])
    assert list(events._poll()) == []
    nodes[1]["Status"]["State"] = "down"
    assert list(events._poll()) == [Event("s1", "die", LOST, "node node3 down")]
    assert list(events._poll()) == []  # once, and not when it ends after the node is back
    lost["Status"] = {"State": "shutdown"}
    assert list(events._poll()) == []
    events.close()


def test_a_task_lost_before_the_stream_opened_is_still_reported():
    lost = {**task("running", index=1), "NodeID": "n3"}
    nodes = [{"ID": "n3", "Status": {"State": "down"}, "Description": {"Hostname": "node3"}}]
    events = TaskEvents(Manager([{"ID": "s1"}], [lost], nodes), ["dynosim.app=shop"])
    assert list(events._poll()) == [Event("s1", "die", LOST, "node node3 down")]
    events.close()


def test_pause_sleep_is_refused_on_swarm():
    with pytest.raises(UsageError, match="--sleep-mode pause: Swarm services cannot be frozen"):
        ServeOptions(engine="swarm", manager=ManagerOptions(sleep_mode="pause"))
    assert ServeOptions().engine == "docker"


def test_up_on_swarm_without_a_swarm_manager_is_one_line_and_builds_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Procfile").write_text("web: uwsgi uwsgi.ini\n")
    result = CliRunner().invoke(main, ["up", str(tmp_path / "app"), "--engine", "swarm"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        f"error: --engine swarm: DOCKER_HOST (unix://{tmp_path}/no-engine.sock) is not a Swarm"
        " manager; dynosim cluster:create N makes a cluster on this machine and prints the"
        " DOCKER_HOST to use"
    ]
    paused = ["up", str(tmp_path / "app"), "--engine", "swarm", "--sleep-mode", "pause"]
    refused = CliRunner().invoke(main, paused)
    assert refused.exit_code != 0
    assert "--sleep-mode pause: Swarm services cannot be frozen" in refused.output


class ManagerApi:
    """The manager's service calls `create` makes: dynos' and keepers' images, recorded."""

    def __init__(self):
        self.created, self.keepers = [], []

    def inspect_service(self, name):
        raise docker.errors.NotFound(name)

    def create_service(self, task_template, name, labels, mode, **more):
        made = self.keepers if "Global" in mode else self.created
        made.append(task_template["ContainerSpec"]["Image"])
        return {"ID": f"s{len(made)}"}

    def nodes(self):  # the new keeper is waited for: on no node here
        return []

    def tasks(self, filters):
        return []


def test_an_image_is_published_and_kept_on_the_nodes_once_however_many_dynos_start_at_once(
    monkeypatch,
):
    from concurrent.futures import ThreadPoolExecutor

    from dynosim.docker import cluster_images, swarm

    published: list[tuple[str, str]] = []

    def publish(image, manager_socket):
        published.append((image, str(manager_socket)))
        return f"{image}@published"

    monkeypatch.setattr(cluster_images, "publish", publish)
    monkeypatch.setattr(swarm, "_image_config", lambda image, own: LAUNCH)
    manager = SimpleNamespace(api=ManagerApi(), close=lambda: None)
    monkeypatch.setattr(swarm.docker, "DockerClient", lambda **settings: manager)
    engine = swarm.SwarmEngine("unix:///home/you/cluster/node1/docker.sock")
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda n: engine.create(DynoSpec(RELEASE, "web", n)), range(1, 9)))
    assert published == [("sha256:app", "/home/you/cluster/node1/docker.sock")]
    assert engine.api.created == ["sha256:app@published"] * 8
    assert engine.api.keepers == ["sha256:app@published"]  # the app's network keeper, once
    assert sorted(m.name for m in made) == sorted(f"dynosim-shop-web-{n}-v7" for n in range(1, 9))


@pytest.mark.parametrize(
    ("process_type", "role", "keepers"),
    [
        ("web", FORMATION, 1),
        ("release", ONE_OFF, 1),
        ("postdeploy", ONE_OFF, 1),
        ("run", ONE_OFF, 0),
    ],
)
def test_the_release_phase_and_the_formation_start_the_network_keeper_a_run_does_not(
    monkeypatch, process_type, role, keepers
):
    """`up`'s first dynos on the app network (its release phase comes before its formation)
    wait for the keeper to join every node; a one-off the CLI runs does not leave one behind."""
    from dynosim.docker import swarm

    monkeypatch.setattr(swarm, "_image_config", lambda image, own: LAUNCH)
    manager = SimpleNamespace(api=ManagerApi(), close=lambda: None)
    monkeypatch.setattr(swarm.docker, "DockerClient", lambda **settings: manager)
    engine = swarm.SwarmEngine("tcp://127.0.0.1:2375")  # not a local cluster: image as it is
    engine.create(DynoSpec(RELEASE, process_type, 1, role, "python release.py"))
    assert len(engine.api.keepers) == keepers


def test_stopped_task_containers_whose_service_is_gone_are_removed_from_every_node():
    """What a node killed while Swarm removed a task can come back with, and Swarm forgets;
    a container that is no Swarm task (an add-on client one-off) is left alone."""
    from dynosim.docker.swarm_tasks import SERVICE_ID, Tasks

    class Engine:
        def __init__(self, containers):
            self.containers_, self.removed = containers, []
            self.api = self

        def containers(self, all, filters):
            assert filters["status"] == ["exited", "created", "dead"]
            return self.containers_

        def remove_container(self, container_id, force):
            self.removed.append(container_id)

    node1 = Engine([{"Id": "c1", "Labels": {SERVICE_ID: "live"}}])
    node2 = Engine([{"Id": "c2", "Labels": {SERVICE_ID: "gone"}}, {"Id": "c3", "Labels": {}}])
    engines = {"node1": node1, "node2": node2}
    nodes = SimpleNamespace(hostnames=lambda: sorted(engines), client=engines.get)
    api = SimpleNamespace(services=lambda filters: [{"ID": "live"}])
    Tasks(api, nodes).remove_orphans("shop")
    assert (node1.removed, node2.removed) == ([], ["c2"])
