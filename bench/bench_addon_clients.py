"""Benchmark `pg:psql` (fed from a pipe) and `pg:backups:capture` on the local Swarm cluster
against one engine, in one run.

One cluster (`cluster.create(3)`, what `dynosim cluster:create 3` runs) in a DYNOSIM_HOME of
the bench's own, and one heroku-postgresql add-on on each side with a 1,000-row table: on this
engine, and on the cluster (its server a service on a worker). Warm: the server runs (as
under `up`), so a round times the command and its one-off client container (on the cluster:
made on the server's node through its engine, whose vfs storage copies the image). Cold: no
server runs, so the command starts it for its duration and removes it (on the cluster: the
service, then the app's overlay). Each round runs the CLI as a user would, with DOCKER_HOST
on the cluster's manager for the cluster's side. Prints medians and the cluster/engine ratios.
Usage: python bench/bench_addon_clients.py [--rounds 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import report  # noqa: E402

from dynosim import addons, cluster, cluster_addons  # noqa: E402
from dynosim.store import Store  # noqa: E402

SQL = "select count(*) from t;"
SETUP = "create table t as select generate_series(1, 1000) as n;"


def timed(env: dict[str, str], app: str, *args: str, text: str = "") -> float:
    """Seconds `dynosim ARGS -a APP` took, fed `text`; fails when it fails."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dynosim", *args, "-a", app],
        input=text, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    took = time.perf_counter() - start
    if done.returncode != 0 or (args[0] == "pg:psql" and "1000" not in done.stdout):
        raise SystemExit(f"{args[0]} on {app} failed: {done.stdout}{done.stderr}")
    return took


def side(store: Store, app: str, work: Path, where: addons.Servers) -> addons.Addon:
    """An app with a running heroku-postgresql add-on on `where`, its table made."""
    folder = work / app
    folder.mkdir()
    store.ensure_app(app, folder)
    found = addons.new_addon(app, "heroku-postgresql", "DATABASE_URL")
    addons.provision(store, found, print, keep=True, servers=where)
    return found


def legs(env: dict[str, str], app: str, rounds: int, stop) -> dict[str, float]:
    """Medians of warm pg:psql and capture, then of cold pg:psql (`stop` before each)."""
    psql = [timed(env, app, "pg:psql", text=SQL) for _ in range(rounds)]
    capture = [timed(env, app, "pg:backups:capture") for _ in range(rounds)]
    cold = []
    for _ in range(rounds):
        stop()
        cold.append(timed(env, app, "pg:psql", text=SQL))
    return {
        "pg_psql_warm_median_s": round(statistics.median(psql), 3),
        "pg_backups_capture_warm_median_s": round(statistics.median(capture), 3),
        "pg_psql_cold_median_s": round(statistics.median(cold), 3),
    }


def stopped(where: addons.Servers, addon: addons.Addon):
    """What stops the add-on's server as the end of a command that started it does (the
    server removed, then the app's network once the server has left it)."""

    def stop() -> None:
        where.stop(addon)
        where.tidy(addon.app)

    return stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dynosim-clientbench-"))
    os.environ["DYNOSIM_HOME"] = str(work / "home")
    store, made, found = Store(), None, []
    started = time.monotonic()
    result: dict[str, object] = {"rounds": args.rounds}
    try:
        addons.ensure_image(addons.POSTGRESQL, print)  # made once; not part of the timings
        made = cluster.create(3, lambda line: print(f"cluster: {line}", flush=True))
        on_cluster = cluster_addons.OnCluster(made)
        swarm_env = {**os.environ, "DOCKER_HOST": made.docker_host}
        sides = [("one_engine", "enginepsql", addons.ONE_ENGINE, dict(os.environ)),
                 ("swarm", "swarmpsql", on_cluster, swarm_env)]  # fmt: skip
        for _name, app, where, env in sides:
            found.append((side(store, app, work, where), where))
            timed(env, app, "pg:psql", text=SETUP)
        for (name, app, where, env), (addon, _) in zip(sides, found, strict=True):
            result[name] = legs(env, app, args.rounds, stopped(where, addon))
            print(name, result[name], flush=True)
    finally:
        for addon, where in found:
            where.remove(addon)
            where.tidy(addon.app)
        store.close()
        if made is not None:
            cluster.destroy(lambda line: print(f"cluster: {line}", flush=True))
        shutil.rmtree(work, ignore_errors=True)
    engine, swarm = result["one_engine"], result["swarm"]
    result["swarm_over_one_engine"] = {key: round(swarm[key] / engine[key], 2) for key in engine}
    result["seconds_in_all"] = round(time.monotonic() - started)
    report(result, args.json)


if __name__ == "__main__":
    main()
