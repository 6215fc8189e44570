import pytest

from dynosim import backoff


def test_first_crash_restarts_at_once_then_herokus_cool_off_schedule():
    minutes = [backoff.delay(n) / 60 for n in range(1, 9)]
    assert minutes == [0, 20, 40, 60, 180, 320, 320, 320]


def test_crash_count_starts_at_one():
    with pytest.raises(ValueError):
        backoff.delay(0)


def test_a_fast_clock_fast_forwards_schedules(monkeypatch):
    import asyncio

    from dynosim.clock import Clock

    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    asyncio.run(Clock(speed=6000).sleep(backoff.delay(2)))  # a 20-minute cool-off
    assert slept == [0.2]
    with pytest.raises(ValueError):
        Clock(speed=0)
