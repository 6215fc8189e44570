"""Helpers shared by the benchmarks."""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from dynosim import build, runtime


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def until(check: Callable[[], bool], timeout: float = 600) -> None:
    """Poll `check` every 20 ms (HTTP errors count as not yet) until it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.02)
    raise TimeoutError(check)


def report(result: dict, path: Path | None) -> None:
    """Print the result as JSON, and write it to `path` when one is given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        path.write_text(text)


def compose_context(
    app_dir: Path, target: Path, config: dict[str, str] | None = None
) -> dict[str, str]:
    """Write the build context dynosim would send (rendered Dockerfile included) into `target`;
    the build args it would pass (the host's pip settings, and `config` where the build reads
    config vars), for a peer to build the very same thing."""
    selection = runtime.select_stack(app_dir)
    plan = build.plan(
        "bench",
        app_dir,
        build_image=selection.stack.build_image,
        run_image=selection.stack.run_image,
        config=config,
    )
    with tarfile.open(fileobj=io.BytesIO(plan.context)) as tar:
        tar.extractall(target, filter="tar")
    # The values now reach the build as BuildKit secrets (RUN --mount=type=secret), which the
    # rendered Dockerfile needs a BuildKit peer for; docker-compose 1.x builds classically.
    return {name: value for values in plan.secrets.values() for name, value in values.items()}
