"""The Docker engine connection, with one clear error when there is none, and the engine's
refusals as EngineError."""

from __future__ import annotations

import functools
import os
import urllib.parse
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import docker
import docker.errors

from ..errors import EngineError, as_dynosim_error, is_engine_error

P = ParamSpec("P")
T = TypeVar("T")

#: Every object dynosim creates carries these labels, so it can find (and clean) its own.
LABEL = "dynosim"
LABEL_APP = "dynosim.app"


@functools.cache
def client() -> docker.DockerClient:
    """A connected client (DOCKER_HOST and friends honoured), or EngineError."""
    try:
        engine = docker.from_env(timeout=120, max_pool_size=64)
        engine.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).split("\n")[0][:200]
        raise EngineError(
            f"no Docker engine reachable ({reason}); run scripts/setup (see README.md)"
            " or start one and set DOCKER_HOST"
        ) from None
    return engine


def engine_errors(call: Callable[P, T]) -> Callable[P, T]:
    """Docker's exceptions (and requests' under them) as EngineError, in the words the CLI
    has always shown for them (`Docker engine: <the engine's explanation, one line>`)."""

    @functools.wraps(call)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if not is_engine_error(exc):
                raise
            raise as_dynosim_error(exc) from exc

    return wrapped


def socket_address() -> str | tuple[str, int] | None:
    """Where the engine listens, for a plain asyncio connection: a Unix socket path, or (host,
    port) of an unencrypted TCP endpoint; None for the rest (TLS, SSH), which only docker-py
    speaks."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    if host.startswith("tcp://") and not os.environ.get("DOCKER_TLS_VERIFY"):
        address = urllib.parse.urlsplit(host)
        if address.hostname and address.port:
            return address.hostname, address.port
    return None
