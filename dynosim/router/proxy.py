"""The data path: asyncio protocols that parse with httptools and move bytes between a client
connection and a new connection to the chosen dyno, without buffering whole bodies.

One :class:`Client` per client connection parses requests and runs them one at a time (pipelined
ones wait their turn); one :class:`Exchange` per request decides where it goes (through the
Router) and relays; one :class:`Upstream` per attempt to reach a dyno parses its response. What
they ask of the Router is :class:`Routing`, nothing else.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from . import wire
from .wire import Fields


class Routing(Protocol):
    """What the data path asks of the router that owns it (:class:`~dynosim.router.Router`)."""

    #: Receives each ``heroku[router]`` line's message.
    log: Callable[[str], None]
    #: Seconds after which a silent dyno (H15), client (H28) or idle connection is cut off.
    idle_timeout: float

    def admit(self, client: Client) -> bool:
        """A client connected: count it, or False beyond the connection limit (H22)."""
        ...

    def client_closed(self, client: Client) -> None:
        """A client connection is gone."""
        ...

    def describe(self, client: Client, request: Request) -> Fields:
        """The log line's description of a request, from its head."""
        ...

    def request_began(self) -> None:
        """A request arrived (it counts until answered, see the router's ``quiet``)."""
        ...

    def request_answered(self) -> None:
        """A request that began was answered."""
        ...

    async def route(self, x: Exchange) -> None:
        """Find a dyno for the request and start relaying to it (or answer it with an error)."""
        ...

    def request_head(self, x: Exchange, key: str) -> bytes:
        """The head of `x`'s request as the dyno `key` gets it."""
        ...

    def release_upstream(self, upstream: Upstream, reusable: bool) -> None:
        """A request is done with its connection to a dyno: keep it for the next, or close it."""
        ...

    def upstream_closed(self, upstream: Upstream) -> None:
        """The dyno closed a connection waiting in the pool of idle ones."""
        ...

    def free_slot(self, key: str) -> None:
        """A request no longer holds one of the dyno `key`'s in-flight slots."""
        ...

    def dyno_name(self, key: str) -> str:
        """The dyno name logged for the backend `key`."""
        ...


class _Refused(Exception):
    """Raised in a parser callback: the request breaks one of vegur's limits (400, H26)."""


class _Stray(Exception):
    """Raised in a parser callback: a dyno sent a response after the one it was asked for."""


class Request:
    """One parsed request head, and its body as it arrives."""

    __slots__ = (
        "body_done",
        "chunked",
        "content_length",
        "expect",
        "fresh",
        "headers",
        "keep_alive",
        "method",
        "pending",
        "pending_size",
        "received",
        "sink",
        "start_ms",
        "tail",
        "transfer_encoding",
        "upgrade",
        "url",
        "version",
    )

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = b""
        self.version = "1.1"
        self.keep_alive = True
        self.upgrade = False
        self.chunked = False
        self.transfer_encoding = b""  # as sent: codings besides chunked stay on the body
        self.content_length: int | None = None
        self.expect: bytes | None = None
        self.fresh = False  # must go on a new connection to its dyno (a reused one went stale)
        self.body_done = False
        self.pending: list[bytes] = []  # body received before a dyno connection was ready
        self.pending_size = 0
        self.sink: Upstream | None = None
        self.tail = b""  # bytes after an Upgrade request's head
        # the H12 clock starts here; Router.route restarts it after a hold
        self.received = time.monotonic()
        self.start_ms = time.time_ns() // 1_000_000


class Client(asyncio.Protocol):
    """A client connection: HTTP/1.x keep-alive, pipelining, half-close, idle cut-off."""

    def __init__(self, router: Routing, scheme: str) -> None:
        self.router = router
        self.scheme = scheme
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.remote = ""
        self.parsing: Request | None = None  # the request whose head or body is arriving
        self.last: Request | None = None  # the request parsed last
        self.head_size = 0
        self.queue: collections.deque[Request] = collections.deque()
        self.exchange: Exchange | None = None
        self.tunnel: Upstream | None = None
        self.refused: tuple[int, str] | None = None  # a parse error to answer after the queue
        self.eof = False
        self.closing = False
        self.write_paused = False
        self.last_seen = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if peer else ""
        router = self.router
        if not router.admit(self):
            fields = Fields("", "", "", wire.request_id([]), self.remote, self.scheme)
            router.log(wire.log_line(fields, "error", "H22"))
            self.write(wire.error_response(503, close=True))
            self._close()
            return
        self.timer = self.loop.call_later(router.idle_timeout, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.router.client_closed(self)
        if self.timer is not None:
            self.timer.cancel()
        if self.tunnel is not None:
            self.tunnel.close()
        if self.exchange is not None:
            self.exchange.client_lost()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_seen = self.loop.time()
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self.refused is not None:
            return
        if self.parsing is None or not self.parsing.method:  # (set once the head is complete)
            self.head_size += len(data)
            if self.head_size > wire.MAX_HEAD:
                self._refuse(400, "Request head too large")
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            request = self.last
            if request is not None:
                request.tail = data[upgrade.args[0] :]
                request.body_done = True
            if self.transport is not None:
                self.transport.pause_reading()  # the rest belongs to the tunnel, if there is one
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, _Refused):
                self._refuse(400, str(cause))
            else:  # a bug in a callback: still one answer and one line, no traceback
                self._refuse(400, type(cause).__name__)
        except httptools.HttpParserError as error:
            message = str(error)
            status = 505 if "version" in message.lower() else 400
            self._refuse(status, message)

    def eof_received(self) -> bool:
        """The client half-closed: answer what it sent (as nginx and vegur do), then close."""
        self.eof = True
        request = self.parsing
        if request is not None and not request.body_done:
            if self.exchange is not None and self.exchange.request is request:
                self.exchange.client_lost()  # it will send no more of its body
            self._close()
            return False
        if self.exchange is None and not self.queue:
            self._close()
            return False
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.exchange is not None:
            self.exchange.pause_upstream()
        elif self.tunnel is not None and self.tunnel.transport is not None:
            self.tunnel.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.last_seen = self.loop.time()
        if self.exchange is not None:
            self.exchange.resume_upstream()
        elif self.tunnel is not None and self.tunnel.transport is not None:
            self.tunnel.transport.resume_reading()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.parsing = Request()

    def on_url(self, url: bytes) -> None:
        request = self.parsing
        assert request is not None
        request.url += url
        if len(request.url) > wire.MAX_LINE:
            raise _Refused("Request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.parsing
        assert request is not None
        headers = request.headers
        if len(name) + len(value) + 2 > wire.MAX_LINE:
            raise _Refused("Header line too long")
        if len(headers) >= wire.MAX_HEADERS:
            raise _Refused("Too many headers")
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        request = self.parsing
        assert request is not None
        parser = self.parser
        request.method = parser.get_method()
        request.version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        request.upgrade = parser.should_upgrade()
        self.last = request
        self.head_size = 0
        for name, value in request.headers:
            lowered = name.lower()
            if lowered == b"content-length":
                request.content_length = int(value)
            elif lowered == b"transfer-encoding":
                request.chunked = True  # (llhttp refuses a Transfer-Encoding not ending so)
                request.transfer_encoding = value
            elif lowered == b"expect":
                request.expect = value
        if self.exchange is None and not self.queue:
            self.exchange = Exchange(self, request)
        else:
            self.queue.append(request)
            if self.transport is not None:
                self.transport.pause_reading()  # one request in reserve is enough

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        assert request is not None
        if request.sink is not None:
            request.sink.send_body(body, request.chunked)
            return
        request.pending.append(body)
        request.pending_size += len(body)
        if request.pending_size > wire.BUFFER and self.transport is not None:
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        request = self.parsing
        assert request is not None
        request.body_done = True
        self.parsing = None
        if request.sink is not None:
            request.sink.end_body(request.chunked)

    # -- used by the exchange ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closing:
            self.transport.write(data)

    def finished(self, keep_alive: bool) -> None:
        """The exchange in progress is over: close, or go on with the next request."""
        self.exchange = None
        if self.closing or self.transport is None or self.tunnel is not None:
            return
        if not keep_alive or (self.eof and not self.queue):
            self._close()
            return
        if self.queue:
            self.exchange = Exchange(self, self.queue.popleft())
            if not self.queue and self.refused is None:
                self.transport.resume_reading()
        elif self.refused is not None:
            self._answer_refusal()
        else:
            self.transport.resume_reading()

    def _refuse(self, status: int, reason: str) -> None:
        """A request that cannot be parsed: 400 (or 505) with an H26 line, then close."""
        self.refused = (status, reason)
        if self.transport is not None:
            self.transport.pause_reading()
        exchange = self.exchange
        if exchange is None:
            self._answer_refusal()
        elif self.parsing is not None and exchange.request is self.parsing:  # a bad body
            exchange.keep_alive = False
            exchange.fail("H26", status=status, extra=f'error="{reason}"')

    def _answer_refusal(self) -> None:
        assert self.refused is not None
        status, reason = self.refused
        request = self.parsing
        fields = Fields("", "", "", wire.request_id([]), self.remote, self.scheme)
        if request is not None and request.method:
            fields = self.router.describe(self, request)
        extra = f'error="{reason}"' if reason else ""
        self.router.log(wire.log_line(fields, "error", "H26", status=status, extra=extra))
        self.write(wire.error_response(status, close=True))
        self._close()

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _check_idle(self) -> None:
        """Every idle period: close an idle keep-alive connection (or a client that stopped
        mid-head); let the exchange in progress look for its own idle sides."""
        idle = self.router.idle_timeout
        now = self.loop.time()
        if self.exchange is not None:
            self.exchange.check_idle(now, idle)
        elif self.tunnel is not None:
            if now - max(self.last_seen, self.tunnel.last_seen) >= idle:
                self.tunnel.close()
                self.abort()
        elif (
            (head := self.parsing) and not head.method and time.monotonic() - head.received >= idle
        ):
            self._close()  # a request head dribbling in for longer than the idle timeout
        elif now - self.last_seen >= idle and not self.queue:
            self._close()
        if self.transport is not None and not self.closing:
            self.timer = self.loop.call_later(idle / 4, self._check_idle)


class Upstream(asyncio.Protocol):
    """A connection to a dyno: writes a request, parses the response. Between requests it may
    wait in the router's pool of idle connections (``exchange`` is None then)."""

    def __init__(self, exchange: Exchange, key: str) -> None:
        self.key = key  # the backend it is connected to
        self.loop = exchange.loop
        self.router = exchange.router
        self.transport: asyncio.Transport | None = None
        self.tunnel_to: Client | None = None
        self.reused = False  # it served a request before the current one
        self.parked = 0.0  # when it last went idle in the pool
        self.attach(exchange)

    def attach(self, exchange: Exchange) -> None:
        """Carry `exchange`'s request, with a fresh parser for its response."""
        self.exchange: Exchange | None = exchange
        self.parser = httptools.HttpResponseParser(self)
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.head_size = 0
        self.interim = False  # parsing a 100 Continue / 103 Early Hints (not forwarded)
        self.done = False
        self.reusable = False  # the response is complete and the dyno keeps the connection
        self.last_seen = self.loop.time()

    def park(self) -> None:
        """Wait in the pool: listen only for the dyno closing the connection."""
        self.exchange = None
        self.parked = time.monotonic()
        if self.transport is not None:
            self.transport.resume_reading()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.tunnel_to is not None:
            self.tunnel_to.abort()
        elif self.exchange is None:
            if not self.done:
                self.router.upstream_closed(self)
        elif not self.done:
            self.exchange.upstream_lost()

    def data_received(self, data: bytes) -> None:
        self.last_seen = self.loop.time()
        if self.tunnel_to is not None:
            self.tunnel_to.write(data)
            return
        exchange = self.exchange
        if exchange is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        if self.done:
            return
        if not self.status:
            self.head_size += len(data)
            if self.head_size > wire.MAX_RESPONSE_HEAD:
                exchange.upstream_lost()
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            exchange.tunnel(data[upgrade.args[0] :])
        except httptools.HttpParserError:
            if self.exchange is exchange:
                exchange.upstream_lost()
            else:  # more bytes after a complete response
                self.close()
            return
        if self.status == 101 and self.tunnel_to is None:
            exchange.tunnel(b"")
        exchange.flush()

    def pause_writing(self) -> None:
        if self.exchange is not None and self.exchange.client.transport is not None:
            self.exchange.client.transport.pause_reading()

    def resume_writing(self) -> None:
        client = self.exchange.client if self.exchange is not None else None
        if client is not None and client.transport is not None and not client.queue:
            client.transport.resume_reading()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.exchange is None:
            raise _Stray
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True
            self.headers, self.reason = [], b""
            return
        self.status = status
        self.exchange.response_head(self)

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.response_body(body)

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if self.interim:
            self.interim = False
        elif exchange is not None and self.status != 101:  # a 101 goes on as a tunnel
            self.reusable = self.parser.should_keep_alive()
            exchange.response_complete()

    # -- used by the exchange ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def send_body(self, body: bytes, chunked: bool) -> None:
        if chunked:
            self.write(b"%x\r\n%s\r\n" % (len(body), body))
        else:
            self.write(body)

    def end_body(self, chunked: bool) -> None:
        if chunked:
            self.write(b"0\r\n\r\n")

    def close(self) -> None:
        self.done = True
        if self.transport is not None:
            self.transport.close()


class Exchange:
    """One request: routed by the Router (hold, pick, backlog, retry), then relayed."""

    def __init__(self, client: Client, request: Request) -> None:
        self.client = client
        self.request = request
        self.router = client.router
        self.loop = client.loop
        self.fields = self.router.describe(client, request)
        self.dyno = ""  # the dyno tried last (for the log line)
        self.slot = ""  # the dyno whose in-flight slot this request holds
        self.until_close = False  # the dyno's body ends when its connection does
        self.upstream: Upstream | None = None
        self.replay: list[bytes] | None = None  # the body, while a reused connection may be stale
        self.connect: float | None = None
        self.connected = 0.0
        self.head: bytes | None = None  # the response head, until it goes out
        self.head_sent = False
        self.chunked = False  # re-chunk the body for the client
        self.keep_alive = request.keep_alive and not request.upgrade
        self.nbytes = 0
        self.status = 0
        self.over = False
        self.deadline: asyncio.TimerHandle | None = None
        self.router.request_began()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self.router.route(self)
        except Exception as exc:  # a bug in the router, not a network event: say so
            self.fail("H99", extra=f'error="{type(exc).__name__}"')

    # -- the outcome ---------------------------------------------------------------------------

    def end(self, line: str, keep_alive: bool | None = None) -> None:
        """Log the one line of this request and hand the client connection back."""
        if self.over:
            return
        self.over = True
        if self.deadline is not None:
            self.deadline.cancel()
        if self.upstream is not None:
            upstream, self.upstream = self.upstream, None
            reusable = upstream.reusable and self.request.body_done and not self.request.upgrade
            self.router.release_upstream(upstream, reusable)
        if self.slot:
            self.router.free_slot(self.slot)
            self.slot = ""
        self.router.log(line)
        self.router.request_answered()
        if not self.request.body_done and self.request.sink is None:
            keep_alive = False  # an unread body stands between us and the next request
        self.client.finished(self.keep_alive if keep_alive is None else keep_alive)
        if not self.task.done() and asyncio.current_task() is not self.task:
            self.task.cancel()

    def fail(
        self,
        code: str,
        *,
        status: int | None = None,
        extra: str = "",
        nbytes: int | None = None,
    ) -> None:
        """Answer with Heroku's error page (unless a response has begun: then cut it off)."""
        if self.over:
            return
        status = status or wire.ERROR_STATUS.get(code, 503)
        at = "info" if code in wire.INFO_CODES else "error"
        line = self._line(at, code, status, nbytes, extra=extra)
        if self.head_sent:
            self.client.abort()
            self.end(line, keep_alive=False)
            return
        close = not self.keep_alive or not self.request.body_done
        self.client.write(wire.error_response(status, close=close))
        self.end(line, keep_alive=not close)

    def refuse(self, status: int, desc: str) -> None:
        """A request refused without an H code (CONNECT), then the connection closed."""
        self.client.write(wire.error_response(status, close=True))
        line = wire.log_line(self.fields, "error", status=status, desc=desc)
        self.end(line, keep_alive=False)

    def client_lost(self) -> None:
        """The client went away (or stopped sending its body) before the answer was complete."""
        if not self.over:
            self._cut("warning", "H27", 499, "client")

    def _service(self) -> float | None:
        return time.monotonic() - self.connected if self.connected else None

    def _line(
        self,
        at: str,
        code: str = "",
        status: int = 503,
        nbytes: int | None = None,
        *,
        service: float | None = None,
        sock: str = "",
        extra: str = "",
    ) -> str:
        """This request's log line (dyno, connect time and service time filled in)."""
        dyno = self.router.dyno_name(self.dyno)
        service = self._service() if service is None else service
        return wire.log_line(
            self.fields,
            at,
            code,
            dyno,
            self.connect,
            service,
            status,
            nbytes,
            sock=sock,
            extra=extra,
        )

    def _cut(self, at: str, code: str, status: int, sock: str) -> None:
        """Log `code` and drop the client connection: the exchange cannot end cleanly."""
        line = self._line(at, code, status, self.nbytes, sock=sock)
        self.client.abort()
        self.end(line, keep_alive=False)

    # -- relaying ------------------------------------------------------------------------------

    def start_upstream(self, upstream: Upstream, connect: float, connected: float) -> None:
        """A dyno accepted the connection: send the head, the body so far, and the rest as it
        comes; start the clock for the first response byte (H12)."""
        self.upstream = upstream
        self.connect = connect
        self.connected = connected
        request = self.request
        upstream.write(self.router.request_head(self, upstream.key))
        if request.expect is not None:
            self.client.write(wire.CONTINUE)
        for piece in request.pending:
            upstream.send_body(piece, request.chunked)
        self.replay = request.pending if upstream.reused else None
        request.pending = []
        request.sink = upstream
        if request.body_done and not request.upgrade:
            upstream.end_body(request.chunked)
        client = self.client
        if client.transport is not None and not client.queue and client.refused is None:
            client.transport.resume_reading()

    def response_head(self, upstream: Upstream) -> None:
        if self.over:
            return
        self.replay = None
        if self.deadline is not None:
            self.deadline.cancel()
        request = self.request
        status = self.status = upstream.status
        head, self.chunked, self.until_close, self.keep_alive = wire.response_head(
            request, status, upstream.reason, upstream.headers, self.keep_alive
        )
        self.head = head
        self.nbytes = len(head)
        if request.method == b"HEAD":
            self.flush()
            self.response_complete()

    def flush(self) -> None:
        """Send the response head if no body came with it: the client sees the status now."""
        if self.head is not None and not self.over:
            self.client.write(self.head)
            self.head = None
            self.head_sent = True

    def response_body(self, body: bytes) -> None:
        if self.over:
            return
        data = b"%x\r\n%s\r\n" % (len(body), body) if self.chunked else body
        if self.head is not None:
            data = self.head + data  # one write for a small reply
            self.head = None
            self.head_sent = True
        self.client.write(data)
        self.nbytes += len(body)

    def response_complete(self) -> None:
        if self.over:
            return
        self.flush()
        if self.chunked:
            self.client.write(b"0\r\n\r\n")
        self.end(self._line("info", status=self.status, nbytes=self.nbytes))

    def upstream_lost(self) -> None:
        """The dyno closed the connection (or sent garbage) before the response was complete."""
        if self.over:
            return
        upstream = self.upstream
        if upstream is not None and self.replay is not None and not upstream.head_size:
            self._resend()  # the dyno had closed this idle connection as we reused it
            return
        if not self.status:
            self.fail("H13")
            return
        if self.until_close:
            self.response_complete()  # a body delimited by the end of the connection
            return
        self.flush()
        self._cut("error", "H18", 503, "backend")  # a half-sent response must not pass as whole

    def _resend(self) -> None:
        """Route the request again, on a new connection: nothing of it reached the dyno's app
        (a client would retry an idempotent request on a stale keep-alive connection too)."""
        assert self.upstream is not None and self.replay is not None
        self.upstream.close()
        self.upstream = None
        self.request.pending, self.replay = self.replay, None
        self.request.sink = None
        self.request.fresh = True
        if self.deadline is not None:
            self.deadline.cancel()
        if self.slot:
            self.router.free_slot(self.slot)
            self.slot = ""
        self.task = asyncio.ensure_future(self._run())

    def tunnel(self, tail: bytes) -> None:
        """The dyno switched protocols (101, e.g. WebSocket): from now on bytes flow both ways
        untouched, until either side closes or both are idle for the idle timeout."""
        upstream, client = self.upstream, self.client
        if upstream is None or self.over:
            return
        self.flush()
        line = self._line("info", status=101, nbytes=self.nbytes)
        self.upstream = None  # end() must not close it
        upstream.tunnel_to = client
        client.tunnel = upstream
        self.end(line, keep_alive=False)
        if tail:
            client.write(tail)
        if self.request.tail:
            upstream.write(self.request.tail)
        if client.transport is not None:
            client.transport.resume_reading()

    def pause_upstream(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_upstream(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    def check_idle(self, now: float, idle: float) -> None:
        """H28 when the client stalls (sending its body, or not reading the response) for the
        idle timeout; H15 when a started response stalls that long."""
        client = self.client
        request = self.request
        waiting_on_client = (not request.body_done and request.sink is not None) or (
            client.write_paused
        )
        if waiting_on_client and now - client.last_seen >= idle:
            self._cut("warning", "H28", 499, "client")
        elif self.status and self.upstream is not None and now - self.upstream.last_seen >= idle:
            self.fail("H15", nbytes=self.nbytes)
