"""Helpers shared by the benchmarks."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from dynosim import build, buildkit, runtime
from dynosim.formation import DEFAULT_SIZE, size, web_concurrency


def dyno_env(size_name: str = DEFAULT_SIZE) -> dict[str, str]:
    """What Heroku's Python buildpack gives a dyno of that size (the example app's uWSGI reads
    WEB_CONCURRENCY): a peer's container gets the same, or it runs no workers."""
    chosen = size(size_name)
    concurrency = str(web_concurrency(chosen))
    return {"PORT": "5000", "WEB_CONCURRENCY": concurrency, "DYNO_RAM": str(chosen.memory_mb)}


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
) -> dict[str, dict[str, str]]:
    """Write the build context dynosim would send (rendered Dockerfile included) into `target`;
    the BuildKit secrets it would give the build (id -> variables: the host's pip settings, and
    `config` where the build reads config vars), for a peer to build the very same thing."""
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
    return {secret: dict(values) for secret, values in plan.secrets.items()}


def peer_build(
    context_dir: Path, tag: str, secrets: dict[str, dict[str, str]], *, nocache: bool = False
) -> None:
    """What a user of the docker CLI would run on that context: a BuildKit `docker build`
    of the folder with the same secrets (Compose 1.x builds classically, and the rendered
    Dockerfile's `RUN --mount=type=secret` needs BuildKit)."""
    prefix, extra_env = buildkit.command()
    with tempfile.TemporaryDirectory(prefix="dynosim-peer-") as folder:
        argv = [*prefix, "-q", "-t", tag, *(["--no-cache"] if nocache else [])]
        for secret, values in secrets.items():
            path = Path(folder, secret)
            path.write_text(buildkit.env_file(values))
            path.chmod(0o600)
            argv += ["--secret", f"id={secret},src={path}"]
        subprocess.run(
            [*argv, str(context_dir)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **dict(extra_env)},
        )
