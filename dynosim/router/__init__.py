"""The routing layer in front of web dynos: Heroku's legacy router ("vegur"), locally.

An HTTP/1.1 reverse proxy on asyncio protocols with httptools (llhttp) parsing both ways
(:mod:`.proxy`); the :class:`Router` here decides where each request goes, among the web dynos
the supervisor registered with :meth:`Router.add_backend`. It serves HTTP and, given a TLS
context, HTTPS. It is one of the two engines of :class:`~.engine.RouterEngine`, the interface
the rest of dynosim uses (the other: :mod:`.haproxy`); the data path asks it only what
:class:`.proxy.Routing` lists, and the heads it rewrites are :mod:`.wire`'s. What it mimics
(heroku-behaviour.md §4):

* random dyno selection among dynos with fewer than 50 requests in flight; beyond that a request
  waits in a backlog of at most 50 x dynos (H11 beyond it, H12 if the wait outlasts the request
  timeout); a dyno that refuses a connection or does not accept one within ``connect_timeout``
  is quarantined for 5 s and another is tried (at most 10 attempts, each dyno at most once per
  request), then H21 (refused) or H19 (connect timeout);
* no dyno to route to: H14 when the formation has no web dynos, H10 when they all crashed, and
  while they are starting the request is held until one is up or ``hold_timeout`` passes (H20);
  a sleeping app is woken through ``on_wake`` and the request held the same way (H20 also when
  the supervisor reports the wake failed); an empty dyno-hours pool answers H82;
* added headers X-Forwarded-For/-Proto/-Port, X-Request-Start, X-Request-Id, Via (on responses
  too); Host kept; hop-by-hop headers dropped both ways (also those a Connection header names);
* request and response bodies streamed with flow control both ways, never buffered whole;
  H12 when the response does not start within ``request_timeout`` of the request's arrival;
  H13 when a dyno closes without answering; H18 when it breaks off a response; H15 when a
  started response stalls for ``idle_timeout`` (55 s), H28 when the client does (sending its
  body or not reading the response); H27 (499) when the client goes away; idle keep-alive
  connections close after ``idle_timeout``;
* limits as vegur: request line and each header line at most 8 KB, at most 1000 headers;
  malformed requests, conflicting Content-Length / Transfer-Encoding (request smuggling) and
  bad chunks get 400 with H26 and a closed connection; HTTP/0.9 or 2.x get 505;
* ``Upgrade`` (WebSocket) is proxied: after the dyno's 101 bytes flow both ways untouched until
  a side closes or both are idle for ``idle_timeout``; the 101 is logged;
* HTTP/1.1 keep-alive and pipelining to clients, HTTP/1.0, a client that half-closes after its
  request still gets the answer; ``Expect: 100-continue`` answered by the router when the body
  is about to be forwarded (the dyno never sees it), another expectation gets 417 with H26;
* connections to dynos kept alive between requests for 90 s idle, as Router 2.0 does
  (``keepalive=False``: one per request, the legacy router's way); a dyno that closes each
  connection right after answering gets ``Connection: close`` and a new one per request;
* one ``heroku[router]`` log line per request, in Heroku's format, handed to the ``log`` callback.

Deliberate differences, chosen for a single local router:

* ``CONNECT`` is answered 405 and logged without an H code (Heroku rejects it too, undocumented
  how). Methods llhttp does not know get 400 (vegur accepts any token).
* No Connect-Time / Total-Route-Time headers.
* A request meeting a kept connection that its dyno closed meanwhile is sent again on a new one
  rather than answered H13/H18; only idempotent requests with no body still streaming in go out
  on kept connections, so that is always possible.
* H22 (connection limit) comes from this process's file-descriptor limit, not Heroku's
  (unpublished) per-app limit: beyond it a new connection gets 503 with H22 and is closed.
* X-Forwarded-Proto/-Port describe the port the client connected to (HTTP or HTTPS), not 80/443.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import random
import resource
import socket
import ssl
import time
from collections.abc import Callable

from . import wire
from .engine import RouterEngine, RouterError, WebStatus
from .proxy import Client, Exchange, Request, Upstream
from .wire import (
    BACKLOG_PER_DYNO,
    CLOSES_AFTER_ANSWER,
    CONNECTIONS_PER_DYNO,
    DYNO_IDLE_TIMEOUT,
    IDEMPOTENT,
    IDLE_TIMEOUT,
    MAX_ATTEMPTS,
    QUARANTINE_SECONDS,
    SHUTDOWN_GRACE,
    Fields,
)

__all__ = ["Router", "RouterEngine", "RouterError", "WebStatus"]


class _Change(asyncio.Event):
    """Set (and replaced) whenever a held request may proceed; `code`, when set with it, is
    the answer for the requests it wakes (a wake that failed: H20)."""

    def __init__(self) -> None:
        super().__init__()
        self.code: str | None = None


def _connection_limit() -> int:
    """Client connections that fit in this process's file descriptors: each request also holds
    one to its dyno, and the rest of dynosim needs a few."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(16, (soft - 128) // 2)


class Router:
    """Heroku's routing layer for one app: a reverse proxy spreading requests over web dynos
    (a :class:`~.engine.RouterEngine`; to its data path, :class:`~.proxy.Routing`)."""

    engine = "python"  # what moves the bytes (see .haproxy for the other)

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
        max_connections: int | None = None,
        keepalive: bool = True,
        fronted: bool = False,
    ) -> None:
        """Configure the router; nothing listens until :meth:`start`.

        ``log`` receives the message part of each ``heroku[router]`` line (no timestamp, no
        source); ``hold_timeout`` bounds how long a request waits for a starting dyno,
        ``connect_timeout`` a connection to a dyno, ``request_timeout`` the wait for the
        response to start; ``idle_timeout`` is the rolling window after which a silent dyno
        (H15), client (H28) or idle keep-alive connection is cut off. With ``ssl_context`` the
        router also serves HTTPS on ``https_port``. Beyond ``max_connections`` open client
        connections (default: what the file-descriptor limit allows, two per request) a new one
        gets H22. With ``keepalive`` (Router 2.0's default) connections to dynos are kept
        open between requests, for ``DYNO_IDLE_TIMEOUT``; without, each request gets its own.
        ``fronted``: the router sits behind dynosim's HAProxy (:mod:`.haproxy`), on a private
        socket, and takes the client's address and scheme from the headers HAProxy sets.
        """
        self.app = app
        self.log = log
        self._host = host
        self._port = port
        self._https_port = https_port
        self._ssl_context = ssl_context
        self._hold_timeout = hold_timeout
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self._max_connections = max_connections or _connection_limit()
        self._keepalive = keepalive
        self._fronted = fronted
        self._idle: dict[str, list[Upstream]] = {}  # backend -> idle connections, newest last
        self._closes: set[str] = set()  # backends that close every connection after answering
        self._sweeper: asyncio.TimerHandle | None = None
        self._backlog: collections.deque[asyncio.Future[None]] = collections.deque()
        self._backends: dict[str, tuple[str, int]] = {}
        self._labels: dict[str, str] = {}  # backend key -> dyno name shown in the log line
        self._active: dict[str, int] = {}  # backend key -> requests in flight
        self._names: tuple[str, ...] = ()
        self._quarantine: dict[str, float] = {}  # dyno -> monotonic time it may be tried again
        self._status = WebStatus.NONE
        self._changed = _Change()
        self._handling = 0  # requests received and not yet answered (held ones included)
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._servers: list[asyncio.Server] = []
        self._clients: set[Client] = set()
        self._port_headers = {"http": b"%d" % port, "https": b"%d" % (https_port or 0)}
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
        if self._servers:
            return
        loop = asyncio.get_running_loop()
        listeners = [(sock, self._port, None, "--port", "http")]
        if self._ssl_context is not None:
            listeners.append(
                (tls_sock, self._https_port or 0, self._ssl_context, "--https-port", "https")
            )
        for listener, port, context, option, scheme in listeners:

            def factory(scheme: str = scheme) -> Client:
                return Client(self, scheme)

            try:
                if listener is not None:
                    server = await loop.create_server(factory, sock=listener, ssl=context)
                else:
                    server = await loop.create_server(
                        factory, self._host, port, ssl=context, backlog=1024, reuse_address=True
                    )
            except OSError as exc:
                await self._stop_servers()
                where = f"{self._host}:{port}"
                if exc.errno == errno.EADDRINUSE:
                    raise RouterError(
                        f"{where} is already in use; choose another port with {option}"
                    ) from None
                raise RouterError(f"cannot listen on {where}: {exc.strerror or exc}") from None
            self._servers.append(server)
        if self._fronted:
            return
        bound = [server.sockets[0].getsockname()[1] for server in self._servers]
        self.set_ports(bound[0], bound[1] if len(bound) > 1 else None)

    def set_ports(self, port: int, https_port: int | None) -> None:
        """The ports clients reach (the bound ones, or the HAProxy front's), for
        X-Forwarded-Port and a missing Host."""
        self._port, self._https_port = port, https_port
        self._port_headers = {"http": b"%d" % port, "https": b"%d" % (https_port or 0)}

    async def _stop_servers(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()

    async def close(self) -> None:
        """Stop listening, answer held requests, let in-flight ones finish (5 s at most), then
        close every client connection."""
        servers = list(self._servers)
        for server in servers:
            server.close()
        self._servers = []
        self.set_status(WebStatus.NONE)
        for key in list(self._backends):
            self.remove_backend(key)
        if self._sweeper is not None:
            self._sweeper.cancel()
        for client in list(self._clients):
            if client.exchange is None and not client.queue and client.tunnel is None:
                client.abort()  # idle keep-alive connections
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE):
                await self._quiet.wait()
        except TimeoutError:
            pass
        for client in list(self._clients):
            client.abort()
        for server in servers:
            await server.wait_closed()

    @property
    def url(self) -> str:
        """Where clients reach the router (the bound port once started with port=0)."""
        return wire.origin(self._host, self._port)

    @property
    def https_url(self) -> str | None:
        """Where clients reach the router over HTTPS (None without an ssl_context)."""
        if self._https_port is None or self._ssl_context is None:
            return None
        return wire.origin(self._host, self._https_port, "https")

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
        self._closes.discard(key)
        for upstream in self._idle.pop(key, ()):
            upstream.close()
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

    @property
    def idle_connections(self) -> int:
        """Connections to dynos kept open for the next request."""
        return sum(len(idle) for idle in self._idle.values())

    def _sync_backends(self) -> None:
        self._names = tuple(self._backends)

    async def quiet(self) -> None:
        """Wait until every request received so far is answered (held ones included)."""
        await self._quiet.wait()

    def fail_held(self, code: str) -> None:
        """Answer every request waiting for a dyno with `code` (a wake that failed: H20)."""
        self._wake(code)

    def _wake(self, code: str | None = None) -> None:
        changed, self._changed = self._changed, _Change()
        changed.code = code
        changed.set()

    # -- what the data path asks (proxy.Routing) ---------------------------------------------

    def admit(self, client: Client) -> bool:
        """A client connected: count it, or False beyond ``max_connections`` (H22)."""
        if len(self._clients) >= self._max_connections:
            return False
        self._clients.add(client)
        return True

    def client_closed(self, client: Client) -> None:
        """A client connection is gone."""
        self._clients.discard(client)

    def request_began(self) -> None:
        """A request arrived: :meth:`quiet` waits for it."""
        self._handling += 1
        self._quiet.clear()

    def request_answered(self) -> None:
        """A request that began was answered."""
        self._handling -= 1
        if not self._handling:
            self._quiet.set()

    async def route(self, x: Exchange) -> None:
        """Find a dyno for the request and connect to it; the relaying is callback-driven."""
        request = x.request
        self.on_request()
        if request.method == b"CONNECT":
            x.refuse(405, "Method not supported")
            return
        if request.version not in ("1.0", "1.1"):  # HTTP/0.9, or 2.x spoken in HTTP/1 syntax
            x.fail("H26", status=505, extra='error="Unsupported HTTP version"')
            return
        if request.expect is not None:
            if request.version == "1.0":
                request.expect = None
            elif request.expect.lower() != b"100-continue":
                x.fail("H26", status=417, extra='error="Unsupported expect header value"')
                return
        if not self._names and (code := await self._hold()):
            x.fail(code)
            return
        loop = asyncio.get_running_loop()
        deadline = request.received + self._request_timeout
        tried: set[str] = set()
        code = "H21"
        attempts = 0
        while attempts < MAX_ATTEMPTS:
            picked = self._pick(tried)
            if picked is None:  # every dyno it may go to has 50 requests in flight
                if queued := await self._wait_for_slot(deadline):
                    x.fail(queued)
                    return
                continue
            if not picked:
                break
            attempts += 1
            tried.add(picked)
            self._active[picked] = self._active.get(picked, 0) + 1
            x.dyno = x.slot = picked
            began = time.monotonic()
            upstream = self._reuse(picked, x)
            if upstream is None:
                host, port = self._backends[picked]
                try:
                    upstream = await self._connect(x, picked, host, port)
                except (TimeoutError, OSError) as exc:
                    code = "H19" if isinstance(exc, TimeoutError) else "H21"
                    x.connect = time.monotonic() - began
                    self._quarantine[picked] = time.monotonic() + QUARANTINE_SECONDS
                    x.slot = ""
                    self.free_slot(picked)
                    continue
            connected = time.monotonic()
            x.start_upstream(upstream, connected - began, connected)
            x.deadline = loop.call_later(max(0.0, deadline - connected), self._timed_out, x)
            return
        x.fail(code)

    async def _connect(self, x: Exchange, key: str, host: str, port: int) -> Upstream:
        """A new connection to a dyno, or TimeoutError after ``connect_timeout``. (A timer that
        cancels the task costs a third of ``asyncio.timeout``, on every request.)"""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = loop.call_later(self._connect_timeout, expire)
        try:
            _, upstream = await loop.create_connection(
                functools.partial(Upstream, x, key), host, port
            )
        except asyncio.CancelledError:
            if expired and not task.uncancel():
                raise TimeoutError from None
            raise
        finally:
            timer.cancel()
        return upstream

    def _reuse(self, key: str, x: Exchange) -> Upstream | None:
        """An idle connection to `key` for the request, if it may take one: it must be one the
        router can send again should the dyno have closed that connection meanwhile."""
        request = x.request
        idle = self._idle.get(key)
        if not idle or request.fresh or not request.body_done or request.method not in IDEMPOTENT:
            return None
        upstream = idle.pop()
        upstream.attach(x)
        upstream.reused = True
        return upstream

    def release_upstream(self, upstream: Upstream, reusable: bool) -> None:
        """A request is done with its connection: keep it for the next one, or close it."""
        key = upstream.key
        keep = reusable and self._keepalive and upstream.transport is not None
        if keep and key in self._backends and key not in self._closes:
            idle = self._idle.setdefault(key, [])
            if len(idle) < CONNECTIONS_PER_DYNO:
                upstream.park()
                idle.append(upstream)
                if self._sweeper is None:
                    loop = asyncio.get_running_loop()
                    self._sweeper = loop.call_later(DYNO_IDLE_TIMEOUT / 4, self._sweep)
                return
        upstream.close()

    def upstream_closed(self, upstream: Upstream) -> None:
        """The dyno closed an idle connection. If it did so right after its first answer, it
        closes every connection (uWSGI's http-socket does): stop keeping them for it."""
        with contextlib.suppress(ValueError):
            self._idle.get(upstream.key, []).remove(upstream)
        if not upstream.reused and time.monotonic() - upstream.parked < CLOSES_AFTER_ANSWER:
            self._closes.add(upstream.key)

    def _sweep(self) -> None:
        """Close connections idle for longer than Router 2.0 keeps them."""
        self._sweeper = None
        cutoff = time.monotonic() - DYNO_IDLE_TIMEOUT
        for idle in self._idle.values():
            while idle and idle[0].parked <= cutoff:
                idle.pop(0).close()
        if any(self._idle.values()):
            self._sweeper = asyncio.get_running_loop().call_later(
                DYNO_IDLE_TIMEOUT / 4, self._sweep
            )

    @staticmethod
    def _timed_out(x: Exchange) -> None:
        """H12: the response did not start in time (the dyno keeps working on it)."""
        if not x.status:
            x.fail("H12", nbytes=0)

    def free_slot(self, key: str) -> None:
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
            if changed.code:
                return changed.code
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

    def dyno_name(self, key: str) -> str:
        """The dyno name logged for the backend `key` (the key itself once forgotten)."""
        return self._labels.get(key, key)

    def describe(self, client: Client, request: Request) -> Fields:
        """The log line's description of a request, from its head (behind HAProxy, the client
        address and scheme are the ones HAProxy passes on)."""
        return wire.describe(request, client.remote, client.scheme, self._fronted)

    def request_head(self, x: Exchange, key: str) -> bytes:
        """The head sent to the dyno `key`: the client's end-to-end headers plus Heroku's."""
        return wire.request_head(
            x.request,
            x.fields,
            self._host.encode(),
            self._port_headers[x.fields.protocol],
            not self._keepalive or key in self._closes,
        )
