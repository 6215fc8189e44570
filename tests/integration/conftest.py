"""Fixtures for tests against real Docker: isolated state, a leak check, `dynosim up` runs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests

from dynosim.docker.client import LABEL_APP

#: The apps' own test suites run in their test dynos (dynosim ci:run), not here.
collect_ignore_glob = ["apps/*"]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "flask_app"


@pytest.fixture(scope="session", autouse=True)
def dynosim_home(tmp_path_factory):
    """State of the test run lives in a temporary DYNOSIM_HOME, never the user's."""
    home = tmp_path_factory.mktemp("dynosim-home")
    os.environ["DYNOSIM_HOME"] = str(home)
    return home


@pytest.fixture(autouse=True)
def no_leaks(dynosim_leak_check):
    """Fail any test that leaves dynosim containers, networks or add-on volumes behind (and
    clean them up): the plugin's leak check, for every integration test."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def copy_app(source: Path, target: Path) -> Path:
    """A copy outside any git repository, so .gitignore (not git) selects its files."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    return target


class Up:
    """A real `dynosim up` process: its output collected line by line, stopped with SIGINT."""

    def __init__(
        self, app_dir: Path, *args: str, port: int | None = None, env: dict | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.https_url = f"https://127.0.0.1:{free_port()}"  # not the shared default 5443
        self.lines: list[str] = []
        self._changed = threading.Condition()
        command = [sys.executable, "-m", "dynosim", "up", str(app_dir), "--port", str(self.port)]
        command += ["--https-port", self.https_url.rsplit(":", 1)[1]]
        self.process = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def mark(self) -> int:
        """A position in the output: wait_for(..., after=mark) only looks at later lines."""
        with self._changed:
            return len(self.lines)

    def wait_for(
        self,
        pattern: str,
        timeout: float = 300,
        after: int = 0,
        unless: str | None = r"heroku\[web\.\d+\]: State changed from starting to crashed",
    ) -> re.Match[str]:
        """The first output line (from `after` on) matching the regex, waiting for it.

        Gives up at once on a line matching `unless` (by default: a web dyno failing to boot).
        """
        regex = re.compile(pattern)
        stop = re.compile(unless) if unless else None
        deadline = time.monotonic() + timeout
        seen = after
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                    if stop and stop.search(line):
                        raise AssertionError(f"{line!r} before {pattern!r}:\n{self.output}")
                seen = len(self.lines)
                if self.process.poll() is not None and seen == len(self.lines):
                    raise AssertionError(f"dynosim up exited before {pattern!r}:\n{self.output}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no line matching {pattern!r} in:\n{self.output}")
                self._changed.wait(min(remaining, 1.0))

    def get(self, path: str = "/", **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def stop(self, timeout: float = 120) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        finally:
            time.sleep(0.2)  # let the reader thread take the last lines


class Load:
    """Requests through the router from 4 threads until stopped (at most 5 minutes): GETs,
    and with `post` POSTs from half the threads, each with a new row id (`created` holds the
    rows answered 201)."""

    def __init__(self, url: str, post: bool = False) -> None:
        self.url, self.sent, self.failures, self.created = url, 0, [], []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(post and n % 2 == 0,), daemon=True)
            for n in range(4)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, posting: bool) -> None:
        deadline = time.monotonic() + 300
        with requests.Session() as session:
            while not self._stop.is_set() and time.monotonic() < deadline:
                row = uuid.uuid4().hex
                try:
                    if posting:
                        response = session.post(self.url, data=row, timeout=30)
                        ok = response.status_code == 201 and response.text == row
                    else:
                        response = session.get(self.url, timeout=30)
                        ok = response.status_code == 200
                    failure = None if ok else f"{response.status_code} {response.text[:200]!r}"
                except requests.RequestException as exc:
                    failure = repr(exc)
                with self._lock:
                    self.sent += 1
                    if failure is not None:
                        self.failures.append(failure)
                    elif posting:
                        self.created.append(row)

    def stop(self, at_least: int = 0) -> None:
        deadline = time.monotonic() + 120
        while self.sent < at_least and time.monotonic() < deadline:
            time.sleep(0.1)
        self._stop.set()
        for thread in self._threads:
            thread.join()


@pytest.fixture
def up():
    """Start `dynosim up` processes; whatever a test leaves running is stopped at the end."""
    started: list[Up] = []

    def start(app_dir: Path, *args: str, **kwargs) -> Up:
        process = Up(app_dir, *args, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.stop()


def tiny_app(folder: Path, procfile: str, **files: str) -> Path:
    """A dependency-free app: a WSGI hello served by uWSGI, plus whatever a test needs. Its
    requirements.txt is empty, as Heroku accepts for an app without dependencies."""
    folder.mkdir(parents=True)
    (folder / "Procfile").write_text(procfile)
    (folder / "runtime.txt").write_text("python-3.11\n")
    (folder / "requirements.txt").write_text("")
    (folder / "app.py").write_text(
        "import os\n\n\ndef app(environ, start_response):\n"
        '    start_response("200 OK", [("Content-Type", "text/plain")])\n'
        '    return [os.environ["DYNO"].encode()]\n'
    )
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def container_app(folder: Path, dockerfile: str, heroku_yml: str, **files: str) -> Path:
    """A heroku.yml app whose Dockerfile (`dockerfile`: the lines after FROM) builds on
    dynosim's bookworm run image, which has python3 and is built once per test run."""
    from dynosim import runtime, stack

    base = runtime.stack_by_suite("bookworm")
    stack.ensure(base, lambda line: None)
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text(f"FROM {base.run_image}\n{dockerfile}")
    for name, text in {"heroku.yml": heroku_yml, **files}.items():
        (folder / name).write_text(text)
    return folder


WEB = "web: uwsgi --http-socket :$PORT --master --die-on-term --wsgi-file app.py --callable app\n"


def dynosim(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a dynosim command to completion (a second terminal, next to `up`)."""
    return subprocess.run(
        [sys.executable, "-m", "dynosim", *args],
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 600),
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


@pytest.fixture(scope="session")
def example_app(tmp_path_factory) -> Path:
    return copy_app(EXAMPLE, tmp_path_factory.mktemp("apps") / "flask_app")


def tail_follows_the_router(app: str, url: str, env: dict[str, str] | None = None) -> None:
    """`dynosim logs -a APP --tail --ps router -n 0` prints the router's line of a request
    made after it started."""
    tail = subprocess.Popen(
        [sys.executable, "-m", "dynosim", "logs", "-a", app, "--tail", "--ps", "router", "-n", "0"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        time.sleep(1)  # let the follower subscribe
        requests.get(url + "/followed", timeout=10)
        assert 'heroku[router]: at=info method=GET path="/followed"' in tail.stdout.readline()
    finally:
        tail.terminate()
        tail.wait(10)


@dataclass(frozen=True)
class SwarmCluster:
    """The session's Swarm (dynosim cluster:create 3): the DOCKER_HOST it printed, its state
    folder, and each node's own engine socket (node1 is the manager)."""

    docker_host: str
    home: Path
    node_sockets: list[Path]

    @contextlib.contextmanager
    def client(self, socket: Path | None = None) -> Iterator[docker.DockerClient]:
        """The manager's API as the printed DOCKER_HOST gives it, or a node's own engine."""
        engine = docker.DockerClient(
            base_url=f"unix://{socket}" if socket else self.docker_host, timeout=120
        )
        try:
            yield engine
        finally:
            engine.close()

    @property
    def env(self) -> dict[str, str]:
        """A user's second terminal after `eval "$(dynosim cluster:create 3)"`."""
        return {"DYNOSIM_HOME": str(self.home), "DOCKER_HOST": self.docker_host}

    def dynosim(self, app: str, *args: str) -> str:
        """`dynosim ARGS -a APP` from that terminal: its output, asserting it succeeded."""
        done = dynosim(*args, "-a", app, env={**os.environ, **self.env})
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def in_terminal(self, *args: str, keys: Sequence[tuple[str, str]] = ()) -> tuple[int, str]:
        """`dynosim ARGS` from that terminal, an 80x24 one as its stdin, stdout and stderr:
        for each (shown, typed) pair, once the terminal shows `shown`, type `typed`. Its exit
        status and all the terminal showed."""
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        process = subprocess.Popen(
            [sys.executable, "-m", "dynosim", *args], env={**os.environ, **self.env},
            stdin=follower, stdout=follower, stderr=follower,
        )  # fmt: skip
        os.close(follower)
        shown = bytearray()

        def read_until(wanted: bytes, timeout: float = 120) -> None:
            deadline = time.monotonic() + timeout
            while wanted not in shown and time.monotonic() < deadline:
                if select.select([leader], [], [], 1)[0]:
                    try:
                        chunk = os.read(leader, 4096)
                    except OSError:  # the terminal closed: the command ended
                        return
                    if not chunk:
                        return
                    shown.extend(chunk)

        try:
            for expected, typed in keys:
                read_until(expected.encode())
                assert expected.encode() in shown, shown.decode(errors="replace")
                os.write(leader, typed.encode())
            read_until(b"\0the end\0", timeout=180)  # everything, until it closes the terminal
            return process.wait(60), shown.decode(errors="replace")
        finally:
            if process.poll() is None:  # Ctrl-C: it removes its one-off
                process.send_signal(signal.SIGINT)
                process.wait(60)
            os.close(leader)

    def left(self, app: str, timeout: float = 60) -> list[str]:
        """The app's services (dynos', add-ons', its network keeper), containers and networks
        on the manager or any node, once they are gone (or as they are after `timeout` s:
        Swarm removes a service's tasks after the service)."""
        labelled = {"label": f"{LABEL_APP}={app}"}
        deadline = time.monotonic() + timeout
        while True:
            with self.client() as manager:
                found = [
                    s.name
                    for s in manager.services.list()
                    if app in s.name or s.attrs["Spec"].get("Labels", {}).get(LABEL_APP) == app
                ]
            for node_socket in self.node_sockets:
                with self.client(node_socket) as node:
                    found += [
                        c.name
                        for c in node.containers.list(
                            ignore_removed=True, all=True, filters=labelled
                        )
                    ]
                    found += [n.name for n in node.networks.list() if app in n.name]
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(1)


SWARM_NODES = 3


def running_tasks(service, count: int, timeout: float = 120) -> list[dict]:
    """The service's tasks once `count` of them run; fails on a task that failed."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = service.tasks()
        failed = [t["Status"] for t in tasks if t["Status"]["State"] in ("failed", "rejected")]
        assert not failed, failed
        running = [t for t in tasks if t["Status"]["State"] == "running"]
        if len(running) >= count:
            return running
        assert time.monotonic() < deadline, [t["Status"] for t in tasks]
        time.sleep(0.5)


@pytest.fixture(scope="session")
def swarm_cluster(docker_client, tmp_path_factory) -> Iterator[SwarmCluster]:
    """One real 3-node Swarm for every Swarm test of the session, made and destroyed by the
    CLI in a DYNOSIM_HOME of its own; its teardown fails when anything of it is left."""
    home = tmp_path_factory.mktemp("swarm")
    env = {**os.environ, "DYNOSIM_HOME": str(home)}
    created = dynosim("cluster:create", str(SWARM_NODES), env=env)
    assert created.returncode == 0, created.stderr
    (export,) = created.stdout.splitlines()
    assert export.startswith("export DOCKER_HOST=unix://"), export
    record = json.loads((home / "cluster" / "cluster.json").read_text())
    sockets = [home / "cluster" / f"node{n}" / "docker.sock" for n in range(1, SWARM_NODES + 1)]
    cluster = SwarmCluster(export.removeprefix("export DOCKER_HOST="), home, sockets)
    yield cluster
    # as after `eval "$(dynosim cluster:create 3)"`: DOCKER_HOST names the manager now
    destroyed = dynosim("cluster:destroy", env={**env, "DOCKER_HOST": cluster.docker_host})
    assert destroyed.returncode == 0, destroyed.stderr
    left = {"label": f"dynosim.cluster={record['id']}"}
    assert docker_client.containers.list(ignore_removed=True, all=True, filters=left) == []
    assert docker_client.volumes.list(filters=left) == []
    assert docker_client.networks.list(filters=left) == []
    assert not (home / "cluster").exists()
