"""Benchmark `up --engine swarm` on a 3-node local Swarm against `up` on one engine, in one run.

One cluster (`cluster.create(3)`, what `dynosim cluster:create 3` runs) in a DYNOSIM_HOME of the
bench's own, and two `dynosim up`s of the example app side by side: one `--engine swarm` with
DOCKER_HOST the manager (as after `eval "$(dynosim cluster:create 3)"`), one plain `up` on the
local engine. Both sleep in stop mode: the default on one engine, the only mode on Swarm;
--pause adds one engine's pause mode as a third wake leg, for reference.
(a) wake: eco web + worker; each cycle `ps:sleep`, 2 s (the Swarm adapter's task polls see
    the stop), then one request through the router timed from sending to its first response
    byte; --cycles per side, sides alternating;
(b) `ps:scale web=1 -> 6` (standard-1x, no worker) until `ps` shows all 6 up and all 6 have
    answered through the router, then back to 1 (untimed); --rounds per side, alternating.
    One untimed round first on each side (it pulls the image onto every node);
(c) throughput with 3 web dynos on the cluster (the scheduler spreads them over the nodes):
    `wrk -t1` through dynosim's router on 127.0.0.1, against nginx (nginx-light, one worker,
    round robin) on 127.0.0.1 proxying to the same tasks' host-mode addresses (node address
    and published port: what the Swarm adapter's `address` gives the router), and one task
    directly; 32 connections for requests/s, 1 for p50 latency. As context, the one-engine
    `up`'s router at 3 dynos. --seconds per leg, --rounds rounds, order alternating.
Prints medians and ratios: cluster / one engine for (a) and (b), router / nginx for (c). Traffic
goes to 127.0.0.1 and the cluster's own addresses only. Both `up`s, nginx and the cluster are
removed at the end, on Ctrl-C and on SIGTERM. Needs wrk and nginx (apt-get install wrk
nginx-light).
Usage: python bench/bench_swarm.py [--rounds 5] [--cycles 10] [--seconds 10] [--pause]
       [--json F]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_router import need, start_nginx, wrk  # noqa: E402
from bench_wake import first_byte, percentile  # noqa: E402
from common import free_port, report, until  # noqa: E402

from dynosim import certs, cluster, control  # noqa: E402
from dynosim.docker import services  # noqa: E402
from dynosim.docker.swarm_events import POLL_EVERY  # noqa: E402
from dynosim.store import Store  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask_app"
SCALE_TO = 6
ROUTED = 3
CONNECTIONS = 32
PROBES = ThreadPoolExecutor(max_workers=SCALE_TO)
#: Between `ps:sleep` and the waking request, on every side: the Swarm adapter learns of the
#: sleeping dynos' stopped tasks by polling (POLL_EVERY); a request sooner than that wakes the app
#: before the stale death arrives, which then fails the woken dyno (docs/benchmarks.md).
SETTLE = 2 * POLL_EVERY


@dataclass
class Side:
    """One `dynosim up` of the example app: its name, environment and the engines its dyno
    containers run on (the local engine, or every node's)."""

    name: str
    app: str
    env: dict[str, str]
    engines: list[docker.DockerClient]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def run(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "dynosim", *args, "-a", self.app], env=self.env,
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)  # fmt: skip

    def up(self, app_dir: Path, *extra: str) -> None:
        """Start it in a session of its own (a Ctrl-C reaches it once, from `down`)."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dynosim", "up", str(app_dir), "-a", self.app,
             "--port", str(self.port), "--https-port", "0", "--dashboard-port", "0",
             "--grace", "5", "--idle-timeout", "86400", *extra],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def down(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(180)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)

    def web_up(self) -> int:
        dynos = control.ControlClient(self.app).ps()
        return sum(d["type"] == "web" and d["state"] == "up" for d in dynos)

    def web_containers(self) -> int:
        """Running web dyno containers on its engines (Swarm keeps ended tasks' containers)."""
        labels = {"label": [f"dynosim.app={self.app}", "dynosim=dyno", "dynosim.type=web"]}
        return sum(len(engine.containers.list(filters=labels)) for engine in self.engines)

    def formation(self, *quantities: str, web: int) -> None:
        """`ps:scale`, then until `web` web dynos are up and the engines run no others."""
        self.run("ps:scale", *quantities)
        until(lambda: self.web_up() == web and self.web_containers() == web)
        until(lambda: requests.get(self.url, timeout=5).ok)


def scale_once(side: Side) -> float:
    """`ps:scale web=6` until `ps` shows all 6 up and each has answered through the router
    (6 requests at once per probe); then back to 1, untimed."""
    seen: set[str] = set()

    def all_answer() -> bool:
        if side.web_up() < SCALE_TO:
            return False
        answers = PROBES.map(lambda url: requests.get(url, timeout=10), [side.url] * SCALE_TO)
        seen.update(r.json()["dyno"] for r in answers if r.ok)
        return len(seen) == SCALE_TO

    start = time.perf_counter()
    side.run("ps:scale", f"web={SCALE_TO}")
    until(all_answer)
    elapsed = time.perf_counter() - start
    side.formation("web=1", web=1)
    return elapsed


def wake_once(side: Side) -> tuple[float, bool]:
    """`ps:sleep`, a pause of two task polls (SETTLE), then one request timed to its first byte."""
    side.run("ps:sleep")
    time.sleep(SETTLE)
    return first_byte(side.url)


def task_addresses(manager: docker.DockerClient, app: str) -> list[tuple[str, str]]:
    """(node, ADDRESS:PORT) of the app's running web tasks, as the Swarm adapter's `address`
    finds them: the node's address and the port published there in host mode."""
    labels = [f"dynosim.app={app}", "dynosim.type=web"]
    found = [s["ID"] for s in manager.api.services(filters={"label": labels})]
    placed = []
    for task in manager.api.tasks(filters={"service": found, "desired-state": "running"}):
        port = services.published_port(task)
        if task["Status"]["State"] != "running" or port is None:
            continue
        node = manager.api.inspect_node(task["NodeID"])
        placed.append((node["Description"]["Hostname"], f"{services.node_address(node)}:{port}"))
    return sorted(placed)


def serving_all(side: Side, count: int) -> None:
    wanted = {f"web.{n}" for n in range(1, count + 1)}
    until(lambda: {requests.get(side.url, timeout=5).json()["dyno"] for _ in range(30)} == wanted)


def throughput(args, work: Path, swarm: Side, engine: Side, manager) -> dict[str, object]:
    """(c): router, nginx and one task directly on the cluster; one engine's router."""
    for side in (swarm, engine):
        side.formation(f"web={ROUTED}", "worker=0", web=ROUTED)
        serving_all(side, ROUTED)
    placed = task_addresses(manager, swarm.app)
    assert len(placed) == ROUTED, placed
    upstreams = [address for _, address in placed]
    nginx, proxy, _ = start_nginx(work, upstreams, certs.issue(swarm.app))
    legs = {
        "a_router": (swarm.url, CONNECTIONS),
        "b_nginx": (proxy, CONNECTIONS),
        "c_direct": (f"http://{upstreams[0]}/", CONNECTIONS),
        "d_one_engine_router": (engine.url, CONNECTIONS),
        "a_router_1conn": (swarm.url, 1),
        "b_nginx_1conn": (proxy, 1),
        "c_direct_1conn": (f"http://{upstreams[0]}/", 1),
    }
    results: dict[str, list[float]] = {}
    try:
        for url in (swarm.url, engine.url):
            wrk(url, 2, CONNECTIONS)  # warm up the dynos' workers
        for round_number in range(args.rounds):
            order = list(legs.items())
            if round_number % 2:
                order.reverse()
            for name, (url, connections) in order:
                rate, p50 = wrk(url, args.seconds, connections)
                results.setdefault(f"{name}_rps", []).append(rate)
                results.setdefault(f"{name}_p50_ms", []).append(p50)
            latest = ", ".join(f"{k}={v[-1]:.1f}" for k, v in results.items())
            print(f"throughput round {round_number + 1}: {latest}", flush=True)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(30)
    medians = {k: statistics.median(v) for k, v in results.items()}
    return {
        "placement": dict(placed),
        "medians": {k: round(v, 3) for k, v in medians.items()},
        "ratio_router_to_nginx_rps": round(medians["a_router_rps"] / medians["b_nginx_rps"], 3),
        "ratio_cluster_to_one_engine_router_rps": round(
            medians["a_router_rps"] / medians["d_one_engine_router_rps"], 3
        ),
        "router_added_p50_ms_1conn": round(
            medians["a_router_1conn_p50_ms"] - medians["c_direct_1conn_p50_ms"], 3
        ),
        "nginx_added_p50_ms_1conn": round(
            medians["b_nginx_1conn_p50_ms"] - medians["c_direct_1conn_p50_ms"], 3
        ),
        "samples": {k: [round(x, 3) for x in v] for k, v in results.items()},
    }


def alternate(sides: list[Side], times: int, once) -> dict[str, list]:
    """`once(side)` `times` times per side, which side goes first alternating."""
    results: dict[str, list] = {side.name: [] for side in sides}
    for number in range(times):
        for side in sides if number % 2 == 0 else list(reversed(sides)):
            results[side.name].append(once(side))
        latest = {k: v[-1][0] if isinstance(v[-1], tuple) else v[-1] for k, v in results.items()}
        print(f"{once.__name__} {number + 1}: "
              + ", ".join(f"{k}={v:.2f}s" for k, v in latest.items()), flush=True)  # fmt: skip
    return results


def figures(values: list[float]) -> dict[str, float]:
    return {
        "p50_s": round(statistics.median(values), 3),
        "p95_s": round(percentile(values, 0.95), 3),
        "min_s": round(min(values), 3),
        "max_s": round(max(values), 3),
    }


def wake(args, sides: list[Side]) -> dict[str, object]:
    """(a): eco web and worker on every side, then the sleep/wake cycles."""
    for side in sides:
        side.formation("web=1:eco", "worker=1:eco", web=1)
        wake_once(side)  # untimed: the first eco start
    cycles = alternate(sides, args.cycles, wake_once)
    found: dict[str, object] = {
        side: {**figures([s for s, _ in runs]), "failed": sum(not ok for _, ok in runs)}
        for side, runs in cycles.items()
    }
    found["ratio_p50_swarm_to_one_engine_stop"] = round(
        found["swarm"]["p50_s"] / found["one_engine_stop"]["p50_s"], 2
    )
    found["samples_s"] = {side: [round(s, 3) for s, _ in runs] for side, runs in cycles.items()}
    return found


def scale(args, sides: list[Side]) -> dict[str, object]:
    """(b): standard-1x web, no worker; one untimed round, then the timed ones."""
    for side in sides:
        side.formation("web=1:standard-1x", "worker=0", web=1)
        scale_once(side)
    rounds = alternate(sides, args.rounds, scale_once)
    medians = {side: statistics.median(values) for side, values in rounds.items()}
    return {
        "median_s": {side: round(value, 3) for side, value in medians.items()},
        "ratio_swarm_to_one_engine": round(medians["swarm"] / medians["one_engine_stop"], 2),
        "samples_s": {side: [round(v, 3) for v in values] for side, values in rounds.items()},
    }


def remove_images(local: docker.DockerClient, sides: list[Side]) -> None:
    """The sides' release images (their tags: layers others share stay)."""
    for side in sides:
        release = Store().current_release(side.app)
        if release is not None:
            with contextlib.suppress(docker.errors.APIError):
                local.images.remove(release.image)


def interrupted(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--pause", action="store_true", help="one engine's pause mode as well")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        need(tool)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    work = Path(tempfile.mkdtemp(prefix="dynosim-swarmbench-"))
    work.chmod(0o755)  # nginx's workers (nobody) write their temp files below it
    os.environ["DYNOSIM_HOME"] = str(work / "home")
    local = docker.from_env()
    made, sides, started = None, [], time.monotonic()
    result: dict[str, object] = {}
    try:
        made = cluster.create(3, lambda line: print(f"cluster: {line}", flush=True))
        manager = docker.DockerClient(base_url=made.docker_host, timeout=120)
        nodes = [docker.DockerClient(base_url=f"unix://{n.socket}") for n in made.nodes]
        swarm_env = {**os.environ, "DOCKER_HOST": made.docker_host}
        sides = [Side("swarm", "swarmbench", swarm_env, nodes),
                 Side("one_engine_stop", "enginebench", dict(os.environ), [local])]  # fmt: skip
        if args.pause:
            sides.append(Side("one_engine_pause", "pausebench", dict(os.environ), [local]))
        extra = {"swarm": ["--engine", "swarm"], "one_engine_pause": ["--sleep-mode", "pause"]}
        for side in sides:  # one at a time: builds and the image's publish untimed, alone
            app_dir = work / side.app
            shutil.copytree(EXAMPLE, app_dir, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
            side.up(app_dir, *extra.get(side.name, []))
            until(lambda side=side: requests.get(side.url, timeout=5).ok, 900)
        print(f"both up after {time.monotonic() - started:.0f} s", flush=True)
        result["b_scale_1_to_6"] = scale(args, sides[:2])
        result["c_throughput"] = throughput(args, work, sides[0], sides[1], manager)
        result["a_wake"] = wake(args, sides)
    finally:
        for side in sides:
            side.down()
        try:
            if made is not None:
                cluster.destroy(lambda line: print(f"cluster: {line}", flush=True))
        finally:
            remove_images(local, sides)
            shutil.rmtree(work, ignore_errors=True)
    result["seconds_in_all"] = round(time.monotonic() - started)
    result["rounds"], result["cycles"], result["seconds_per_leg"] = (
        args.rounds, args.cycles, args.seconds,
    )  # fmt: skip
    report(result, args.json)


if __name__ == "__main__":
    main()
