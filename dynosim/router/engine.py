"""What a router is to the rest of dynosim, whichever engine moves the bytes.

:class:`RouterEngine` is the one interface `up`, the dyno manager and the API use; the Python
:class:`~dynosim.router.Router` and :class:`~dynosim.router.haproxy.HAProxyRouter` implement
it (tests/unit/test_router_engine.py holds both to its members and signatures).
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Callable
from typing import Protocol

from ..errors import DynosimError

__all__ = ["RouterEngine", "RouterError", "WebStatus"]


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


class RouterEngine(Protocol):
    """Heroku's routing layer for one app, as `up` starts it and the dyno manager drives it."""

    #: What moves the bytes ("python" or "haproxy"), shown when `up` is ready.
    engine: str
    #: Called on every request (the dyno manager's idle clock) and when a request finds the app
    #: asleep (the dyno manager wakes it); both set by the dyno manager.
    on_request: Callable[[], None]
    on_wake: Callable[[], None]

    async def start(
        self, sock: socket.socket | None = None, tls_sock: socket.socket | None = None
    ) -> None:
        """Serve `sock` (and `tls_sock`), already listening, or listen on the configured
        ports; RouterError if that fails."""
        ...

    async def close(self) -> None:
        """Stop listening, let requests in flight finish (5 s at most), close connections."""
        ...

    @property
    def url(self) -> str:
        """Where clients reach the router over HTTP."""
        ...

    @property
    def https_url(self) -> str | None:
        """Where clients reach the router over HTTPS (None without HTTPS)."""
        ...

    def add_backend(self, key: str, host: str, port: int, name: str | None = None) -> None:
        """A web dyno is up: route to it (`name` is the dyno name logged, default the key)."""
        ...

    def remove_backend(self, key: str) -> None:
        """A web dyno takes no new requests; those it serves finish."""
        ...

    async def drain(self, key: str, timeout: float) -> None:
        """Stop routing to a backend and wait (at most `timeout` s) until it is idle."""
        ...

    def set_status(self, status: WebStatus) -> None:
        """Say what to answer when no backend is available (see WebStatus)."""
        ...

    def fail_held(self, code: str) -> None:
        """Answer every request waiting for a dyno with `code` (a wake that failed: H20)."""
        ...

    async def quiet(self) -> None:
        """Wait until every request received so far is answered (held ones included)."""
        ...

    @property
    def backends(self) -> dict[str, tuple[str, int]]:
        """The dynos requests are routed to: key -> (host, port)."""
        ...

    @property
    def idle_connections(self) -> int:
        """Connections to dynos kept open for the next request."""
        ...
