"""Pure: Heroku's Metrics tab kept per minute. The log lines it is read from (the router's
``heroku[router]`` line, the platform's and the API's lines), one minute of one process type or
one dyno (`Bucket`: requests by status class, response times in a bounded reservoir, memory,
load, events), the retention per dyno tier, and the `dynosim metrics` table. No I/O."""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import UsageError

MINUTE = 60
CLASSES = ("2xx", "3xx", "4xx", "5xx")
#: Response times kept per minute: every one up to this many, then a uniform sample of them
#: (reservoir sampling), so a busy minute costs fixed memory; count and max stay exact.
RESERVOIR = 1000
MB = 1024 * 1024
HOUR, DAY = 3600, 86400
#: How long minutes are kept, by the tier of the process type's dyno size. Heroku's Metrics
#: page (dc:metrics, 2024): Standard and Performance dynos have 7 days, Basic dynos 24 hours;
#: eco dynos get no metrics there, dynosim keeps them as long as Basic's.
RETENTION = {
    "free": DAY,
    "eco": DAY,
    "basic": DAY,
    "standard": 7 * DAY,
    "performance": 7 * DAY,
}
#: At most this many minute rows per app (a week of a process type and 9 dynos); the oldest go.
MAX_ROWS = 100_000
SINCE = re.compile(r"(\d+)([mhd])")
UNITS = {"m": MINUTE, "h": HOUR, "d": DAY}
#: An H code at a router line's start: ``[sock=client ]at=error code=H12``.
CODE = re.compile(r"(?:sock=\S+ )?at=\S+ code=(\w+)")
R_ERROR = re.compile(r"^Error (R\d\d) ")
#: Lines of a dyno (``heroku[web.1]``) that are events, by how they start.
DYNO_EVENTS = (
    ("State changed from up to crashed", "crash"),
    ("State changed from starting to crashed", "crash"),
    ("Restarting", "restart"),
    ("Cycling", "restart"),
    ("Unidling", "wake"),
    ("Idling", "sleep"),
    ("Dyno hours quota exhausted", "sleep"),
)
#: The API's lines (``app[api]``), by how they start; "Release vN created" repeats the
#: description line before it and is not counted again.
API_EVENTS = (
    ("Deploy ", "deploy"),
    ("Set ", "config"),
    ("Remove ", "config"),
    ("Rollback ", "rollback"),
    ("Attach ", "addon"),
    ("Detach ", "addon"),
)


def minute_of(seconds: float) -> int:
    """The Unix time of the minute `seconds` falls in."""
    return int(seconds // MINUTE * MINUTE)


def since(text: str) -> int:
    """`--since`: 30m, 1h, 24h or 2d in seconds; UsageError for anything else."""
    found = SINCE.fullmatch(text.strip())
    if not found or int(found[1]) == 0:
        raise UsageError(f"--since takes minutes, hours or days: 30m, 1h, 24h, 2d (not {text!r})")
    return int(found[1]) * UNITS[found[2]]


def status_class(status: int) -> str | None:
    return f"{status // 100}xx" if 200 <= status < 600 else None


class Request(NamedTuple):
    """What the Metrics tab takes from one router line (a tuple: made for every request)."""

    dyno: str
    status: int
    service_ms: int | None  # None when no dyno answered (H10, H12, ...)
    code: str  # H12, or ""


def router_request(message: str) -> Request | None:
    """The request a ``heroku[router]`` line describes (None for another line). Read from the
    line's end, where the router always writes these six fields (its `wire.log_line`), so a
    quoted path before them cannot fake one; the H code from its start. A few string
    operations, no general logfmt parse: the recorder reads the line of every request."""
    parts = message.rsplit(" ", 6)
    if len(parts) != 7:
        return None
    head, dyno, connect, service, status, size, protocol = parts
    if not (
        dyno.startswith("dyno=") and connect.startswith("connect=")
        and service.startswith("service=") and status.startswith("status=")
        and size.startswith("bytes=") and protocol.startswith("protocol=")
        and status[7:].isdigit() and (head.startswith("at=") or head.startswith("sock="))
    ):  # fmt: skip
        return None
    took = service[8:-2]
    ms = int(took) if service.endswith("ms") and took.isdigit() else None
    code = None if head.startswith("at=info") else CODE.match(head)
    return Request(dyno[5:], int(status[7:]), ms, code[1] if code else "")


def event(source: str, dyno: str, message: str) -> str | None:
    """The event a platform line is (R14, crash, restart, sleep, wake, deploy, config,
    rollback, addon), else None. Router lines' H codes come with :func:`router_request`."""
    if source == "app" and dyno == "api":
        if message.startswith("Release ") and " failed: " in message:
            return "release-failed"
        return next((kind for start, kind in API_EVENTS if message.startswith(start)), None)
    if source != "heroku" or dyno in ("router", "api"):
        return None
    if found := R_ERROR.match(message):
        return found[1]
    return next((kind for start, kind in DYNO_EVENTS if message.startswith(start)), None)


@dataclass
class Reservoir:
    """Response times of one minute: all of them up to `size`, then a uniform sample."""

    size: int = RESERVOIR
    values: list[int] = field(default_factory=list)
    seen: int = 0
    largest: int = 0
    _random: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    def add(self, value: int) -> None:
        self.seen += 1
        self.largest = max(self.largest, value)
        if len(self.values) < self.size:
            self.values.append(value)
        elif (slot := self._random.randrange(self.seen)) < self.size:
            self.values[slot] = value

    def percentile(self, p: float) -> int:
        """The nearest-rank percentile of what is kept (exact up to `size` values)."""
        ordered = sorted(self.values)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Bucket:
    """One minute of one process type (all its dynos) or of one dyno."""

    requests: dict[str, int] = field(default_factory=dict)
    times: Reservoir = field(default_factory=Reservoir)
    samples: int = 0  # memory and load samples (5 s apart, per dyno)
    rss: int = 0  # bytes, summed over the samples
    rss_max: int = 0
    swap_max: int = 0
    quota: int = 0
    load: float = 0.0  # summed over the samples
    load_max: float = 0.0
    events: dict[str, int] = field(default_factory=dict)

    def request(self, status: int, service_ms: int | None) -> None:
        if (kind := status_class(status)) is not None:
            self.requests[kind] = self.requests.get(kind, 0) + 1
        if service_ms is not None:
            self.times.add(service_ms)

    def usage(self, rss: int, swap: int, quota: int, load: float) -> None:
        self.samples += 1
        self.rss += rss
        self.rss_max, self.swap_max = max(self.rss_max, rss), max(self.swap_max, swap)
        self.quota = max(self.quota, quota)
        self.load += load
        self.load_max = max(self.load_max, load)

    def event(self, kind: str) -> None:
        self.events[kind] = self.events.get(kind, 0) + 1

    def summary(self) -> dict[str, Any]:
        """What is stored of the minute (JSON)."""
        times = self.times
        data: dict[str, Any] = {"requests": dict(self.requests), "events": dict(self.events)}
        if times.seen:
            data["response_ms"] = {
                "count": times.seen,
                "p50": times.percentile(50),
                "p95": times.percentile(95),
                "p99": times.percentile(99),
                "max": times.largest,
            }
        if self.samples:
            data["memory"] = {
                "samples": self.samples,
                "rss_mb": round(self.rss / self.samples / MB, 2),
                "rss_max_mb": round(self.rss_max / MB, 2),
                "swap_max_mb": round(self.swap_max / MB, 2),
                "quota_mb": round(self.quota / MB, 2),
            }
            data["load"] = {
                "mean": round(self.load / self.samples, 2),
                "max": round(self.load_max, 2),
            }
        return data


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Two summaries of one minute (an `up` stopped and another started within it): counts
    add up, maxima and means combine; percentiles are those of the part with more requests."""
    merged = {key: _add(old.get(key, {}), new.get(key, {})) for key in ("requests", "events")}
    old_rt, new_rt = old.get("response_ms"), new.get("response_ms")
    if old_rt or new_rt:
        bigger = max((r for r in (old_rt, new_rt) if r), key=lambda r: r["count"])
        both = [r for r in (old_rt, new_rt) if r]
        merged["response_ms"] = {
            **bigger,
            "count": sum(r["count"] for r in both),
            "max": max(r["max"] for r in both),
        }
    memories = [m for m in (old.get("memory"), new.get("memory")) if m]
    if memories:
        n = sum(m["samples"] for m in memories)
        loads = [d["load"] for d in (old, new) if d.get("memory")]
        merged["memory"] = {
            "samples": n,
            "rss_mb": round(sum(m["rss_mb"] * m["samples"] for m in memories) / n, 2),
            **{k: max(m[k] for m in memories) for k in ("rss_max_mb", "swap_max_mb", "quota_mb")},
        }
        merged["load"] = {
            "mean": round(
                sum(lo["mean"] * m["samples"] for lo, m in zip(loads, memories, strict=True)) / n,
                2,
            ),
            "max": max(lo["max"] for lo in loads),
        }
    return merged


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {key: a.get(key, 0) + b.get(key, 0) for key in sorted(a.keys() | b.keys())}


@dataclass(frozen=True)
class Minute:
    """One stored minute of a process type, its dynos' memory and load beside it."""

    time: dt.datetime
    process_type: str
    data: dict[str, Any]
    dynos: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "process_type": self.process_type,
            "requests": {kind: self.data.get("requests", {}).get(kind, 0) for kind in CLASSES},
            "response_ms": self.data.get("response_ms"),
            "memory": self.data.get("memory"),
            "load": self.data.get("load"),
            "events": self.data.get("events", {}),
            "dynos": self.dynos,
        }


def minutes(rows: list[tuple[int, str, str, dict[str, Any]]], process_type: str) -> list[Minute]:
    """Stored rows (minute, process type, dyno, summary), oldest first, as the minutes of one
    process type: its own row, its dynos' rows, and the app's events (deploys, config) of that
    minute, when the type has any minute of its own in `rows`."""
    found: dict[int, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}
    app_events: dict[int, dict[str, int]] = {}
    for minute, kind, dyno, data in rows:
        if kind == "" and dyno == "":
            app_events[minute] = data.get("events", {})
        elif kind == process_type:
            own, dynos = found.setdefault(minute, ({}, {}))
            if dyno:
                dynos[dyno] = {k: v for k, v in data.items() if k in ("memory", "load")}
            else:
                own.update(data)
    for minute, events in app_events.items() if found else ():  # a type without rows: none
        own, _ = found.setdefault(minute, ({}, {}))
        own["events"] = _add(own.get("events", {}), events)
    return [
        Minute(dt.datetime.fromtimestamp(minute, dt.UTC), process_type, own, dynos)
        for minute, (own, dynos) in sorted(found.items())
    ]


HEADER = (
    f"{'TIME (UTC)':<16}  {'2XX':>5} {'3XX':>5} {'4XX':>5} {'5XX':>5}  {'P50':>6} {'P95':>6}"
    f" {'P99':>6} {'MAX':>6}  {'RSS MB':>7} {'MEM':>5}  {'LOAD':>5}  EVENTS"
)


def table(found: list[Minute]) -> list[str]:
    """`dynosim metrics`: a line per minute; response times in ms, RSS the mean of the
    type's dynos with its peak's share of the quota, load the mean."""
    lines = [HEADER]
    for minute in found:
        data = minute.data
        counts = [data.get("requests", {}).get(kind, 0) for kind in CLASSES]
        rt = data.get("response_ms")
        times = [f"{rt[p]}ms" if rt else "-" for p in ("p50", "p95", "p99", "max")]
        memory, load = data.get("memory"), data.get("load")
        rss = f"{memory['rss_mb']:.1f}" if memory else "-"
        mean_load = f"{load['mean']:.2f}" if load else "-"
        share = (
            f"{100 * memory['rss_max_mb'] / memory['quota_mb']:.0f}%"
            if memory and memory["quota_mb"]
            else "-"
        )
        events = " ".join(
            kind if n == 1 else f"{kind}x{n}" for kind, n in sorted(data.get("events", {}).items())
        )
        lines.append(
            f"{minute.time:%Y-%m-%d %H:%M}  {counts[0]:>5} {counts[1]:>5} {counts[2]:>5}"
            f" {counts[3]:>5}  {times[0]:>6} {times[1]:>6} {times[2]:>6} {times[3]:>6}"
            f"  {rss:>7} {share:>5}  {mean_load:>5}  {events}".rstrip()
        )
    return lines
