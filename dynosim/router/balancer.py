"""Which web dyno takes a request: Heroku's random balancing with 50 requests per dyno, the
backlog beyond that, and the 5 s quarantine of a dyno that refused (heroku-behaviour.md §4)."""

from __future__ import annotations

import asyncio
import collections
import random
import time

from .wire import BACKLOG_PER_DYNO, CONNECTIONS_PER_DYNO, QUARANTINE_SECONDS


class Balancer:
    """The web dynos a router spreads requests over, each with its requests in flight."""

    def __init__(self) -> None:
        #: The dynos routed to: backend key -> (host, port); `keys`, the same in a tuple.
        self.addresses: dict[str, tuple[str, int]] = {}
        self.keys: tuple[str, ...] = ()
        self._labels: dict[str, str] = {}  # backend key -> dyno name shown in the log line
        self._active: dict[str, int] = {}  # backend key -> requests in flight
        self._quarantine: dict[str, float] = {}  # dyno -> monotonic time it may be tried again
        self._backlog: collections.deque[asyncio.Future[None]] = collections.deque()

    def add(self, key: str, host: str, port: int, name: str | None) -> None:
        """Route to a dyno from now on (out of quarantine), logged as `name` (default: `key`)."""
        self.addresses[key] = (host, port)
        self._labels[key] = name or key
        self._quarantine.pop(key, None)
        self.keys = tuple(self.addresses)

    def remove(self, key: str) -> None:
        """Route no new request to a dyno; its name is logged until it serves none."""
        self.addresses.pop(key, None)
        self._quarantine.pop(key, None)
        self.keys = tuple(self.addresses)
        if not self._active.get(key):
            self._labels.pop(key, None)

    def busy(self, key: str) -> bool:
        """Whether a dyno still serves requests."""
        return bool(self._active.get(key))

    def name(self, key: str) -> str:
        """The dyno name logged for the backend `key` (the key itself once forgotten)."""
        return self._labels.get(key, key)

    def pick(self, tried: set[str]) -> str | None:
        """A random dyno not yet tried for this request, avoiding quarantined ones ("" if none)
        and those with 50 requests in flight (None if that leaves none); the request takes one
        of the picked dyno's slots (:meth:`free` gives it back).

        When every dyno is quarantined, the first attempt still tries one: locally a dyno that
        refused a moment ago is likely to be back, and the alternative is a certain 503.
        """
        names = self.keys
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
        if not free:
            return None
        picked = random.choice(free)
        active[picked] = active.get(picked, 0) + 1
        return picked

    def refused(self, key: str) -> None:
        """The picked dyno did not take the connection: quarantine it, give its slot back."""
        self._quarantine[key] = time.monotonic() + QUARANTINE_SECONDS
        self.free(key)

    def free(self, key: str) -> None:
        """A request to a backend ended: its slot goes to the longest waiting request; a
        removed backend is forgotten once it serves none."""
        left = self._active[key] - 1
        if left or key in self.addresses:
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

    async def wait_for_slot(self, deadline: float) -> str | None:
        """Queue in the backlog until a dyno finishes a request. None when a slot is free,
        else the code to answer: H11 when 50 x dynos requests already wait, H12 at the
        request timeout (Heroku's 30 s include the time in the queue)."""
        if len(self._backlog) >= BACKLOG_PER_DYNO * len(self.keys):
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
