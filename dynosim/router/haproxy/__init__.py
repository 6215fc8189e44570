"""Heroku's router with HAProxy as the data plane: dynosim decides, HAProxy forwards.

`dynosim up --router haproxy`. The same :class:`~.engine.RouterEngine` as
:class:`~dynosim.router.Router` (what the dyno manager calls, the ``heroku[router]`` lines it
logs), with the bytes of every request to an up dyno moved by an HAProxy child process
(Debian's 2.6) instead of Python: about half the CPU per request and half the added latency
(docs/benchmarks.md).

How the two share the work:

* HAProxy listens on the sockets ``up`` opened and routes to the web dynos, one server slot
  each, set through its admin socket as the dyno manager adds and removes dynos. It does what
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
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import Router, wire
from ..engine import RouterError, WebStatus
from ..wire import CONNECT_TIMEOUT, HOLD_TIMEOUT, IDLE_TIMEOUT, REQUEST_TIMEOUT
from .child import Child, config, executable
from .log import heroku_line
from .slots import Slots

if TYPE_CHECKING:
    from ...certs import Issued

__all__ = ["HAProxyRouter", "config", "executable", "heroku_line"]


class HAProxyRouter:
    """The router for one app, a :class:`~.engine.RouterEngine` with HAProxy moving the bytes
    (see the module docstring): HAProxy run as a :class:`~.child.Child`, its server
    :class:`~.slots.Slots`, and the :class:`Router` behind it."""

    engine = "haproxy"

    def __init__(
        self,
        app: str,
        log: Callable[[str], None],
        *,
        host: str = "127.0.0.1",
        port: int = 5000,
        hold_timeout: float = HOLD_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
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
        # dyno manager has said what the dynos are doing: those wait for it (as STARTING)
        self._fallback.set_status(WebStatus.STARTING)
        self._child = Child(self._on_log)
        self._slots = Slots(self._child)
        self._owned: list[socket.socket] = []  # the listeners this router opened

    # the dyno manager's idle clock and wake-up call, shared with the router behind
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

    @property
    def _process(self) -> asyncio.subprocess.Process | None:
        """The HAProxy process running now."""
        return self._child.process

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(
        self, sock: socket.socket | None = None, tls_sock: socket.socket | None = None
    ) -> None:
        """Start HAProxy on `sock` (and `tls_sock`), or on host:port (and https_port).
        RouterError if HAProxy is missing, an address cannot be bound, or HAProxy fails."""
        if self._child.process is not None:
            return
        binary = executable()
        if binary is None:
            raise RouterError(
                "haproxy is not installed (apt-get install haproxy), "
                "or use the Python router: --router python"
            )
        from ...listeners import listen

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
        directory = self._child.prepare(self.app, sock, tls_sock, self._certificate, self._options)
        fallback = socket.socket(socket.AF_UNIX)
        fallback.bind(str(directory / "fallback.sock"))
        fallback.listen(1024)
        self._fallback.set_ports(self._port, self._https_port)
        await self._fallback.start(sock=fallback)
        sockets = [sock] + ([tls_sock] if tls_sock is not None else [])
        try:
            await self._child.start(binary, sockets, self._restarted)
        except RouterError:
            await self.close()
            raise

    def _restarted(self) -> None:
        """A new HAProxy runs: it gets the dynos' servers again."""
        self._slots.restore(self._fallback.backends)

    async def close(self) -> None:
        """Stop listening, let requests in flight finish (5 s at most), stop HAProxy."""
        await self._child.stop()
        await self._fallback.close()
        for sock in self._owned:
            sock.close()
        self._child.remove_files()

    @property
    def url(self) -> str:
        return wire.origin(self._host, self._port)

    @property
    def https_url(self) -> str | None:
        if self._https_port is None:
            return None
        return wire.origin(self._host, self._https_port, "https")

    # -- what the dyno manager tells ----------------------------------------------------------

    def add_backend(self, key: str, host: str, port: int, name: str | None = None) -> None:
        """A web dyno is up: HAProxy routes to it from now on (the fallback too, for requests
        it is holding)."""
        self._fallback.add_backend(key, host, port, name)
        self._slots.add(key, host, port, name)

    def remove_backend(self, key: str) -> None:
        """A web dyno takes no new requests; those it serves finish."""
        self._fallback.remove_backend(key)
        self._slots.remove(key)

    async def drain(self, key: str, timeout: float) -> None:
        """Stop routing to a backend and wait (at most `timeout` s) until it is idle."""
        slot = self._slots.slot(key)
        deadline = time.monotonic() + timeout
        self.remove_backend(key)  # neither HAProxy nor the router behind routes to it now
        await self._fallback.drain(key, timeout)
        while (
            slot is not None and time.monotonic() < deadline and await self._slots.in_flight(slot)
        ):
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
        return self._slots.idle_connections

    async def quiet(self) -> None:
        """Wait until every request received so far is answered (held ones included)."""
        while await self._slots.in_flight():
            await asyncio.sleep(0.05)
        await self._fallback.quiet()

    def _on_log(self, lines: list[bytes]) -> None:
        """HAProxy's request lines as Heroku's; they count as requests for the idle clock."""
        label = self._slots.label
        for raw in lines:
            message = heroku_line(raw.decode("utf-8", "replace"), label)
            if message is not None:
                self._log(message)
        self._fallback.on_request()
