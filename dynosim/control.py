"""The local control channel between CLI commands and a running `dynosim up`: one server,
one client (`ControlClient`), the typed commands of `control_commands` between them.

A unix socket per app under the state folder, owner-only (0600 in a 0700 folder): newline-
delimited JSON, one request per connection, one or more replies. Requests only nudge the
dyno manager; desired state itself always goes through the store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import control_commands as commands
from .control_commands import Command, DynoRow, Reply
from .errors import DynosimError, RemoteError, UsageError, as_dynosim_error
from .formation import DEFAULT_SIZE
from .logs import LogLine
from .store import data_dir

if TYPE_CHECKING:
    import asyncio

#: Answers one command: the replies to send back, in order (an exception becomes an error reply).
Handler = Callable[[Command], AsyncIterator[Reply]]
R = TypeVar("R", bound=Reply)
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
    """Serves commands to a handler; refuses to start while another `up` serves the app."""

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
            command = commands.decode(json.loads(await reader.readline() or b"{}"))
            async for reply in self.handler(command):
                writer.write(json.dumps(reply.to_wire()).encode() + b"\n")
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


def _request(app: str, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
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


class ControlClient:
    """The commands a running `up` of `app` answers, one method each. NotRunning without one;
    a failure inside it raises as RemoteError with the failure's type and exit code."""

    def __init__(self, app: str) -> None:
        self.app = app

    def ps(self) -> list[DynoRow]:
        """The dyno manager's dynos (formation and one-offs it runs)."""
        return self._call(commands.Ps(), commands.Dynos).rows

    def reconcile(self) -> list[DynoRow]:
        """Apply the store's formation now; the dynos after."""
        return self._call(commands.Reconcile(), commands.Dynos).rows

    def deploy(self, version: int, progress: Callable[[str], None]) -> None:
        """Roll pending releases out up to vN, relaying the roll-out's progress lines."""
        replies = (commands.Progress, commands.Released)
        for reply in self._replies(commands.Deploy(version), replies):
            if isinstance(reply, commands.Progress):
                progress(reply.line)

    def build(self, request: commands.Build, progress: Callable[[str], None]) -> tuple[int, bool]:
        """Have `up` build a folder and roll the release out, relaying the build's and the
        roll-out's progress lines; (the release's version, whether it is new)."""
        replies = (commands.Progress, commands.Built)
        for reply in self._replies(request, replies):
            if isinstance(reply, commands.Progress):
                progress(reply.line)
            else:
                return reply.outcome["version"], reply.outcome["new"]
        raise RemoteError(f"dynosim up for app {self.app} ended the build early; see its terminal")

    def sleep(self) -> bool:
        """`ps:sleep`; whether the app sleeps now."""
        return self._call(commands.Sleep(), commands.Asleep).asleep

    def wake(self) -> bool:
        """`ps:wake`, once the dynos are up; whether the app still sleeps."""
        return self._call(commands.Wake(), commands.Asleep).asleep

    def restart(self, target: str | None = None) -> list[str]:
        """`ps:restart` all formation dynos, a type or a dyno; the restarted names."""
        return self._call(commands.Restart(target), commands.Restarted).names

    def stop(self, dyno: str) -> None:
        """`ps:stop` a dyno or a type."""
        self._call(commands.Stop(dyno), commands.Stopped)

    def run_detached(
        self, command_line: str, env: Mapping[str, str] | None = None, size: str = DEFAULT_SIZE
    ) -> str:
        """A one-off dyno whose output goes to the log stream; its name (run.N)."""
        command = commands.RunDetached(command_line, dict(env or {}), size)
        return self._call(command, commands.Started).dyno

    def logs(
        self,
        num: int = 100,
        *,
        tail: bool = False,
        ps: str | None = None,
        source: str | None = None,
    ) -> Iterator[LogLine]:
        """The last `num` matching lines, then with `tail` new ones as they come."""
        command = commands.Logs(num, tail, ps, source)
        for reply in self._replies(command, (commands.LogEntry,)):
            yield reply.line

    def dashboard_url(self) -> str | None:
        """The running `up`'s dashboard URL, token included (None: it serves none)."""
        return self._call(commands.Dashboard(), commands.DashboardUrl).url

    def _replies(self, command: Command, kinds: tuple[type[R], ...]) -> Iterator[R]:
        """The command's replies of these kinds (others are skipped)."""
        for data in _request(self.app, commands.encode(command)):
            reply = commands.decode_reply(data, kinds)
            if reply is not None:
                yield reply

    def _call(self, command: Command, kind: type[R]) -> R:
        """A command with a single reply, which must be of `kind`."""
        for data in _request(self.app, commands.encode(command)):
            reply = commands.decode_reply(data, (kind,))
            if reply is not None:
                return reply
            break
        raise RemoteError(
            f"dynosim up for app {self.app} gave no {kind.key} to {command.name!r};"
            " see its terminal"
        )
