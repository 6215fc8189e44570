"""Dynos as Swarm services, the pure half: a dyno's service name, the service spec made from a
DynoSpec (one replica, restart condition none, the lockdown, $PORT published in host mode for
a web dyno), and a task's state in Docker's container words. No engine calls here; the
adapter that makes these calls is `docker.swarm`. Why each choice: docs/architecture.md
("Swarm engine")."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..container_engine import FORMATION, PORT, DynoSpec, memory_limit_mb
from ..formation import size
from ..procfile import WEB
from . import client
from .dynos import (
    CONTAINER_USER,
    L_INDEX,
    L_RELEASE,
    L_ROLE,
    L_SIZE,
    L_TYPE,
    environment,
    network_name,
)

#: Swarm's task states (moby's api/types/swarm TaskState), in order of a task's life.
PENDING = ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting")
RUNNING = "running"
ENDED = ("complete", "shutdown", "failed", "rejected", "remove", "orphaned")
#: A one-off's command as the user gave it (what `ps` shows; its task may run another).
L_COMMAND = "dynosim.command"
#: How the dyno's command gets no-new-privileges: services have no security options on API
#: 1.41, so the command runs under util-linux's setpriv (in every stack image).
NO_NEW_PRIVS = ["setpriv", "--no-new-privs"]


@dataclass(frozen=True)
class ImageConfig:
    """What the image itself runs (its ENTRYPOINT, CMD and USER), which a service's command
    replaces and so must repeat."""

    entrypoint: list[str]
    cmd: list[str]
    user: str | None  # a non-root USER of a heroku.yml image; None: unset or root


def service_name(app: str, dyno: str, release: int) -> str:
    """`dynosim-<app>-web-1-v7`: the container's name with dashes (a service name is a DNS
    label: no dots)."""
    return f"dynosim-{app}-{dyno.replace('.', '-')}-v{release}"


def status(task: dict[str, Any] | None) -> str:
    """A dyno's status in Docker's container words (what reconcile reads) from its service's
    newest task: none yet (zero replicas) is `created`; a task on its way to running is
    `running` already, as a started container is (reconcile must see it to scale it down)."""
    if task is None:
        return "created"
    state = task.get("Status", {}).get("State", "")
    return "running" if state == RUNNING or state in PENDING else "exited"


def ended(task: dict[str, Any]) -> bool:
    return task.get("Status", {}).get("State", "") in ENDED


def exit_code(task: dict[str, Any]) -> int:
    """The task's container's exit code (-1 when it never ran or cannot be told)."""
    container = task.get("Status", {}).get("ContainerStatus") or {}
    return int(container.get("ExitCode", -1))


def newest(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The service's current task (the one made last)."""
    return max(tasks, key=lambda t: t.get("Version", {}).get("Index", 0), default=None)


def labels(spec: DynoSpec) -> dict[str, str]:
    command = {L_COMMAND: spec.command} if spec.role != FORMATION and spec.command else {}
    return {
        client.LABEL: "dyno",
        client.LABEL_APP: spec.release.app,
        L_RELEASE: str(spec.release.version),
        L_TYPE: spec.process_type,
        L_INDEX: str(spec.index),
        L_ROLE: spec.role,
        L_SIZE: size(spec.size).name,
        **command,
    }


def process(spec: DynoSpec, image: ImageConfig) -> dict[str, Any]:
    """The ContainerSpec's Command (the entrypoint, under setpriv), Args and User: as the
    Docker adapter runs it (a Python-runtime image's entrypoint with the command; a heroku.yml
    image's `/bin/sh -c` with it, or its own CMD, as a non-root user)."""
    release = spec.release
    command = spec.command or release.process_types.get(spec.process_type, "")
    if spec.process_type not in release.images:
        return {"Command": [*NO_NEW_PRIVS, *image.entrypoint], "Args": [command]}
    user = {"User": image.user or CONTAINER_USER}
    if command:
        return {"Command": [*NO_NEW_PRIVS, "/bin/sh", "-c"], "Args": [command], **user}
    return {"Command": [*NO_NEW_PRIVS, *image.entrypoint], "Args": image.cmd, **user}


def service_spec(
    spec: DynoSpec, image_ref: str, image: ImageConfig, grace: float, hold: str = ""
) -> dict[str, Any]:
    """The body of `POST /services/create` for one dyno: zero replicas until `start`. With
    `hold`, its task runs that instead of the command (an interactive one-off's, which runs
    beside it), and its labels still name the command."""
    release, dyno = spec.release, f"{spec.process_type}.{spec.index}"
    runs = replace(spec, command=hold) if hold else spec
    chosen = size(spec.size)
    env = environment(release, dyno, spec.env, spec.base_env, chosen.name)
    marks = labels(spec)
    container = {
        "Image": image_ref,
        **process(runs, image),
        "Env": [f"{name}={value}" for name, value in env.items()],
        "Labels": marks,
        "Hostname": dyno.replace(".", "-"),
        "CapabilityDrop": ["ALL"],
        "StopGracePeriod": int(grace * 1_000_000_000),
    }
    body: dict[str, Any] = {
        "Name": service_name(release.app, dyno, release.version),
        "Labels": marks,
        "TaskTemplate": {
            "ContainerSpec": container,
            "Resources": {
                "Limits": {
                    "MemoryBytes": memory_limit_mb(chosen) * 1024 * 1024,
                    "Pids": chosen.pids,
                },
                "Reservations": {"MemoryBytes": chosen.memory_mb * 1024 * 1024},
            },
            "RestartPolicy": {"Condition": "none"},
            "Networks": [{"Target": network_name(release.app)}],
            "LogDriver": {"Name": "json-file", "Options": {"max-size": "10m", "max-file": "2"}},
        },
        "Mode": {"Replicated": {"Replicas": 0}},
    }
    if spec.process_type == WEB and spec.role == FORMATION:
        port = {"Protocol": "tcp", "TargetPort": PORT, "PublishMode": "host"}
        body["EndpointSpec"] = {"Mode": "vip", "Ports": [port]}
    return body


def since(service: dict[str, Any], task: dict[str, Any] | None) -> str:
    """Since when the dyno is in its state (`ps`): its task's last change, else the
    service's creation (Docker's timestamp text)."""
    return (task or {}).get("Status", {}).get("Timestamp") or service.get("CreatedAt", "")


def shown_command(service: dict[str, Any]) -> str:
    """A one-off's command as `ps` shows it: the user's (not an interactive one's hold)."""
    spec = service["Spec"]
    container = spec.get("TaskTemplate", {}).get("ContainerSpec", {})
    return spec.get("Labels", {}).get(L_COMMAND) or " ".join(container.get("Args") or [])


def published_port(task: dict[str, Any]) -> int | None:
    """The node port Swarm picked for the task's $PORT (host mode)."""
    for port in task.get("Status", {}).get("PortStatus", {}).get("Ports", []) or []:
        if port.get("TargetPort") == PORT and port.get("PublishedPort"):
            return int(port["PublishedPort"])
    return None


def node_address(node: dict[str, Any]) -> str:
    """Where a node is reached: its status address, or a manager's advertised one (a manager
    may report 0.0.0.0 as its status address)."""
    address = node.get("Status", {}).get("Addr", "")
    if address in ("", "0.0.0.0"):
        address = node.get("ManagerStatus", {}).get("Addr", "").rsplit(":", 1)[0]
    return address
