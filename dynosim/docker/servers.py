"""Add-on servers (PostgreSQL, Redis): their containers on the app network, found by name,
started locked down with their data in a named volume that outlives them, and commands run
inside them."""

from __future__ import annotations

import contextlib

import docker.errors
import docker.types
from docker.models.containers import Container

from . import client, dynos


@client.engine_errors
def find(name: str) -> Container | None:
    """The server's container, running or not; None when there is none."""
    try:
        return client.client().containers.get(name)
    except docker.errors.NotFound:
        return None


def image(container: Container) -> str:
    """The image the container was created from, by the name it was given."""
    return container.attrs["Config"]["Image"]


@client.engine_errors
def status(container: Container, refresh: bool = False) -> str:
    """Docker's word for its state (created, running, restarting, exited, ...); with
    `refresh`, as it is now rather than when the container was found."""
    if refresh:
        container.reload()
    return container.status


@client.engine_errors
def start(
    name: str,
    image: str,
    *,
    app: str,
    hostname: str,
    environment: dict[str, str],
    labels: dict[str, str],
    data: str,
) -> Container:
    """Create and start a server on the app's network (reached there as `hostname`, never
    published) with the volume `name` (made on first use, with `labels`) mounted at `data`:
    no capabilities, 512 pids, 1 GB, restarted when it fails."""
    dynos.ensure_network(app)
    engine = client.client()
    network = dynos.network_name(app)
    try:
        engine.volumes.get(name)
    except docker.errors.NotFound:  # labelled, so dynosim can always find its own
        engine.volumes.create(name, labels=labels)
    created = engine.api.create_container(
        image,
        name=name,
        hostname=hostname,
        environment=environment,
        labels=labels,
        host_config=engine.api.create_host_config(
            network_mode=network,
            mounts=[docker.types.Mount(data, name, type="volume")],
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=512,
            mem_limit="1g",
            restart_policy={"Name": "on-failure"},
            log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}},
        ),
        networking_config=engine.api.create_networking_config(
            {network: engine.api.create_endpoint_config(aliases=[hostname])}
        ),
    )
    container = engine.containers.get(created["Id"])
    container.start()
    return container


@client.engine_errors
def execute(container: Container, command: list[str]) -> tuple[int, str]:
    """Run a command inside the running server: its exit code and output."""
    result = container.exec_run(command)
    return result.exit_code, result.output.decode(errors="replace")


@client.engine_errors
def last_lines(container: Container, count: int) -> list[str]:
    """The last `count` lines the server printed."""
    return container.logs(tail=count).decode(errors="replace").splitlines()


@client.engine_errors
def stop(container: Container, timeout: int) -> None:
    """SIGTERM, up to `timeout` seconds, SIGKILL; gone already or refused: nothing to do."""
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        container.stop(timeout=timeout)


@client.engine_errors
def remove(container: Container, quietly: bool = False) -> None:
    """Remove the container, running or not (`quietly`: gone already or refused is fine)."""
    if quietly:
        dynos.remove(container)
    else:
        container.remove(force=True)


@client.engine_errors
def remove_volume(name: str) -> None:
    """Remove the server's data, gone already or not."""
    with contextlib.suppress(docker.errors.NotFound):
        client.client().volumes.get(name).remove(force=True)


@client.engine_errors
def remove_unused_network(app: str) -> None:
    """Remove the app's network unless a dyno is on it (refused: it stays, for next time)."""
    with contextlib.suppress(docker.errors.APIError):
        if not dynos.listing(app):
            dynos.remove_network(app)
