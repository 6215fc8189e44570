"""HAProxy as dynosim's child process: its configuration and files in a private directory, the
process on the listeners it inherits, its admin socket, started again should it die and
stopped gently."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import string
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .. import wire
from ..engine import RouterError
from ..wire import BACKLOG_PER_DYNO, CONNECTIONS_PER_DYNO, MAX_ATTEMPTS, MAX_HEADERS, SHUTDOWN_GRACE
from .log import LOG_FORMAT, LogPipe
from .slots import SLOTS

if TYPE_CHECKING:
    from ...certs import Issued

PIPE_SIZE = 1 << 20  # bytes of HAProxy's log its pipe holds (Linux's default limit for users)


def config(
    directory: Path,
    *,
    http_fd: int,
    https_fd: int | None,
    connect_timeout: float,
    request_timeout: float,
    idle_timeout: float,
    hold_timeout: float,
) -> str:
    """HAProxy's configuration: the listeners it inherited, the dyno slots, the fallback."""

    def ms(seconds: float) -> str:
        return f"{max(1, round(seconds * 1000))}ms"

    binds = [f"    bind fd@{http_fd}"]
    if https_fd is not None:
        binds.append(f"    bind fd@{https_fd} ssl crt {directory / 'site.pem'} alpn http/1.1")
    return string.Template((Path(__file__).parent / "haproxy.cfg").read_text()).substitute(
        directory=directory,
        binds="\n".join(binds),
        log_format=LOG_FORMAT,
        shutdown_grace=ms(SHUTDOWN_GRACE),
        max_headers=MAX_HEADERS,
        connect_timeout=ms(connect_timeout),
        request_timeout=ms(request_timeout),
        idle_timeout=ms(idle_timeout),
        fallback_timeout=ms(hold_timeout + request_timeout + 5),
        retries=MAX_ATTEMPTS - 1,
        backlog_per_dyno=BACKLOG_PER_DYNO,
        connections_per_dyno=CONNECTIONS_PER_DYNO,
        slots=SLOTS,
    )


class Child:
    """One app's HAProxy: its files, the running process, and what it says went wrong."""

    def __init__(self, on_log: Callable[[list[bytes]], None]) -> None:
        """`on_log` gets HAProxy's log lines, a batch at a time."""
        self.process: asyncio.subprocess.Process | None = None
        self.directory: Path | None = None
        self._on_log = on_log
        self._binary = ""
        self._sockets: list[socket.socket] = []  # the listeners HAProxy inherits
        self._readers: list[asyncio.Future[None]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._errors: collections.deque[str] = collections.deque(maxlen=20)

    def prepare(
        self,
        app: str,
        sock: socket.socket,
        tls_sock: socket.socket | None,
        certificate: Issued | None,
        options: dict[str, float],
    ) -> Path:
        """A private directory with haproxy.cfg for `sock` (and `tls_sock`), the error pages
        and the certificate, readable by the owner only."""
        self.directory = directory = Path(tempfile.mkdtemp(prefix=f"dynosim-{app}-"))
        page = wire.ERROR_PAGE
        files = {
            "haproxy.cfg": config(
                directory,
                http_fd=sock.fileno(),
                https_fd=tls_sock.fileno() if tls_sock is not None else None,
                **options,  # type: ignore[arg-type]
            ).encode(),
            "page.html": page,
            "400.http": wire.error_response(400, close=True),
            "408.http": wire.error_response(408, close=True),
            "503.http": wire.error_response(503, close=True),
        }
        if tls_sock is not None and certificate is not None:
            files["site.pem"] = certificate.cert.read_bytes() + certificate.key.read_bytes()
        for name, data in files.items():
            path = directory / name
            path.touch(mode=0o600)
            path.write_bytes(data)
        return directory

    async def start(
        self, binary: str, sockets: list[socket.socket], restarted: Callable[[], None]
    ) -> None:
        """Run `binary` on the listening `sockets` until :meth:`stop`, started again should it
        die (then `restarted` is called). RouterError if it fails to start."""
        self._sockets = sockets
        self._binary = binary
        await self._spawn()
        self._watcher = asyncio.ensure_future(self._watch(restarted))

    async def _spawn(self) -> None:
        """Run HAProxy on the listening sockets and wait until its admin socket answers."""
        assert self.directory is not None
        log_out, log_in = os.pipe()  # HAProxy's log, read as lines gather (see LogPipe)
        with contextlib.suppress(OSError):  # room for the lines of 20 ms at ~300k requests/s
            fcntl.fcntl(log_in, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        try:
            process = self.process = await asyncio.create_subprocess_exec(
                self._binary, "-db", "-f", str(self.directory / "haproxy.cfg"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_in,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=[sock.fileno() for sock in self._sockets],
                start_new_session=True,  # Ctrl-C reaches dynosim, which stops HAProxy gently
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        except BaseException:
            os.close(log_out)
            raise
        finally:
            os.close(log_in)
        log = LogPipe(self._on_log)
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: log,
            open(log_out, "rb", buffering=0),  # noqa: SIM115 (the transport closes it)
        )
        self._readers = [log.closed, asyncio.ensure_future(self._read_errors(process.stderr))]
        deadline = time.monotonic() + 10
        while True:
            if process.returncode is not None or time.monotonic() > deadline:
                await asyncio.sleep(0.05)  # let stderr arrive
                why = "; ".join(self._errors) or "it did not start within 10 s"
                raise RouterError(f"haproxy failed: {why}")
            with contextlib.suppress(OSError):
                self.admin("show info")
                return
            await asyncio.sleep(0.02)

    async def _watch(self, restarted: Callable[[], None]) -> None:
        """Start HAProxy again should it die, at most once a second; meanwhile clients wait in
        the listen backlog."""
        while self.process is not None:
            process = self.process
            await process.wait()
            if self.process is not process:  # closing
                return
            await asyncio.sleep(1)
            with contextlib.suppress(RouterError):
                await self._spawn()
                restarted()

    async def stop(self) -> None:
        """Let requests in flight finish (5 s at most), stop HAProxy, read its last lines."""
        process, self.process = self.process, None
        if self._watcher is not None:
            self._watcher.cancel()
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGUSR1)  # soft stop; hard-stop-after bounds it
            try:
                await asyncio.wait_for(process.wait(), SHUTDOWN_GRACE + 1)
            except TimeoutError:
                process.kill()
                await process.wait()
        for reader in self._readers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader, 1)

    def remove_files(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def command(self, *commands: str) -> None:
        """Change HAProxy's servers now, so that the next request sees the change (a blocking
        call: HAProxy answers in well under a millisecond, and dynos change rarely). Once
        HAProxy has stopped there is nothing left to change."""
        if self.process is None or self.process.returncode is not None:
            return
        try:
            answer = self.admin("; ".join(commands))
        except OSError as exc:
            answer = f"admin socket: {exc}"
        self._errors.extend(filter(None, map(str.strip, answer.splitlines())))

    def admin(self, command: str) -> str:
        """One command on HAProxy's admin socket, and its answer."""
        assert self.directory is not None
        with socket.socket(socket.AF_UNIX) as admin:
            admin.settimeout(5)
            admin.connect(str(self.directory / "admin.sock"))
            admin.sendall(command.encode() + b"\n")
            answer = b"".join(iter(lambda: admin.recv(65536), b""))
        return answer.decode(errors="replace")

    async def _read_errors(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        async for raw in stream:
            self._errors.append(raw.decode("utf-8", "replace").strip())


def executable() -> str | None:
    """HAProxy's path (Debian keeps it in /usr/sbin, often not on a user's PATH), or None."""
    found = shutil.which("haproxy")
    for candidate in (found, "/usr/sbin/haproxy", "/usr/local/sbin/haproxy"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _die_with_parent() -> None:
    """In the child: HAProxy gets SIGTERM when dynosim dies, so it is never orphaned."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
