import pytest

from dynosim import backoff


def test_first_crash_restarts_at_once_then_herokus_cool_off_schedule():
    minutes = [backoff.delay(n) / 60 for n in range(1, 9)]
    assert minutes == [0, 20, 40, 60, 180, 320, 320, 320]


def test_crash_count_starts_at_one():
    with pytest.raises(ValueError):
        backoff.delay(0)
