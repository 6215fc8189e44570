"""Heroku's router with HAProxy as the data plane: dynosim decides, HAProxy forwards.

`dynosim up --router haproxy`. The same :class:`~.engine.RouterEngine` as
:class:`~dynosim.router.Router` (what the supervisor calls, the ``heroku[router]`` lines it
logs), with the bytes of every request to an up dyno moved by an HAProxy child process
(Debian's 2.6) instead of Python: about half the CPU per request and half the added latency
(docs/benchmarks.md).

How the two share the work:

* HAProxy listens on the sockets ``up`` opened and routes to the web dynos, one server slot
  each, set through its admin socket as the supervisor adds and removes dynos. It does what
  is the same for every request: random choice among dynos below 50 requests in flight, a
  queue of 50 x dynos (H11 beyond it), connect retries on other dynos (H19/H21 when all
  fail), Heroku's headers, timeouts (H12, H15, H28), limits and rejection of malformed or
  smuggling requests (H26).
* With no dyno up it hands the request, over a private unix socket, to a Python
  :class:`Router` that holds it while dynos boot or wake and answers H10, H14, H20 and H82.
* Its log lines (one per request, tab-separated fields, on its stdout) are turned into
  Heroku's line here (:func:`heroku_line`); each also counts as a request for the idle clock.

Where it differs from the Python router (a table in docs/usage.md, "Router engines"), it is
HAProxy's way: a connection per request to dynos (``keepalive`` applies to the Python router
behind only), one timeout for a dyno's silence before and during its answer (30 s), no 5 s
quarantine of a refusing dyno, no H22, a request with both lengths read safely by its chunks
(HAProxy 2.6's parser deletes the Content-Length before any rule sees it), codings besides
chunked refused (422, H26), and a client's connection cut when its dyno dies while a body over
the 64 KB buffer streams in (H13 logged; smaller bodies arrive whole first and get 503 H13). The
tests that pin the Python router's way are marked ``python_router``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import fcntl
import io
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

from ..logs import gather
from . import Router, wire
from .engine import RouterError, WebStatus
from .wire import (
    BACKLOG_PER_DYNO,
    CONNECTIONS_PER_DYNO,
    IDLE_TIMEOUT,
    MAX_ATTEMPTS,
    MAX_HEADERS,
    SHUTDOWN_GRACE,
    Fields,
)

if TYPE_CHECKING:
    from ..certs import Issued

__all__ = ["HAProxyRouter", "config", "executable", "heroku_line"]

SLOTS = 256  # server slots: 100 web dynos, twice over while a release rolls out, and spare
PIPE_SIZE = 1 << 20  # bytes of HAProxy's log its pipe holds (Linux's default limit for users)
MARK = "dynosim"  # first field of HAProxy's log lines for requests
# Fields HAProxy logs per request, in order (see heroku_line).
LOG_FORMAT = "\\t".join(
    [
        MARK,
        "%ci",  # client address
        "%tsc",  # termination state: who ended the exchange, at which stage
        "%ST",  # status sent to the client
        "%B",  # bytes sent to the client
        "%TR",  # ms until the request head was complete
        "%Tw",  # ms waiting in the queue for a dyno
        "%Tc",  # ms connecting to the dyno
        "%Ta",  # ms from the request head to the end of the answer
        "%s",  # the server slot (dynoN) or <NOSRV>
        "%[ssl_fc]",  # 1 over HTTPS
        "%[var(txn.code)]",  # an H code decided by a rule (H11), maybe with the error
        "%[var(txn.rid)]",  # X-Request-Id as sent to the dyno
        "%[var(txn.fwd)]",  # the client's own X-Forwarded-For
        "%HM",
        "%[capture.req.hdr(0)]",  # Host
        "%HU",  # the request target, last: it is the field most likely to hold anything
    ]
)
# HAProxy's termination state (first two letters of %tsc) -> Heroku's code and, for a
# connection cut mid-answer, the side that caused it (Heroku's sock=).
CODES = {
    "sC": ("H19", ""),
    "SC": ("H21", ""),
    "sQ": ("H12", ""),
    "sH": ("H12", ""),
    "SH": ("H13", ""),
    "PH": ("H13", ""),
    "sD": ("H15", ""),
    "SD": ("H18", "backend"),
    "cD": ("H28", "client"),
    "cR": ("H28", "client"),  # Heroku (and the Python router) log every H28 as the client's
    "cH": ("H28", "client"),
    "CD": ("H27", "client"),
}


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


def heroku_line(line: str, labels: Callable[[str], str]) -> str | None:
    """Heroku's router line from one of HAProxy's (None for a line that is not a request's).

    `labels` names the dyno behind a server slot."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) != 17 or fields[0] != MARK:
        return None
    (_, client, state, status, nbytes, head_ms, queue_ms, connect_ms, active_ms,
     slot, tls, code, rid, fwd, method, host, path) = fields  # fmt: skip
    status_code = int(status) if status.lstrip("-").isdigit() else 0
    code, _, error = ("" if code == "-" else code).partition(" ")
    sock = ""
    if not code:
        code, sock = CODES.get(state[:2], ("", ""))
        if state[:2] == "SD" and status_code <= 0:  # the dyno went while the body streamed in
            code, sock = "H13", ""  # Heroku: closed before its answer began (not H18)
        if not code and state[:1] == "C":
            code = "H27"  # the client went away before its answer began
        elif not code and state[:1] == "P" and 400 <= status_code < 500:
            code = "H26"  # its parser refused the request: 400, or 422 for a coding it lacks
        elif not code and state[:1] in ("K", "D", "I", "R"):  # killed, server down, internal
            code = "H99"
    bad = method == "<BADREQ>"
    info = Fields(
        "" if bad else method,
        "" if bad else path.replace('"', "%22"),
        "" if host == "-" else host,
        rid if rid and rid != "-" else wire.request_id([]),
        ", ".join(part for part in (fwd if fwd != "-" else "", client) if part),
        "https" if tls == "1" else "http",
    )
    head, queued, connecting, active = (
        _seconds(value) for value in (head_ms, queue_ms, connect_ms, active_ms)
    )
    service = None
    if active is not None and connecting is not None:
        service = max(0.0, active - (head or 0.0) - (queued or 0.0) - connecting)
    elif active is not None and state[1:2] == "C":  # every attempt to connect failed
        connecting = max(0.0, active - (head or 0.0) - (queued or 0.0))
    dyno = labels(slot) if slot != "<NOSRV>" else ""
    if status_code == 405 and method == "CONNECT":
        return wire.log_line(info, "error", status=405, desc="Method not supported")
    if not code:
        return wire.log_line(info, "info", "", dyno, connecting, service, status_code, int(nbytes))
    at = "warning" if sock == "client" else "error"
    if code != "H26":  # Heroku logs H26 with the status it answered (400, 505)
        status_code = wire.ERROR_STATUS.get(code, 503)
    return wire.log_line(
        info, at, code, dyno, connecting, service, status_code, None,
        sock=sock, extra=f'error="{error}"' if error else "",
    )  # fmt: skip


def _seconds(ms: str) -> float | None:
    return int(ms) / 1000 if ms.isdigit() else None


class HAProxyRouter:
    """The router for one app, a :class:`~.engine.RouterEngine` with HAProxy moving the bytes
    (see the module docstring)."""

    engine = "haproxy"

    def __init__(
        self,
        app: str,
        log: Callable[[str], None],
        *,
        host: str = "127.0.0.1",
        port: int = 5000,
        hold_timeout: float = 75.0,
        connect_timeout: float = 5.0,
        request_timeout: float = 30.0,
        idle_timeout: float = IDLE_TIMEOUT,
        https_port: int | None = None,
        certificate: Issued | None = None,
        keepalive: bool = True,
    ) -> None:
        """As :class:`Router`, with the certificate's files instead of an SSL context."""
        self.app = app
        self._log = log
        self._host = host
        self._port = port
        self._https_port = https_port
        self._certificate = certificate
        self._options = {
            "connect_timeout": connect_timeout,
            "request_timeout": request_timeout,
            "idle_timeout": idle_timeout,
            "hold_timeout": hold_timeout,
        }
        self._fallback: Router = Router(
            app,
            log,
            host=host,
            hold_timeout=hold_timeout,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            idle_timeout=idle_timeout,
            keepalive=keepalive,
            fronted=True,
        )
        # HAProxy takes the requests waiting in the backlog as soon as it runs, before the
        # supervisor has said what the dynos are doing: those wait for it (as STARTING)
        self._fallback.set_status(WebStatus.STARTING)
        self._directory: Path | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Future[None]] = []
        self._sockets: list[socket.socket] = []  # the listeners HAProxy inherits
        self._owned: list[socket.socket] = []  # those of them this router opened
        self._binary = ""
        self._watcher: asyncio.Task[None] | None = None
        self._errors: collections.deque[str] = collections.deque(maxlen=20)
        self._slots: dict[str, int] = {}  # backend key -> server slot
        self._free = collections.deque(range(1, SLOTS + 1))  # oldest-freed first
        self._labels: dict[str, str] = {}  # "dynoN" -> dyno name, kept after removal for logs

    # the supervisor's idle clock and wake-up call, shared with the router behind
    @property
    def on_request(self) -> Callable[[], None]:
        return self._fallback.on_request

    @on_request.setter
    def on_request(self, callback: Callable[[], None]) -> None:
        self._fallback.on_request = callback

    @property
    def on_wake(self) -> Callable[[], None]:
        return self._fallback.on_wake

    @on_wake.setter
    def on_wake(self, callback: Callable[[], None]) -> None:
        self._fallback.on_wake = callback

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(
        self, sock: socket.socket | None = None, tls_sock: socket.socket | None = None
    ) -> None:
        """Start HAProxy on `sock` (and `tls_sock`), or on host:port (and https_port).
        RouterError if HAProxy is missing, an address cannot be bound, or HAProxy fails."""
        if self._process is not None:
            return
        binary = executable()
        if binary is None:
            raise RouterError(
                "haproxy is not installed (apt-get install haproxy), "
                "or use the Python router: --router python"
            )
        from ..listeners import listen

        try:
            if sock is None:
                sock = listen(self._host, self._port)
                self._owned.append(sock)
            if tls_sock is None and self._certificate is not None:
                tls_sock = listen(self._host, self._https_port or 0, "--https-port")
                self._owned.append(tls_sock)
        except Exception as exc:
            await self.close()
            raise RouterError(str(exc)) from None
        self._port = sock.getsockname()[1]
        self._https_port = tls_sock.getsockname()[1] if tls_sock is not None else None
        self._directory = directory = Path(tempfile.mkdtemp(prefix=f"dynosim-{self.app}-"))
        self._write_files(directory, sock, tls_sock)
        fallback = socket.socket(socket.AF_UNIX)
        fallback.bind(str(directory / "fallback.sock"))
        fallback.listen(1024)
        self._fallback.set_ports(self._port, self._https_port)
        await self._fallback.start(sock=fallback)
        self._sockets = [sock] + ([tls_sock] if tls_sock is not None else [])
        self._binary = binary
        try:
            await self._spawn()
        except RouterError:
            await self.close()
            raise
        self._watcher = asyncio.ensure_future(self._watch())

    async def _spawn(self) -> None:
        """Run HAProxy on the listening sockets and wait until its admin socket answers."""
        assert self._directory is not None
        log_out, log_in = os.pipe()  # HAProxy's log, read as lines gather (see _Log)
        with contextlib.suppress(OSError):  # room for the lines of 20 ms at ~300k requests/s
            fcntl.fcntl(log_in, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        try:
            process = self._process = await asyncio.create_subprocess_exec(
                self._binary, "-db", "-f", str(self._directory / "haproxy.cfg"),
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
        log = _Log(self._on_log)
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
                self._admin("show info")
                return
            await asyncio.sleep(0.02)

    async def _watch(self) -> None:
        """Start HAProxy again should it die (its servers set again), at most once a second;
        meanwhile clients wait in the listen backlog."""
        while self._process is not None:
            process = self._process
            await process.wait()
            if self._process is not process:  # closing
                return
            await asyncio.sleep(1)
            with contextlib.suppress(RouterError):
                await self._spawn()
                for key, (host, port) in self._fallback.backends.items():
                    self._set_server(self._slots[key], host, port)

    def _write_files(
        self, directory: Path, sock: socket.socket, tls_sock: socket.socket | None
    ) -> None:
        """haproxy.cfg, the error pages and the certificate, readable by the owner only."""
        page = wire.ERROR_PAGE
        files = {
            "haproxy.cfg": config(
                directory,
                http_fd=sock.fileno(),
                https_fd=tls_sock.fileno() if tls_sock is not None else None,
                **self._options,  # type: ignore[arg-type]
            ).encode(),
            "page.html": page,
            "400.http": wire.error_response(400, close=True),
            "408.http": wire.error_response(408, close=True),
            "503.http": wire.error_response(503, close=True),
        }
        if tls_sock is not None and self._certificate is not None:
            files["site.pem"] = (
                self._certificate.cert.read_bytes() + self._certificate.key.read_bytes()
            )
        for name, data in files.items():
            path = directory / name
            path.touch(mode=0o600)
            path.write_bytes(data)

    async def close(self) -> None:
        """Stop listening, let requests in flight finish (5 s at most), stop HAProxy."""
        process, self._process = self._process, None
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
        await self._fallback.close()
        for sock in self._owned:
            sock.close()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    @property
    def url(self) -> str:
        return wire.origin(self._host, self._port)

    @property
    def https_url(self) -> str | None:
        if self._https_port is None:
            return None
        return wire.origin(self._host, self._https_port, "https")

    # -- what the supervisor tells -----------------------------------------------------------

    def add_backend(self, key: str, host: str, port: int, name: str | None = None) -> None:
        """A web dyno is up: HAProxy routes to it from now on (the fallback too, for requests
        it is holding)."""
        self._fallback.add_backend(key, host, port, name)
        slot = self._slots.get(key) or self._free.popleft()
        self._slots[key] = slot
        self._labels[f"dyno{slot}"] = name or key
        self._set_server(slot, host, port)

    def _set_server(self, slot: int, host: str, port: int) -> None:
        address = f"[{host}]" if ":" in host else host
        self._command(
            f"set server web/dyno{slot} addr {address} port {port}",
            f"set server web/dyno{slot} state ready",
        )

    def remove_backend(self, key: str) -> None:
        """A web dyno takes no new requests; those it serves finish."""
        self._fallback.remove_backend(key)
        slot = self._slots.pop(key, None)
        if slot is not None:
            self._command(f"set server web/dyno{slot} state maint")
            self._free.append(slot)

    async def drain(self, key: str, timeout: float) -> None:
        """Stop routing to a backend and wait (at most `timeout` s) until it is idle."""
        slot = self._slots.get(key)
        deadline = time.monotonic() + timeout
        self.remove_backend(key)  # neither HAProxy nor the router behind routes to it now
        await self._fallback.drain(key, timeout)
        while slot is not None and time.monotonic() < deadline and await self._in_flight(slot):
            await asyncio.sleep(0.05)

    def set_status(self, status: WebStatus) -> None:
        self._fallback.set_status(status)

    def fail_held(self, code: str) -> None:
        self._fallback.fail_held(code)

    @property
    def backends(self) -> dict[str, tuple[str, int]]:
        return self._fallback.backends

    @property
    def idle_connections(self) -> int:
        """Connections to dynos HAProxy keeps open for the next request."""
        rows = self._admin("show servers conn web").splitlines()[1:]
        return sum(int(row.split()[12]) for row in rows if row.strip())  # idle_cur

    async def quiet(self) -> None:
        """Wait until every request received so far is answered (held ones included)."""
        while await self._in_flight():
            await asyncio.sleep(0.05)
        await self._fallback.quiet()

    # -- HAProxy's admin socket and log ------------------------------------------------------

    def _command(self, *commands: str) -> None:
        """Change HAProxy's servers now, so that the next request sees the change (a blocking
        call: HAProxy answers in well under a millisecond, and dynos change rarely). Once
        HAProxy has stopped there is nothing left to change."""
        if self._process is None or self._process.returncode is not None:
            return
        try:
            answer = self._admin("; ".join(commands))
        except OSError as exc:
            answer = f"admin socket: {exc}"
        self._errors.extend(filter(None, map(str.strip, answer.splitlines())))

    async def _in_flight(self, server: int | None = None) -> int:
        """Requests the dyno in a server slot (or all of them) is serving or has queued."""
        what = f"4 {server}" if server is not None else "2 -1"
        answer = await asyncio.to_thread(self._admin, f"show stat web {what}")
        rows = list(csv.DictReader(io.StringIO(answer.lstrip("# "))))
        return sum(int(row["scur"] or 0) + int(row["qcur"] or 0) for row in rows)

    def _admin(self, command: str) -> str:
        """One command on HAProxy's admin socket, and its answer."""
        assert self._directory is not None
        with socket.socket(socket.AF_UNIX) as admin:
            admin.settimeout(5)
            admin.connect(str(self._directory / "admin.sock"))
            admin.sendall(command.encode() + b"\n")
            answer = b"".join(iter(lambda: admin.recv(65536), b""))
        return answer.decode(errors="replace")

    def _on_log(self, lines: list[bytes]) -> None:
        """HAProxy's request lines as Heroku's; they count as requests for the idle clock."""
        for raw in lines:
            message = heroku_line(raw.decode("utf-8", "replace"), self._label)
            if message is not None:
                self._log(message)
        self._fallback.on_request()

    def _label(self, slot: str) -> str:
        return self._labels.get(slot, slot)

    async def _read_errors(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        async for raw in stream:
            self._errors.append(raw.decode("utf-8", "replace").strip())


class _Log(asyncio.Protocol):
    """HAProxy's log pipe, handed on a batch of whole lines at a time: under load it is read
    once per :data:`~dynosim.logs.BATCH` (one wake-up for the lines of many requests)."""

    def __init__(self, lines: Callable[[list[bytes]], None]) -> None:
        self.lines = lines
        self.rest = b""  # the start of a line whose newline has not arrived
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        *lines, self.rest = (self.rest + data).split(b"\n")
        if lines:
            self.lines(lines)
        gather(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


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
