"""Benchmark the dyno_app fixture's set-up against a hand-written docker-SDK fixture, in one run.

Set-up = from the fixture's start (image already built) to yielded and answering 200 on "/".
Sides, on examples/flask_app's web process (the worker scaled to 0), rounds rotating the order:
  fixture      what `dyno_app` does: App.open + App.start in a fresh DYNOSIM_HOME (the serve loop
               in a background thread), then the first 200 through the router;
  up_process   the alternative design: a `dynosim up` subprocess, polled until it answers 200;
  docker_sdk   a hand-written fixture: create a network, run the same image with the same
               command, user and env (read from dynosim's web.1) and the port published on
               127.0.0.1, poll until it answers 200.
Teardown (stop and remove everything) is timed too. Prints medians and fixture/docker_sdk
(goal <= 1.0, and the fixture's median <= 1.5 s).
Usage: python bench/bench_fixture.py [--rounds 9] [--json results.json]
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
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import free_port, report, until  # noqa: E402

from dynosim import App  # noqa: E402
from dynosim.docker import client as docker_client  # noqa: E402
from dynosim.docker import dynos  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask_app"
NAME = "bench-fixture"
FORMATION = {"web": 1, "worker": 0}


def answers(url: str) -> bool:
    return requests.get(url, timeout=5).status_code == 200


class Fixture:
    """The plugin's way: an in-process App in its own DYNOSIM_HOME."""

    def setup(self) -> None:
        self.home = tempfile.mkdtemp(prefix="dynosim-")
        os.environ["DYNOSIM_HOME"] = self.home
        self.app = App.open(EXAMPLE, name=NAME)
        self.app.start(formation=FORMATION, grace=3, prune=False)  # as dyno_app does
        assert answers(self.app.url)

    def teardown(self) -> None:
        self.app.close()
        shutil.rmtree(self.home, ignore_errors=True)


class UpProcess:
    """The other design: `dynosim up` in a subprocess (what tests/integration's Up does)."""

    def setup(self) -> None:
        self.home = tempfile.mkdtemp(prefix="dynosim-")
        os.environ["DYNOSIM_HOME"] = self.home
        App.open(EXAMPLE, name=NAME).build()  # untimed: just to record worker=0 first
        App.named(NAME).scale(**FORMATION)
        self.started = time.perf_counter()
        port = free_port()
        command = [sys.executable, "-m", "dynosim", "up", str(EXAMPLE), "-a", NAME]
        self.process = subprocess.Popen(
            [*command, "--port", str(port), "--grace", "3"],
            env={**os.environ, "DYNOSIM_HOME": self.home},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        until(lambda: answers(f"http://127.0.0.1:{port}/"))

    def teardown(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)
        shutil.rmtree(self.home, ignore_errors=True)


class DockerSdk:
    """A hand-written fixture with the docker SDK, running what dynosim's web.1 runs."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec

    def setup(self) -> None:
        client = docker_client.client()
        self.network = client.networks.create(f"bench-sdk-{uuid.uuid4().hex[:8]}")
        self.container = client.containers.run(
            self.spec["image"],
            self.spec["command"],
            entrypoint=self.spec["entrypoint"],
            environment=self.spec["env"],
            user=self.spec["user"],
            working_dir=self.spec["workdir"],
            network=self.network.name,
            ports={"5000/tcp": ("127.0.0.1", None)},
            detach=True,
        )
        port = None
        while port is None:
            self.container.reload()
            published = self.container.ports.get("5000/tcp")
            port = published and published[0]["HostPort"]
        until(lambda: answers(f"http://127.0.0.1:{port}/"))

    def teardown(self) -> None:
        self.container.remove(force=True)
        self.network.remove()


def web_spec() -> dict:
    """Image, command, entrypoint, env, user and workdir of dynosim's web.1 (one warm-up run)."""
    side = Fixture()
    side.setup()
    try:
        (web,) = [d for d in dynos.listing(NAME) if d.name == "web.1"]
        config = docker_client.client().containers.get(web.container_id).attrs["Config"]
        return {
            "image": config["Image"],
            "command": config["Cmd"],
            "entrypoint": config["Entrypoint"],
            "env": config["Env"],
            "user": config["User"],
            "workdir": config["WorkingDir"],
        }
    finally:
        side.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sides = {"fixture": Fixture(), "up_process": UpProcess(), "docker_sdk": DockerSdk(web_spec())}
    setup: dict[str, list[float]] = {name: [] for name in sides}
    teardown: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_number in range(args.rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            side = sides[name]
            side.started = time.perf_counter()  # UpProcess restarts it after its untimed prep
            side.setup()
            setup[name].append(time.perf_counter() - side.started)
            started = time.perf_counter()
            sides[name].teardown()
            teardown[name].append(time.perf_counter() - started)
        timings = ", ".join(f"{k}={v[-1]:.2f}s" for k, v in setup.items())
        print(f"round {round_number + 1}: {timings}", flush=True)
    medians = {k: statistics.median(v) for k, v in setup.items()}
    result = {
        "rounds": args.rounds,
        "setup_medians_s": {k: round(v, 3) for k, v in medians.items()},
        "teardown_medians_s": {k: round(statistics.median(v), 3) for k, v in teardown.items()},
        "ratio_fixture_vs_docker_sdk": round(medians["fixture"] / medians["docker_sdk"], 3),
        "ratio_up_process_vs_docker_sdk": round(medians["up_process"] / medians["docker_sdk"], 3),
        "setup_samples_s": {k: [round(x, 3) for x in v] for k, v in setup.items()},
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
