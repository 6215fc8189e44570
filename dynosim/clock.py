"""Time, injectable: the supervisor asks this object, tests can fast-forward it."""

from __future__ import annotations

import asyncio
import time


class Clock:
    """Real time: monotonic seconds and asyncio sleeps."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
