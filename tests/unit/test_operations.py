"""Formation commands that need no Docker: ps layout, scaling without a running up."""

import datetime as dt

import pytest
from click.testing import CliRunner

from dynosim import operations
from dynosim.cli import main
from dynosim.store import Store

NOW = dt.datetime(2026, 11, 23, 19, 44, 56, tzinfo=dt.UTC)


def entry(name, state="up", seconds=3, role="formation", command="uwsgi uwsgi.ini"):
    since = (NOW - dt.timedelta(seconds=seconds)).isoformat()
    process_type = name.split(".")[0]
    size = "Standard-1X"
    return dict(name=name, type=process_type, role=role, state=state, since=since,
                command=command, size=size)  # fmt: skip


def test_ps_layout_is_herokus():
    text = operations.format_ps(
        "demo",
        [
            entry("web.2", seconds=300),
            entry("web.1"),
            entry("worker.1", state="crashed", seconds=7200, command="python worker.py"),
            entry("run.4821", role="one-off", seconds=90000, command="bash"),
        ],
        NOW,
    )
    assert text == (
        "=== run: one-off processes (1)\n"
        "run.4821 (Standard-1X): up 2026/11/22 18:44:56 +0000: bash\n"
        "\n"
        "=== web (Standard-1X): uwsgi uwsgi.ini (2)\n"
        "web.1: up 2026/11/23 19:44:53 +0000 (~ 3s ago)\n"
        "web.2: up 2026/11/23 19:39:56 +0000 (~ 5m ago)\n"
        "\n"
        "=== worker (Standard-1X): python worker.py (1)\n"
        "worker.1: crashed 2026/11/23 17:44:56 +0000 (~ 2h ago)"
    )
    assert operations.format_ps("demo", [], NOW) == "No dynos on ⬢ demo"


def test_ps_says_which_node_a_dyno_runs_on_when_on_a_cluster():
    placed = [{**entry("web.1"), "node": "node2"}, entry("web.2")]
    assert operations.format_ps("demo", placed, NOW).splitlines()[1:] == [
        "web.1: up 2026/11/23 19:44:53 +0000 (~ 3s ago) on node2",
        "web.2: up 2026/11/23 19:44:53 +0000 (~ 3s ago)",
    ]


@pytest.fixture
def deployed(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "home"))
    store = Store()
    store.ensure_app("demo", tmp_path)
    store.create_release(
        "demo",
        image="sha256:x",
        source_hash="x",
        description="Deploy x",
        process_types={"web": "uwsgi uwsgi.ini", "worker": "python w.py", "release": "migrate"},
        status="succeeded",
    )
    store.ensure_formation("demo", ["web", "worker"])
    return store


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_scale_without_a_running_up_is_recorded_for_the_next_one(deployed):
    result = run("ps:scale", "-a", "demo", "web=3", "worker=0:standard-2X")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Scaling dynos... done, now running web at 3:Standard-1X, worker at 0:Standard-2X\n"
    )
    assert {t: (e.quantity, e.size) for t, e in Store().formation("demo").items()} == {
        "web": (3, "Standard-1X"),
        "worker": (0, "Standard-2X"),
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["web=2", "release=1"], "Couldn't find that process type (release)."),
        (["web=2", "bogus"], "Invalid argument 'bogus'"),
        (["web=2:giant"], "Couldn't find that dyno size (giant)."),
        (["web=2:basic"], "Cannot update to more than 1 Basic size dynos per process type."),
    ],
)
def test_bad_scale_arguments_apply_nothing(deployed, args, message):
    before = Store().formation("demo")
    result = run("ps:scale", "-a", "demo", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.count("\n") == 1
    assert Store().formation("demo") == before


def test_commands_needing_a_running_up_say_so(deployed):
    for args in (["logs"], ["ps:restart"], ["ps:stop", "web.1"], ["run:detached", "ls"]):
        result = run(*args[:1], "-a", "demo", *args[1:])
        assert result.exit_code == 1
        assert "no dynosim up is running for app demo; start one with: dynosim up" in result.output


def test_unknown_app_is_a_clear_error(deployed):
    result = run("ps:scale", "-a", "nope", "web=1")
    assert result.exit_code == 2
    assert "Couldn't find that app (nope)" in result.output


class Swarm:
    """The Swarm adapter's `ps` view, as `docker.swarm.SwarmEngine.listed` gives it."""

    def __init__(self, *listed):
        self.shown, self.closed = list(listed), False

    def listed(self, app):
        return self.shown

    def close(self):
        self.closed = True


def on_swarm(monkeypatch, store, swarm):
    from dynosim import cluster

    store.set_setting("demo", "engine", "swarm")
    store.set_setting("demo", "swarm_manager", "unix:///swarm.sock")  # as `up` recorded it
    targets = {"unix:///swarm.sock": "target"}  # the Swarm the app ran on, not DOCKER_HOST's
    monkeypatch.setattr(cluster, "swarm_target", lambda manager=None: targets[manager])
    monkeypatch.setattr(cluster, "swarm_engine", lambda target: swarm)


def test_ps_of_an_app_on_a_swarm_lists_what_up_does_not_track_from_the_swarm(deployed, monkeypatch):
    from dynosim.container_engine import Dyno
    from dynosim.docker.swarm import Listed

    run_dyno = Dyno("demo", "run", 4821, 1, "one-off", "running", "s1", "Basic")
    web = Dyno("demo", "web", 1, 1, "formation", "running", "s2")
    swarm = Swarm(
        Listed(run_dyno, "2026-11-23T19:44:50.123456789Z", "python manage.py shell", "node3"),
        Listed(web, "2026-11-23T19:40:00Z", "", None),
    )
    on_swarm(monkeypatch, deployed, swarm)
    rows = operations.dynos(deployed, "demo")
    assert [(r["name"], r["command"], r.get("node")) for r in rows] == [
        ("run.4821", "python manage.py shell", "node3"),
        ("web.1", "uwsgi uwsgi.ini", None),  # a formation dyno's command is the release's
    ]
    assert operations.format_ps("demo", rows, NOW).splitlines()[:2] == [
        "=== run: one-off processes (1)",
        "run.4821 (Basic): up 2026/11/23 19:44:50 +0000 (~ 5s ago) on node3:"
        " python manage.py shell",
    ]
    assert swarm.closed


def test_ps_of_an_app_whose_swarm_is_gone_lists_the_local_engines_dynos(deployed, monkeypatch):
    from dynosim import cluster
    from dynosim.docker import dynos
    from dynosim.errors import UsageError

    deployed.set_setting("demo", "engine", "swarm")

    def gone(manager=None):
        raise UsageError("--engine swarm: DOCKER_HOST is not a Swarm manager")

    monkeypatch.setattr(cluster, "swarm_target", gone)
    monkeypatch.setattr(dynos, "containers", lambda app: [])
    assert operations.dynos(deployed, "demo") == []
