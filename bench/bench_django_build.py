"""Benchmark building a Django app against a BuildKit `docker build`, in one run.

The Django app of the integration tests (startproject shape, WhiteNoise manifest storage,
gunicorn; collectstatic runs in the build with the app's config vars). Each round times
(cold) `dynosim deploy --no-cache` against `docker build --no-cache` (BuildKit) of the very same
rendered context and secrets, and (code) a code-only change (one line of views.py) against
`docker build` of the same change, both with their layer caches. Rounds alternate which side
goes first. Prints medians and the dynosim/docker ratios (goal <= 1.0). (Compose 1.x, the peer
before builds went through BuildKit, cannot build `RUN --mount=type=secret`.)
Usage: python bench/bench_django_build.py [--rounds 3] [--json results.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import compose_context, peer_build, report  # noqa: E402

from dynosim.docker import client as docker_client  # noqa: E402
from dynosim.docker import dynos  # noqa: E402
from dynosim.store import Store  # noqa: E402

DJANGO = ROOT / "tests" / "integration" / "apps" / "django_app"
APP = "djangobench"
VIEWS = Path("mysite") / "views.py"
PEER = "dynosim-bench-djangopeer:latest"


def timed(command: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr.decode(errors='replace')}")
    return time.perf_counter() - start


def timed_code_change(
    views: Path, original: str, command: list[str], cwd: Path | None = None
) -> float:
    """Change one line of views.py, then time the build."""
    views.write_text(original + f"\n# {uuid.uuid4().hex}\n")
    return timed(command, cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dynosim-djbench-"))
    os.environ["DYNOSIM_HOME"] = str(work / "home")
    app_dir = work / APP
    shutil.copytree(DJANGO, app_dir)
    original = (app_dir / VIEWS).read_text()
    deploy = [sys.executable, "-m", "dynosim", "deploy", str(app_dir), "-a", APP]
    peer_dir = work / "peer"
    try:
        timed(deploy)  # the first release: its config vars (app.json) are what the build sees
        release = Store().latest_release(APP)
        assert release is not None
        secrets = compose_context(app_dir, peer_dir, release.config)

        def peer(nocache: bool = False) -> float:
            start = time.perf_counter()
            peer_build(peer_dir, PEER, secrets, nocache=nocache)
            return time.perf_counter() - start

        def peer_code_change() -> float:
            (peer_dir / "app" / VIEWS).write_text(original + f"\n# {uuid.uuid4().hex}\n")
            return peer()

        peer()  # warm the peer's cache too (untimed)

        sides: dict[str, dict[str, Callable[[], float]]] = {
            "dynosim": {
                "cold": lambda: timed([*deploy, "--no-cache"]),
                "code": lambda: timed_code_change(app_dir / VIEWS, original, deploy),
            },
            "docker": {"cold": lambda: peer(nocache=True), "code": peer_code_change},
        }
        timings: dict[str, list[float]] = {
            f"{kind}_{side}": [] for kind in ("cold", "code") for side in sides
        }
        for round_number in range(args.rounds):
            order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
            for kind in ("cold", "code"):
                for side in order:
                    timings[f"{kind}_{side}"].append(sides[side][kind]())
            print(
                f"round {round_number + 1}: "
                + ", ".join(f"{k}={v[-1]:.1f}s" for k, v in timings.items()),
                flush=True,
            )
    finally:
        client = docker_client.client()
        for image in client.images.list(f"dynosim/app-{APP}") + client.images.list(PEER):
            client.images.remove(image.id, force=True)
        dynos.remove_network(APP)
        shutil.rmtree(work, ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in timings.items()}
    report(
        {
            "rounds": args.rounds,
            "medians_s": {k: round(v, 2) for k, v in medians.items()},
            "ratio_cold": round(medians["cold_dynosim"] / medians["cold_docker"], 3),
            "ratio_code_change": round(medians["code_dynosim"] / medians["code_docker"], 3),
            "samples_s": {k: [round(x, 2) for x in v] for k, v in timings.items()},
        },
        args.json,
    )


if __name__ == "__main__":
    main()
