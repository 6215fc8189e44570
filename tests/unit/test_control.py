"""The control protocol: typed commands and replies, and the channel over a real unix socket
(no Docker)."""

import asyncio
import datetime as dt
import json
import os
import threading
from types import SimpleNamespace

import docker.errors
import pytest
import requests

from dynosim import control
from dynosim import control_commands as commands
from dynosim.control import ControlClient
from dynosim.control_handler import ControlHandler
from dynosim.errors import BuildError, DynosimError, EngineError, RemoteError, UsageError
from dynosim.logs import LogLine

ROW = {
    "name": "web.1",
    "type": "web",
    "role": "formation",
    "state": "up",
    "since": "2026-12-04T18:00:00+00:00",
    "command": "python app.py",
    "size": "Basic",
    "release": 3,
}
LINE = LogLine("app", "web.1", "hello", dt.datetime(2026, 12, 4, 18, 0, tzinfo=dt.UTC))


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path))


# -- the commands and replies, on the wire ---------------------------------------------------------

#: Every command, with the JSON object it is on the wire (the format CLI and `up` share).
WIRE = [
    (commands.Ps(), {"command": "ps"}),
    (commands.Deploy(4), {"command": "deploy", "version": 4}),
    (
        commands.Build("/srv/app", None, False, True, "Deploy 1a2b3c4", "/home/me/app"),
        {
            "command": "build",
            "folder": "/srv/app",
            "base_image": None,
            "strict_runtime": False,
            "cache": True,
            "description": "Deploy 1a2b3c4",
            "home": "/home/me/app",
        },
    ),
    (commands.Sleep(), {"command": "sleep"}),
    (commands.Wake(), {"command": "wake"}),
    (commands.Reconcile(), {"command": "reconcile"}),
    (commands.Restart(), {"command": "restart", "target": None}),
    (commands.Restart("web"), {"command": "restart", "target": "web"}),
    (commands.Stop("web.2"), {"command": "stop", "dyno": "web.2"}),
    (
        commands.RunDetached("rake jobs", {"A": "1"}, "Performance-L"),
        {
            "command": "run_detached",
            "command_line": "rake jobs",
            "env": {"A": "1"},
            "size": "Performance-L",
        },
    ),
    (
        commands.Logs(5, tail=True, ps="web", source="app"),
        {"command": "logs", "num": 5, "tail": True, "ps": "web", "source": "app"},
    ),
    (commands.Dashboard(), {"command": "dashboard"}),
]


def test_the_wire_examples_cover_every_command():
    assert {type(command) for command, _ in WIRE} == set(commands.COMMANDS.values())


@pytest.mark.parametrize(("command", "wire"), WIRE, ids=lambda c: getattr(c, "name", ""))
def test_every_command_round_trips_through_its_json_object(command, wire):
    assert commands.encode(command) == wire
    assert commands.decode(json.loads(json.dumps(commands.encode(command)))) == command


def test_fields_left_out_take_their_defaults():
    assert commands.decode({"command": "restart"}) == commands.Restart(None)
    assert commands.decode({"command": "run_detached", "command_line": "ls"}) == (
        commands.RunDetached("ls", {}, "Standard-1X")
    )
    assert commands.decode({"command": "logs"}) == commands.Logs(100, False, None, None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"command": "nope"}, "unknown control request 'nope'"),
        ({}, "unknown control request None"),
        ([1, 2], "unknown control request None"),
        ({"command": 7}, "unknown control request 7"),
        ({"command": "stop"}, "control request 'stop': missing dyno"),
        ({"command": "stop", "dyno": "web.1", "x": 1}, "control request 'stop': unknown field 'x'"),
        ({"command": "stop", "dyno": None}, "control request 'stop': dyno must be str"),
        ({"command": "deploy", "version": "4"}, "control request 'deploy': version must be int"),
        ({"command": "deploy", "version": True}, "control request 'deploy': version must be int"),
        ({"command": "logs", "tail": 1}, "control request 'logs': tail must be bool"),
        (
            {"command": "restart", "target": 2},
            "control request 'restart': target must be str | None",
        ),
        (
            {"command": "run_detached", "command_line": "ls", "env": {"A": 1}},
            "control request 'run_detached': env must be dict[str, str]",
        ),
    ],
)
def test_a_bad_request_is_a_one_line_usage_error(data, message):
    with pytest.raises(UsageError) as caught:
        commands.decode(data)
    assert str(caught.value) == message
    assert caught.value.exit_code == 2


REPLIES = [
    (commands.Dynos([ROW]), {"dynos": [ROW]}),
    (commands.Progress("-----> Releasing v4"), {"progress": "-----> Releasing v4"}),
    (commands.Released(4), {"release": 4}),
    (commands.Asleep(True), {"asleep": True}),
    (commands.Restarted(["web.1", "web.2"]), {"restarted": ["web.1", "web.2"]}),
    (commands.Stopped("web.2"), {"stopped": "web.2"}),
    (commands.Started("run.1"), {"dyno": "run.1"}),
    (commands.LogEntry(LINE), LINE.to_json()),
    (
        commands.DashboardUrl("http://127.0.0.1:5080/?token=t"),
        {"dashboard": "http://127.0.0.1:5080/?token=t"},
    ),
    (commands.DashboardUrl(None), {"dashboard": None}),
]


@pytest.mark.parametrize(("reply", "wire"), REPLIES, ids=lambda r: type(r).__name__)
def test_every_reply_round_trips_through_its_json_object(reply, wire):
    assert reply.to_wire() == wire
    assert commands.decode_reply(json.loads(json.dumps(wire)), (type(reply),)) == reply


def test_a_reply_is_read_as_the_first_kind_it_has_the_key_of():
    kinds = (commands.Progress, commands.Released)
    assert commands.decode_reply({"release": 4}, kinds) == commands.Released(4)
    assert commands.decode_reply({"dyno": "run.1"}, kinds) is None
    # a log line names its dyno too, but is no Started reply where log lines are asked for
    assert commands.decode_reply(LINE.to_json(), (commands.LogEntry,)) == commands.LogEntry(LINE)


# -- the server in `up`: a method per command, the supervisor's own methods ----------------------


class FakeSupervisor:
    """Records the calls ControlHandler makes, with their arguments."""

    def __init__(self):
        self.calls, self.asleep = [], False

    def snapshot(self):
        return [ROW]

    async def deploy(self, version, progress):
        self.calls.append(("deploy", version))
        progress("-----> Releasing v4")

    async def sleep(self):
        self.calls.append(("sleep",))
        self.asleep = True

    async def wake(self):
        self.calls.append(("wake",))

    async def reconcile(self):
        self.calls.append(("reconcile",))

    async def restart(self, target):
        self.calls.append(("restart", target))
        return ["web.1"]

    async def stop_dyno(self, target):
        self.calls.append(("stop_dyno", target))

    async def run_detached(self, command, env, size_name):
        self.calls.append(("run_detached", command, env, size_name))
        return "run.1"


def test_the_handler_answers_every_command():
    assert set(ControlHandler(None, None).methods) == set(commands.COMMANDS.values())


@pytest.mark.parametrize(
    ("command", "calls", "replies"),
    [
        (commands.Ps(), [], [commands.Dynos([ROW])]),
        (
            commands.Deploy(4),
            [("deploy", 4)],
            [commands.Progress("-----> Releasing v4"), commands.Released(4)],
        ),
        (commands.Sleep(), [("sleep",)], [commands.Asleep(True)]),
        (commands.Wake(), [("wake",)], [commands.Asleep(False)]),
        (commands.Reconcile(), [("reconcile",)], [commands.Dynos([ROW])]),
        (commands.Restart("web"), [("restart", "web")], [commands.Restarted(["web.1"])]),
        (commands.Stop("web.2"), [("stop_dyno", "web.2")], [commands.Stopped("web.2")]),
        (
            commands.RunDetached("ls", {"A": "1"}, "Basic"),
            [("run_detached", "ls", {"A": "1"}, "Basic")],
            [commands.Started("run.1")],
        ),
        (commands.Dashboard(), [], [commands.DashboardUrl(None)]),
    ],
    ids=lambda c: getattr(c, "name", ""),
)
def test_the_handler_calls_the_supervisor_with_the_commands_fields(command, calls, replies):
    supervisor = FakeSupervisor()

    async def answer():
        return [reply async for reply in ControlHandler(supervisor, None)(command)]

    assert asyncio.run(answer()) == replies
    assert supervisor.calls == calls


def test_a_build_sent_to_up_relays_the_builds_lines_then_rolls_a_new_release_out():
    supervisor, seen = FakeSupervisor(), []

    def builder(request, progress):  # runs in a worker thread, as a real build does
        seen.append(request)
        progress("-----> Building on the Heroku-24 stack")
        return SimpleNamespace(version=4), True

    async def answer(command):
        handler = ControlHandler(supervisor, None, builder=builder)
        return [reply async for reply in handler(command)]

    request = commands.Build("/srv/app", cache=False)
    assert asyncio.run(answer(request)) == [
        commands.Progress("-----> Building on the Heroku-24 stack"),
        commands.Progress("-----> Releasing v4"),
        commands.Built({"version": 4, "new": True}),
    ]
    assert seen == [request] and supervisor.calls == [("deploy", 4)]


def test_an_unchanged_build_rolls_nothing_out_and_a_failed_one_answers_its_error():
    supervisor = FakeSupervisor()

    def unchanged(request, progress):
        return SimpleNamespace(version=3), False

    def failing(request, progress):
        progress("-----> Installing requirements")
        raise BuildError("pip install failed")

    async def answer(builder):
        handler = ControlHandler(supervisor, None, builder=builder)
        return [reply async for reply in handler(commands.Build("/srv/app"))]

    assert asyncio.run(answer(unchanged)) == [commands.Built({"version": 3, "new": False})]
    with pytest.raises(BuildError, match="pip install failed"):
        asyncio.run(answer(failing))
    with pytest.raises(UsageError, match="does not build"):
        asyncio.run(answer(None))
    assert supervisor.calls == []


# -- server and client over the socket -------------------------------------------------------------


received = []


async def fake(command):
    """A stand-in for `up`'s handler: canned answers, and failures on cue."""
    received.append(command)
    match command:
        case commands.Ps() | commands.Reconcile():
            yield commands.Dynos([ROW])
        case commands.Deploy(version=version):
            for n in range(3):
                yield commands.Progress(f"step {n}")
            yield commands.Released(version)
        case commands.Build():
            yield commands.Progress("-----> Building on the Heroku-24 stack")
            yield commands.Built({"version": 7, "new": True})
        case commands.Sleep():
            yield commands.Asleep(True)
        case commands.Wake():
            yield commands.Asleep(False)
        case commands.Restart(target="api"):
            raise UsageError("Couldn't find that process type (api).")
        case commands.Restart(target=target):
            yield commands.Restarted(["web.1", "web.2"] if target is None else [target])
        case commands.Stop(dyno="web.9"):
            raise KeyError("web.9")
        case commands.Stop(dyno=dyno):
            yield commands.Stopped(dyno)
        case commands.RunDetached(command_line="engine"):
            response = requests.Response()
            response.status_code = 409
            raise docker.errors.APIError(
                "409 Client Error", response, "Conflict.\n container is dead"
            )
        case commands.RunDetached(command_line="silent"):
            return
        case commands.RunDetached(size=size):
            yield commands.Started(f"run.{len(size)}")
        case commands.Logs(num=num):
            for n in range(num):
                yield commands.LogEntry(LogLine("app", "web.1", f"line {n}", LINE.time))


def serving(handler, body):
    """Run a Server in a thread's event loop while `body` talks to it synchronously."""
    ready, done = threading.Event(), threading.Event()
    errors = []
    received.clear()

    def loop():
        async def main():
            server = control.Server("demo", handler)
            try:
                await server.start()
            except Exception as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            while not done.is_set():
                await asyncio.sleep(0.01)
            await server.close()

        asyncio.run(main())

    thread = threading.Thread(target=loop)
    thread.start()
    ready.wait(5)
    try:
        if errors:
            raise errors[0]
        return body()
    finally:
        done.set()
        thread.join(5)


def test_every_client_method_gets_its_typed_answer():
    client = ControlClient("demo")
    progress = []

    def body():
        return [
            client.ps(),
            client.reconcile(),
            client.deploy(4, progress.append),
            client.build(commands.Build("/srv/app"), progress.append),
            client.sleep(),
            client.wake(),
            client.restart(),
            client.restart("web.2"),
            client.stop("web.2"),
            client.run_detached("ls", {"A": "1"}, "Basic"),
            [line.message for line in client.logs(3, tail=True, ps="web", source="app")],
        ]

    answers = serving(fake, body)
    assert answers == [
        [ROW],
        [ROW],
        None,
        (7, True),
        True,
        False,
        ["web.1", "web.2"],
        ["web.2"],
        None,
        "run.5",
        ["line 0", "line 1", "line 2"],
    ]
    assert progress == ["step 0", "step 1", "step 2", "-----> Building on the Heroku-24 stack"]
    assert received == [
        commands.Ps(),
        commands.Reconcile(),
        commands.Deploy(4),
        commands.Build("/srv/app"),
        commands.Sleep(),
        commands.Wake(),
        commands.Restart(None),
        commands.Restart("web.2"),
        commands.Stop("web.2"),
        commands.RunDetached("ls", {"A": "1"}, "Basic"),
        commands.Logs(3, True, "web", "app"),
    ]


def test_log_lines_arrive_as_log_lines():
    lines = serving(fake, lambda: list(ControlClient("demo").logs(2)))
    assert lines == [LogLine("app", "web.1", f"line {n}", LINE.time) for n in range(2)]


def test_errors_arrive_as_dynosim_errors_with_their_exit_code():
    def body():
        with pytest.raises(DynosimError, match=r"process type \(api\)") as caught:
            ControlClient("demo").restart("api")
        return caught.value

    error = serving(fake, body)
    assert (error.kind, error.exit_code) == ("UsageError", 2)


def test_any_failure_in_up_comes_back_as_an_error_reply_with_its_type():
    def body():
        with pytest.raises(RemoteError) as crash:
            ControlClient("demo").stop("web.9")
        with pytest.raises(RemoteError) as engine:
            ControlClient("demo").run_detached("engine")
        return crash.value, engine.value

    crash, engine = serving(fake, body)
    assert (crash.kind, str(crash), crash.exit_code) == ("KeyError", "KeyError: 'web.9'", 1)
    assert engine.kind == "APIError"
    assert str(engine) == "Docker engine: Conflict. container is dead"
    assert engine.exit_code == EngineError.exit_code


def test_a_bad_request_comes_back_as_a_usage_error_reply():
    def body():
        with pytest.raises(RemoteError) as unknown:
            list(control._request("demo", {"command": "nope"}))
        with pytest.raises(RemoteError) as bad:
            list(control._request("demo", {"command": "stop", "dyno": 1}))
        return unknown.value, bad.value

    unknown, bad = serving(fake, body)
    assert (unknown.kind, str(unknown), unknown.exit_code) == (
        "UsageError",
        "unknown control request 'nope'",
        2,
    )
    assert (str(bad), bad.exit_code) == ("control request 'stop': dyno must be str", 2)
    assert received == []  # the handler never saw them


def test_a_reply_without_the_field_asked_for_is_an_error_not_a_key_error():
    def body():
        with pytest.raises(
            RemoteError, match="gave no dyno to 'run_detached'; see its terminal"
        ) as caught:
            ControlClient("demo").run_detached("silent")
        return caught.value.exit_code

    assert serving(fake, body) == 1


def test_socket_is_owner_only_and_gone_after_close():
    path = control.socket_path("demo")
    modes = serving(
        fake, lambda: (os.stat(path).st_mode & 0o777, path.parent.stat().st_mode & 0o777)
    )
    assert modes == (0o600, 0o700)
    assert not path.exists()
    assert not control.is_running("demo")


def test_no_running_up_is_a_clear_error():
    with pytest.raises(control.NotRunning, match="no dynosim up is running for app demo"):
        ControlClient("demo").ps()


def test_a_second_server_for_the_same_app_is_refused():
    def body():
        return serving(fake, lambda: None)

    with pytest.raises(UsageError, match="already running for app demo"):
        serving(fake, body)


def test_the_dashboard_url_reaches_the_client_over_the_owner_only_socket():
    url = "http://127.0.0.1:5080/?token=secret"
    handler = ControlHandler(None, None, url)
    assert serving(handler, lambda: ControlClient("demo").dashboard_url()) == url


def test_a_stale_socket_file_is_replaced():
    path = control.socket_path("demo")
    path.parent.mkdir(parents=True)
    path.write_text("")  # left by an up killed with SIGKILL
    assert serving(fake, lambda: ControlClient("demo").ps()) == [ROW]
