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

    from dynosim import clock

    now = [1000.0]
    waited = []

    async def fake_wait_for(awaitable, timeout):  # real time passes only here
        awaitable.close()
        waited.append(timeout)
        now[0] += timeout
        raise TimeoutError

    monkeypatch.setattr(clock.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(asyncio, "wait_for", fake_wait_for)
    Clock = clock.Clock
    asyncio.run(Clock(speed=6000).sleep(backoff.delay(2)))  # a 20-minute cool-off
    assert waited == [pytest.approx(0.2)]
    with pytest.raises(ValueError):
        Clock(speed=0)
