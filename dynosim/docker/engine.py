"""The Docker adapter of the container-engine protocol: docker SDK calls in, dynosim's types
and EngineError out."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import docker.errors
from docker.models.containers import Container

from ..container_engine import Address, DynoSpec, Event, Exited, Line, Usage, WaitTimedOut
from ..errors import EngineError
from . import client, dynos, logs
from .usage import read_usage

T = TypeVar("T")


def _engine_errors(call: Callable[..., T]) -> Callable[..., T]:
    """Docker's exceptions (and requests' under them) as EngineError with the engine's
    one-line explanation."""

    @functools.wraps(call)
    def wrapped(*args: Any, **kwargs: Any) -> T:
        try:
            return call(*args, **kwargs)
        except (docker.errors.DockerException, OSError) as exc:
            raise EngineError(reason(exc)) from exc
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("requests", "urllib3"):
                raise EngineError(reason(exc)) from exc
            raise

    return wrapped


def reason(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).splitlines()[0][:300]


class _Events:
    """Docker's event stream for one app's dynos, as Events."""

    def __init__(self, app: str) -> None:
        self._stream = client.client().events(
            decode=True,
            filters={
                "type": "container",
                "event": ["die", "destroy"],
                "label": [f"{client.LABEL_APP}={app}"],
            },
        )

    def __iter__(self) -> Iterator[Event]:
        for raw in self._stream:
            attributes = raw.get("Actor", {}).get("Attributes", {})
            kind = raw.get("status")
            if kind in ("die", "destroy"):
                yield Event(raw.get("id", ""), kind, int(attributes.get("exitCode", -1)))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()


class DockerEngine:
    """Dynos as containers on one Docker engine (DOCKER_HOST and friends honoured)."""

    ensure_network = staticmethod(_engine_errors(dynos.ensure_network))
    remove_network = staticmethod(_engine_errors(dynos.remove_network))
    list = staticmethod(_engine_errors(dynos.listing))

    @_engine_errors
    def get(self, container_id: str) -> Container:
        return client.client().containers.get(container_id)

    @_engine_errors
    def create(self, spec: DynoSpec) -> Container:
        return dynos.create(
            spec.release,
            spec.process_type,
            spec.index,
            role=spec.role,
            command=spec.command,
            size_name=spec.size,
            env=spec.env,
            base_env=spec.base_env,
        )

    @_engine_errors
    def start(self, container: Container) -> None:
        container.start()

    def stop(self, container: Container, grace: float) -> int:
        with contextlib.suppress(docker.errors.DockerException):
            dynos.stop(container, grace)
        return self._exit_code(container)

    def kill(self, container: Container) -> int:
        with contextlib.suppress(docker.errors.DockerException):
            container.kill()
        return self._exit_code(container)

    @staticmethod
    def _exit_code(container: Container) -> int:
        try:
            return int(container.wait(timeout=10)["StatusCode"])
        except Exception:
            return -1

    def remove(self, container: Container | str) -> None:
        container_id = container if isinstance(container, str) else container.id
        with contextlib.suppress(docker.errors.DockerException):
            client.client().api.remove_container(container_id, force=True)

    @_engine_errors
    def pause(self, container: Container) -> None:
        container.pause()

    @_engine_errors
    def unpause(self, container: Container) -> None:
        container.unpause()

    def wait(self, container: Container, timeout: float) -> int:
        try:
            return int(container.wait(timeout=timeout)["StatusCode"])
        except Exception as exc:  # requests raises its own types for the timeout
            if _timed_out(exc):
                raise WaitTimedOut(f"no exit within {timeout:g} seconds") from None
            raise EngineError(reason(exc)) from exc

    def exited(self, container: Container) -> Exited | None:
        try:
            container.reload()
        except docker.errors.NotFound:
            return Exited(255)
        except docker.errors.DockerException as exc:
            raise EngineError(reason(exc)) from exc
        state = container.attrs.get("State", {})
        if container.status in ("running", "paused", "restarting"):
            return None
        return Exited(int(state.get("ExitCode", 255)), bool(state.get("OOMKilled")))

    @_engine_errors
    def address(self, container: Container, app: str) -> Address | None:
        ip = dynos.address(container, app)
        return Address(ip) if ip else None

    def node(self, container: Container) -> str | None:
        return None

    @_engine_errors
    def memory(self, container: Container) -> int | None:
        return dynos.memory(container)

    @_engine_errors
    def usage(self, container: Container) -> Usage | None:
        return read_usage(container)

    @_engine_errors
    def events(self, app: str) -> _Events:
        return _Events(app)

    async def accepts(self, address: Address) -> bool:
        return await accepts(address)

    async def follow(
        self,
        container: Container,
        since: dt.datetime | None,
        line: Line,
        printed: Callable[[], None],
    ) -> None:
        await logs.follow(container, since, line, printed)


async def accepts(address: Address) -> bool:
    """Whether a TCP connection to `address` is accepted within a second."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*address), 1.0)
    except (TimeoutError, OSError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _timed_out(exc: Exception) -> bool:
    """A `container.wait(timeout=…)` that ran out: requests' ReadTimeout, or the
    ConnectionError urllib3's read timeout becomes on a unix socket."""
    import requests

    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    return isinstance(exc, requests.exceptions.ConnectionError) and "timed out" in str(exc)
