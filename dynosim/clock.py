"""Time, injectable: the dyno manager asks this object, tests can fast-forward it."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio


class Clock:
    """Monotonic seconds and asyncio sleeps, optionally running `speed` times faster, and
    fast-forwardable with :meth:`advance`."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._wall_start, self._started = time.time(), time.monotonic()
        self._skipped = 0.0  # seconds jumped over with advance()
        import asyncio  # here and below, not at the top: the CLI formats times with no loop

        self._loop: asyncio.AbstractEventLoop | None = None
        self._jumped = asyncio.Event()  # set (and replaced) on every advance()

    def wall(self) -> dt.datetime:
        """The calendar time, running `speed` times faster from when the clock was made
        (months and dyno hours pass quickly in tests)."""
        elapsed = (time.monotonic() - self._started) * self.speed + self._skipped
        return dt.datetime.fromtimestamp(self._wall_start + elapsed, dt.UTC)

    def now(self) -> float:
        return time.monotonic() * self.speed + self._skipped

    async def sleep(self, seconds: float) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        deadline = self.now() + seconds
        while (left := deadline - self.now()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._jumped.wait(), left / self.speed)

    async def sleep_paced(self, seconds: float, real_floor: float) -> None:
        """`sleep`, but at least `real_floor` real seconds however fast the clock runs (a
        periodic task on a fast-forwarded schedule must not become a busy loop)."""
        started = time.monotonic()
        await self.sleep(seconds)
        if (left := real_floor - (time.monotonic() - started)) > 0:
            import asyncio

            await asyncio.sleep(left)

    def advance(self, seconds: float) -> None:
        """Jump `seconds` ahead: sleeps that would end meanwhile end now. Safe from any thread
        (tests fast-forward the clock of an app served in the background)."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        if self._loop is None:
            self._jump(seconds)
        else:  # on the loop's next turn: a sleep being set up right now is jumped over too
            self._loop.call_soon_threadsafe(self._jump, seconds)

    def _jump(self, seconds: float) -> None:
        import asyncio

        self._skipped += seconds
        jumped, self._jumped = self._jumped, asyncio.Event()
        jumped.set()


def heroku_time(since: str, now: dt.datetime) -> str:
    """'2026/11/23 19:44:53 +0000 (~ 3s ago)', the suffix only under 25 hours (Heroku)."""
    moment = dt.datetime.fromisoformat(since).astimezone(dt.UTC)
    text = moment.strftime("%Y/%m/%d %H:%M:%S +0000")
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds >= 25 * 3600:
        return text
    if seconds < 60:
        ago = f"{seconds}s"
    elif seconds < 3600:
        ago = f"{seconds // 60}m"
    else:
        ago = f"{seconds // 3600}h"
    return f"{text} (~ {ago} ago)"
