"""What the formation commands do beyond parsing and printing: the store for desired state,
the control channel to a running `up`, Docker for what runs without one."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import control, dynohours, formation
from .clock import heroku_time as when
from .container_engine import FORMATION, ONE_OFF, Dyno, DynoSpec, one_off_index
from .control_commands import DynoRow
from .docker import dynos as docker_dynos
from .errors import UsageError
from .formation import Entry
from .options import ENGINE_SETTING, SWARM_SETTING
from .store import Release, Store

if TYPE_CHECKING:
    from .cluster import SwarmTarget

DOCKER_STATES = {"running": "up", "paused": "idle", "created": "starting", "restarting": "starting"}


def current_release(store: Store, app: str) -> Release:
    release = store.current_release(app)
    if release is None:
        raise UsageError(f"app {app} has no release yet; deploy it with: dynosim up")
    return release


def dynos(store: Store, app: str) -> list[DynoRow]:
    """The app's dynos: from the running dyno manager, and those it does not track (one-offs
    from `run`, dynos left by a killed `up`) as the app's engine lists them."""
    try:
        tracked = control.ControlClient(app).ps()
    except control.NotRunning:
        tracked = []
    names = {d["name"] for d in tracked}
    release = store.latest_release(app)
    commands = release.process_types if release else {}
    listed = _on_swarm(store, app) if store.setting(app, ENGINE_SETTING, "") == "swarm" else None
    for row in _on_docker(app) if listed is None else listed:
        if row["name"] not in names:
            if row["role"] == FORMATION:
                row["command"] = commands.get(row["type"], "")
            tracked.append(row)
    return tracked


def _on_docker(app: str) -> list[DynoRow]:
    """The app's dyno containers on DOCKER_HOST's engine."""
    rows = []
    for container in docker_dynos.containers(app):
        found = docker_dynos.found(container)
        started = container.attrs["State"].get("StartedAt") or container.attrs["Created"]
        command = " ".join(container.attrs["Config"]["Cmd"] or [])
        rows.append(_row(found, started, command))
    return rows


def swarm_of(store: Store, app: str) -> SwarmTarget:
    """The Swarm the app's last `up` ran it on (for older state: the one DOCKER_HOST names)."""
    from . import cluster

    return cluster.swarm_target(store.setting(app, SWARM_SETTING, "") or None)


def _on_swarm(store: Store, app: str) -> list[DynoRow] | None:
    """The app's dyno services on its Swarm (their node too); None when there is none to ask
    (the cluster is gone: its dynos went with it)."""
    from . import cluster

    try:
        engine = cluster.swarm_engine(swarm_of(store, app))
    except UsageError:
        return None
    try:
        rows = []
        for shown in engine.listed(app):
            row = _row(shown.dyno, shown.since, shown.command)
            if shown.node:
                row["node"] = shown.node
            rows.append(row)
        return rows
    finally:
        engine.close()


def _row(found: Dyno, since: str, command: str) -> DynoRow:
    return {
        "name": found.name,
        "type": found.type,
        "role": found.role,
        "state": DOCKER_STATES.get(found.status, "crashed"),
        "since": _docker_time(since).isoformat(),
        "command": command,
        "size": found.size,
        "release": found.release,
    }


def quota_line(store: Store, entries: list[dict[str, Any]]) -> str | None:
    """Heroku's last `ps` line for apps on free or eco dynos: what is left of the pool."""
    tiers = {formation.size(e["size"]).tier for e in entries if e["role"] == FORMATION}
    if not tiers & set(formation.SLEEPING_TIERS):
        return None
    charged = store.setting("", dynohours.CHARGED_MONTH, "")
    used = store.dyno_seconds(dynohours.shown_month(dt.datetime.now(dt.UTC), charged))
    quota = float(store.setting("", "quota_hours", str(dynohours.BASE_HOURS)))
    return dynohours.describe("Free" if "free" in tiers else "Eco", quota, used)


def format_ps(app: str, entries: list[dict[str, Any]], now: dt.datetime) -> str:
    """Heroku's `ps` layout: a header per process type, a line per dyno."""
    if not entries:
        return f"No dynos on ⬢ {app}"
    blocks = []
    one_offs = [e for e in entries if e["role"] == ONE_OFF]
    if one_offs:
        lines = [f"=== run: one-off processes ({len(one_offs)})"]
        lines += [
            f"{e['name']} ({e['size']}): {e['state']} {when(e['since'], now)}{_on(e)}:"
            f" {e['command']}"
            for e in one_offs
        ]
        blocks.append("\n".join(lines))
    formation = [e for e in entries if e["role"] != ONE_OFF]
    for process_type in sorted({e["type"] for e in formation}):
        group = sorted(
            (e for e in formation if e["type"] == process_type),
            key=lambda e: int(e["name"].split(".")[1]),
        )
        first = group[0]
        lines = [f"=== {process_type} ({first['size']}): {first['command']} ({len(group)})"]
        lines += [f"{e['name']}: {e['state']} {when(e['since'], now)}{_on(e)}" for e in group]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _on(entry: dict[str, Any]) -> str:
    """Where a dyno runs, on a Swarm cluster (` on node2`); nothing on one engine."""
    return f" on {entry['node']}" if entry.get("node") else ""


def _docker_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00")


def change_formation(
    store: Store,
    app: str,
    change: Callable[[dict[str, Entry], list[str], list[str]], dict[str, Entry]],
    args: list[str],
) -> dict[str, Entry]:
    """Validate and record a formation change, then nudge a running dyno manager."""
    release = store.latest_release(app)
    if release is None:
        raise UsageError(f"app {app} has no release yet; deploy it with: dynosim up")
    types = [name for name in release.process_types if name != "release"]
    current = store.formation(app)
    result = change({t: e for t, e in current.items() if t in types}, types, args)
    store.set_formation(app, result)
    with contextlib.suppress(control.NotRunning):  # without a running up, the next one applies it
        control.ControlClient(app).reconcile()
    return result


@contextlib.contextmanager
def one_off(
    store: Store,
    app: str,
    command: str,
    env: dict[str, str],
    size_name: str,
    *,
    tty: bool = False,
    attach: bool = False,
    local_env: dict[str, str] | None = None,
) -> Iterator[tuple[str, Any]]:
    """A created (not started) one-off dyno of the current release: (run.N, its container);
    removed afterwards, with the app network when it was made for it alone. `local_env` (the
    app's .env, when asked for) sits under the config vars."""
    release = current_release(store, app)
    own_network = not docker_dynos.listing(app) and not control.is_running(app)
    docker_dynos.ensure_network(app)
    index = docker_dynos.one_off_index(app)
    interactive = attach and (tty or not sys.stdin.isatty())  # a terminal, or piped input
    try:
        container = docker_dynos.create(
            release, "run", index, role=ONE_OFF, command=command, size_name=size_name,
            env=env, base_env=local_env or {}, tty=tty, interactive=interactive,
        )  # fmt: skip
        try:
            yield f"run.{index}", container
        finally:
            docker_dynos.remove(container)
    finally:
        if own_network:
            with contextlib.suppress(Exception):
                docker_dynos.remove_network(app)


#: Interactive `run` on a Swarm without node access (a cluster dynosim did not make).
NO_ATTACH = (
    "dynosim run attaches through the Swarm's nodes, and only a cluster made by dynosim"
    " cluster:create gives access to them; use dynosim run:detached (its output goes to"
    " dynosim logs)"
)


def run_on_swarm(
    store: Store, app: str, command: str, env: dict[str, str], size_name: str, *,
    attach: bool = True, tty: bool = False, local_env: dict[str, str] | None = None,
    announce: Callable[[str], None] | None = None,
) -> tuple[str, int, str | None]:  # fmt: skip
    """A one-off dyno for an app that runs on a Swarm: with `attach` (`dynosim run`) attached
    through its node's engine, else its output captured (`App.run`); removed afterwards (see
    `docker.swarm_run`) with the app's overlay when it was made for it alone. Its name (run.N),
    exit status and output (None when attached)."""
    from . import cluster
    from .docker import swarm_run

    target = swarm_of(store, app)
    if attach and not target.nodes:
        raise UsageError(NO_ATTACH)
    release = current_release(store, app)
    with cluster.building_on(target), contextlib.closing(cluster.swarm_engine(target)) as engine:
        listed = engine.list(app)  # the release's image is where builds run, as for `up`
        own_network = not listed and not control.is_running(app)
        engine.ensure_network(app)
        spec = DynoSpec(
            release, "run", one_off_index(listed), ONE_OFF, command, size_name, env=env,
            base_env=local_env or {},
        )  # fmt: skip
        name = f"run.{spec.index}"
        try:
            if not attach:
                return name, *swarm_run.captured(engine, spec, announce)
            interactive = tty or not sys.stdin.isatty()  # a terminal, or piped input
            status = swarm_run.run(
                engine, spec, tty=tty, interactive=interactive, announce=announce
            )
            return name, status, None
        finally:
            if own_network:
                engine.remove_network(app, wait=10.0)
