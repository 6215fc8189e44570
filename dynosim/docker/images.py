"""What an image says about itself: the user its processes run as."""

from __future__ import annotations

import io
import tarfile

import docker.errors

from . import client as docker_client


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
