"""Benchmark the deploy loop, side by side in one run: a code-only change to the example app
until the new code answers, through

(a) `dynosim deploy` to a running `dynosim up`;
(b) `git commit -a` + `git push dynosim main` to the same running `up`;
(c) `docker-compose up --build -d` of the same Dockerfile and context (the one dynosim renders)
    with web and worker running: the peer;
(d) the floor: `docker start` of a stopped container of the same image until its first 200 (as
    bench_wake's floor), what any approach that boots a new dyno pays.

The clock starts when the command starts and stops at the first answer with the new code
(polled every 20 ms through the router, or on compose's published port). Without preboot
(Heroku's default, `--preboot` to enable it) a deploy stops the old web dyno, then starts the
new one, as compose recreates its containers. Rounds rotate which side goes first. Prints
medians and the ratios vs compose (goal <= 0.7) and the gaps to the floor (goal <= 0.3 s).
Usage: python bench/bench_deploy_loop.py [--rounds 5] [--preboot] [--json results.json]
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
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_wake import raw_cycles  # noqa: E402
from common import compose_context, dyno_env, free_port, peer_build, report, until  # noqa: E402

from dynosim import buildkit  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask_app"
APP = "loopbench"
PROBE = '\n\n@app.route("/__bench")\ndef __bench():\n    return "{marker}"\n'
COMPOSE_IMAGE = "dynosim-bench-loop:latest"
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}


def new_marker(app_py: Path, original: str) -> str:
    marker = uuid.uuid4().hex
    app_py.write_text(original + PROBE.format(marker=marker))
    return marker


def serving(url: str, marker: str) -> bool:
    try:
        response = requests.get(url, timeout=30)
    except requests.RequestException:
        return False
    return response.status_code == 200 and response.text == marker


def timed(argvs: list[list[str]], url: str, marker: str, cwd: Path, env: dict) -> float:
    """Seconds from starting the commands (one after the other, the last one in the
    background) until `url` serves `marker` (polled every 20 ms); the commands must succeed."""
    start = time.perf_counter()
    for argv in argvs[:-1]:
        subprocess.run(argv, cwd=cwd, env=env, check=True, **QUIET)
    last = subprocess.Popen(argvs[-1], cwd=cwd, env=env, **QUIET)
    while not serving(url, marker):
        if last.poll():
            sys.exit(f"{' '.join(argvs[-1])} exited {last.returncode}: "
                     f"{last.communicate()[1].decode()[-2000:]}")  # fmt: skip
        if time.perf_counter() - start > 300:
            sys.exit(f"{url} never served the change")
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    _, stderr = last.communicate(timeout=300)
    if last.returncode:
        sys.exit(f"{' '.join(argvs[-1])} exited {last.returncode}: {stderr.decode()[-2000:]}")
    return seconds


class Dynosim:
    """A running `dynosim up` of the app (a git repository with the dynosim remote)."""

    def __init__(self, app_dir: Path, preboot: bool) -> None:
        self.dir, self.port = app_dir, free_port()
        self.url = f"http://127.0.0.1:{self.port}/__bench"
        self.env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@e.x",
                    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@e.x"}  # fmt: skip
        self.original = (app_dir / "app.py").read_text()
        for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                     ["git", "commit", "-qm", "start"]):  # fmt: skip
            subprocess.run(argv, cwd=app_dir, env=self.env, check=True, **QUIET)
        self.dynosim("git:remote", "-a", APP)
        if preboot:  # the web dynos are Standard-1X, dynosim's default size, as on Heroku
            self.dynosim("features:enable", "preboot", "-a", APP)
        command = [sys.executable, "-m", "dynosim", "up", str(app_dir), "-a", APP]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port), "--grace", "5", "--https-port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        root = f"http://127.0.0.1:{self.port}/"
        until(lambda: requests.get(root, timeout=30).status_code == 200)
        self.deploy(new_marker(app_dir / "app.py", self.original))  # warms the build cache

    def dynosim(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "dynosim", *args], cwd=self.dir, env=self.env,
                       check=True, **QUIET)  # fmt: skip

    def deploy(self, marker: str) -> float:
        argv = [sys.executable, "-m", "dynosim", "deploy", str(self.dir), "-a", APP]
        return timed([argv], self.url, marker, self.dir, self.env)

    def push(self, marker: str) -> float:
        commit = ["git", "commit", "-qam", f"change {marker[:7]}"]
        push = ["git", "push", "-q", "dynosim", "main"]
        return timed([commit, push], self.url, marker, self.dir, self.env)

    def image(self) -> str:
        from dynosim.store import Store

        release = Store().current_release(APP)
        assert release is not None
        return release.image

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(120)


class Compose:
    """docker-compose (web + worker) on a BuildKit build of the context dynosim renders."""

    def __init__(self, project_dir: Path, secrets: dict[str, dict[str, str]]) -> None:
        self.dir, self.port, self.secrets = project_dir, free_port(), secrets
        self.url = f"http://127.0.0.1:{self.port}/__bench"
        # Compose 1.x builds with the docker CLI (BuildKit) when told to; it has no build
        # secrets, so with some (the host's pip settings) the build is the CLI's, then `up -d`
        # (through the client dynosim builds with: a newer one without buildx cannot)
        client = project_dir / "bin" / "docker"
        client.parent.mkdir()
        client.symlink_to(buildkit.command()[0][0])
        self.env = {**os.environ, "COMPOSE_DOCKER_CLI_BUILD": "1", "DOCKER_BUILDKIT": "1",
                    "PATH": f"{client.parent}:{os.environ['PATH']}"}  # fmt: skip
        web_env, worker_env = ({**dyno_env(), "DYNO": name} for name in ("web.1", "worker.1"))
        (project_dir / "docker-compose.yml").write_text(
            f"""version: "2.4"
services:
  web:
    build: .
    image: {COMPOSE_IMAGE}
    command: ["uwsgi uwsgi.ini"]
    environment: {web_env}
    ports: ["127.0.0.1:{self.port}:5000"]
    mem_limit: 512m
    stop_grace_period: 5s
  worker:
    image: {COMPOSE_IMAGE}
    depends_on: [web]
    command: ["python worker.py"]
    environment: {worker_env}
    mem_limit: 512m
    stop_grace_period: 5s
"""
        )
        self.app_py = project_dir / "app" / "app.py"
        self.original = self.app_py.read_text()
        self.up(new_marker(self.app_py, self.original))

    def compose(self, *args: str) -> list[str]:
        return ["docker-compose", "-p", "dynosimloopbench", *args]

    def up(self, marker: str) -> float:
        if not self.secrets:
            return timed([self.compose("up", "--build", "-d")], self.url, marker, self.dir,
                         self.env)  # fmt: skip
        start = time.perf_counter()
        peer_build(self.dir, COMPOSE_IMAGE, self.secrets)
        up = time.perf_counter() - start
        return up + timed([self.compose("up", "-d")], self.url, marker, self.dir, self.env)

    def down(self) -> None:
        subprocess.run(self.compose("down", "-t", "5"), cwd=self.dir, **QUIET)


def rounds(sides: dict[str, Callable[[str], float]], originals: dict, count: int) -> dict:
    timings: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for number in range(count):
        turn = names[number % len(names) :] + names[: number % len(names)]
        for name in turn:
            app_py, original = originals[name]
            timings[name].append(sides[name](new_marker(app_py, original)))
            time.sleep(2)  # the worker's replacement and the old dyno's removal settle
        print(f"round {number + 1}: " + ", ".join(f"{k}={v[-1]:.2f}s" for k, v in timings.items()),
              file=sys.stderr, flush=True)  # fmt: skip
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--preboot", action="store_true", help="enable preboot")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not shutil.which("docker-compose"):
        sys.exit("docker-compose is needed (scripts/setup installs Debian's)")
    work = Path(tempfile.mkdtemp(prefix="dynosim-loopbench-"))
    os.environ["DYNOSIM_HOME"] = str(work / "home")
    app_dir = work / APP
    shutil.copytree(EXAMPLE, app_dir, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    compose_dir = work / "compose"
    secrets = compose_context(app_dir, compose_dir)
    dynosim = compose = None
    try:
        dynosim = Dynosim(app_dir, args.preboot)
        compose = Compose(compose_dir, secrets)
        app_py = app_dir / "app.py"
        timings = rounds(
            {"deploy": dynosim.deploy, "git_push": dynosim.push, "compose": compose.up},
            {"deploy": (app_py, dynosim.original), "git_push": (app_py, dynosim.original),
             "compose": (compose.app_py, compose.original)},
            args.rounds,
        )  # fmt: skip
        compose.down()
        timings["floor"] = raw_cycles(COMPOSE_IMAGE, args.rounds)[0]
    finally:
        if compose:
            compose.down()
        if dynosim:
            dynosim.stop()
    medians = {k: statistics.median(v) for k, v in timings.items()}
    result = {
        "rounds": args.rounds,
        "preboot": args.preboot,
        "medians_s": {k: round(v, 3) for k, v in medians.items()},
        "ratio_vs_compose": {
            k: round(medians[k] / medians["compose"], 3) for k in ("deploy", "git_push")
        },
        "over_floor_s": {
            k: round(medians[k] - medians["floor"], 3) for k in ("deploy", "git_push", "compose")
        },
        "samples_s": {k: [round(x, 3) for x in v] for k, v in timings.items()},
    }
    report(result, args.json)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
