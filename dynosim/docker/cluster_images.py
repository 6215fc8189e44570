"""Images onto a local cluster's nodes, so that every node runs the same image.

A stand-in until the cluster registry lands (docs/architecture.md, "Images through a registry
in the cluster"): the image is saved from the local engine once and loaded into each node's
engine through its socket (the manager's siblings in the cluster's state folder), in
parallel; the reference returned is the image id, which nodes run without pulling."""

from __future__ import annotations

import concurrent.futures
import tempfile
from pathlib import Path

import docker
import docker.errors

from . import client


@client.engine_errors
def publish(image: str, manager_socket: Path) -> str:
    """A reference to `image` (a local one) that every node of the cluster whose manager
    listens at `manager_socket` can run: its id, once each node has it."""
    api = client.client().api
    image_id = str(api.inspect_image(image)["Id"])
    sockets = sorted(manager_socket.parent.parent.glob("node*/docker.sock"))
    missing = [s for s in sockets if not _has(s, image_id)]
    if not missing:
        return image_id
    with tempfile.TemporaryDirectory(prefix="dynosim-image-") as folder:
        saved = Path(folder) / "image.tar"
        with saved.open("wb") as out:
            for chunk in api.get_image(image_id):
                out.write(chunk)
        with concurrent.futures.ThreadPoolExecutor(len(missing)) as pool:
            list(pool.map(lambda socket: _load(socket, saved), missing))
    return image_id


def _has(socket: Path, image_id: str) -> bool:
    with docker.APIClient(base_url=f"unix://{socket}", timeout=300) as node:
        try:
            node.inspect_image(image_id)
        except docker.errors.ImageNotFound:
            return False
    return True


def _load(socket: Path, saved: Path) -> None:
    address = f"unix://{socket}"
    with docker.APIClient(base_url=address, timeout=300) as node, saved.open("rb") as data:
        node.load_image(data)
