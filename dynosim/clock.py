"""Time, injectable: the supervisor asks this object, tests can fast-forward it."""

from __future__ import annotations

import asyncio
import time


class Clock:
    """Monotonic seconds and asyncio sleeps, optionally running `speed` times faster."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed

    def now(self) -> float:
        return time.monotonic() * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)
