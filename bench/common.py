"""Helpers shared by the benchmarks."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import requests


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
