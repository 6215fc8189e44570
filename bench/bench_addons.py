"""Benchmark `addons:create heroku-postgresql`, in one run.

A web dyno whose page runs `select 1` on DATABASE_URL (503 while there is none) runs behind
the router. Each round times `dynosim addons:create heroku-postgresql` from its start until a
request through the router is answered from the new database (the add-on created, the config
var set, the release rolled out, the dyno restarted and connected), then destroys the add-on.
As an anchor, the same image run bare with `docker run` on an empty volume until `pg_isready`
(the floor: initdb and the first start). Prints medians and the ratio.
Usage: python bench/bench_addons.py [--rounds 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import free_port, report, until  # noqa: E402

from dynosim import addons  # noqa: E402
from dynosim.docker import client as docker_client  # noqa: E402

APP = "addonbench"
WSGI = """import os

import psycopg


def app(environ, start_response):
    url = os.environ.get("DATABASE_URL")
    if not url:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"no database"]
    with psycopg.connect(url) as connection:
        answer = connection.execute("select 1").fetchone()[0]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(answer).encode()]
"""
PROCFILE = (
    "web: uwsgi --http-socket :$PORT --master --die-on-term --wsgi-file app.py --callable app\n"
)


def dynosim(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dynosim", *args], check=True, capture_output=True)


def answered(url: str) -> bool:
    response = requests.get(url, timeout=10)
    return response.status_code == 200 and response.text == "1"


def bare_postgres() -> float:
    """docker run of the add-on image on an empty volume until pg_isready answers."""
    client = docker_client.client()
    start = time.perf_counter()
    container = client.containers.run(
        addons.POSTGRESQL.image,
        detach=True,
        environment={"DB_USER": "u", "DB_PASSWORD": "p", "DB_NAME": "d"},
        volumes={"dynosim-bench-bare": {"bind": addons.POSTGRESQL.data, "mode": "rw"}},
    )
    try:
        until(lambda: container.exec_run(list(addons.POSTGRESQL.ready)).exit_code == 0)
        return time.perf_counter() - start
    finally:
        container.remove(force=True)
        client.volumes.get("dynosim-bench-bare").remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dynosim-addonbench-"))
    os.environ["DYNOSIM_HOME"] = str(work / "home")
    app_dir = work / APP
    app_dir.mkdir()
    (app_dir / "app.py").write_text(WSGI)
    (app_dir / "Procfile").write_text(PROCFILE)
    (app_dir / "requirements.txt").write_text("psycopg[binary]>=3.1\n")
    (app_dir / "runtime.txt").write_text("python-3.11\n")
    addons.ensure_image(addons.POSTGRESQL, print)  # made once; not part of the timings

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "dynosim", "up", str(app_dir), "--port", str(port),
               "--https-port", "0"]  # fmt: skip
    up = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dynosim_times: list[float] = []
    bare_times: list[float] = []
    try:
        until(lambda: requests.get(url, timeout=5).status_code == 503)
        for _ in range(args.rounds):
            start = time.perf_counter()
            dynosim("addons:create", "-a", APP, "heroku-postgresql")
            until(lambda: answered(url))
            dynosim_times.append(time.perf_counter() - start)
            dynosim("addons:destroy", "-a", APP, "DATABASE_URL", "--confirm", APP)
            until(lambda: requests.get(url, timeout=5).status_code == 503)
            bare_times.append(bare_postgres())
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(120)
        shutil.rmtree(work, ignore_errors=True)

    dynosim_median = statistics.median(dynosim_times)
    bare_median = statistics.median(bare_times)
    report(
        {
            "rounds": args.rounds,
            "addons_create_to_first_query_median_s": round(dynosim_median, 3),
            "bare_docker_run_to_pg_isready_median_s": round(bare_median, 3),
            "ratio": round(dynosim_median / bare_median, 2),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
