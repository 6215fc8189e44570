"""Benchmark the dyno manager, in one run.

(a) `dynosim ps:scale web=1 -> 8` until all 8 web dynos answer through the router, vs
    `docker-compose up -d --scale web=8 --no-recreate` on the same image until all 8 answer;
(b) memory of one idle web dyno (its container's cgroup) vs the same uWSGI app run bare on
    the host in a cgroup of its own (same accounting: usage minus inactive page cache).

Prints medians and ratios (goals: (a) <= 1.0x, (b) <= 10 MB overhead).
Usage: python bench/bench_formation.py [--rounds 5] [--json results.json]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import dyno_env, free_port, report, until  # noqa: E402

from dynosim import control  # noqa: E402
from dynosim.docker import client as docker_client  # noqa: E402
from dynosim.store import Store  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask_app"
DYNOS = 8
PROBES = ThreadPoolExecutor(max_workers=DYNOS)
PROJECT = "dynosimscale"
CGROUP = Path("/sys/fs/cgroup/memory/dynosim-bench-bare")


def dynosim(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dynosim", *args], check=True, capture_output=True)


def probe(urls: list[str]) -> list[requests.Response]:
    """Eight requests at once: both sides probe with the same concurrency."""
    return list(PROBES.map(lambda url: requests.get(url, timeout=10), urls))


def scale_dynosim(app: str, url: str) -> float:
    """Like the compose side (which probes once all 8 ports exist), probe once all 8 are up,
    then through the router until every one of them has answered."""
    seen: set[str] = set()

    def all_answer() -> bool:
        dynos = control.ControlClient(app).ps()
        if sum(d["type"] == "web" and d["state"] == "up" for d in dynos) < DYNOS:
            return False
        seen.update(r.json()["dyno"] for r in probe([url] * DYNOS))
        return len(seen) == DYNOS

    start = time.perf_counter()
    dynosim("ps:scale", "-a", app, f"web={DYNOS}")
    until(all_answer)
    elapsed = time.perf_counter() - start
    dynosim("ps:scale", "-a", app, "web=1")
    until(
        lambda: (
            len(
                docker_client.client().containers.list(
                    filters={"label": [f"dynosim.app={app}", "dynosim=dyno"]}
                )
            )
            == 1
        )
    )
    return elapsed


def compose_ports() -> list[int]:
    found = docker_client.client().containers.list(
        filters={
            "label": [f"com.docker.compose.project={PROJECT}", "com.docker.compose.service=web"]
        }
    )
    ports = []
    for container in found:
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get("5000/tcp") or []
        ports += [int(b["HostPort"]) for b in bindings if b.get("HostIp") == "127.0.0.1"]
    return ports


def scale_compose(folder: Path) -> float:
    def compose(*args: str) -> None:
        subprocess.run(["docker-compose", "-p", PROJECT, *args], cwd=folder, check=True,
                       capture_output=True)  # fmt: skip

    def all_answer() -> bool:
        ports = compose_ports()
        if len(ports) < DYNOS:
            return False
        return all(r.ok for r in probe([f"http://127.0.0.1:{p}/" for p in ports]))

    start = time.perf_counter()
    compose("up", "-d", "--scale", f"web={DYNOS}", "--no-recreate")
    until(all_answer)
    elapsed = time.perf_counter() - start
    compose("up", "-d", "--scale", "web=1", "--no-recreate")
    return elapsed


def cgroup_memory(path: Path) -> int:
    stats = dict(line.split() for line in (path / "memory.stat").read_text().splitlines())
    usage = int((path / "memory.usage_in_bytes").read_text())
    return usage - int(stats.get("total_inactive_file", 0))


def container_memory(container_id: str) -> int:
    return cgroup_memory(Path("/sys/fs/cgroup/memory/docker") / container_id)


def bare_memory(app_dir: Path, work: Path) -> int:
    """The same uWSGI app, run bare on the host inside a memory cgroup of its own."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q"]
    subprocess.run([*pip, "-r", str(app_dir / "requirements.txt"), "pyuwsgi"], check=True)
    CGROUP.mkdir(exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "DYNO": "web.1",
        "PATH": f"{venv}/bin:{os.environ['PATH']}",
    }
    process = subprocess.Popen(
        ["sh", "-c", f"echo $$ > {CGROUP}/cgroup.procs && exec uwsgi uwsgi.ini"],
        cwd=app_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        until(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5).ok)
        time.sleep(5)
        return cgroup_memory(CGROUP)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        CGROUP.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dynosim-bench-"))
    os.environ.setdefault("DYNOSIM_HOME", str(work / "home"))
    app_dir = work / "scaleapp"
    shutil.copytree(EXAMPLE, app_dir)
    port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "dynosim", "up", str(app_dir), "--port", str(port), "--grace", "5",
         "--https-port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    compose_dir = work / "compose"
    compose_dir.mkdir()
    results: dict[str, list[float]] = {"a_dynosim": [], "a_compose": []}
    try:
        until(lambda: requests.get(url, timeout=5).ok)
        dynosim("ps:scale", "-a", "scaleapp", "web=1", "worker=0")
        image = Store().current_release("scaleapp").image
        web_env = {**dyno_env(), "DYNO": "web"}
        (compose_dir / "docker-compose.yml").write_text(
            f"""version: "2.4"
services:
  web:
    image: {image}
    command: ["uwsgi uwsgi.ini"]
    environment: {web_env}
    ports: ["127.0.0.1::5000"]
    mem_limit: 1024m
"""
        )
        subprocess.run(["docker-compose", "-p", PROJECT, "up", "-d"], cwd=compose_dir, check=True,
                       capture_output=True)  # fmt: skip
        for round_number in range(args.rounds):
            runs = [("a_dynosim", lambda: scale_dynosim("scaleapp", url)),
                    ("a_compose", lambda: scale_compose(compose_dir))]  # fmt: skip
            if round_number % 2:
                runs.reverse()
            for key, run in runs:
                results[key].append(run())
            print(
                f"round {round_number + 1}: "
                + ", ".join(f"{k}={v[-1]:.2f}s" for k, v in results.items()),
                flush=True,
            )
        web = docker_client.client().containers.list(
            filters={"label": ["dynosim.app=scaleapp", "dynosim=dyno"]}
        )[0]
        time.sleep(5)
        dyno_memory = container_memory(web.id)
    finally:
        subprocess.run(["docker-compose", "-p", PROJECT, "down", "-t", "5"], cwd=compose_dir,
                       capture_output=True)  # fmt: skip
        up.send_signal(signal.SIGINT)
        up.wait(120)
    bare = bare_memory(app_dir, work)
    medians = {k: statistics.median(v) for k, v in results.items()}
    result = {
        "rounds": args.rounds,
        "medians_s": {k: round(v, 3) for k, v in medians.items()},
        "ratio_a_scale_1_to_8": round(medians["a_dynosim"] / medians["a_compose"], 3),
        "samples_s": {k: [round(x, 3) for x in v] for k, v in results.items()},
        "memory_mb": {
            "idle_dyno_container": round(dyno_memory / 2**20, 1),
            "bare_uwsgi": round(bare / 2**20, 1),
            "overhead": round((dyno_memory - bare) / 2**20, 1),
        },
    }
    report(result, args.json)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
