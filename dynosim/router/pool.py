"""Connections to dynos: a new one per attempt within the connect timeout, and those kept open
between requests (Router 2.0's keep-alive) until they have been idle too long."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

from .balancer import Balancer
from .proxy import Exchange, Upstream
from .wire import CLOSES_AFTER_ANSWER, CONNECTIONS_PER_DYNO, IDEMPOTENT


class Pool:
    """The router's connections to its dynos (at most 50 idle ones per dyno)."""

    def __init__(
        self, balancer: Balancer, *, keepalive: bool, connect_timeout: float, idle_for: float
    ) -> None:
        """Connections to `balancer`'s dynos; with `keepalive` one is kept after its request
        for `idle_for` seconds, else each request gets its own."""
        self.keepalive = keepalive
        #: Backends that close every connection after answering: they get one per request.
        self.closes: set[str] = set()
        self._balancer = balancer
        self._connect_timeout = connect_timeout
        self._idle_for = idle_for
        self._idle: dict[str, list[Upstream]] = {}  # backend -> idle connections, newest last
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> int:
        """Connections kept open for the next request."""
        return sum(len(idle) for idle in self._idle.values())

    async def connect(self, x: Exchange, key: str, host: str, port: int) -> Upstream:
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

    def reuse(self, key: str, x: Exchange) -> Upstream | None:
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

    def release(self, upstream: Upstream, reusable: bool) -> None:
        """A request is done with its connection: keep it for the next one, or close it."""
        key = upstream.key
        keep = reusable and self.keepalive and upstream.transport is not None
        if keep and key in self._balancer.addresses and key not in self.closes:
            idle = self._idle.setdefault(key, [])
            if len(idle) < CONNECTIONS_PER_DYNO:
                upstream.park()
                idle.append(upstream)
                if self._sweeper is None:
                    loop = asyncio.get_running_loop()
                    self._sweeper = loop.call_later(self._idle_for / 4, self._sweep)
                return
        upstream.close()

    def closed(self, upstream: Upstream) -> None:
        """The dyno closed an idle connection. If it did so right after its first answer, it
        closes every connection (uWSGI's http-socket does): stop keeping them for it."""
        with contextlib.suppress(ValueError):
            self._idle.get(upstream.key, []).remove(upstream)
        if not upstream.reused and time.monotonic() - upstream.parked < CLOSES_AFTER_ANSWER:
            self.closes.add(upstream.key)

    def forget(self, key: str) -> None:
        """A backend is gone: close the connections kept for it."""
        self.closes.discard(key)
        for upstream in self._idle.pop(key, ()):
            upstream.close()

    def stop(self) -> None:
        """Sweep no more (the router is closing)."""
        if self._sweeper is not None:
            self._sweeper.cancel()

    def _sweep(self) -> None:
        """Close connections idle for longer than Router 2.0 keeps them."""
        self._sweeper = None
        cutoff = time.monotonic() - self._idle_for
        for idle in self._idle.values():
            while idle and idle[0].parked <= cutoff:
                idle.pop(0).close()
        if any(self._idle.values()):
            self._sweeper = asyncio.get_running_loop().call_later(self._idle_for / 4, self._sweep)
