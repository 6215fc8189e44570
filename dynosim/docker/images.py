"""Images on the engine: whether one exists (and its id), the app's by label, removal, import
from a root filesystem stream, and the user an image runs as."""

from __future__ import annotations

import io
import tarfile
from typing import IO

from ..errors import EngineError
from . import client as docker_client


def exists(name: str) -> bool:
    return image_id(name) is not None


@docker_client.engine_errors
def image_id(name: str) -> str | None:
    """The id of the image of that name (or id); None when there is none. Asked without the
    SDK where the engine allows it (a deploy asks before its build starts)."""
    found = docker_client.inspect("images", name)
    if found is not docker_client.NO_PLAIN_CONNECTION:
        return found["Id"] if isinstance(found, dict) else None
    import docker.errors

    try:
        return docker_client.client().images.get(name).id
    except docker.errors.ImageNotFound:
        return None


def labelled(label: str, value: str | None = None) -> dict[str, str]:
    """Image id -> the `label`'s value, for the images that carry it (with `value`, only
    those whose value it is)."""
    wanted = f"{label}={value}" if value is not None else label
    found = docker_client.client().images.list(filters={"label": wanted})
    return {image.id: image.labels.get(label, "") for image in found}


def remove(name: str, force: bool = False) -> bool:
    """Remove an image unless a container uses it (then it stays, for next time); whether it
    is gone."""
    import docker.errors

    try:
        docker_client.client().images.remove(name, force=force)
    except docker.errors.ImageNotFound:
        return True
    except docker.errors.DockerException:
        return False
    return True


def import_root(stream: IO[bytes], name: str, changes: list[str]) -> None:
    """An image from a root filesystem tar (`mmdebstrap … -`), as `docker import` makes."""
    import docker.errors

    repository, tag = name.rsplit(":", 1)
    try:
        docker_client.client().api.import_image_from_stream(
            stream, repository=repository, tag=tag, changes=changes
        )
    except docker.errors.DockerException as exc:
        explanation = getattr(exc, "explanation", None) or exc
        raise EngineError(f"importing {name}: {explanation}") from exc


def image_user(image_id: str) -> str | None:
    """The USER an image is configured to run as; None when unset or uid 0 by any name (a
    numeric uid, or a name the image's /etc/passwd maps to 0)."""
    user = docker_client.client().api.inspect_image(image_id)["Config"].get("User") or ""
    name = user.split(":")[0]
    if not name:
        return None
    uid = name if name.isdigit() else _passwd_uids(image_id).get(name)
    if uid is not None and int(uid) == 0:
        return None
    return user  # an unknown name is the engine's to refuse, as on Heroku


def _passwd_uids(image_id: str) -> dict[str, str]:
    """User name -> uid from the image's /etc/passwd, read from a created (never started)
    container."""
    import docker.errors

    api = docker_client.client().api
    container = api.create_container(image_id, ["true"], labels={docker_client.LABEL: "probe"})[
        "Id"
    ]
    try:
        stream, _ = api.get_archive(container, "/etc/passwd")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.extractfile("passwd")
            text = member.read().decode(errors="replace") if member else ""
    except docker.errors.NotFound:
        text = ""
    finally:
        api.remove_container(container, force=True)
    fields = (line.split(":") for line in text.splitlines())
    return {f[0]: f[2] for f in fields if len(f) > 2 and f[2].isdigit()}
