"""What the dashboard's JSON endpoints answer, each from the Python API (`api.App`), the
same calls the CLI makes: the overview (formation, dynos, releases, add-ons, config var
names), the Metrics tab's series, one config var's value, and formation changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import formation as formations
from .. import metrics
from ..errors import UsageError

if TYPE_CHECKING:
    from ..api import App

RELEASES = 10
#: The Metrics tab's windows, as Heroku offers them.
WINDOWS = ("1h", "2h", "24h", "72h", "7d")
DYNO_FIELDS = ("name", "type", "state", "since", "size", "command", "release")


def overview(app: App) -> dict[str, Any]:
    """Heroku's app overview: formation by process type with its dynos, releases, add-ons,
    config var names (never values)."""
    current = app.current_release()
    formation = app.formation()
    dynos = [{key: row.get(key) for key in DYNO_FIELDS} for row in app.dynos()]
    types = sorted(formation, key=lambda name: (name != "web", name))
    releases = app.releases(RELEASES)
    return {
        "app": app.name,
        "running": app.running,
        "release": current.name if current else None,
        "formation": [
            {
                "type": name,
                "quantity": formation[name].quantity,
                "size": formation[name].size,
                "command": current.process_types.get(name, "") if current else "",
                "dynos": [d for d in dynos if d["type"] == name],
            }
            for name in types
        ],
        "one_offs": [d for d in dynos if d["type"] not in formation],
        "sizes": [size.name for size in formations.SIZES.values()],
        "releases": [_release(release) for release in releases],
        "addons": [
            {"name": a.name, "service": a.service, "plan": a.plan, "config_var": a.config_var}
            for a in app.addons.attached()
        ],
        "config_vars": sorted(app.config()) if releases else [],  # none before the first
    }


def _release(release: Any) -> dict[str, Any]:
    return {
        "version": release.name,
        "description": release.description,
        "created_at": release.created_at.isoformat(),
        "status": release.status,
        "user": release.user,
    }


def metrics_series(app: App, process_type: str, since: str) -> dict[str, Any]:
    """The Metrics tab of a process type from `since` ago: one column per series (ISO times,
    response times, requests by status class, memory, load) and the events by minute."""
    if since not in WINDOWS:
        raise UsageError(f"since must be one of {', '.join(WINDOWS)} (not {since!r})")
    found = app.metrics(process_type, since, dynos=False)
    return {"process_type": process_type, "since": since, **columns(found)}


def columns(found: list[metrics.Minute]) -> dict[str, Any]:
    """Pure: minutes as columns (None where a minute has no such figure), for the charts."""

    def column(part: str, key: str) -> list[Any]:
        return [(minute.data.get(part) or {}).get(key) for minute in found]

    return {
        "time": [minute.time.isoformat() for minute in found],
        "requests": {kind: column("requests", kind) for kind in metrics.CLASSES},
        "response_ms": {p: column("response_ms", p) for p in ("p50", "p95", "p99", "max")},
        "memory_mb": {
            key: column("memory", f"{key}_mb") for key in ("rss", "rss_max", "swap_max", "quota")
        },
        "load": {key: column("load", key) for key in ("mean", "max")},
        "events": [
            {"time": minute.time.isoformat(), "kind": kind, "count": count}
            for minute in found
            for kind, count in sorted(minute.data.get("events", {}).items())
        ],
    }


def config_value(app: App, key: str) -> dict[str, str]:
    """One config var's value, asked for by name (a reveal on the page)."""
    values = app.config()
    if key not in values:
        raise UsageError(f"no config var {key!r}")
    return {"key": key, "value": values[key]}


def change_formation(app: App, body: dict[str, Any]) -> dict[str, Any]:
    """`ps:scale` ({"type": "web", "quantity": 2}, with "size" too) or `ps:type` ({"type":
    "web", "size": "Standard-2X"}) through the API; the formation after."""
    kind, quantity, size = body.get("type"), body.get("quantity"), body.get("size")
    if not isinstance(kind, str) or not kind:
        raise UsageError("a formation change needs a process type")
    if quantity is None and not isinstance(size, str):
        raise UsageError("a formation change needs a quantity or a size")
    if quantity is None:
        result = app.resize(f"{kind}={size}")
    else:
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise UsageError("quantity must be a whole number")
        result = app.scale(f"{kind}={quantity}" + (f":{size}" if size else ""))
    return {"formation": formations.describe(result)}


def restart(app: App, body: dict[str, Any]) -> dict[str, Any]:
    """`ps:restart` all dynos (no target), a type or one dyno, through the API."""
    target = body.get("target")
    if target is not None and not isinstance(target, str):
        raise UsageError("target must be a process type or a dyno name")
    return {"restarted": app.restart(target or None)}
