"""`dynosim up --engine swarm` on the session's real 3-node Swarm (`swarm_cluster`), the
operations around a running app: an interactive `run` attached through its task's node (a
terminal, piped input and its end, the exit status; refused without node access), a
`run:detached` into the log stream, both listed by `ps` with their node and command, and
`App.run`'s captured output and status; a killed `up` whose services the next `up` adopts without
restarting them, and a `config:set` under GET and POST load that fails no request."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from conftest import WEB, Load, tiny_app

from dynosim.docker import swarm_keeper
from dynosim.options import SWARM_SETTING
from dynosim.store import Store

APP = "swarmops"
#: App.run without attaching, as the pytest plugin's tests call it: (dyno, status, output).
CAPTURED = f"""import json
from dynosim import App
done = App.named({APP!r}).run("echo out $DYNO; echo err >&2; exit 5")
print(json.dumps([done.dyno, done.status, done.output]))
"""
UP_LINE = r"heroku\[web\.{}\]: State changed from starting to up"
#: Answers GET with its DYNO and FOO, and a POST with its body (201), as the Load expects.
APP_PY = """import json, os


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        row = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [row]
    body = {"dyno": os.environ["DYNO"], "foo": os.environ.get("FOO")}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
"""


@pytest.fixture(scope="module")
def ops_app(tmp_path_factory) -> Path:
    return tiny_app(tmp_path_factory.mktemp("ops") / APP, WEB, **{"app.py": APP_PY})


def run(swarm_cluster, line: str, **kwargs) -> subprocess.CompletedProcess[str]:
    """`dynosim run -x LINE`, its stdin, stdout and stderr as `kwargs` give them."""
    return subprocess.run(
        [sys.executable, "-m", "dynosim", "run", "-a", APP, "-x", line],
        env={**os.environ, **swarm_cluster.env},
        timeout=180,
        **kwargs,
    )


def announced(process: subprocess.Popen, timeout: float = 180) -> str:
    """The one-off's name (run.N) once `dynosim run` says it is up."""
    names: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stderr:
            if "... up, " in line:
                names.put(line.split("... up, ")[1].strip())
                return

    threading.Thread(target=read, daemon=True).start()
    return names.get(timeout=timeout)


def one_offs_left(swarm_cluster) -> list[str]:
    """The app's one-off services on the manager and their containers on any node."""
    with swarm_cluster.client() as manager:
        found = [s.name for s in manager.services.list() if f"{APP}-run-" in s.name]
    for socket in swarm_cluster.node_sockets:
        with swarm_cluster.client(socket) as node:
            marks = {"label": [f"dynosim.app={APP}", "dynosim.role=one-off"]}
            found += [
                c.name for c in node.containers.list(ignore_removed=True, all=True, filters=marks)
            ]
    return found


def left_of(swarm_cluster, dyno: str) -> list[str]:
    """What is left of one one-off (run.N) on the manager or any node."""
    return [n for n in one_offs_left(swarm_cluster) if f"-{dyno.replace('.', '-')}-" in n]


def services(swarm_cluster) -> dict[str, tuple[str, list[str]]]:
    """The app's dynos' services (not its network keeper): name -> (id, ids of its running
    tasks)."""
    with swarm_cluster.client() as manager:
        return {
            s.name: (s.id, sorted(t["ID"] for t in s.tasks() if t["Status"]["State"] == "running"))
            for s in manager.services.list()
            if APP in s.name and s.name != swarm_keeper.service_name(APP)
        }


def test_an_interactive_run_is_attached_through_its_node_and_removed_from_every_node(
    swarm_cluster, ops_app, up, tmp_path
):
    served = up(ops_app, "--engine", "swarm", "--grace", "5", env=swarm_cluster.env)
    served.wait_for(UP_LINE.format(1), timeout=600)

    piped = run(
        swarm_cluster,
        "read first; echo $first $DYNO $(id -u) $(pwd); wc -l;"
        " grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; exit 3",
        input="hello\nsecond\nthird\n",
        capture_output=True,
        text=True,
    )
    assert piped.returncode == 3, piped.stderr  # the command's status
    greeting, count, *status = piped.stdout.splitlines()
    first, dyno, uid, folder = greeting.split()
    assert (first, folder, count) == ("hello", "/app", "2")  # the input's end came
    assert dyno.startswith("run.") and uid != "0"
    assert sorted(line.split() for line in status) == [
        ["CapEff:", "0000000000000000"],  # every capability dropped
        ["NoNewPrivs:", "1"],
    ]
    assert "Running `read first;" in piped.stderr and f"... up, {dyno}" in piped.stderr
    assert one_offs_left(swarm_cluster) == []

    line = "test -t 0 && test -t 1 && echo on $(tty); exit 4"
    status, shown = swarm_cluster.in_terminal("run", "-a", APP, "-x", line)
    assert status == 4, shown
    assert "on /dev/pts/" in shown, shown
    assert one_offs_left(swarm_cluster) == []

    # `ps` lists one-offs as on one engine, with their node: an interactive run's service
    # (which `up` does not track; its user's command, not its hold) and a detached one
    held = subprocess.Popen(
        [sys.executable, "-m", "dynosim", "run", "-a", APP, "-x", "read line; echo got $line"],
        env={**os.environ, **swarm_cluster.env},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    held_name = announced(held)
    detached = swarm_cluster.dynosim(APP, "run:detached", "echo detached on $DYNO; sleep 5")
    name = detached.split("up, ")[1].split()[0]
    served.wait_for(rf"app\[{name}\]: detached on {name}", timeout=60)
    listed = swarm_cluster.dynosim(APP, "ps")
    assert "=== run: one-off processes (2)" in listed, listed
    expected = rf"{held_name} \([^)]+\): up .* on node\d: read line; echo got \$line"
    assert re.search(expected, listed), listed
    assert re.search(rf"{name} \([^)]+\): up .* on node\d: echo detached on", listed), listed
    assert re.search(r"web\.1: up .* on node\d", listed), listed
    assert held.communicate("hello\n", timeout=60)[0] == "got hello\n"
    assert held.returncode == 0 and not left_of(swarm_cluster, held_name)

    # App.run without attaching (the pytest plugin's way): output captured, status returned
    captured = subprocess.run(
        [sys.executable, "-c", CAPTURED], env={**os.environ, **swarm_cluster.env},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert captured.returncode == 0, captured.stderr
    dyno, status, output = json.loads(captured.stdout)
    # both streams, as one engine's container logs (their order between streams is not kept)
    assert (status, sorted(output.splitlines())) == (5, ["err", f"out {dyno}"]), output
    assert not left_of(swarm_cluster, dyno)
    served.wait_for(rf"heroku\[{name}\]: State changed from up to complete", timeout=60)
    assert served.stop() == 0
    assert swarm_cluster.left(APP) == []

    # a Swarm dynosim did not make: its manager socket with no cluster.json beside it
    home = tmp_path / "elsewhere"
    home.mkdir(mode=0o700)
    source, copy = (
        sqlite3.connect(swarm_cluster.home / "state.db"),
        sqlite3.connect(home / "state.db"),
    )
    source.backup(copy)
    source.close(), copy.close()
    foreign = Path(tempfile.mkdtemp(prefix="dynosim-foreign-")) / "node1" / "docker.sock"
    try:
        foreign.parent.mkdir()
        foreign.symlink_to(swarm_cluster.node_sockets[0])
        foreign_host = {"DYNOSIM_HOME": str(home), "DOCKER_HOST": f"unix://{foreign}"}
        with contextlib.closing(Store(home / "state.db")) as store:  # where its `up` ran it
            store.set_setting(APP, SWARM_SETTING, foreign_host["DOCKER_HOST"])
        refused = subprocess.run(
            [sys.executable, "-m", "dynosim", "run", "-a", APP, "true"],
            env={**os.environ, **foreign_host}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        shutil.rmtree(foreign.parent.parent)
    assert refused.returncode != 0
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "dynosim run:detached" in refused.stderr
    assert swarm_cluster.left(APP) == []


def test_the_next_up_adopts_a_killed_ups_services_and_config_set_under_load_fails_nothing(
    swarm_cluster, ops_app, up
):
    first = up(ops_app, "--engine", "swarm", "--grace", "5", env=swarm_cluster.env)
    first.wait_for(UP_LINE.format(1), timeout=600)
    swarm_cluster.dynosim(APP, "features:enable", "preboot")  # zero downtime, as on Heroku
    swarm_cluster.dynosim(APP, "ps:scale", "web=2")
    first.wait_for(UP_LINE.format(2), timeout=120)
    before = services(swarm_cluster)
    assert len(before) == 2 and all(len(tasks) == 1 for _, tasks in before.values()), before
    first.process.kill()  # SIGKILL: no chance to clean up
    first.process.wait(10)

    second = up(ops_app, "--engine", "swarm", "--grace", "5", env=swarm_cluster.env)
    for n in (1, 2):
        second.wait_for(rf"heroku\[web\.{n}\]: Adopted running dyno from an earlier dynosim up")
        second.wait_for(UP_LINE.format(n), timeout=120)
    assert services(swarm_cluster) == before  # the same services and tasks: no restart
    assert answers(second, 2) == {("web.1", None), ("web.2", None)}

    load = Load(second.url, post=True)
    try:
        swarm_cluster.dynosim(APP, "config:set", "FOO=bar")
    finally:
        load.stop(at_least=500)
    assert load.failures == [], f"{len(load.failures)} of {load.sent}: {load.failures[:5]}"
    assert load.created
    assert answers(second, 2) == {("web.1", "bar"), ("web.2", "bar")}
    assert second.stop() == 0
    assert swarm_cluster.left(APP) == []


def answers(served, dynos: int, attempts: int = 200) -> set[tuple[str, str | None]]:
    """(DYNO, FOO) of GET / until `dynos` different dynos answered."""
    seen: set[tuple[str, str | None]] = set()
    for _ in range(attempts):
        response = served.get("/")
        assert response.status_code == 200, response.text
        body = response.json()
        seen.add((body["dyno"], body["foo"]))
        if len({dyno for dyno, _ in seen}) >= dynos:
            break
    return seen
