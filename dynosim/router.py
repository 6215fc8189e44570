"""The routing layer in front of web dynos: Heroku's legacy router ("vegur"), locally.

An HTTP/1.1 reverse proxy on aiohttp. One ``aiohttp.web`` server takes client requests; one
``aiohttp.ClientSession`` carries them to the web dynos the supervisor has registered with
:meth:`Router.add_backend`. What it mimics (heroku-behaviour.md §4):

* random dyno selection; a dyno that refuses a connection or does not accept one within
  ``connect_timeout`` is quarantined for 5 s and another is tried (at most 10 attempts, each dyno
  at most once per request), then H21 (refused) or H19 (connect timeout);
* no dyno to route to: H14 when the formation has no web dynos, H10 when they all crashed, and
  while they are starting the request is held until one is up or ``hold_timeout`` passes (H20);
  a sleeping app is woken through ``on_wake`` and the request held the same way (H20 also when
  the supervisor reports the wake failed); an empty dyno-hours pool answers H82;
* added headers X-Forwarded-For/-Proto/-Port, X-Request-Start, X-Request-Id, Via; Host kept;
  hop-by-hop headers dropped both ways (also those a Connection header names);
* request and response bodies streamed, never buffered whole; H12 when response headers take
  longer than ``request_timeout``; H13 when a dyno closes without answering; H18 when it breaks off
  a response, H15 when a response stalls for 55 s; H27 (499) when the client goes away;
* one ``heroku[router]`` log line per request, in Heroku's format, handed to the ``log`` callback.

Deliberate differences, chosen for a single local router:

* ``CONNECT`` is answered 405 and logged without an H code (Heroku rejects it too, undocumented
  how). ``Upgrade`` is hop-by-hop here, so WebSockets are not proxied.
* ``Expect: 100-continue`` is answered by the router itself just before the body is forwarded
  (the dyno never sees the header); any other expectation gets 417 with H26.
* Like vegur, every request gets a new connection to its dyno (uWSGI's http-socket closes
  after each response, so reused connections would fail as H13), at most 50 at once per dyno;
  further requests queue for a slot.
  There is no backlog limit (H11), connection limit (H22) or client idle timeout (H28), and no
  Connect-Time / Total-Route-Time headers.
* X-Forwarded-Proto is always ``http``: the router only listens for plain HTTP.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import errno
import logging
import random
import re
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, MultiMapping
from yarl import URL

from .errors import DynosimError

__all__ = ["Router", "RouterError", "WebStatus"]

MAX_ATTEMPTS = 10  # connection attempts per request before H19/H21
QUARANTINE_SECONDS = 5.0  # how long a dyno that refused (or timed out) gets no new requests
IDLE_TIMEOUT = 55.0  # rolling: a stalled response (H15) or client (H28) is cut off
CONNECTIONS_PER_DYNO = 50  # Heroku: at most 50 active requests per dyno per router
BACKLOG_PER_DYNO = 50  # Heroku: at most 50 x dynos requests wait for a slot, beyond that H11
SHUTDOWN_GRACE = 5.0  # close() lets in-flight requests finish for this long
MAX_HEADERS = 1000  # Heroku: at most 1000 request headers
MAX_LINE = 8192  # Heroku: the request line and each header line at most 8 KB
MAX_RESPONSE_HEADER_LINE = 512 * 1024  # Heroku: a response header line may be up to 512 KB

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Request headers the router sets itself (a client's value is folded in or replaced).
_REQUEST_DROP = _HOP_BY_HOP | {
    "expect",
    "via",
    "x-forwarded-for",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-request-id",
    "x-request-start",
}
_VERSIONS = (aiohttp.HttpVersion10, aiohttp.HttpVersion11)
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9+/=-]{20,200}")
_ERROR_STATUS = {"H27": 499, "H28": 499}
_INFO_CODES = {"H82"}  # Heroku logs these at=info
_DESCRIPTIONS = {
    "H10": "App crashed",
    "H11": "Backlog too deep",
    "H12": "Request timeout",
    "H13": "Connection closed without response",
    "H14": "No web processes running",
    "H15": "Idle connection",
    "H18": "Server Request Interrupted",
    "H19": "Backend connection timeout",
    "H20": "App boot timeout",
    "H21": "Backend connection refused",
    "H26": "Request Error",
    "H27": "Client Request Interrupted",
    "H28": "Client Connection Idle",
    "H82": "Free app running time quota exhausted",
    "H99": "Platform error",
}
_ERROR_PAGE = b"""<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Application Error</title>
    <style>body { font-family: sans-serif; margin: 4em auto; max-width: 40em; color: #333; }</style>
  </head>
  <body>
    <h1>Application error</h1>
    <p>An error occurred in the application and your page could not be served. If you are the
    application owner, check your logs for details. You can do this with the command
    <code>dynosim logs --tail</code></p>
  </body>
</html>
"""

# aiohttp reports malformed client requests through its server logger with a traceback; a bad
# request is an ordinary network event here, so that logger goes nowhere (it has no parent).
_SERVER_LOGGER = logging.Logger("dynosim.router.http")
_SERVER_LOGGER.addHandler(logging.NullHandler())


def _error_page(status: int) -> web.Response:
    return web.Response(
        status=status,
        body=_ERROR_PAGE,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-cache, no-store"},
    )


class RouterError(DynosimError):
    """The router cannot listen where it was asked to."""

    exit_code = 3


class WebStatus(enum.Enum):
    """What the web formation looks like when no backend is available to take a request."""

    NONE = "none"  # no web dynos in the formation -> H14
    STARTING = "starting"  # web dynos are booting or waking -> hold the request, else H20
    CRASHED = "crashed"  # every web dyno crashed -> H10
    SLEEPING = "sleeping"  # the app idled: a request wakes it (on_wake) and waits for it
    EXHAUSTED = "exhausted"  # the free dyno-hours pool is used up -> H82
    UP = "up"


@dataclass(slots=True)
class _Exchange:
    """What the log line says about one request."""

    method: str
    path: str
    host: str
    request_id: str
    fwd: str
    protocol: str  # "http" or "https"


async def _on_connected(_session: Any, context: SimpleNamespace, _params: Any) -> None:
    """aiohttp trace hook: a connection to the dyno is ready (new or reused)."""
    context.trace_request_ctx.connected = time.monotonic()


def _origin(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{round(seconds * 1000)}ms"


def _connection_tokens(headers: MultiMapping[str]) -> frozenset[str]:
    """Header names that a Connection header declares hop-by-hop."""
    values = headers.getall("Connection", ())
    if not values:
        return frozenset()
    return frozenset(t.strip().lower() for v in values for t in v.split(",") if t.strip())


def _client_gone(request: web.BaseRequest) -> bool:
    """The client hung up, or stopped sending in the middle of its body."""
    transport = request.transport
    return transport is None or transport.is_closing() or request.content.exception() is not None


def _abort_client(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


class _Server(web.Server):
    """aiohttp's server, whose connections answer a request they cannot parse the router's way."""

    def __init__(self, router: Router, **kwargs: Any) -> None:
        super().__init__(router._handle, **kwargs)
        self.router = router

    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class _Connection(web.RequestHandler):
    def eof_received(self) -> bool:
        """The client half-closed its side: answer the request it sent (as nginx and vegur do;
        aiohttp would drop it), cut short a body it did not finish, then close."""
        self._cut_bodies(3)
        waiter = self._waiter  # pending while no request is parsed and none is being handled
        if waiter is not None and not waiter.done():
            self.force_close()  # idle, or part of a request head: nothing to answer
            return False
        self._close = True  # no keep-alive after this response
        return True

    def _cut_bodies(self, tries: int) -> None:
        """Fail the unfinished body of a request the client will send no more of. A request is
        briefly in neither place looked at (between parsing and its handler starting), so this
        looks again over a few loop turns."""
        request = self._current_request
        payloads = [payload for _, payload in self._messages]
        if request is not None:
            payloads.append(request.content)
        for payload in payloads:
            if not payload.is_eof():
                payload.set_exception(ConnectionResetError("client closed mid-body"))
        if not payloads and tries and self.transport is not None:
            self._loop.call_soon(self._cut_bodies, tries - 1)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A malformed request (too long a line, too many headers, conflicting lengths, ...):
        400 with the error page and an H26 line, then the connection is closed, as vegur does."""
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        manager = self._manager
        if status == 400 and isinstance(manager, _Server):
            manager.router._bad_request(request, type(exc).__name__ if exc else "BadRequest")
        response = _error_page(status)
        response.force_close()
        return response


class _Response(web.StreamResponse):
    """A streamed response whose headers go out with the first body bytes: one write for a
    small reply. (aiohttp's switch; _relay flushes the headers itself when the body lags.)"""

    _send_headers_immediately = False


class Router:
    """Heroku's routing layer for one app: a reverse proxy spreading requests over web dynos."""

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
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Configure the router; nothing listens until :meth:`start`.

        ``log`` receives the message part of each ``heroku[router]`` line (no timestamp, no
        source); ``hold_timeout`` bounds how long a request waits for a starting dyno,
        ``connect_timeout`` a connection to a dyno, ``request_timeout`` the wait for response
        headers; ``idle_timeout`` is the rolling window after which a silent dyno (H15), client
        (H28) or idle keep-alive connection is cut off. With ``ssl_context`` the router also
        serves HTTPS on ``https_port``.
        """
        self.app = app
        self._log = log
        self._host = host
        self._port = port
        self._hold_timeout = hold_timeout
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._idle_timeout = idle_timeout
        self._backlog: collections.deque[asyncio.Future[None]] = collections.deque()
        self._backends: dict[str, tuple[str, int]] = {}
        self._labels: dict[str, str] = {}  # backend key -> dyno name shown in the log line
        self._active: dict[str, int] = {}  # backend key -> requests in flight
        self._bases: dict[str, str] = {}  # dyno -> "http://host:port", ready to prefix a path
        self._names: tuple[str, ...] = ()
        self._quarantine: dict[str, float] = {}  # dyno -> monotonic time it may be tried again
        self._status = WebStatus.NONE
        self._changed = asyncio.Event()  # set (and replaced) whenever a held request may proceed
        self._handling = 0  # requests received and not yet answered (held ones included)
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._runner: web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._https_port = https_port
        self._ssl_context = ssl_context
        self._port_headers = {"http": str(port), "https": str(https_port)}
        #: Called on every request (the supervisor's idle clock) and when a request finds the
        #: app asleep (the supervisor wakes it); both set by the supervisor.
        self.on_request: Callable[[], None] = lambda: None
        self.on_wake: Callable[[], None] = lambda: None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(
        self, sock: socket.socket | None = None, tls_sock: socket.socket | None = None
    ) -> None:
        """Listen on host:port (and https_port), or serve `sock` (and `tls_sock`), already
        listening: connections made before the router started wait in their backlog.
        RouterError if an address cannot be bound."""
        if self._runner is not None:
            return
        idle_timeout = self._idle_timeout
        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(_on_connected)
        trace.on_connection_reuseconn.append(_on_connected)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0, limit_per_host=0, force_close=True
            ),  # the router itself keeps each dyno at CONNECTIONS_PER_DYNO
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=None,
                sock_connect=self._connect_timeout,
                sock_read=max(idle_timeout, self._request_timeout),
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            trace_configs=[trace],
            max_field_size=MAX_RESPONSE_HEADER_LINE,
            max_headers=MAX_HEADERS,
        )
        server = _Server(
            self,
            access_log=None,
            logger=_SERVER_LOGGER,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS,
            keepalive_timeout=idle_timeout,
        )
        runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        self._session = session  # before listening: the first request may come at once
        listeners = [(sock, self._port, None, "--port")]
        if self._ssl_context is not None:
            listeners.append((tls_sock, self._https_port or 0, self._ssl_context, "--https-port"))
        for listener, port, context, option in listeners:
            try:
                if listener is not None:
                    site: web.BaseSite = web.SockSite(runner, listener, ssl_context=context)
                else:
                    site = web.TCPSite(runner, self._host, port, ssl_context=context, backlog=1024)
                await site.start()
            except OSError as exc:
                await runner.cleanup()
                await session.close()
                self._session = None
                where = f"{self._host}:{port}"
                if exc.errno == errno.EADDRINUSE:
                    raise RouterError(
                        f"{where} is already in use; choose another port with {option}"
                    ) from None
                raise RouterError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        self._runner = runner
        bound = [address[1] for address in runner.addresses]  # in the order the sites started
        self._port = bound[0]
        self._https_port = bound[1] if len(bound) > 1 else None
        self._port_headers = {"http": str(self._port), "https": str(self._https_port)}

    async def close(self) -> None:
        """Stop listening, answer held requests, let in-flight ones finish, close the session."""
        self.set_status(WebStatus.NONE)
        self._backends.clear()
        self._sync_backends()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def url(self) -> str:
        """Where clients reach the router (the bound port once started with port=0)."""
        return _origin(self._host, self._port)

    @property
    def https_url(self) -> str | None:
        """Where clients reach the router over HTTPS (None without an ssl_context)."""
        if self._https_port is None or self._ssl_context is None:
            return None
        return "https" + _origin(self._host, self._https_port).removeprefix("http")

    # -- what the supervisor tells -----------------------------------------------------------

    def add_backend(self, key: str, host: str, port: int, name: str | None = None) -> None:
        """A web dyno is up: route to it from now on (wakes held requests, status becomes UP).

        `key` identifies the backend, `name` (default: the key) is the dyno name logged; two
        backends may share a name while a new release's web.1 boots beside the old one.
        """
        self._backends[key] = (host, port)
        self._labels[key] = name or key
        self._quarantine.pop(key, None)
        self._sync_backends()
        self._status = WebStatus.UP
        self._wake()

    def remove_backend(self, key: str) -> None:
        """A web dyno stops taking traffic. With none left, requests are held until the
        supervisor adds one or sets another status."""
        self._backends.pop(key, None)
        self._quarantine.pop(key, None)
        self._sync_backends()
        if not self._active.get(key):
            self._labels.pop(key, None)

    async def drain(self, key: str, timeout: float) -> None:
        """Stop routing new requests to a backend and wait (at most `timeout` seconds) until
        the requests it is serving are answered: a dyno is only stopped once it is idle."""
        self.remove_backend(key)
        deadline = time.monotonic() + timeout
        while self._active.get(key) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def set_status(self, status: WebStatus) -> None:
        """Say what to answer when no backend is available (see WebStatus)."""
        self._status = status
        self._wake()

    @property
    def backends(self) -> dict[str, tuple[str, int]]:
        """The dynos requests are routed to: name -> (host, port)."""
        return dict(self._backends)

    def _sync_backends(self) -> None:
        self._names = tuple(self._backends)
        self._bases = {name: _origin(h, p) for name, (h, p) in self._backends.items()}

    async def quiet(self) -> None:
        """Wait until every request received so far is answered (held ones included)."""
        await self._quiet.wait()

    def fail_held(self, code: str) -> None:
        """Answer every request waiting for a dyno with `code` (a wake that failed: H20)."""
        self._wake(code)

    def _wake(self, code: str | None = None) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.code = code  # type: ignore[attr-defined]
        changed.set()

    # -- request handling --------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self._handling += 1
        self._quiet.clear()
        try:
            return await self._answer(request)
        finally:
            self._handling -= 1
            if not self._handling:
                self._quiet.set()

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        start_ms = time.time_ns() // 1_000_000
        self.on_request()
        headers = request.headers
        request_id = headers.get("X-Request-Id", "")
        if not _VALID_REQUEST_ID.fullmatch(request_id):
            request_id = str(uuid.uuid4())
        forwarded = headers.getall("X-Forwarded-For", ())
        fwd = ", ".join([*forwarded, request.remote] if request.remote else forwarded)
        path = request.raw_path
        x = _Exchange(
            request.method,
            path.replace('"', "%22"),
            headers.get("Host", ""),
            request_id,
            fwd,
            request.scheme,
        )
        try:
            return await self._proxy(request, x, start_ms)
        except Exception as exc:  # a bug in the router, not a network event: say so, no traceback
            self._emit(x, "error", "H99", status=503, extra=f'error="{type(exc).__name__}"')
            if request.writer.output_size:
                _abort_client(request)
            return _error_page(503)

    async def _proxy(
        self, request: web.BaseRequest, x: _Exchange, start_ms: int
    ) -> web.StreamResponse:
        if request.method == "CONNECT":
            self._emit(x, "error", desc="Method not supported", status=405)
            response = _error_page(405)
            response.force_close()
            return response
        if request.version not in _VERSIONS:  # HTTP/0.9, or 2.x spoken in HTTP/1 syntax
            response = self._fail(x, "H26", extra='error="Unsupported HTTP version"', status=505)
            response.force_close()
            return response
        expect = request.headers.get("Expect")
        if expect is not None and request.version >= aiohttp.HttpVersion11:
            if expect.lower() != "100-continue":
                extra = 'error="Unsupported expect header value"'
                return self._fail(x, "H26", extra=extra, status=417)
        else:
            expect = None

        if not self._names:
            code = await self._hold()
            if code is not None:
                return self._fail(x, code)

        forward = self._request_headers(request, x, start_ms)
        if expect is not None:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
        data = request.content if request.body_exists else None
        raw_path = request.raw_path if request.raw_path.startswith("/") else str(request.rel_url)
        assert self._session is not None
        session = self._session

        tried: set[str] = set()
        code = "H21"
        dyno = ""
        connect: float | None = None
        deadline = time.monotonic() + self._request_timeout
        attempts = 0
        while attempts < MAX_ATTEMPTS:
            picked = self._pick(tried)
            if picked is None:  # every dyno it may go to has 50 requests in flight
                if queued := await self._wait_for_slot(deadline):
                    return self._fail(x, queued)
                continue
            if not picked:
                break
            attempts += 1
            dyno = picked
            tried.add(dyno)
            self._active[dyno] = self._active.get(dyno, 0) + 1
            try:
                url = URL(self._bases[dyno] + raw_path, encoded=True)
                attempt = SimpleNamespace(connected=None)
                began = time.monotonic()
                try:
                    async with asyncio.timeout(deadline - began):
                        upstream = await session.request(
                            request.method,
                            url,
                            headers=forward,
                            data=data,
                            allow_redirects=False,
                            trace_request_ctx=attempt,
                        )
                except aiohttp.ConnectionTimeoutError:
                    code, connect = "H19", time.monotonic() - began
                    self._quarantine[dyno] = time.monotonic() + QUARANTINE_SECONDS
                    continue
                except aiohttp.ClientConnectorError:
                    code, connect = "H21", time.monotonic() - began
                    self._quarantine[dyno] = time.monotonic() + QUARANTINE_SECONDS
                    continue
                except TimeoutError:  # the request_timeout deadline
                    connected = attempt.connected or began
                    service = time.monotonic() - connected
                    return self._fail(x, "H12", dyno, connected - began, service, nbytes=0)
                except (aiohttp.ClientError, OSError):
                    connected = attempt.connected or began
                    service = time.monotonic() - connected
                    if _client_gone(request):
                        connect = connected - began
                        self._emit(
                            x, "warning", "H27", dyno, connect, service, 499, 0, sock="client"
                        )
                        return _error_page(503)
                    return self._fail(x, "H13", dyno, connected - began, service)
                connected = attempt.connected or began
                return await self._relay(request, x, upstream, dyno, connected - began, connected)
            finally:
                self._done(dyno)
        return self._fail(x, code, dyno, connect)

    def _done(self, key: str) -> None:
        """A request to a backend ended: its slot goes to the longest waiting request; a
        removed backend is forgotten once it serves none."""
        left = self._active[key] - 1
        if left or key in self._backends:
            self._active[key] = left
        else:
            del self._active[key]
            self._labels.pop(key, None)
        backlog = self._backlog
        while backlog:
            waiter = backlog.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _wait_for_slot(self, deadline: float) -> str | None:
        """Queue in the backlog until a dyno finishes a request. None when a slot is free,
        else the code to answer: H11 when 50 x dynos requests already wait, H12 at the
        request timeout (Heroku's 30 s include the time in the queue)."""
        if len(self._backlog) >= BACKLOG_PER_DYNO * len(self._names):
            return "H11"
        waiter = asyncio.get_running_loop().create_future()
        self._backlog.append(waiter)
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                await waiter
        except TimeoutError:
            return "H12"
        finally:
            if not waiter.done():
                waiter.cancel()
                self._backlog.remove(waiter)
        return None

    async def _hold(self) -> str | None:
        """Wait for a backend; None when one is there, else the error code to answer with."""
        deadline: float | None = None
        while not self._names:
            status = self._status
            if status is WebStatus.NONE:
                return "H14"
            if status is WebStatus.CRASHED:
                return "H10"
            if status is WebStatus.EXHAUSTED:
                return "H82"
            if status is WebStatus.SLEEPING:
                self.on_wake()  # the supervisor starts waking the app; this request waits
            now = time.monotonic()
            if deadline is None:
                deadline = now + self._hold_timeout
            if now >= deadline:
                return "H20"
            changed = self._changed
            try:
                async with asyncio.timeout(deadline - now):
                    await changed.wait()
            except TimeoutError:
                return "H20"
            if getattr(changed, "code", None):
                return changed.code  # type: ignore[attr-defined]
        return None

    def _pick(self, tried: set[str]) -> str | None:
        """A random dyno not yet tried for this request, avoiding quarantined ones ("" if none)
        and those with 50 requests in flight (None if that leaves none).

        When every dyno is quarantined, the first attempt still tries one: locally a dyno that
        refused a moment ago is likely to be back, and the alternative is a certain 503.
        """
        names = self._names
        if tried or self._quarantine:
            now = time.monotonic()
            for name, until in list(self._quarantine.items()):
                if until <= now:
                    del self._quarantine[name]
            fresh = [n for n in names if n not in tried and n not in self._quarantine]
            names = tuple(fresh) if fresh or tried else names
        if not names:
            return ""
        active = self._active
        free = [n for n in names if active.get(n, 0) < CONNECTIONS_PER_DYNO]
        return random.choice(free) if free else None

    def _request_headers(
        self, request: web.BaseRequest, x: _Exchange, start_ms: int
    ) -> list[tuple[str, str]]:
        headers = request.headers
        named = _connection_tokens(headers)
        forward = [
            (name, value)
            for name, value in headers.items()
            if (lowered := name.lower()) not in _REQUEST_DROP and lowered not in named
        ]
        via = ", ".join([*headers.getall("Via", ()), "1.1 vegur"])
        forward += [
            ("X-Forwarded-For", x.fwd),
            ("X-Forwarded-Proto", x.protocol),
            ("X-Forwarded-Port", self._port_headers[x.protocol]),
            ("X-Request-Start", str(start_ms)),
            ("X-Request-Id", x.request_id),
            ("Via", via),
        ]
        return forward

    async def _relay(
        self,
        request: web.BaseRequest,
        x: _Exchange,
        upstream: aiohttp.ClientResponse,
        dyno: str,
        connect: float,
        connected: float,
    ) -> web.StreamResponse:
        """Stream the dyno's response to the client, then log it."""
        named = _connection_tokens(upstream.headers)
        headers: CIMultiDict[str] = CIMultiDict(
            (name, value)
            for name, value in upstream.headers.items()
            if (lowered := name.lower()) not in _HOP_BY_HOP and lowered not in named
        )
        response = _Response(status=upstream.status, reason=upstream.reason, headers=headers)
        reader = upstream.content
        body = 0
        side = "client"  # whose socket the operation in progress is on, if it fails
        try:
            await response.prepare(request)
            side = "dyno"
            chunk = reader.read_nowait()
            if not chunk and not reader.is_eof():
                side = "client"
                request.writer.send_headers()  # the dyno is still busy: show the headers now
                side = "dyno"
                chunk = await reader.readany()
            while chunk:
                side = "client"
                await response.write(chunk)
                body += len(chunk)
                side = "dyno"
                chunk = await reader.readany()
            side = "client"
            await response.write_eof()
        except (aiohttp.ClientError, OSError) as exc:
            service = time.monotonic() - connected
            size = self._head_size(response) + body if body else 0
            if side == "client" or _client_gone(request):
                self._emit(x, "warning", "H27", dyno, connect, service, 499, size, sock="client")
                return response
            # Cut the client off so a half-sent response is not taken for a whole one.
            _abort_client(request)
            if isinstance(exc, aiohttp.ServerTimeoutError):
                self._emit(x, "error", "H15", dyno, connect, service, 503, size)
            else:
                self._emit(x, "error", "H18", dyno, connect, service, 503, size, sock="backend")
            return response
        finally:
            upstream.release()
        service = time.monotonic() - connected
        size = self._head_size(response) + body
        self._emit(x, "info", "", dyno, connect, service, upstream.status, size)
        return response

    @staticmethod
    def _head_size(response: web.StreamResponse) -> int:
        """Bytes of the status line and headers as sent (approximately)."""
        size = len(f"HTTP/1.1 {response.status} {response.reason}\r\n\r\n")
        return size + sum(len(k) + len(v) + 4 for k, v in response.headers.items())

    # -- errors and the log line -------------------------------------------------------------

    def _fail(
        self,
        x: _Exchange,
        code: str,
        dyno: str = "",
        connect: float | None = None,
        service: float | None = None,
        nbytes: int | None = None,
        extra: str = "",
        status: int | None = None,
    ) -> web.Response:
        status = status or _ERROR_STATUS.get(code, 503)
        at = "info" if code in _INFO_CODES else "error"
        self._emit(x, at, code, dyno, connect, service, status, nbytes, extra=extra)
        return _error_page(status)

    def _bad_request(self, request: web.BaseRequest, error: str) -> None:
        """Log a request that could not be parsed (H26, 400); its method and path are unknown."""
        x = _Exchange("", "", "", str(uuid.uuid4()), request.remote or "", request.scheme)
        self._emit(x, "error", "H26", status=400, extra=f'error="{error}"')

    def _emit(
        self,
        x: _Exchange,
        at: str,
        code: str = "",
        dyno: str = "",
        connect: float | None = None,
        service: float | None = None,
        status: int = 503,
        nbytes: int | None = None,
        *,
        sock: str = "",
        desc: str = "",
        extra: str = "",
    ) -> None:
        parts = [f"sock={sock} at={at}" if sock else f"at={at}"]
        if code:
            parts.append(f'code={code} desc="{_DESCRIPTIONS[code]}"')
        elif desc:
            parts.append(f'desc="{desc}"')
        if extra:
            parts.append(extra)
        name = self._labels.get(dyno, dyno)
        parts.append(
            f'method={x.method} path="{x.path}" host={x.host} request_id={x.request_id} '
            f'fwd="{x.fwd}" dyno={name} connect={_ms(connect)} service={_ms(service)} '
            f"status={status} bytes={'' if nbytes is None else nbytes} protocol={x.protocol}"
        )
        self._log(" ".join(parts))
