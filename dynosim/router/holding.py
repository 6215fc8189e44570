"""Requests that find no dyno to go to: answered from what the web formation is doing (H10, H14,
H82), or held while its dynos start or wake, until one is up or the hold times out (H20)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .balancer import Balancer
from .engine import WebStatus


class _Change(asyncio.Event):
    """Set (and replaced) whenever a held request may proceed; `code`, when set with it, is
    the answer for the requests it wakes (a wake that failed: H20)."""

    def __init__(self) -> None:
        super().__init__()
        self.code: str | None = None


class Holding:
    """The web formation's status as the dyno manager says it, and the requests waiting on it."""

    def __init__(
        self, balancer: Balancer, hold_timeout: float, wake_app: Callable[[], None]
    ) -> None:
        """Hold requests until `balancer` has a dyno, at most `hold_timeout` seconds; a request
        that finds the app asleep calls `wake_app`."""
        self.status = WebStatus.NONE
        self._balancer = balancer
        self._hold_timeout = hold_timeout
        self._wake_app = wake_app
        self._changed = _Change()

    def set_status(self, status: WebStatus) -> None:
        """Say what to answer when no backend is available; held requests look again."""
        self.status = status
        self.release()

    def release(self, code: str | None = None) -> None:
        """Let held requests look again, or answer them all with `code`."""
        changed, self._changed = self._changed, _Change()
        changed.code = code
        changed.set()

    async def hold(self) -> str | None:
        """Wait for a backend; None when one is there, else the error code to answer with."""
        deadline: float | None = None
        while not self._balancer.keys:
            status = self.status
            if status is WebStatus.NONE:
                return "H14"
            if status is WebStatus.CRASHED:
                return "H10"
            if status is WebStatus.EXHAUSTED:
                return "H82"
            if status is WebStatus.SLEEPING:
                self._wake_app()  # the dyno manager starts waking the app; this request waits
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
