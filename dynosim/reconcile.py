"""Decide, from a snapshot, what brings the actual dynos to the desired formation.

Pure: no Docker, no clock. The dyno manager carries the decisions out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .container_engine import Dyno

LIVE = {"running", "paused", "restarting"}


@dataclass
class Actions:
    adopt: list[Dyno] = field(default_factory=list)  # running, current: take them over
    #: (type, index) to start; a tracked dyno among them (cooling off on an older release) is
    #: started afresh, its crash count reset
    start: list[tuple[str, int]] = field(default_factory=list)
    stop: list[Dyno] = field(default_factory=list)  # running, not wanted: SIGTERM, grace, KILL
    remove: list[Dyno] = field(default_factory=list)  # stopped leftovers: just delete


def decide(
    desired: dict[str, int],
    release: int,
    actual: list[Dyno],
    *,
    tracked: set[str] = frozenset(),  # type: ignore[assignment]
    sizes: dict[str, str] | None = None,
    cooling: Mapping[str, int] | None = None,
) -> Actions:
    """What to do so that each type runs `desired[type]` dynos of `release` (and `sizes`).

    `tracked` names dynos the dyno manager already manages (running, or waiting out a crash
    cool-off): they are neither adopted nor started again. `cooling` maps the tracked dynos
    waiting out a cool-off to the release they crashed on: a newer release starts them at once
    (Heroku restarts every dyno on a new release, crashed ones included).
    """
    actions = Actions()
    present: dict[str, Dyno] = {}
    sizes = sizes or {}
    for dyno in actual:
        if dyno.role != "formation":
            continue
        wanted = dyno.index <= desired.get(dyno.type, 0)
        resized = dyno.type in sizes and sizes[dyno.type] != dyno.size
        if dyno.status not in LIVE:
            if dyno.name not in tracked:
                actions.remove.append(dyno)
        elif not wanted or dyno.release != release or resized:
            actions.stop.append(dyno)
        else:
            present[dyno.name] = dyno
            if dyno.name not in tracked:
                actions.adopt.append(dyno)
    replaced = {d.name for d in actions.stop}
    replaced |= {name for name, crashed_on in (cooling or {}).items() if crashed_on != release}
    for process_type, quantity in desired.items():
        for index in range(1, quantity + 1):
            name = f"{process_type}.{index}"
            if name not in present and (name not in tracked or name in replaced):
                actions.start.append((process_type, index))
    actions.stop.sort(key=lambda d: (d.type, -d.index))  # highest numbers first, as Heroku
    return actions
