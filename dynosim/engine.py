"""The Docker engine connection, with one clear error when there is none."""

from __future__ import annotations

import functools

import docker
import docker.errors

from .errors import EngineError

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
