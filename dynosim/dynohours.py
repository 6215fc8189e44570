"""Free dyno hours: a monthly pool per user, counted to the second while free or eco dynos run
(not while they sleep), as Heroku counted it. Pure: the store keeps the seconds per month.
"""

from __future__ import annotations

import datetime as dt

#: Heroku's pool: 550 hours a month, 1000 with a verified account.
BASE_HOURS, VERIFIED_HOURS = 550, 1000
#: The store setting naming the month a fast-forwarded clock (--time-scale) charges now.
CHARGED_MONTH = "charged_month"


def month(moment: dt.datetime) -> str:
    """The calendar month (UTC) a moment counts against: '2026-11'."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m")


def next_month(moment: dt.datetime) -> dt.datetime:
    """The first instant of the month after the moment's (when an exhausted pool refills)."""
    moment = moment.astimezone(dt.UTC)
    year, number = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return dt.datetime(year, number, 1, tzinfo=dt.UTC)


def split(start: dt.datetime, end: dt.datetime, dynos: int) -> dict[str, float]:
    """Dyno-seconds of `dynos` running from start to end, per month (split at boundaries)."""
    used: dict[str, float] = {}
    while start < end:
        boundary = min(end, next_month(start))
        key = month(start)
        used[key] = used.get(key, 0.0) + (boundary - start).total_seconds() * dynos
        start = boundary
    return used


def remaining(quota_hours: float, used_seconds: float) -> float:
    """Seconds left in the pool (never below 0)."""
    return max(0.0, quota_hours * 3600 - used_seconds)


def describe(kind: str, quota_hours: float, used_seconds: float) -> str:
    """Heroku's `ps` line: 'Free dyno hours quota remaining this month: 549h 59m (99%)'."""
    left = remaining(quota_hours, used_seconds)
    hours, minutes = int(left // 3600), int(left % 3600 // 60)
    percent = int(100 * left / (quota_hours * 3600)) if quota_hours else 0
    return f"{kind} dyno hours quota remaining this month: {hours}h {minutes}m ({percent}%)"


def shown_month(now: dt.datetime, charged: str) -> str:
    """The month `ps` shows: the current one, or the later month a fast-forwarded dyno manager
    already charges (months are 'YYYY-MM', so later sorts higher)."""
    return max(month(now), charged)
