"""Images into the local cluster: from the engine dynosim builds on into the manager node
(`docker save | docker load`, streamed), pushed from there to the cluster's registry, named
by digest so that every node pulls and runs the very same image."""

from __future__ import annotations

from pathlib import Path

import docker
import docker.auth
import docker.errors
import docker.utils

from ..errors import EngineError, UsageError, one_line
from . import client, cluster_registry
from .cluster import node_client

#: The registry's namespace for dynosim's images: ADDR:5000/dynosim/<name>.
NAMESPACE = "dynosim"


@client.engine_errors
def publish(image: str, manager_socket: Path) -> str:
    """`ADDR:5000/dynosim/NAME@sha256:…` for `image` (a name or id on the engine DOCKER_HOST
    names), which every node can pull. Cheap when done before: the manager's engine still
    holds the image of that id with a digest in the registry, and the registry still has
    it, so nothing is transferred or pushed."""
    image_id = _local_id(image)
    registry = cluster_registry.address(manager_socket)
    repository = f"{registry}/{NAMESPACE}/{registry_name(image)}"
    with node_client(manager_socket) as manager:
        published = _published(manager, image_id, repository)
        if published is not None:
            return published
        if not cluster_registry.answers(registry):
            raise EngineError(
                f"the cluster's registry does not answer at {registry}"
                " (a cluster made before dynosim had one?); make the cluster again:"
                " dynosim cluster:destroy, then dynosim cluster:create N"
            )
        if not _holds(manager, image_id):
            transfer(image, manager_socket)
        tag = tag_of(image, image_id)
        manager.api.tag(image_id, repository, tag)
        return f"{repository}@{_push(manager, repository, tag, image)}"


def registry_name(image: str) -> str:
    """The image's name in the registry: its repository without a registry host or a
    leading `dynosim/`, further slashes as dashes (`dynosim/app-shop:v3` -> `app-shop`);
    `image` for an id."""
    if _is_id(image):
        return "image"
    repository, _ = docker.utils.parse_repository_tag(image)
    _, remote = docker.auth.split_repo_name(repository)
    return remote.removeprefix(f"{NAMESPACE}/").replace("/", "-").lower()


def tag_of(image: str, image_id: str) -> str:
    """The image's own tag, else (an id, a digest, no tag) 12 hex digits of its id."""
    _, tag = docker.utils.parse_repository_tag(image)
    if tag and not _is_id(image) and "@" not in image:
        return tag
    return image_id.removeprefix("sha256:")[:12]


def _is_id(image: str) -> bool:
    hex_part = image.removeprefix("sha256:")
    return len(hex_part) >= 12 and all(c in "0123456789abcdef" for c in hex_part)


def _local_id(image: str) -> str:
    try:
        return client.client().api.inspect_image(image)["Id"]
    except docker.errors.ImageNotFound:
        raise UsageError(
            f"no image {image} on the Docker engine to publish to the cluster"
        ) from None


def _published(manager: docker.DockerClient, image_id: str, repository: str) -> str | None:
    """The image's reference by digest if the manager pushed it to `repository` and the
    registry still has that digest; else None."""
    try:
        digests = manager.api.inspect_image(image_id).get("RepoDigests") or []
    except docker.errors.ImageNotFound:
        return None
    for reference in digests:
        if reference.startswith(f"{repository}@"):
            try:
                found = manager.api.inspect_distribution(reference)
            except docker.errors.APIError:
                return None  # the registry lost it: push again
            if reference.endswith(f"@{found['Descriptor']['digest']}"):
                return reference
    return None


def _holds(manager: docker.DockerClient, image_id: str) -> bool:
    try:
        manager.api.inspect_image(image_id)
    except docker.errors.ImageNotFound:
        return False
    return True


@client.engine_errors
def transfer(image: str, manager_socket: Path) -> None:
    """`docker save image | docker load` into the manager's engine, streamed (nothing on
    disk, one image's chunk in memory at a time)."""
    saved = client.client().api.get_image(image)
    with node_client(manager_socket) as manager:
        for line in manager.api.load_image(saved, quiet=True):
            if "error" in line:
                raise EngineError(f"loading {image} into the cluster: {one_line(line['error'])}")


def _push(manager: docker.DockerClient, repository: str, tag: str, image: str) -> str:
    """Push from the manager's engine; the digest the registry gave the manifest."""
    digest = None
    for line in manager.api.push(repository, tag, stream=True, decode=True):
        if "error" in line:
            raise EngineError(
                f"pushing {image} to the cluster registry: {one_line(line['error'])[:300]}"
            )
        digest = line.get("aux", {}).get("Digest") or digest
    if digest is None:
        raise EngineError(f"pushing {image} to the cluster registry: no digest came back")
    return digest
