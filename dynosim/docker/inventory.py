"""What dynosim owns on the engine, found by its labels: the test plugin's leak check."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import docker.errors

from . import client as docker_client


@dataclass(frozen=True)
class Owned:
    containers: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)
    volumes: set[str] = field(default_factory=set)

    def __sub__(self, other: Owned) -> Owned:
        return Owned(
            self.containers - other.containers,
            self.networks - other.networks,
            self.volumes - other.volumes,
        )

    def __bool__(self) -> bool:
        return bool(self.containers or self.networks or self.volumes)


def owned(apps: set[str] | None = None) -> Owned:
    """dynosim's containers, networks and volumes; only those of `apps` when given."""

    def mine(labels: Mapping[str, str] | None) -> bool:
        return apps is None or (labels or {}).get(docker_client.LABEL_APP) in apps

    engine = docker_client.client()
    labelled = {"filters": {"label": docker_client.LABEL}}
    containers = engine.containers.list(all=True, ignore_removed=True, **labelled)
    networks, volumes = engine.networks.list(**labelled), engine.volumes.list(**labelled)
    return Owned(
        {c.id for c in containers if mine(c.labels)},
        {n.id for n in networks if mine(n.attrs.get("Labels"))},
        {v.name for v in volumes if mine(v.attrs.get("Labels"))},
    )


def remove(found: Owned) -> None:
    """Remove them (containers first); one removed meanwhile by its own run is fine."""
    api = docker_client.client().api
    for remove_one, names in (
        (lambda c: api.remove_container(c, force=True), found.containers),
        (api.remove_network, found.networks),
        (lambda v: api.remove_volume(v, force=True), found.volumes),
    ):
        for name in names:
            with contextlib.suppress(docker.errors.NotFound):
                remove_one(name)
