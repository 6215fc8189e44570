"""Benchmark waking a sleeping app, in one run.

The example app on eco dynos (web and worker) runs behind dynosim's router. Each cycle puts it
to sleep (`dynosim ps:sleep`, what 30 idle minutes do) and times one request from send to its
first response byte, in both sleep modes: `stop` (containers stopped, a cold boot on wake) and
`pause` (frozen, thawed on wake). As the floor, the same image and command in a bare container:
`docker start` of a stopped one until the first 200, and `docker unpause` until the first 200
(polled every 5 ms). Prints p50 and p95 and the ratios (goals: stop p50 <= 0.6 s and <= 1.5x
raw start; pause p50 <= 0.1 s; 0 failed requests).
Usage: python bench/bench_wake.py [--cycles 20] [--json results.json]
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

from common import dyno_env, free_port, report, until  # noqa: E402

from dynosim.docker import client as docker_client  # noqa: E402
from dynosim.docker import dynos  # noqa: E402
from dynosim.store import Store  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask_app"
APP = "wakebench"


def dynosim(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dynosim", *args], check=True, capture_output=True)


def first_byte(url: str) -> tuple[float, bool]:
    """Seconds from sending a request to its first response byte, and whether it was a 200
    (a refused or broken connection counts as a failed request, not as the end of the run)."""
    start = time.perf_counter()
    try:
        with requests.get(url, timeout=90, stream=True) as response:
            next(response.iter_content(1), b"")
            return time.perf_counter() - start, response.status_code == 200
    except requests.RequestException:
        return time.perf_counter() - start, False


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def dynosim_cycles(app_dir: Path, mode: str, cycles: int) -> tuple[list[float], int]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "dynosim", "up", str(app_dir), "-a", APP, "--port",
               str(port), "--sleep-mode", mode, "--idle-timeout", "86400",
               "--https-port", "0"]  # fmt: skip
    up = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times, failed = [], 0
    try:
        until(lambda: requests.get(url, timeout=5).status_code == 200)
        dynosim("ps:scale", "-a", APP, "web=1:eco", "worker=1:eco")
        until(lambda: requests.get(url, timeout=5).status_code == 200)
        for _ in range(cycles):
            dynosim("ps:sleep", "-a", APP)
            seconds, ok = first_byte(url)
            times.append(seconds)
            failed += not ok
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(120)
    return times, failed


def raw_cycles(image: str, cycles: int) -> tuple[list[float], list[float]]:
    """docker start -> first 200 and docker unpause -> first 200, same image and command."""
    client = docker_client.client()
    network = client.networks.create("dynosim-wakebench-raw", labels={docker_client.LABEL: "bench"})
    container = client.containers.create(
        image, ["uwsgi uwsgi.ini"], environment=dyno_env(), network=network.name
    )
    starts, unpauses = [], []
    try:
        for _ in range(cycles):
            start = time.perf_counter()
            container.start()
            container.reload()
            ip = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
            until_200(f"http://{ip}:5000/")
            starts.append(time.perf_counter() - start)
            container.pause()
            start = time.perf_counter()
            container.unpause()
            until_200(f"http://{ip}:5000/")
            unpauses.append(time.perf_counter() - start)
            container.stop(timeout=30)
    finally:
        container.remove(force=True)
        network.remove()
    return starts, unpauses


def until_200(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.005)
    raise TimeoutError(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dynosim-wakebench-"))
    os.environ["DYNOSIM_HOME"] = str(work / "home")
    app_dir = work / APP
    shutil.copytree(EXAMPLE, app_dir, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    try:
        stop, stop_failed = dynosim_cycles(app_dir, "stop", args.cycles)
        pause, pause_failed = dynosim_cycles(app_dir, "pause", args.cycles)
        release = Store().current_release(APP)
        assert release is not None
        raw_start, raw_unpause = raw_cycles(release.image, args.cycles)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        dynos.remove_network(APP)

    def figures(values: list[float]) -> dict[str, float]:
        return {
            "p50_s": round(statistics.median(values), 3),
            "p95_s": round(percentile(values, 0.95), 3),
        }

    report(
        {
            "cycles_per_mode": args.cycles,
            "stop_mode": {**figures(stop), "failed": stop_failed},
            "pause_mode": {**figures(pause), "failed": pause_failed},
            "raw_docker_start_to_200": figures(raw_start),
            "raw_docker_unpause_to_200": figures(raw_unpause),
            "stop_vs_raw_start_p50": round(
                statistics.median(stop) / statistics.median(raw_start), 2
            ),
            "pause_vs_raw_unpause_p50": round(
                statistics.median(pause) / statistics.median(raw_unpause), 2
            ),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
