"""Dyno sizes and the `ps:scale` / `ps:type` grammar, with Heroku's limits and wording.

Pure: parses and validates against a snapshot, so nothing is applied unless everything is valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError


@dataclass(frozen=True)
class Size:
    name: str  # Heroku's spelling, e.g. "Standard-1X"
    memory_mb: int
    cpu_shares: int  # relative CPU weight (Heroku's "1x", "2x", dedicated)
    pids: int  # processes + threads
    max_per_type: int
    tier: str  # "free", "eco", "basic", "standard", "performance"

    @property
    def sleeps(self) -> bool:
        """Free and eco dynos sleep when the app is idle, and use the dyno-hours pool."""
        return self.tier in SLEEPING_TIERS


SIZES = {
    s.name.lower(): s
    for s in (
        Size("Free", 512, 1024, 256, 1, "free"),
        Size("Eco", 512, 1024, 256, 1, "eco"),
        Size("Basic", 512, 1024, 256, 1, "basic"),
        Size("Standard-1X", 512, 1024, 256, 100, "standard"),
        Size("Standard-2X", 1024, 2048, 512, 100, "standard"),
        Size("Performance-M", 2560, 12 * 1024, 16384, 10, "performance"),
        Size("Performance-L", 14 * 1024, 50 * 1024, 32768, 10, "performance"),
    )
}
DEFAULT_SIZE = "Standard-1X"
SLEEPING_TIERS = ("free", "eco")
SMALL_TIERS = ("free", "eco", "basic")  # one size per app, one dyno per type
MAX_FREE_DYNOS = 2
MAX_DYNOS_PER_APP = 100
#: Heroku's ps:scale argument: web=3, web+2, worker-1, web=2:standard-2X.
SCALE_ARG = re.compile(r"^([\w-]+)([=+-])(\d+)(?::([\w-]+))?$")
TYPE_ARG = re.compile(r"^([\w-]+)=([\w-]+)$")


def web_concurrency(chosen: Size) -> int:
    """WEB_CONCURRENCY as Heroku's Python buildpack sets it for a size: the lower of memory /
    256 MB and 2 x cores + 1 (standard dynos share 8 cores; Performance-M has 2)."""
    cores = {"Performance-M": 2}.get(chosen.name, 8)
    return min(max(1, chosen.memory_mb // 256), cores * 2 + 1)


def size(name: str) -> Size:
    try:
        return SIZES[name.lower()]
    except KeyError:
        known = ", ".join(s.name for s in SIZES.values())
        raise UsageError(f"Couldn't find that dyno size ({name}). Sizes: {known}.") from None


@dataclass(frozen=True)
class Entry:
    type: str
    quantity: int
    size: str


def scale(current: dict[str, Entry], process_types: list[str], args: list[str]) -> dict[str, Entry]:
    """The formation after `ps:scale ARGS`; UsageError (nothing applied) on any bad argument."""
    if not args:
        raise UsageError("Usage: dynosim ps:scale web=2 worker+1 web=2:Standard-2X")
    result = dict(current)
    for arg in args:
        match = SCALE_ARG.match(arg)
        if not match:
            raise UsageError(
                f"Invalid argument {arg!r}: expected TYPE=N, TYPE+N, TYPE-N or TYPE=N:SIZE"
            )
        name, op, number, size_name = match.groups()
        entry = _entry(result, name, process_types)
        quantity = {"=": int(number), "+": entry.quantity + int(number)}.get(
            op, entry.quantity - int(number)
        )
        result[name] = Entry(
            name, max(0, quantity), size(size_name).name if size_name else entry.size
        )
    check_limits(result)
    return result


def retype(
    current: dict[str, Entry], process_types: list[str], args: list[str]
) -> dict[str, Entry]:
    """The formation after `ps:type TYPE=SIZE ...` (sizes only)."""
    if not args:
        raise UsageError("Usage: dynosim ps:type web=Standard-2X")
    result = dict(current)
    for arg in args:
        match = TYPE_ARG.match(arg)
        if not match:
            raise UsageError(f"Invalid argument {arg!r}: expected TYPE=SIZE")
        name, size_name = match.groups()
        entry = _entry(result, name, process_types)
        result[name] = Entry(name, entry.quantity, size(size_name).name)
    check_limits(result)
    return result


def _entry(formation: dict[str, Entry], name: str, process_types: list[str]) -> Entry:
    """The current entry of a process type named on the command line (it must exist)."""
    if name not in process_types:
        raise UsageError(f"Couldn't find that process type ({name}).")
    return formation.get(name, Entry(name, 0, DEFAULT_SIZE))


def check_limits(formation: dict[str, Entry]) -> None:
    """Heroku's limits: per-type maxima by size, 100 dynos per app, no eco/basic mixing."""
    for entry in formation.values():
        chosen = size(entry.size)
        if entry.quantity > chosen.max_per_type:
            raise UsageError(
                f"Cannot update to more than {chosen.max_per_type} {chosen.name} size dynos"
                " per process type."
            )
    total = sum(e.quantity for e in formation.values())
    if total > MAX_DYNOS_PER_APP:
        raise UsageError(
            f"Cannot update to more than {MAX_DYNOS_PER_APP} dynos per app (asked for {total})."
        )
    free = sum(e.quantity for e in formation.values() if size(e.size).tier == "free")
    if free > MAX_FREE_DYNOS:
        raise UsageError(f"Cannot run more than {MAX_FREE_DYNOS} Free size dynos.")
    tiers = {size(e.size).name: size(e.size).tier for e in formation.values() if e.quantity}
    small = sorted(n for n, t in tiers.items() if t in SMALL_TIERS)
    others = sorted(n for n, t in tiers.items() if t not in SMALL_TIERS)
    if small and (others or len(small) > 1):
        names = " and ".join(small + others)
        raise UsageError(f"Cannot use the following dyno types in the same app: {names}")


def describe(formation: dict[str, Entry]) -> str:
    """Heroku's summary: 'web at 3:Standard-1X, worker at 1:Standard-1X'."""
    return ", ".join(
        f"{e.type} at {e.quantity}:{e.size}"
        for e in sorted(formation.values(), key=lambda e: e.type)
    )
