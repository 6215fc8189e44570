"""The routing layer in front of web dynos: Heroku's legacy router ("vegur"), locally.

An HTTP/1.1 reverse proxy on asyncio protocols with httptools (llhttp) parsing both ways
(:mod:`.proxy`); the :class:`Router` here decides where each request goes, among the web dynos
the dyno manager registered with :meth:`Router.add_backend`. It serves HTTP and, given a TLS
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
  the dyno manager reports the wake failed); an empty dyno-hours pool answers H82;
* added headers X-Forwarded-For/-Proto/-Port, X-Request-Start, X-Request-Id, Via (on responses
  too); Host kept; hop-by-hop headers dropped both ways (also those a Connection header names);
* request and response bodies streamed with flow control both ways, never buffered whole;
  H12 when the response does not start within ``request_timeout`` of the request's arrival
  (for a request held while dynos started or woke: of the end of the hold, as Heroku's 30 s
  start when the request goes to a dyno, and the hold has its own limit, H20);
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
import socket
import ssl
import time
from collections.abc import Callable

from . import wire
from .balancer import Balancer
from .clients import Clients
from .engine import RouterEngine, RouterError, WebStatus
from .holding import Holding
from .pool import Pool
from .proxy import Client, Exchange, Request, Upstream
from .wire import (
    CONNECT_TIMEOUT,
    DYNO_IDLE_TIMEOUT,
    HOLD_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_ATTEMPTS,
    REQUEST_TIMEOUT,
    Fields,
)

__all__ = ["Router", "RouterEngine", "RouterError", "WebStatus"]


class Router:
    """Heroku's routing layer for one app: a reverse proxy spreading requests over web dynos
    (a :class:`~.engine.RouterEngine`; to its data path, :class:`~.proxy.Routing`).

    Its parts: the :class:`~.clients.Clients` connected, the dynos and which one takes a
    request (:class:`~.balancer.Balancer`), the requests held while there is none
    (:class:`~.holding.Holding`), the connections to dynos (:class:`~.pool.Pool`)."""

    engine = "python"  # what moves the bytes (see .haproxy for the other)

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
        self.idle_timeout = idle_timeout
        self._request_timeout = request_timeout
        self._fronted = fronted
        self._clients = Clients(host, port, https_port, ssl_context, max_connections)
        self._balancer = balancer = Balancer()
        self._holding = Holding(balancer, hold_timeout, lambda: self.on_wake())
        self._pool = Pool(
            balancer,
            keepalive=keepalive,
            connect_timeout=connect_timeout,
            idle_for=DYNO_IDLE_TIMEOUT,
        )
        self._handling = 0  # requests received and not yet answered (held ones included)
        self._quiet = asyncio.Event()
        self._quiet.set()
        #: Called on every request (the dyno manager's idle clock) and when a request finds the
        #: app asleep (the dyno manager wakes it); both set by the dyno manager.
        self.on_request: Callable[[], None] = lambda: None
        self.on_wake: Callable[[], None] = lambda: None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(
        self, sock: socket.socket | None = None, tls_sock: socket.socket | None = None
    ) -> None:
        """Listen on host:port (and https_port), or serve `sock` (and `tls_sock`), already
        listening: connections made before the router started wait in their backlog.
        RouterError if an address cannot be bound."""
        if self._clients.servers:
            return
        bound = await self._clients.listen(self, sock, tls_sock)
        if not self._fronted:
            self.set_ports(*bound)

    def set_ports(self, port: int, https_port: int | None) -> None:
        """The ports clients reach (the bound ones, or the HAProxy front's), for
        X-Forwarded-Port and a missing Host."""
        self._clients.set_ports(port, https_port)

    async def close(self) -> None:
        """Stop listening, answer held requests, let in-flight ones finish (5 s at most), then
        close every client connection."""
        self._clients.stop_listening()
        self.set_status(WebStatus.NONE)
        for key in list(self._balancer.addresses):
            self.remove_backend(key)
        self._pool.stop()
        await self._clients.close(self._quiet)

    @property
    def url(self) -> str:
        """Where clients reach the router (the bound port once started with port=0)."""
        return self._clients.url

    @property
    def https_url(self) -> str | None:
        """Where clients reach the router over HTTPS (None without an ssl_context)."""
        return self._clients.https_url

    # -- what the dyno manager tells ----------------------------------------------------------

    def add_backend(self, key: str, host: str, port: int, name: str | None = None) -> None:
        """A web dyno is up: route to it from now on (wakes held requests, status becomes UP).

        `key` identifies the backend, `name` (default: the key) is the dyno name logged; two
        backends may share a name while a new release's web.1 boots beside the old one.
        """
        self._balancer.add(key, host, port, name)
        self._holding.set_status(WebStatus.UP)

    def remove_backend(self, key: str) -> None:
        """A web dyno stops taking traffic. With none left, requests are held until the
        dyno manager adds one or sets another status."""
        self._balancer.remove(key)
        self._pool.forget(key)

    async def drain(self, key: str, timeout: float) -> None:
        """Stop routing new requests to a backend and wait (at most `timeout` seconds) until
        the requests it is serving are answered: a dyno is only stopped once it is idle."""
        self.remove_backend(key)
        deadline = time.monotonic() + timeout
        while self._balancer.busy(key) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def set_status(self, status: WebStatus) -> None:
        """Say what to answer when no backend is available (see WebStatus)."""
        self._holding.set_status(status)

    @property
    def backends(self) -> dict[str, tuple[str, int]]:
        """The dynos requests are routed to: name -> (host, port)."""
        return dict(self._balancer.addresses)

    @property
    def idle_connections(self) -> int:
        """Connections to dynos kept open for the next request."""
        return self._pool.idle

    async def quiet(self) -> None:
        """Wait until every request received so far is answered (held ones included)."""
        await self._quiet.wait()

    def fail_held(self, code: str) -> None:
        """Answer every request waiting for a dyno with `code` (a wake that failed: H20)."""
        self._holding.release(code)

    # -- what the data path asks (proxy.Routing) ---------------------------------------------

    def admit(self, client: Client) -> bool:
        """A client connected: count it, or False beyond ``max_connections`` (H22)."""
        return self._clients.admit(client)

    def client_closed(self, client: Client) -> None:
        """A client connection is gone."""
        self._clients.closed(client)

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
        if (
            request.method == b"CONNECT"
            or request.version not in ("1.0", "1.1")
            or request.expect is not None
        ) and _answered_at_once(x):
            return
        balancer, pool = self._balancer, self._pool
        routed = request.received  # the H12 clock: the backlog counts, a hold for boot does not
        if not balancer.keys:
            if code := await self._holding.hold():
                x.fail(code)
                return
            routed = time.monotonic()
        deadline = routed + self._request_timeout
        tried: set[str] = set()
        code = "H21"
        attempts = 0
        while attempts < MAX_ATTEMPTS:
            picked = balancer.pick(tried)
            if picked is None:  # every dyno it may go to has 50 requests in flight
                if queued := await balancer.wait_for_slot(deadline):
                    x.fail(queued)
                    return
                continue
            if not picked:
                break
            attempts += 1
            tried.add(picked)
            x.dyno = x.slot = picked
            began = time.monotonic()
            upstream = pool.reuse(picked, x)
            if upstream is None:
                host, port = balancer.addresses[picked]
                try:
                    upstream = await pool.connect(x, picked, host, port)
                except (TimeoutError, OSError) as exc:
                    code = "H19" if isinstance(exc, TimeoutError) else "H21"
                    x.connect = time.monotonic() - began
                    x.slot = ""
                    balancer.refused(picked)
                    continue
            connected = time.monotonic()
            x.start_upstream(upstream, connected - began, connected)
            x.deadline = asyncio.get_running_loop().call_later(
                max(0.0, deadline - connected), _timed_out, x
            )
            return
        x.fail(code)

    def release_upstream(self, upstream: Upstream, reusable: bool) -> None:
        """A request is done with its connection: keep it for the next one, or close it."""
        self._pool.release(upstream, reusable)

    def upstream_closed(self, upstream: Upstream) -> None:
        """The dyno closed an idle connection (see :meth:`.pool.Pool.closed`)."""
        self._pool.closed(upstream)

    def free_slot(self, key: str) -> None:
        """A request to a backend ended: its slot goes to the longest waiting request."""
        self._balancer.free(key)

    def dyno_name(self, key: str) -> str:
        """The dyno name logged for the backend `key` (the key itself once forgotten)."""
        return self._balancer.name(key)

    def describe(self, client: Client, request: Request) -> Fields:
        """The log line's description of a request, from its head (behind HAProxy, the client
        address and scheme are the ones HAProxy passes on)."""
        return wire.describe(request, client.remote, client.scheme, self._fronted)

    def request_head(self, x: Exchange, key: str) -> bytes:
        """The head sent to the dyno `key`: the client's end-to-end headers plus Heroku's."""
        clients, pool = self._clients, self._pool
        return wire.request_head(
            x.request,
            x.fields,
            clients.host_header,
            clients.port_headers[x.fields.protocol],
            not pool.keepalive or key in pool.closes,
        )


def _answered_at_once(x: Exchange) -> bool:
    """Whether the router answers the request itself: CONNECT (405), a version other than
    HTTP/1.x (505, H26), an expectation besides 100-continue (417, H26; HTTP/1.0's ignored)."""
    request = x.request
    if request.method == b"CONNECT":
        x.refuse(405, "Method not supported")
        return True
    if request.version not in ("1.0", "1.1"):  # HTTP/0.9, or 2.x spoken in HTTP/1 syntax
        x.fail("H26", status=505, extra='error="Unsupported HTTP version"')
        return True
    if request.expect is not None:
        if request.version == "1.0":
            request.expect = None
        elif request.expect.lower() != b"100-continue":
            x.fail("H26", status=417, extra='error="Unsupported expect header value"')
            return True
    return False


def _timed_out(x: Exchange) -> None:
    """H12: the response did not start in time (the dyno keeps working on it)."""
    if not x.status:
        x.fail("H12", nbytes=0)
