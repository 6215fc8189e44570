"""Benchmark `dynosim up` against Docker Compose on the same app, in one run.

(a) code-only change -> the new code answering through the router, vs a BuildKit `docker build`
    of the equivalent Dockerfile (the one dynosim renders, same context and secrets) then
    `docker-compose up`;
(b) warm image -> first 200, vs `docker-compose up` -> first 200.

Both sides run the same formation (web + worker) from a stopped state each round; rounds
alternate which side goes first. Prints medians and the dynosim/compose ratios (goal <= 1.0).
Usage: python bench/bench_up.py [--rounds 5] [--json results.json]
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

from common import compose_context, dyno_env, free_port, peer_build, report, until  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask_app"
PROBE = '\n\n@app.route("/__bench")\ndef __bench():\n    return "{marker}"\n'


def wait_for(url: str, body: str | None) -> None:
    """Until `url` answers 200 (with `body`, when given)."""

    def answered() -> bool:
        response = requests.get(url, timeout=5)
        return response.status_code == 200 and (body is None or response.text == body)

    until(answered)


def set_marker(app_py: Path, original: str) -> str:
    marker = uuid.uuid4().hex
    app_py.write_text(original + PROBE.format(marker=marker))
    return marker


class Dynosim:
    def __init__(self, app_dir: Path) -> None:
        self.app_dir, self.port = app_dir, free_port()
        self.process: subprocess.Popen | None = None

    def up(self, marker: str | None) -> float:
        start = time.perf_counter()
        command = [sys.executable, "-m", "dynosim", "up", str(self.app_dir)]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port), "--grace", "5", "--https-port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        path = "/__bench" if marker else "/"
        wait_for(f"http://127.0.0.1:{self.port}{path}", marker)
        return time.perf_counter() - start

    def down(self) -> None:
        assert self.process
        self.process.send_signal(signal.SIGINT)
        self.process.wait(120)


class Compose:
    """docker-compose on the image a BuildKit `docker build` of the same context makes
    (Compose 1.x builds classically, and the rendered Dockerfile needs BuildKit's secrets)."""

    def __init__(self, project_dir: Path, secrets: dict[str, dict[str, str]]) -> None:
        self.dir, self.port, self.secrets = project_dir, free_port(), secrets
        web_env, worker_env = ({**dyno_env(), "DYNO": n} for n in ("web.1", "worker.1"))
        (project_dir / "docker-compose.yml").write_text(
            f"""version: "2.4"
services:
  web:
    image: dynosim-bench-compose:latest
    command: ["uwsgi uwsgi.ini"]
    environment: {web_env}
    ports: ["127.0.0.1:{self.port}:5000"]
    mem_limit: 512m
    stop_grace_period: 30s
  worker:
    image: dynosim-bench-compose:latest
    depends_on: [web]
    command: ["python worker.py"]
    environment: {worker_env}
    mem_limit: 512m
"""
        )

    def run(self, *args: str) -> None:
        subprocess.run(
            ["docker-compose", "-p", "dynosimbench", *args],
            cwd=self.dir,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def up(self, marker: str | None) -> float:
        start = time.perf_counter()
        if marker:
            peer_build(self.dir, "dynosim-bench-compose:latest", self.secrets)
        self.run("up", "-d")
        path = "/__bench" if marker else "/"
        wait_for(f"http://127.0.0.1:{self.port}{path}", marker)
        return time.perf_counter() - start

    def down(self) -> None:
        self.run("down", "-t", "5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not shutil.which("docker-compose"):
        sys.exit("docker-compose is needed (scripts/setup installs Debian's)")
    work = Path(tempfile.mkdtemp(prefix="dynosim-bench-"))
    os.environ.setdefault("DYNOSIM_HOME", str(work / "home"))
    app_dir = work / "app"
    shutil.copytree(EXAMPLE, app_dir)
    original = (app_dir / "app.py").read_text()
    compose_dir = work / "compose"
    secrets = compose_context(app_dir, compose_dir)
    compose_app_py = compose_dir / "app" / "app.py"
    dynosim, compose = Dynosim(app_dir), Compose(compose_dir, secrets)

    # warm both image caches once (untimed)
    set_marker(app_dir / "app.py", original)
    dynosim.up(None)
    dynosim.down()
    compose.up(set_marker(compose_app_py, original))
    compose.down()

    timings: dict[str, list[float]] = {
        k: [] for k in ("a_dynosim", "a_compose", "b_dynosim", "b_compose")
    }
    try:
        for round_number in range(args.rounds):
            sides = [("dynosim", dynosim, app_dir / "app.py"), ("compose", compose, compose_app_py)]
            if round_number % 2:
                sides.reverse()
            for name, side, app_py in sides:
                marker = set_marker(app_py, original)
                timings[f"a_{name}"].append(side.up(marker))  # code change -> answering
                side.down()
                timings[f"b_{name}"].append(side.up(None))  # warm image -> first 200
                side.down()
            print(
                f"round {round_number + 1}: "
                + ", ".join(f"{k}={v[-1]:.2f}s" for k, v in timings.items()),
                flush=True,
            )
    finally:
        subprocess.run(
            ["docker-compose", "-p", "dynosimbench", "down", "-t", "5"],
            cwd=compose_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    medians = {k: statistics.median(v) for k, v in timings.items()}
    result = {
        "rounds": args.rounds,
        "medians_s": {k: round(v, 3) for k, v in medians.items()},
        "ratio_a_code_change": round(medians["a_dynosim"] / medians["a_compose"], 3),
        "ratio_b_warm_start": round(medians["b_dynosim"] / medians["b_compose"], 3),
        "samples_s": {k: [round(x, 3) for x in v] for k, v in timings.items()},
    }
    report(result, args.json)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
