"""What the router puts on the wire besides the dyno's bytes: limits, the heads it rewrites both
ways, error pages, the log line. Pure functions and constants; no I/O."""

from __future__ import annotations

import re
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Protocol

MAX_ATTEMPTS = 10  # connection attempts per request before H19/H21
QUARANTINE_SECONDS = 5.0  # how long a dyno that refused (or timed out) gets no new requests
#: Heroku's router: H12 when a response has not started 30 s after the request arrived; a
#: request finding no dyno up is held this long (H20), a dyno's connect this long (H19).
REQUEST_TIMEOUT, HOLD_TIMEOUT, CONNECT_TIMEOUT = 30.0, 75.0, 5.0
IDLE_TIMEOUT = 55.0  # rolling: a stalled response (H15) or client (H28) is cut off
CONNECTIONS_PER_DYNO = 50  # Heroku: at most 50 active requests per dyno per router
BACKLOG_PER_DYNO = 50  # Heroku: at most 50 x dynos requests wait for a slot, beyond that H11
SHUTDOWN_GRACE = 5.0  # close() lets in-flight requests finish for this long
MAX_HEADERS = 1000  # Heroku: at most 1000 request headers
MAX_LINE = 8192  # Heroku: the request line and each header line at most 8 KB
MAX_HEAD = MAX_LINE * 64  # a request head larger than this is refused before it is complete
MAX_RESPONSE_HEAD = 1024 * 1024  # a dyno's response head beyond this is H13 (lines: 512 KB)
BUFFER = 256 * 1024  # request body held while no dyno is connected; beyond it reading pauses
DYNO_IDLE_TIMEOUT = 90.0  # Router 2.0: an idle keep-alive connection to a dyno is kept this long
CLOSES_AFTER_ANSWER = 1.0  # a dyno closing a fresh connection this soon after answering closes all
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# What dynosim's HAProxy front tells the Router behind it (see Router's `fronted`).
FRONT_CLIENT = b"x-dynosim-client"
FRONT_PROTO = b"x-dynosim-proto"
FRONT_HEADERS = (FRONT_CLIENT, FRONT_PROTO)
# Request headers the router sets itself (a client's value is folded in or replaced).
REQUEST_DROP = HOP_BY_HOP | {
    b"content-length",
    b"expect",
    b"via",
    b"x-forwarded-for",
    b"x-forwarded-port",
    b"x-forwarded-proto",
    b"x-request-id",
    b"x-request-start",
    *FRONT_HEADERS,
}
RESPONSE_DROP = HOP_BY_HOP | {b"content-length", b"via"}
NO_BODY = frozenset({204, 304})  # statuses whose responses have no body
VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9+/=-]{20,200}")
ERROR_STATUS = {"H27": 499, "H28": 499}
INFO_CODES = {"H82"}  # Heroku logs these at=info
DESCRIPTIONS = {
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
    "H22": "Connection limit reached",
    "H26": "Request Error",
    "H27": "Client Request Interrupted",
    "H28": "Client Connection Idle",
    "H82": "Free app running time quota exhausted",
    "H99": "Platform error",
}
REASONS = {
    400: b"Bad Request",
    405: b"Method Not Allowed",
    417: b"Expectation Failed",
    499: b"Client Closed Request",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}
ERROR_PAGE = b"""<!DOCTYPE html>
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
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def error_response(status: int, close: bool) -> bytes:
    """Heroku's plain error page as a whole response."""
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Cache-Control: no-cache, no-store\r\nContent-Length: %d\r\n"
        % (status, REASONS.get(status, b"Error"), len(ERROR_PAGE))
    )
    return head + (b"Connection: close\r\n\r\n" if close else b"\r\n") + ERROR_PAGE


def connection_tokens(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names (lowercase) that a Connection header declares hop-by-hop."""
    return frozenset(
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
        if token.strip()
    )


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-Id when Heroku would keep it, else a new UUIDv4."""
    for name, value in headers:
        if name.lower() == b"x-request-id" and VALID_REQUEST_ID.fullmatch(value):
            return value.decode()
    return str(uuid.uuid4())


@dataclass(slots=True)
class Fields:
    """What the log line says about one request."""

    method: str
    path: str
    host: str
    request_id: str
    fwd: str
    protocol: str  # "http" or "https"


class RequestHead(Protocol):
    """What the head rewrites read of a parsed request (:class:`.proxy.Request` has it)."""

    method: bytes
    url: bytes
    version: str
    headers: list[tuple[bytes, bytes]]
    upgrade: bool
    chunked: bool
    transfer_encoding: bytes
    content_length: int | None
    start_ms: int


def origin(host: str, port: int, scheme: str = "http") -> str:
    """The URL of host:port (an IPv6 host in brackets)."""
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def target(url: bytes) -> bytes:
    """The request target for the dyno: origin-form (an absolute URL loses its scheme and host)."""
    if url.startswith(b"/"):
        return url
    if url == b"*":
        return url
    split = urllib.parse.urlsplit(url)
    path = split.path or b"/"
    return path + (b"?" + split.query if split.query else b"")


def describe(request: RequestHead, remote: str, scheme: str, fronted: bool) -> Fields:
    """The log line's description of a request, from its head. `remote` and `scheme` are the
    client connection's; `fronted` (behind dynosim's HAProxy) takes them from its headers."""
    host = b""
    forwarded = []
    for name, value in request.headers:
        lowered = name.lower()
        if lowered == b"host":
            host = value
        elif lowered == b"x-forwarded-for":
            forwarded.append(value.decode("latin-1"))
        elif lowered in FRONT_HEADERS and fronted:
            if lowered == FRONT_CLIENT:
                remote = value.decode("latin-1")
            else:
                scheme = "https" if value == b"https" else "http"
    if remote:
        forwarded.append(remote)
    return Fields(
        request.method.decode("latin-1"),
        request.url.decode("latin-1").replace('"', "%22"),
        host.decode("latin-1"),
        request_id(request.headers),
        ", ".join(forwarded),
        scheme,
    )


def request_head(
    request: RequestHead, fields: Fields, host: bytes, port: bytes, close: bool
) -> bytes:
    """The head sent to a dyno: the client's end-to-end headers plus Heroku's. `host` and
    `port` are the router's (a missing Host, X-Forwarded-Port); `close` asks the dyno to close
    the connection after answering."""
    named = connection_tokens(request.headers)
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method, target(request.url))]
    via = []
    upgrade = b""
    for name, value in request.headers:
        lowered = name.lower()
        if lowered in REQUEST_DROP or lowered in named:
            if lowered == b"via":
                via.append(value)
            elif lowered == b"upgrade":
                upgrade = value
            continue
        lines.append(b"%s: %s\r\n" % (name, value))
    if not fields.host:  # HTTP/1.0 clients may omit it; HTTP/1.1 dynos need it
        lines.append(b"Host: %s:%s\r\n" % (host, port))
    via.append(b"1.1 vegur")
    lines.append(
        b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\nX-Forwarded-Port: %s\r\n"
        b"X-Request-Start: %d\r\nX-Request-Id: %s\r\nVia: %s\r\n"
        % (
            fields.fwd.encode("latin-1"),
            fields.protocol.encode(),
            port,
            request.start_ms,
            fields.request_id.encode(),
            b", ".join(via),
        )
    )
    if request.upgrade and upgrade:
        lines.append(b"Connection: Upgrade\r\nUpgrade: %s\r\n" % upgrade)
    elif close:
        lines.append(b"Connection: close\r\n")
    if request.chunked:
        lines.append(b"Transfer-Encoding: %s\r\n" % request.transfer_encoding)
    elif request.content_length is not None:
        lines.append(b"Content-Length: %d\r\n" % request.content_length)
    lines.append(b"\r\n")
    return b"".join(lines)


def response_head(
    request: RequestHead,
    status: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]],
    keep_alive: bool,
) -> tuple[bytes, bool, bool, bool]:
    """The head sent to the client for a dyno's response to `request` (hop-by-hop headers
    dropped, Via added, the framing the client gets), and how the body goes on:
    (head, chunked: re-chunk the body for the client, until_close: the dyno's body ends when
    its connection does, keep_alive: the client connection stays open after it)."""
    named = connection_tokens(headers)
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason or b"")]
    length = None
    coding = b""
    via = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            length = value
        elif lowered == b"transfer-encoding":
            coding = value
        elif lowered == b"via":
            via.append(value)
        upgrading = status == 101 and lowered in (b"connection", b"upgrade")
        if upgrading or (lowered not in RESPONSE_DROP and lowered not in named):
            lines.append(b"%s: %s\r\n" % (name, value))
    via.append(b"1.1 vegur")
    lines.append(b"Via: %s\r\n" % b", ".join(via))
    no_body = request.method == b"HEAD" or status in NO_BODY or status == 101
    chunked = b"chunked" in coding.lower()
    until_close = length is None and not chunked and not no_body
    rechunk = False
    if length is not None and (status not in NO_BODY):
        lines.append(b"Content-Length: %s\r\n" % length)
    elif not no_body:
        if request.version == "1.1":
            rechunk = True  # other codings (gzip) stay on the body: keep saying so
            coding = coding if chunked else b", ".join(filter(None, [coding, b"chunked"]))
            lines.append(b"Transfer-Encoding: %s\r\n" % coding)
        else:
            keep_alive = False  # the end of the body is the end of the connection
    if status != 101:
        if not keep_alive:
            lines.append(b"Connection: close\r\n")
        elif request.version == "1.0":
            lines.append(b"Connection: keep-alive\r\n")
    lines.append(b"\r\n")
    return b"".join(lines), rechunk, until_close, keep_alive


def ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{round(seconds * 1000)}ms"


def log_line(
    x: Fields,
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
) -> str:
    """The message of a ``heroku[router]`` line, field for field as Heroku writes it."""
    parts = [f"sock={sock} at={at}" if sock else f"at={at}"]
    if code:
        parts.append(f'code={code} desc="{DESCRIPTIONS[code]}"')
    elif desc:
        parts.append(f'desc="{desc}"')
    if extra:
        parts.append(extra)
    parts.append(
        f'method={x.method} path="{x.path}" host={x.host} request_id={x.request_id} '
        f'fwd="{x.fwd}" dyno={dyno} connect={ms(connect)} service={ms(service)} '
        f"status={status} bytes={'' if nbytes is None else nbytes} protocol={x.protocol}"
    )
    return " ".join(parts)
