"""The dashboard's HTTP server: stdlib ThreadingHTTPServer in a daemon thread on 127.0.0.1,
every request checked for the token (`access`), the page and its scripts from package data,
Plotly's bundle from the `plotly` package, JSON from `views` (a fresh `App` per request: the
store's connection is per thread), and the log tail as Server-Sent Events."""

from __future__ import annotations

import contextlib
import gzip
import json
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .. import listeners
from ..control import NotRunning
from ..errors import DynosimError, UsageError, as_dynosim_error
from ..options import DASHBOARD_PORT, DASHBOARD_PORT_RETRIES, HOST
from . import access, views

if TYPE_CHECKING:
    from ..api import App

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
PLOTLY = "/static/plotly.min.js"
#: Plotly's basic bundle (scatter and bar: all the charts need, a quarter of the full one's
#: size, so a first load compiles in a third of the time), put beside the virtualenv's
#: packages by scripts/setup from npm, of the version the `plotly` package bundles.
PLOTLY_BASIC = (
    Path(sys.prefix) / "share" / "dynosim" / "node_modules" / "plotly.js-basic-dist-min"
    / "plotly-basic.min.js"
)  # fmt: skip
LOG_LINES = 200  # the tail's lines at first, before new ones stream in
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token never leaves in a Referer
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; frame-ancestors 'none'",
}


class Dashboard:
    """One app's dashboard: bound at once (a taken port fails before `up` builds), served
    from :meth:`start` until :meth:`close`. `open_app` makes the `App` each request uses."""

    def __init__(
        self, open_app: Callable[[], App], *, port: int = DASHBOARD_PORT, host: str = HOST,
        token: str | None = None,
    ) -> None:  # fmt: skip
        self.open_app = open_app
        self.token = token or access.new_token()
        self._server = _Server(self, _listen(host, port))
        self.host, self.port = host, self._server.server_address[1]
        self._thread: threading.Thread | None = None
        self._plotly: tuple[bytes, bytes] | None = None
        self._plotly_lock = threading.Lock()

    @property
    def url(self) -> str:
        """Where the dashboard serves, with the token: a secret, shown only to its owner."""
        return f"http://{self.host}:{self.port}/?{urlencode({'token': self.token})}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="dashboard", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def plotly(self) -> tuple[bytes, bytes]:
        """Plotly's basic bundle when scripts/setup installed it, else the full one the
        `plotly` package carries (pip installs); plain and gzipped, made once."""
        with self._plotly_lock:
            if self._plotly is None:
                if PLOTLY_BASIC.is_file():
                    plain = PLOTLY_BASIC.read_bytes()
                else:
                    from plotly.offline import get_plotlyjs

                    plain = get_plotlyjs().encode()
                self._plotly = plain, gzip.compress(plain, 6)
            return self._plotly


def _listen(host: str, port: int):
    """The listening socket: `port`, or when the default one is taken, the next free one."""
    tries = DASHBOARD_PORT_RETRIES if port == DASHBOARD_PORT else 0
    for n in range(tries):
        with contextlib.suppress(UsageError):
            return listeners.listen(host, port + n, "--dashboard-port")
    return listeners.listen(host, port + tries, "--dashboard-port")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, dashboard: Dashboard, sock) -> None:
        super().__init__(sock.getsockname(), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket, self.dashboard = sock, dashboard
        self.server_address = sock.getsockname()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a request line carries the token."""

    # routing
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not self._allowed(url.query):
            return
        query = parse_qs(url.query)
        if "token" in query:  # shown once: now a cookie, and out of the address bar
            rest = urlencode({k: v for k, v in query.items() if k != "token"}, doseq=True)
            return self._send(
                HTTPStatus.SEE_OTHER, b"", "text/plain",
                {"Location": url.path + (f"?{rest}" if rest else ""),
                 "Set-Cookie": access.set_cookie(self.server.dashboard.port,
                                                 self.server.dashboard.token)},
            )  # fmt: skip
        one = {key: values[0] for key, values in query.items()}
        if url.path in STATIC:
            name, kind = STATIC[url.path]
            body = (resources.files(__package__) / "static" / name).read_bytes()
            return self._send(HTTPStatus.OK, body, kind, {"Cache-Control": "no-cache"})
        if url.path == PLOTLY:
            return self._plotly()
        if url.path == "/api/logs":
            return self._logs()
        routes: dict[str, Callable[[App], Any]] = {
            "/api/overview": views.overview,
            "/api/metrics": lambda app: views.metrics_series(
                app, one.get("type", "web"), one.get("since", "24h")
            ),
            "/api/config": lambda app: views.config_value(app, one.get("key", "")),
        }
        if url.path not in routes:
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})
        self._answer(routes[url.path])

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if not self._allowed(url.query):
            return
        routes = {"/api/scale": views.change_formation, "/api/restart": views.restart}
        if url.path not in routes:
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no such action: {url.path}"})
        if self.headers.get_content_type() != "application/json":
            return self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send JSON"})
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "the body is not JSON"})
        if not isinstance(body, dict):
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "the body is not a JSON object"})
        self._answer(lambda app: routes[url.path](app, body))

    # answers
    def _allowed(self, query: str) -> bool:
        """Whether the request is for this dashboard and carries its token; else a 403."""
        dashboard = self.server.dashboard
        if access.local_host(self.headers.get("Host"), dashboard.port) and access.allowed(
            query, self.headers.get("Cookie"), dashboard.port, dashboard.token
        ):
            return True
        self._send(
            HTTPStatus.FORBIDDEN,
            b"403 Forbidden: open the URL `dynosim dashboard` prints (it carries the token)\n",
            "text/plain; charset=utf-8",
        )
        return False

    def _answer(self, view: Callable[[App], Any]) -> None:
        """A view's JSON, or its failure as {"error": ...} with a fitting status."""
        try:
            with self.server.dashboard.open_app() as app:
                result = view(app)
        except NotRunning as exc:
            return self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
        except DynosimError as exc:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": exc.format_message()})
        except Exception as exc:  # a Docker engine gone, a bug: one line, no traceback
            error = as_dynosim_error(exc).format_message()
            return self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": error})
        self._json(HTTPStatus.OK, result)

    def _json(self, status: HTTPStatus, data: Any) -> None:
        body = json.dumps(data, default=str).encode()
        encoding = {}
        if len(body) > 1024 and "gzip" in self.headers.get("Accept-Encoding", ""):
            body, encoding = gzip.compress(body, 5), {"Content-Encoding": "gzip"}
        self._send(status, body, "application/json", {"Cache-Control": "no-store", **encoding})

    def _plotly(self) -> None:
        plain, zipped = self.server.dashboard.plotly()
        headers = {"Cache-Control": "private, max-age=86400"}
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            plain, headers["Content-Encoding"] = zipped, "gzip"
        self._send(HTTPStatus.OK, plain, "text/javascript; charset=utf-8", headers)

    def _send(
        self, status: HTTPStatus, body: bytes, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for key, value in {**HEADERS, "Content-Type": kind, **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _logs(self) -> None:
        """The log tail as Server-Sent Events: the last lines, then each new one."""
        self.close_connection = True
        self.send_response(HTTPStatus.OK)
        for key, value in {**HEADERS, "Content-Type": "text/event-stream"}.items():
            self.send_header(key, value)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        dashboard = self.server.dashboard
        with contextlib.suppress(ConnectionError, NotRunning), dashboard.open_app() as app:
            for line in app.log_stream(LOG_LINES, tail=True):
                event = {"line": line.format(), "source": line.source, "dyno": line.dyno}
                self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                self.wfile.flush()
