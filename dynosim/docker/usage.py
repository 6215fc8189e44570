"""A container's usage (runtime metrics): read from its cgroup files on this host when the
engine runs here (cheap: three small files and a /proc/<tid>/stat per thread), from the
engine's stats API otherwise (a remote engine, or cgroups this user cannot see). The parsing
is `dynosim.cgroups`; here is only the reading."""

from __future__ import annotations

import os
from pathlib import Path

from docker.models.containers import Container

from .. import cgroups
from ..container_engine import Usage

#: container id -> its cgroup, once found (a container's cgroup does not move).
_found: dict[str, cgroups.Place] = {}
_KEPT = 1000


def read_usage(container: Container, root: str = cgroups.ROOT) -> Usage | None:
    place = _place(container.id, root)
    if place is not None:
        try:
            return read(place)
        except OSError:  # the container ended meanwhile
            _found.pop(container.id, None)
    return cgroups.from_stats(container.stats(stream=False))  # two readings, 1 s apart


def _place(container_id: str, root: str) -> cgroups.Place | None:
    place = _found.get(container_id)
    if place is None:
        candidates = cgroups.places(container_id, root)
        place = next((p for p in candidates if os.access(p.memory_stat, os.R_OK)), None)
        if place is not None:
            if len(_found) >= _KEPT:  # ids of removed containers: forget them all now and then
                _found.clear()
            _found[container_id] = place
    return place


def read(place: cgroups.Place, proc: str = "/proc") -> Usage:
    """One cgroup's usage from its files and its threads' /proc/<tid>/stat."""
    memory_stat = Path(place.memory_stat).read_text()
    swap = None
    if place.swap is not None and os.access(place.swap, os.R_OK):
        swap = Path(place.swap).read_text()
    states = []
    for tid in Path(place.threads).read_text().split():
        try:
            states.append(cgroups.task_state(Path(f"{proc}/{tid}/stat").read_text()))
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return cgroups.usage(place, memory_stat, swap, states)
