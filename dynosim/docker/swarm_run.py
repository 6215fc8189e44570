"""One-off dynos on a Swarm, run to their end. `dynosim run` is interactive: the manager's API
cannot attach to a task, so the one-off's service runs a task that holds (it sleeps) and the
command runs in that task's container through its node's engine (node access), as `docker
exec` does it: the user's stdin, stdout and TTY, the end of piped input passed on, the
command's exit status. `App.run` without attaching runs the command as the task itself and
captures its output. The service is removed from every node afterwards. Why not the task's own
process when attached: docs/architecture.md ("Swarm engine")."""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docker.errors

from ..container_engine import DynoSpec
from ..errors import EngineError
from . import client, services
from .swarm import PLACE_TIMEOUT, STOP_SLACK, SwarmEngine
from .swarm_tasks import Service, running_or_ended

#: What the one-off's task runs while the command runs beside it (under the dyno's own
#: entrypoint, which ends it on SIGTERM).
HOLD = "exec sleep infinity"


@client.engine_errors
def run(
    engine: SwarmEngine,
    spec: DynoSpec,
    *,
    tty: bool,
    interactive: bool,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Run `spec`'s command attached to this terminal; its exit status."""
    name = f"{spec.process_type}.{spec.index}"
    held = engine.create(spec, hold=HOLD)
    try:
        engine.start(held)
        socket, container_id = _placed(engine, held, name)
        if announce:
            announce(name)
        process = engine.process(spec)
        argv = [*process["Command"], *process["Args"]]
        return _exec(socket, container_id, argv, process.get("User"), tty, interactive)
    finally:
        remove(engine, held)


@client.engine_errors
def captured(
    engine: SwarmEngine, spec: DynoSpec, announce: Callable[[str], None] | None = None
) -> tuple[int, str]:
    """Run `spec`'s command as the task itself until it ends: its exit status and output
    (stdout and stderr, as one engine's container logs give them)."""
    name = f"{spec.process_type}.{spec.index}"
    service = engine.create(spec)
    try:
        if announce:
            announce(name)
        engine.start(service)
        task = engine.tasks.until(service, running_or_ended, PLACE_TIMEOUT)
        if (task or {}).get("Status", {}).get("State") == services.RUNNING:  # it was placed
            task = engine.tasks.until(service, services.ended, math.inf)
        if task is None or not services.ended(task) or services.exit_code(task) < 0:
            state = (task or {}).get("Status", {})
            why = state.get("Err") or state.get("Message") or "not placed"
            raise EngineError(f"{name} did not run on the cluster: {why}")
        return services.exit_code(task), _output(engine, service)
    finally:
        remove(engine, service)


def _output(engine: SwarmEngine, service: Service) -> str:
    """The ended task's output: from its container on its node, else the manager's `service
    logs` (a cluster without node access)."""
    found = engine.tasks.reachable(service)
    chunks = (
        found.logs()
        if found is not None
        else engine.api.service_logs(service.id, stdout=True, stderr=True)
    )
    data = chunks if isinstance(chunks, bytes) else b"".join(chunks)
    return data.decode(errors="replace")


def _placed(engine: SwarmEngine, held: Service, name: str) -> tuple[Path, str]:
    """The node socket and container of the one-off's task, once it runs."""
    task = engine.tasks.until(held, running_or_ended, PLACE_TIMEOUT)
    state = (task or {}).get("Status", {})
    if task is None or state.get("State") != services.RUNNING:
        why = state.get("Err") or state.get("Message") or state.get("State") or "not placed"
        raise EngineError(f"{name} did not start on the cluster: {why}")
    hostname = engine.tasks.where(task["NodeID"]).hostname
    socket = engine.nodes.socket(hostname)
    if socket is None:
        raise EngineError(f"{name} runs on {hostname}, whose engine dynosim cannot reach")
    return socket, task["Status"]["ContainerStatus"]["ContainerID"]


def _exec(
    socket: Path, container_id: str, argv: list[str], user: str | None, tty: bool, stdin: bool
) -> int:
    """The command in the task's container on its node: the docker CLI when present (stdin,
    TTY), else its output streamed. Its exit status."""
    cli = shutil.which("docker")
    if cli:
        flags = [*(["--interactive"] if stdin else []), *(["--tty"] if tty else [])]
        flags += ["--user", user] if user else []
        host = ["--host", f"unix://{socket}"]
        return subprocess.run([cli, *host, "exec", *flags, container_id, *argv]).returncode
    with docker.APIClient(base_url=f"unix://{socket}", timeout=None) as api:
        made = api.exec_create(container_id, argv, user=user or "")
        for chunk in api.exec_start(made["Id"], stream=True):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        return int(api.exec_inspect(made["Id"])["ExitCode"])


def remove(engine: SwarmEngine, held: Service) -> None:
    """Kill the task's container (its hold ignores nothing then), remove the service, and wait
    until its node holds the container no more."""
    found = engine.tasks.reachable(held)
    if found is not None:
        with contextlib.suppress(docker.errors.APIError):
            found.kill()
    engine.remove(held)
    deadline = time.monotonic() + STOP_SLACK
    while found is not None and time.monotonic() < deadline:
        try:
            found.reload()
        except docker.errors.NotFound:
            return
        except docker.errors.DockerException:
            return  # its node went away: it holds nothing we can clean
        time.sleep(0.1)
