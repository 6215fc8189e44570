"""Benchmark losing a Swarm node under load, in one run.

examples/flask_app on a fresh 3-node local cluster (`cluster.create(3)`), `up --engine swarm`
with web=3 (one dyno a node, as the scheduler spreads them). Each round kills the container of
a worker node that runs a dyno (its engine and dynos die at once, as a machine does) while 4
threads send GETs through the router, then times:
- Swarm: kill -> the manager lists the node `down` (polled every 0.1 s);
- dynosim: `down` -> the `Dyno lost: node N down` line of each of its dynos (the router drops
  them in that turn), and -> each is `up` again on another node;
and counts the GETs that failed (at most those in flight to the node can). The node is started
again and the next round waits until it is `ready`, then --settle seconds more (0: the next
node dies while the one just back may still be joining the app's overlay network, a second
failure within a second of a rejoin; 5: it has joined). The issue's goal: the router stops
sending to the dynos within 2 s of Swarm reporting them gone. Prints medians.
Usage: python bench/bench_node_loss.py [--rounds 3] [--settle 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import free_port, report, until  # noqa: E402

from dynosim import cluster  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask_app"
APP = "nodelossbench"
PLACED = re.compile(r"^(web\.\d+): up .* on (node\d)$")


def dynosim(*args: str, app: str = APP) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dynosim", *args, "-a", app],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def placement() -> dict[str, str]:
    return dict(m.groups() for line in dynosim("ps").splitlines() if (m := PLACED.match(line)))


def stamped(log: Path, pattern: str, since: int, timeout: float = 180) -> float:
    """The epoch time of the first line of `log` from line `since` on matching `pattern`."""
    regex, deadline = re.compile(pattern), time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines()[since:]:
            if regex.search(line):
                return dt.datetime.fromisoformat(line.split()[0]).timestamp()
        time.sleep(0.1)
    raise TimeoutError(pattern)


def until_state(manager: docker.DockerClient, hostname: str, state: str) -> float:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for node in manager.api.nodes():
            if node["Description"]["Hostname"] == hostname and node["Status"]["State"] == state:
                return time.time()
        time.sleep(0.1)
    raise TimeoutError(f"{hostname} {state}")


class Load:
    """GETs from 4 threads until stopped; counts those sent, and keeps each failure: its
    status (or exception's name) and the seconds its client waited."""

    def __init__(self, url: str, timeout: float = 35) -> None:
        self.url, self.timeout, self.sent = url, timeout, 0
        self.failures: list[tuple[int | str, float]] = []
        self._stop, self._lock = threading.Event(), threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(4)]
        for thread in self._threads:
            thread.start()

    @property
    def failed(self) -> int:
        return len(self.failures)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    status: int | str = session.get(self.url, timeout=self.timeout).status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                with self._lock:
                    self.sent += 1
                    if status != 200:
                        self.failures.append((status, round(time.monotonic() - began, 3)))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def one_round(
    made: cluster.Cluster, manager: docker.DockerClient, log: Path, url: str, settle: float
) -> dict:
    placed = placement()
    lost = next(n for n in ("node3", "node2") if n in placed.values())
    moved = [d for d, n in placed.items() if n == lost]
    (node,) = [n for n in made.nodes if n.hostname == lost]
    container = docker.DockerClient(base_url=made.engine).containers.get(node.container)
    since = len(log.read_text().splitlines())
    load = Load(url)
    try:
        killed = time.time()
        container.kill()
        down = until_state(manager, lost, "down")
        lines = [rf"heroku\[{d}\]: Dyno lost: node {lost} down" for d in moved]
        reported = [stamped(log, line, since) for line in lines]
        lines = [rf"heroku\[{d}\]: State changed from starting to up" for d in moved]
        back = [stamped(log, line, since) for line in lines]
        time.sleep(2)
    finally:
        load.stop()
        container.start()
        until_state(manager, lost, "ready")
        time.sleep(settle)
    return {
        "dynos_lost": len(moved),
        "kill_to_down": down - killed,
        "down_to_lost": max(reported) - down,
        "down_to_up_again": max(back) - down,
        "requests": load.sent,
        "failed": load.failed,
    }


@contextlib.contextmanager
def swarm_up(app: str, *options: str) -> Iterator[tuple[cluster.Cluster, str, Path]]:
    """A fresh 3-node cluster in a DYNOSIM_HOME of its own and `up --engine swarm` of the
    example app on it (its output in a log file): the cluster, the router's URL and the log,
    once the app answers; Ctrl-C to `up` and the cluster destroyed at the end."""
    home = tempfile.mkdtemp(prefix="dynosim-bench-")
    os.environ["DYNOSIM_HOME"] = home
    made = cluster.create(3, lambda line: None)
    os.environ["DOCKER_HOST"] = made.docker_host
    port, log = free_port(), Path(tempfile.gettempdir()) / f"{app}-up.log"
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "dynosim", "up", str(EXAMPLE), "-a", app, "--engine",
               "swarm", *options, "--port", str(port), "--https-port", "0"]  # fmt: skip
    with log.open("w") as output:
        up = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        until(lambda: requests.get(url, timeout=5).status_code == 200)
        yield made, url, log
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=300)
        cluster.destroy(lambda line: None)
        shutil.rmtree(home, ignore_errors=True)
        print(f"up's output: {log}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rounds = []
    with swarm_up(APP) as (made, url, log):
        manager = docker.DockerClient(base_url=made.docker_host, timeout=60)
        try:
            dynosim("ps:scale", "web=3")
            until(lambda: len(placement()) == 3 and len(set(placement().values())) >= 2, 300)
            for _ in range(args.rounds):
                rounds.append(one_round(made, manager, log, url, args.settle))
                until(lambda: len(placement()) == 3, 300)
        finally:
            manager.close()
    medians = {
        key: round(statistics.median(r[key] for r in rounds), 2)
        for key in ("kill_to_down", "down_to_lost", "down_to_up_again")
    }
    report(
        {
            "rounds": args.rounds,
            "settle_seconds": args.settle,
            "median_seconds": medians,
            "failed_requests": [r["failed"] for r in rounds],
            "requests": [r["requests"] for r in rounds],
            "runs": rounds,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
