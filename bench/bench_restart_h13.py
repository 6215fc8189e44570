"""Requests lost while the example app's two web dynos are restarted one after the other
(`ps:restart web.1`, then `web.2`) under GETs from 8 clients: its uWSGI settings before
(`die-on-term`, the classic tutorial's) and after (graceful SIGTERM, what `dynosim doctor`
asks for). The figure behind doctor's in-flight check (docs/benchmarks.md).

    CI=true flock /tmp/dynosim-docker.lock .venv/bin/python bench/bench_restart_h13.py
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

import requests
from common import report

from dynosim import App

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "flask_app"
H13 = re.compile(r"code=H13")


def variant(folder: Path, uwsgi_ini: str | None) -> Path:
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    if uwsgi_ini is not None:
        (folder / "uwsgi.ini").write_text(uwsgi_ini)
    return folder


def run(folder: Path, clients: int) -> dict:
    app = App.open(folder, name=f"h13-{folder.name}")
    app.start(formation={"web": 2, "worker": 0})
    statuses: Counter[str] = Counter()
    done = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not done.is_set():
                try:
                    statuses[str(session.get(app.url + "/stores", timeout=30).status_code)] += 1
                except requests.RequestException as exc:
                    statuses[type(exc).__name__] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    try:
        for thread in threads:
            thread.start()
        for dyno in ("web.1", "web.2"):
            app.restart(dyno)
    finally:
        done.set()
        for thread in threads:
            thread.join()
        lines = [line.format() for line in app.logs()]
        app.close()
    h13 = sum(1 for line in lines if H13.search(line))
    errors = [line for line in lines if "at=error" in line or "Error R" in line][:10]
    return {
        "requests": sum(statuses.values()), "statuses": dict(statuses), "router_h13": h13,
        "errors": errors,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", choices=("die_on_term", "graceful"))
    args = parser.parse_args()
    before = subprocess.run(
        ["git", "-C", str(ROOT), "show", "22163ae:examples/flask_app/uwsgi.ini"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    home = tempfile.mkdtemp(prefix="dynosim-")
    os.environ["DYNOSIM_HOME"] = home
    work = Path(tempfile.mkdtemp(prefix="h13-"))
    try:
        variants = {"die_on_term": before, "graceful": None}
        result = {
            name: run(variant(work / name.replace("_", "-"), ini), args.clients)
            for name, ini in variants.items()
            if args.only in (None, name)
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    report(result, args.json)


if __name__ == "__main__":
    main()
