"""The Docker engine connection, with one clear error when there is none, and the engine's
refusals as EngineError."""

from __future__ import annotations

import functools
import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..errors import EngineError, as_dynosim_error, is_engine_error

if TYPE_CHECKING:
    import docker

P = ParamSpec("P")
T = TypeVar("T")

#: Every object dynosim creates carries these labels, so it can find (and clean) its own.
LABEL = "dynosim"
LABEL_APP = "dynosim.app"


def client() -> docker.DockerClient:
    """A connected client to the engine DOCKER_HOST (and friends) name now, or EngineError:
    one per engine, kept (`App.start(engine="swarm")` points DOCKER_HOST elsewhere for a
    while)."""
    env = os.environ
    return connected(
        env.get("DOCKER_HOST", ""),
        env.get("DOCKER_TLS_VERIFY", ""),
        env.get("DOCKER_CERT_PATH", ""),
    )


@functools.cache
def connected(host: str, tls_verify: str, cert_path: str) -> docker.DockerClient:
    """`client` for those settings (the cache's key; `from_env` reads them). The SDK is
    imported here, on first use: it takes 0.1 s, which a deploy spends while BuildKit runs."""
    import docker

    try:
        engine = docker.from_env(timeout=120, max_pool_size=64)
        engine.ping()
    except docker.errors.DockerException as exc:
        raise _unreachable(str(exc)) from None
    return engine


def _unreachable(reason: str) -> EngineError:
    return EngineError(
        f"no Docker engine reachable ({reason.split(chr(10))[0][:200]}); run scripts/setup"
        " (see README.md) or start one and set DOCKER_HOST"
    )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


NO_PLAIN_CONNECTION = object()


def inspect(kind: str, name: str, timeout: float = 30) -> dict[str, Any] | object | None:
    """`GET /{kind}/{name}/json` (kind: images, networks, ...) over a plain connection, without
    the SDK: the object, or None when the engine has none; NO_PLAIN_CONNECTION when the engine
    is reached over TLS or SSH (then only the SDK can ask). EngineError as :func:`client`'s."""
    address = socket_address()
    if address is None:
        return NO_PLAIN_CONNECTION
    if isinstance(address, str):
        connection: http.client.HTTPConnection = _UnixConnection(address, timeout)
    else:
        connection = http.client.HTTPConnection(*address, timeout=timeout)
    path = f"/{kind}/{urllib.parse.quote(name, safe='/:')}/json"
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except OSError as exc:
        raise _unreachable(str(exc)) from None
    finally:
        connection.close()
    if response.status == 404:
        return None
    if response.status != 200:
        message = json.loads(body or b"{}").get("message") if body.startswith(b"{") else body
        raise EngineError(f"Docker engine: {str(message or response.reason)[:200]}")
    return json.loads(body)


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
