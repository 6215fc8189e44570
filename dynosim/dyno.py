"""Dyno containers: how one is named, labelled, locked down, started, found and stopped.

Everything needed to re-adopt a dyno after a supervisor restart is in its labels.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import docker.errors
from docker.models.containers import Container

from . import engine
from .store import Release

#: Heroku's standard-1X: 512 MB and 256 processes+threads. Sizes arrive with the formation issue.
DEFAULT_MEMORY = "512m"
DEFAULT_PIDS = 256
PORT = 5000
L_RELEASE, L_TYPE, L_INDEX, L_ROLE = (
    "dynosim.release",
    "dynosim.type",
    "dynosim.index",
    "dynosim.role",
)


def network_name(app: str) -> str:
    return f"dynosim-{app}"


def container_name(app: str, dyno: str) -> str:
    return f"dynosim-{app}-{dyno}"


@dataclass(frozen=True)
class Dyno:
    """A dyno as Docker reports it."""

    app: str
    type: str
    index: int
    release: int
    role: str  # "formation" or "one-off"
    status: str  # Docker's: created, running, paused, exited, dead
    container_id: str

    @property
    def name(self) -> str:
        return f"{self.type}.{self.index}"

    @classmethod
    def from_container(cls, container: Container) -> Dyno:
        labels = container.labels
        return cls(
            app=labels[engine.LABEL_APP],
            type=labels[L_TYPE],
            index=int(labels[L_INDEX]),
            release=int(labels[L_RELEASE]),
            role=labels[L_ROLE],
            status=container.status,
            container_id=container.id,
        )


def ensure_network(app: str) -> None:
    """The app's own bridge network: dynos of different apps cannot reach each other."""
    client = engine.client()
    if not client.networks.list(names=[network_name(app)]):
        client.networks.create(
            network_name(app),
            driver="bridge",
            labels={engine.LABEL: "network", engine.LABEL_APP: app},
        )


def remove_network(app: str) -> None:
    for network in engine.client().networks.list(names=[network_name(app)]):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()


def listing(app: str) -> list[Dyno]:
    """Every dyno container of the app, running or not."""
    containers = engine.client().containers.list(
        all=True, filters={"label": [f"{engine.LABEL_APP}={app}", f"{engine.LABEL}=dyno"]}
    )
    return [Dyno.from_container(c) for c in containers]


def environment(release: Release, dyno: str, port: int = PORT) -> dict[str, str]:
    """Config vars first, then what the platform sets itself (PORT, DYNO win, as on Heroku)."""
    return {**release.config, "PORT": str(port), "DYNO": dyno}


def create(
    release: Release,
    process_type: str,
    index: int,
    *,
    role: str = "formation",
    command: str | None = None,
    memory: str = DEFAULT_MEMORY,
) -> Container:
    """Create (not start) a dyno container, locked down: non-root, no capabilities, limits."""
    dyno = f"{process_type}.{index}"
    command = command or release.process_types[process_type]
    client = engine.client()
    name = container_name(release.app, dyno)
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(name).remove(force=True)  # a leftover of a crashed run
    return client.containers.create(
        release.image,
        command=[command],
        name=name,
        hostname=dyno.replace(".", "-"),
        environment=environment(release, dyno),
        labels={
            engine.LABEL: "dyno",
            engine.LABEL_APP: release.app,
            L_RELEASE: str(release.version),
            L_TYPE: process_type,
            L_INDEX: str(index),
            L_ROLE: role,
        },
        network=network_name(release.app),
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        pids_limit=DEFAULT_PIDS,
        mem_limit=memory,
        log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}},
        detach=True,
    )


def address(container: Container, app: str) -> str | None:
    """The dyno's IP on the app network, where the router reaches it."""
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    ip = networks.get(network_name(app), {}).get("IPAddress")
    return ip or None


def stop(container: Container, grace: float) -> None:
    """SIGTERM, `grace` seconds, then SIGKILL (docker stop does exactly Heroku's sequence)."""
    with contextlib.suppress(docker.errors.NotFound):
        container.stop(timeout=max(0, round(grace)))


def remove(container: Container) -> None:
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        container.remove(force=True)
