"""The schedule clock: fast-forwarding ends the sleeps it jumps over, and only those."""

import asyncio
import threading

import pytest

from dynosim.clock import Clock


def test_advance_from_another_thread_ends_a_twenty_minute_sleep_at_once():
    clock = Clock()

    async def main() -> float:
        started = clock.now()
        sleeper = asyncio.ensure_future(clock.sleep(20 * 60))
        await asyncio.sleep(0.01)  # the sleep has begun
        threading.Thread(target=clock.advance, args=(20 * 60,)).start()
        await asyncio.wait_for(sleeper, 5)
        return clock.now() - started

    assert asyncio.run(main()) >= 20 * 60


def test_advance_shorter_than_the_sleep_leaves_it_sleeping():
    clock = Clock()

    async def main() -> bool:
        sleeper = asyncio.ensure_future(clock.sleep(60))
        await asyncio.sleep(0.01)
        clock.advance(30)
        await asyncio.sleep(0.05)
        done = sleeper.done()
        sleeper.cancel()
        return done

    assert asyncio.run(main()) is False


def test_advance_moves_the_calendar_too():
    clock = Clock()
    before = clock.wall()
    clock.advance(3600)
    assert (clock.wall() - before).total_seconds() >= 3600


def test_a_clock_never_goes_back():
    with pytest.raises(ValueError):
        Clock().advance(-1)
