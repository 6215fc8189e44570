"""One-off containers of an add-on's image (psql, redis-cli, pg_dump, pg_restore) beside its
server: on the server's engine (DOCKER_HOST's, or a Swarm node's own) and the app network
(the bridge, or the app's attachable overlay), created locked down like a dyno, attached to
this terminal or run to their end, files copied in and out."""

from __future__ import annotations

import io
import posixpath
import shutil
import subprocess
import sys
import tarfile

from docker.models.containers import Container

from .. import formation
from . import client, dynos


@client.engine_errors
def create(
    server: Container,
    app: str,
    command: list[str],
    environment: dict[str, str],
    *,
    tty: bool = False,
    stdin: bool = True,
) -> Container:
    """A created (not started) container of the server's image on the server's engine and the
    app's network, that runs `command` instead of the image's entrypoint: no capabilities, a
    Standard-1X's pids and memory. `environment` goes through the API, never an argument."""
    return server.client.containers.create(
        server.attrs["Image"],  # its id: on a node, the image is the registry's reference
        command=command,
        entrypoint=[],
        environment=environment,
        network=dynos.network_name(app),
        labels={client.LABEL: "addon-client", client.LABEL_APP: app},
        **dynos.lockdown(formation.size(formation.DEFAULT_SIZE)),
        tty=tty,
        stdin_open=stdin,
        detach=False,
    )


def attach(container: Container, interactive: bool, host: str | None = None) -> int:
    """Start and attach: the docker CLI when present (stdin, TTY; of the engine at `host`, by
    default DOCKER_HOST's), else stream the output. Its exit status."""
    cli = shutil.which("docker")
    if cli:
        flags = ["--attach", "--interactive"] if interactive else ["--attach"]
        where = ["--host", host] if host else []
        subprocess.run([cli, *where, "start", *flags, container.id], check=False)
    else:
        container.start()
        for chunk in container.logs(stream=True, follow=True):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
    return int(container.wait()["StatusCode"])


@client.engine_errors
def run(container: Container) -> int:
    """Start it and wait for its end: its exit status."""
    container.start()
    return int(container.wait()["StatusCode"])


@client.engine_errors
def output(container: Container) -> str:
    """All it printed."""
    return container.logs().decode(errors="replace")


#: Remove it, run or not, gone already or not.
remove = client.engine_errors(dynos.remove)


@client.engine_errors
def read_file(container: Container, path: str) -> bytes:
    """The contents of one file in the container."""
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.extractfile(posixpath.basename(path))
        assert member is not None
        return member.read()


@client.engine_errors
def write_file(container: Container, path: str, data: bytes, *, mode: int, owner: int) -> None:
    """Put one file into the container (its folder exists), owned by uid and gid `owner`."""
    folder, name = posixpath.split(path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), mode, owner, owner
        archive.addfile(info, io.BytesIO(data))
    container.put_archive(folder, buffer.getvalue())
