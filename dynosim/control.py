"""The local control channel between CLI commands and a running `dynosim up`.

A unix socket per app under the state folder, owner-only (0600 in a 0700 folder): newline-
delimited JSON, one request per connection, one or more replies. Requests only nudge the
supervisor; desired state itself always goes through the store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DynosimError, RemoteError, UsageError, as_dynosim_error
from .store import data_dir

if TYPE_CHECKING:
    import asyncio

Handler = Callable[[dict], AsyncIterator[dict]]
log = logging.getLogger(__name__)


class NotRunning(DynosimError):
    """No `dynosim up` serves this app right now."""

    exit_code = 1


def socket_path(app: str) -> Path:
    return data_dir() / "run" / f"{app}.sock"


def _connect(path: Path) -> socket.socket | None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(path))
    except OSError:
        client.close()
        return None
    return client


def is_running(app: str) -> bool:
    client = _connect(socket_path(app))
    if client is None:
        return False
    client.close()
    return True


class Server:
    """Serves requests to a handler; refuses to start while another `up` serves the app."""

    def __init__(self, app: str, handler: Handler) -> None:
        self.app, self.handler, self.path = app, handler, socket_path(app)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        import asyncio  # here, not at the top: CLI commands import this module for the client

        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        if self.path.exists():
            if is_running(self.app):
                raise UsageError(f"dynosim up is already running for app {self.app}")
            self.path.unlink()  # left by an up that was killed
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        import asyncio

        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline() or b"{}")
            async for reply in self.handler(request):
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        except Exception as exc:  # every failure gets a reply, never a silently closed socket
            if not isinstance(exc, DynosimError):
                log.debug("control request failed", exc_info=True)
            error = as_dynosim_error(exc)
            reply = {
                "error": error.format_message(),
                "type": type(exc).__name__,
                "exit_code": error.exit_code,
            }
            with contextlib.suppress(ConnectionError):
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def request(app: str, payload: dict) -> Iterator[dict]:
    """Send one request to the app's running `up`; yield its replies. NotRunning if none."""
    client = _connect(socket_path(app))
    if client is None:
        raise NotRunning(f"no dynosim up is running for app {app}; start one with: dynosim up")
    with client, client.makefile("rwb") as stream:
        stream.write(json.dumps(payload).encode() + b"\n")
        stream.flush()
        for line in stream:
            reply = json.loads(line)
            if "error" in reply:
                raise RemoteError(
                    reply["error"], reply.get("type", "DynosimError"), reply.get("exit_code", 1)
                )
            yield reply


def call(app: str, payload: dict, key: str | None = None) -> Any:
    """A request with a single reply; with `key`, that field of it, which must be there."""
    for reply in request(app, payload):
        if key is None:
            return reply
        if key in reply:
            return reply[key]
        break
    raise RemoteError(
        f"dynosim up for app {app} gave no {key or 'reply'} to {payload.get('command')!r};"
        " see its terminal"
    )
