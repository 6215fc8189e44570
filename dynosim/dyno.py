"""Dyno containers: how one is named, labelled, locked down, started, found and stopped.

Everything needed to re-adopt a dyno after a supervisor restart is in its labels.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass

import docker.errors
from docker.models.containers import Container

from . import container_build, engine
from .formation import DEFAULT_SIZE, Size, size
from .store import Release

PORT = 5000
#: Heroku kills a dyno at twice its memory quota (R15); below that it only warns (R14).
KILL_FACTOR = 2
L_RELEASE, L_TYPE, L_INDEX, L_ROLE, L_SIZE = (
    "dynosim.release",
    "dynosim.type",
    "dynosim.index",
    "dynosim.role",
    "dynosim.size",
)
FORMATION, ONE_OFF = "formation", "one-off"


def network_name(app: str) -> str:
    return f"dynosim-{app}"


def container_name(app: str, dyno: str, release: int) -> str:
    """Names carry the release: during a preboot the old and the new web.1 both exist."""
    return f"dynosim-{app}-{dyno}-v{release}"


@dataclass(frozen=True)
class Dyno:
    """A dyno as Docker reports it."""

    app: str
    type: str
    index: int
    release: int
    role: str  # FORMATION or ONE_OFF
    status: str  # Docker's: created, running, paused, exited, dead
    container_id: str
    size: str = DEFAULT_SIZE

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
            size=labels.get(L_SIZE, DEFAULT_SIZE),
        )


def ensure_network(app: str) -> None:
    """The app's own bridge network: dynos of different apps cannot reach each other."""
    client, name = engine.client(), network_name(app)
    if name not in {n.name for n in client.networks.list(names=[name])}:  # a prefix filter
        try:
            client.networks.create(
                name,
                driver="bridge",
                check_duplicate=True,
                labels={engine.LABEL: "network", engine.LABEL_APP: app},
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: created meanwhile by another run
                raise


def remove_network(app: str, wait: float = 0.0) -> bool:
    """Remove the app's network; while containers are still attached (e.g. one being removed
    right now), retry for up to `wait` seconds. Whether it is gone."""
    deadline = time.monotonic() + wait
    name = network_name(app)
    for network in engine.client().networks.list(names=[name]):
        if network.name != name:  # Docker's name filter also matches longer names
            continue
        while True:
            try:
                network.remove()
                break
            except docker.errors.NotFound:
                break
            except docker.errors.APIError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)
    return True


def containers(app: str) -> list[Container]:
    """Every dyno container of the app, running or not (one removed while listed is not)."""
    labels = [f"{engine.LABEL_APP}={app}", f"{engine.LABEL}=dyno"]
    return engine.client().containers.list(all=True, ignore_removed=True, filters={"label": labels})


def listing(app: str) -> list[Dyno]:
    return [Dyno.from_container(c) for c in containers(app)]


def one_off_index(app: str) -> int:
    """Heroku's one-off numbers look random (run.9157): a free four-digit one."""
    taken = {d.index for d in listing(app) if d.role == ONE_OFF}
    return random.choice([n for n in range(1000, 10000) if n not in taken])


def environment(
    release: Release,
    dyno: str,
    extra: dict[str, str] | None = None,
    base: dict[str, str] | None = None,
    size_name: str | None = None,
) -> dict:
    """The app's .env (`base`), its config vars over it, a one-off's -e values over those,
    then what the platform sets itself (PORT and DYNO win, as on Heroku).

    Given the dyno's size, a dyno of the Python runtime also gets what Heroku's Python
    buildpack sets at boot unless the app sets it (vendor/WEB_CONCURRENCY.sh): DYNO_RAM, and
    WEB_CONCURRENCY (gunicorn's and uvicorn's worker count; then WEB_CONCURRENCY_SET_BY
    too), the lower of memory / 256 MB and
    2 x cores + 1: Eco, Basic, Standard-1X 2; Standard-2X 4; Performance-M 5 (2 cores);
    Performance-L 17 (8 cores). Standard dynos share 8 cores; their memory is the limit."""
    defaults: dict[str, str] = {}
    if size_name is not None and not release.images:  # heroku.yml apps have no buildpack
        chosen = size(size_name)
        cores = {"Performance-M": 2}.get(chosen.name, 8)
        concurrency = min(max(1, chosen.memory_mb // 256), cores * 2 + 1)
        defaults = {"WEB_CONCURRENCY": str(concurrency), "DYNO_RAM": str(chosen.memory_mb)}
        if not any("WEB_CONCURRENCY" in (given or {}) for given in (base, release.config, extra)):
            defaults["WEB_CONCURRENCY_SET_BY"] = "heroku/python"  # the buildpack's mark
    return {
        **defaults,
        **(base or {}),
        **release.config,
        **(extra or {}),
        "PORT": str(PORT),
        "DYNO": dyno,
    }


def machine_memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


def memory_limit_mb(chosen: Size) -> int:
    """The hard limit of a dyno: the R15 kill point, clamped to the machine."""
    return min(chosen.memory_mb * KILL_FACTOR, machine_memory_mb())


def create(
    release: Release,
    process_type: str,
    index: int,
    *,
    role: str = FORMATION,
    command: str | None = None,
    size_name: str = DEFAULT_SIZE,
    env: dict[str, str] | None = None,
    base_env: dict[str, str] | None = None,
    tty: bool = False,
    interactive: bool = False,
) -> Container:
    """Create (not start) a dyno container, locked down: non-root, no capabilities, limits."""
    dyno = f"{process_type}.{index}"
    command = command if command is not None else release.process_types.get(process_type, "")
    image = release.image_for(process_type)
    chosen = size(size_name)
    limit = f"{memory_limit_mb(chosen)}m"
    client = engine.client()
    name = container_name(release.app, dyno, release.version)
    labels = {
        engine.LABEL: "dyno",
        engine.LABEL_APP: release.app,
        L_RELEASE: str(release.version),
        L_TYPE: process_type,
        L_INDEX: str(index),
        L_ROLE: role,
        L_SIZE: chosen.name,
    }
    spec = dict(
        **_process(release, process_type, image, command),
        name=name,
        hostname=dyno.replace(".", "-"),
        environment=environment(release, dyno, env, base_env, chosen.name),
        labels=labels,
        network=network_name(release.app),
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        pids_limit=chosen.pids,
        mem_limit=limit,
        memswap_limit=limit,
        cpu_shares=chosen.cpu_shares,
        log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}},
        tty=tty,
        stdin_open=interactive,
        detach=not interactive,  # attached stdin closes with the client (StdinOnce)
    )
    for attempt in range(20):
        try:
            return client.containers.create(image, **spec)
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or attempt == 19:
                raise
        # 409: the name is held by a leftover (a killed run) or one being removed right now
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.containers.get(name).remove(force=True)
        time.sleep(0.05)
    raise AssertionError("unreachable")


def _process(release: Release, process_type: str, image: str, command: str) -> dict:
    """How the container runs its command. A Python-runtime image starts it through its
    dyno-launch entrypoint; an image built from the app's own Dockerfile (heroku.yml) runs
    it with `/bin/sh -c`, or its own CMD when there is none, as a non-root user (Heroku)."""
    if process_type not in release.images:
        return {"command": [command]}
    user = container_build.image_user(image) or CONTAINER_USER
    if command:
        return {"entrypoint": ["/bin/sh", "-c"], "command": [command], "user": user}
    return {"user": user}


#: Who runs a heroku.yml dyno whose image names no non-root USER.
CONTAINER_USER = "1000:1000"


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
