"""Dyno containers: how one is named, labelled, locked down, started, found and stopped.

Everything needed to re-adopt a dyno after a restart of `up` is in its labels.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import docker
import docker.errors
import requests
from docker.models.containers import Container

from .. import container_engine
from ..container_engine import FORMATION, PORT, Dyno, memory_limit_mb
from ..formation import DEFAULT_SIZE, Size, size, web_concurrency
from ..store import Release
from . import client, images

L_RELEASE, L_TYPE, L_INDEX, L_ROLE, L_SIZE = (
    "dynosim.release",
    "dynosim.type",
    "dynosim.index",
    "dynosim.role",
    "dynosim.size",
)


def network_name(app: str) -> str:
    return f"dynosim-{app}"


def container_name(app: str, dyno: str, release: int) -> str:
    """Names carry the release: during a preboot the old and the new web.1 both exist."""
    return f"dynosim-{app}-{dyno}-v{release}"


def found(container: Container) -> Dyno:
    """The dyno a container is, from its labels."""
    return labelled(container.labels, container.status, container.id)


def labelled(labels: dict[str, str], status: str, container_id: str) -> Dyno:
    """The dyno that labels describe (a container's, or a Swarm service's)."""
    return Dyno(
        app=labels[client.LABEL_APP],
        type=labels[L_TYPE],
        index=int(labels[L_INDEX]),
        release=int(labels[L_RELEASE]),
        role=labels[L_ROLE],
        status=status,
        container_id=container_id,
        size=labels.get(L_SIZE, DEFAULT_SIZE),
    )


def ensure_network(app: str) -> None:
    """The app's own bridge network: dynos of different apps cannot reach each other."""
    engine, name = client.client(), network_name(app)
    if name not in {n.name for n in engine.networks.list(names=[name])}:  # a prefix filter
        try:
            engine.networks.create(
                name,
                driver="bridge",
                check_duplicate=True,
                labels={client.LABEL: "network", client.LABEL_APP: app},
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: created meanwhile by another run
                raise


def remove_network(app: str, wait: float = 0.0, engine: docker.DockerClient | None = None) -> bool:
    """Remove the app's network (on `engine`, by default DOCKER_HOST's); while containers are
    still attached (e.g. one being removed right now), retry for up to `wait` seconds.
    Whether it is gone."""
    deadline = time.monotonic() + wait
    name = network_name(app)
    for network in (engine or client.client()).networks.list(names=[name]):
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


def memory(container: Container) -> int | None:
    """Bytes in use as `docker stats` counts them (no inactive page cache): one-shot stats."""
    stats = container.stats(stream=False, one_shot=True).get("memory_stats") or {}
    if "usage" not in stats:
        return None
    detail = stats.get("stats", {})
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    return max(0, stats["usage"] - inactive)


def containers(app: str) -> list[Container]:
    """Every dyno container of the app, running or not (one removed while listed is not)."""
    labels = [f"{client.LABEL_APP}={app}", f"{client.LABEL}=dyno"]
    return client.client().containers.list(all=True, ignore_removed=True, filters={"label": labels})


def listing(app: str) -> list[Dyno]:
    return [found(c) for c in containers(app)]


def one_off_index(app: str) -> int:
    return container_engine.one_off_index(listing(app))


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
        concurrency = web_concurrency(chosen)
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
    engine = client.client()
    name = container_name(release.app, dyno, release.version)
    labels = {
        client.LABEL: "dyno",
        client.LABEL_APP: release.app,
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
        **lockdown(chosen),
        log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}},
        tty=tty,
        stdin_open=interactive,
        detach=not interactive,  # attached stdin closes with the client (StdinOnce)
    )
    for attempt in range(20):
        try:
            return engine.containers.create(image, **spec)
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or attempt == 19:
                raise
        # 409: the name is held by a leftover (a killed run) or one being removed right now
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            engine.containers.get(name).remove(force=True)
        time.sleep(0.05)
    raise AssertionError("unreachable")


def lockdown(chosen: Size) -> dict:
    """A dyno's limits and privileges, as container create options: no capabilities, no new
    privileges, the size's pids, memory (the R15 point, no swap beyond it) and CPU share."""
    limit = f"{memory_limit_mb(chosen)}m"
    return dict(
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        pids_limit=chosen.pids,
        mem_limit=limit,
        memswap_limit=limit,
        cpu_shares=chosen.cpu_shares,
    )


def _process(release: Release, process_type: str, image: str, command: str) -> dict:
    """How the container runs its command. A Python-runtime image starts it through its
    dyno-launch entrypoint; an image built from the app's own Dockerfile (heroku.yml) runs
    it with `/bin/sh -c`, or its own CMD when there is none, as a non-root user (Heroku)."""
    if process_type not in release.images:
        return {"command": [command]}
    user = images.image_user(image) or CONTAINER_USER
    if command:
        launch = ["/bin/sh", "-c", CONTAINER_LAUNCH, "dyno-launch"]
        return {"entrypoint": launch, "command": [command], "user": user}
    return {"user": user}


#: Who runs a heroku.yml dyno whose image names no non-root USER.
CONTAINER_USER = "1000:1000"
#: PID 1 of a heroku.yml dyno with a command, in POSIX sh: the command under `/bin/sh -c` (its
#: stdin kept), SIGTERM passed on to every process of the dyno as Heroku signals them all (a
#: PID 1 without a handler would ignore it: R12); runtimes/python/dyno-launch's job.
CONTAINER_LAUNCH = (
    'trap "kill -TERM -1 2>/dev/null" TERM INT; exec 3<&0; /bin/sh -c "$1" <&3 3<&- & child=$!;'
    ' while :; do wait "$child"; status=$?; kill -0 "$child" 2>/dev/null && continue;'
    ' exit "$status"; done'
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


def follow(container: Container, line: Callable[[str], None]) -> None:
    """Hand each line the container prints (stdout and stderr, as they come) to `line`,
    until it ends; blocking (a thread's job). A removed container just ends the stream."""
    pending = b""
    with contextlib.suppress(docker.errors.APIError, requests.RequestException):
        for chunk in container.logs(stream=True, follow=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for each in lines:
                line(each.decode(errors="replace").rstrip("\r"))
    if pending:
        line(pending.decode(errors="replace"))


def wait(container: Container, timeout: float) -> int | None:
    """Its exit status once it ends, or None while it still runs after `timeout` seconds."""
    try:
        return int(container.wait(timeout=max(timeout, 0.001))["StatusCode"])
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        return None
