"""One-off containers of an add-on's image (psql, redis-cli, pg_dump, pg_restore) on the app
network: created locked down like a dyno, run to their end, files copied in and out."""

from __future__ import annotations

import io
import posixpath
import tarfile

from docker.models.containers import Container

from .. import formation
from . import client, dynos


@client.engine_errors
def create(
    image: str,
    app: str,
    command: list[str],
    environment: dict[str, str],
    *,
    tty: bool = False,
    stdin: bool = True,
) -> Container:
    """A created (not started) container that runs `command` instead of the image's
    entrypoint: no capabilities, a Standard-1X's pids and memory."""
    return client.client().containers.create(
        image,
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
