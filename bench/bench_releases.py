"""Benchmark release switches under load, in one run.

The example app with 3 web dynos (preboot enabled) runs behind dynosim's router while 4 client
threads send requests through it without pause. Each round makes three switches:

(a) `config:set RELEASE=rN`: time until the command returns, and until every one of the 3 web
    dynos answers with the new value (and no answer shows the old one);
(b) `dynosim deploy` of a code change (an app-layer rebuild, then the switch);
(c) `releases:rollback` to the release before.

Reports, per kind of switch, the requests sent and failed while it ran (goal: 0 failed) and the
median times. There is no peer to compare with: Docker Compose recreates containers in place,
so a proxy in front of it sees the gap (documented in docs/benchmarks.md).
Usage: python bench/bench_releases.py [--rounds 5] [--json results.json]
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
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import free_port, report, until  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask_app"
APP = "relbench"
WEB = 3
PROBES = ThreadPoolExecutor(max_workers=WEB * 2)


def dynosim(*args: str) -> float:
    """Run a command; the seconds it took."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dynosim", *args], check=True, capture_output=True)
    return time.perf_counter() - start


class Load:
    """Requests through the router from `threads` threads, counted, until stopped."""

    def __init__(self, url: str, threads: int = 4, limit: float = 1800) -> None:
        self.url, self.sent, self.failed = url, 0, 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + limit  # stops by itself, whatever happens
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                try:
                    ok = session.get(self.url, timeout=30).status_code == 200
                except requests.RequestException:
                    ok = False
                with self._lock:
                    self.sent += 1
                    self.failed += not ok

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.sent, self.failed

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def serving(url: str, value: str) -> bool:
    """Every web dyno answers with the new RELEASE value, and no answer has the old one."""
    answers = [r.json() for r in PROBES.map(lambda _: requests.get(url, timeout=10), range(12))]
    return all(a["release"] == value for a in answers) and len({a["dyno"] for a in answers}) == WEB


def measured(load: Load, switch) -> tuple[float, int, int]:
    """Run one switch; (seconds, requests sent during it, requests failed during it)."""
    sent, failed = load.counts()
    seconds = switch()
    sent_after, failed_after = load.counts()
    return seconds, sent_after - sent, failed_after - failed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dynosim-relbench-"))
    os.environ["DYNOSIM_HOME"] = str(work / "home")
    app_dir = work / APP
    shutil.copytree(EXAMPLE, app_dir, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "dynosim", "up", str(app_dir), "-a", APP, "--port", str(port),
               "--https-port", "0"]  # fmt: skip
    up = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load = None
    results: dict[str, list[tuple[float, int, int]]] = {"config": [], "deploy": [], "rollback": []}
    serving_times: list[float] = []
    try:
        until(lambda: requests.get(url, timeout=5).status_code == 200)
        dynosim("ps:scale", "-a", APP, f"web={WEB}")
        enable = [sys.executable, "-m", "dynosim", "features:enable", "preboot", "-a", APP]
        subprocess.run(enable, capture_output=True)  # zero downtime; refused when on already
        until(lambda: len({requests.get(url, timeout=5).json()["dyno"] for _ in range(30)}) == WEB)
        load = Load(url)
        for round_number in range(args.rounds):
            value = f"r{round_number}"

            def set_config(value: str = value) -> float:
                start = time.perf_counter()
                took = dynosim("config:set", "-a", APP, f"RELEASE={value}")
                until(lambda: serving(url, value))
                serving_times.append(time.perf_counter() - start)
                return took

            def deploy(round_number: int = round_number) -> float:
                with (app_dir / "app.py").open("a") as source:
                    source.write(f"\n# bench change {round_number}\n")
                return dynosim("deploy", str(app_dir), "-a", APP)

            results["config"].append(measured(load, set_config))
            results["deploy"].append(measured(load, deploy))
            results["rollback"].append(
                measured(load, lambda: dynosim("releases:rollback", "-a", APP))
            )
    finally:
        if load:
            load.stop()
        up.send_signal(signal.SIGINT)
        up.wait(120)
        shutil.rmtree(work, ignore_errors=True)

    summary: dict[str, object] = {"rounds": args.rounds, "web_dynos": WEB}
    for kind, rows in results.items():
        summary[kind] = {
            "median_command_s": round(statistics.median(r[0] for r in rows), 3),
            "requests_sent": sum(r[1] for r in rows),
            "requests_failed": sum(r[2] for r in rows),
        }
    summary["config_set_until_every_dyno_serves_it_median_s"] = round(
        statistics.median(serving_times), 3
    )
    report(summary, args.json)


if __name__ == "__main__":
    main()
