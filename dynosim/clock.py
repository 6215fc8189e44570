"""Time, injectable: the supervisor asks this object, tests can fast-forward it."""

from __future__ import annotations

import asyncio
import datetime as dt
import time


class Clock:
    """Monotonic seconds and asyncio sleeps, optionally running `speed` times faster."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._wall_start, self._started = time.time(), time.monotonic()

    def wall(self) -> dt.datetime:
        """The calendar time, running `speed` times faster from when the clock was made
        (months and dyno hours pass quickly in tests)."""
        elapsed = (time.monotonic() - self._started) * self.speed
        return dt.datetime.fromtimestamp(self._wall_start + elapsed, dt.UTC)

    def now(self) -> float:
        return time.monotonic() * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)


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
