"""The free dyno-hours pool: counted per calendar month, split at month boundaries."""

import datetime as dt

from dynosim import dynohours, formation


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_dyno_seconds_are_split_at_the_month_boundary():
    used = dynohours.split(at("2026-11-30T23:00:00"), at("2026-12-01T01:30:00"), dynos=2)
    assert used == {"2026-11": 2 * 3600.0, "2026-12": 2 * 5400.0}
    across_the_year = dynohours.split(at("2026-12-31T23:59:00"), at("2027-01-01T00:01:00"), 1)
    assert across_the_year == {"2026-12": 60.0, "2027-01": 60.0}
    assert dynohours.split(at("2026-11-02T00:00:00"), at("2026-11-01T00:00:00"), 1) == {}


def test_the_pool_refills_on_the_first_of_the_next_month():
    assert dynohours.next_month(at("2026-11-24T12:00:00")) == at("2026-12-01T00:00:00")
    assert dynohours.next_month(at("2026-12-24T12:00:00")) == at("2027-01-01T00:00:00")


def test_remaining_quota_in_herokus_words():
    assert dynohours.describe("Free", 550, 0) == (
        "Free dyno hours quota remaining this month: 550h 0m (100%)"
    )
    assert dynohours.describe("Eco", 1000, 3600 * 10 + 90) == (
        "Eco dyno hours quota remaining this month: 989h 58m (98%)"
    )
    assert dynohours.remaining(550, 551 * 3600) == 0
    assert dynohours.describe("Free", 550, 551 * 3600).endswith(": 0h 0m (0%)")


def test_only_free_and_eco_dynos_sleep():
    assert [s.name for s in formation.SIZES.values() if s.sleeps] == ["Free", "Eco"]


def test_ps_shows_the_month_a_fast_forwarded_supervisor_already_charges():
    now = at("2026-11-20T12:00:00")
    assert dynohours.shown_month(now, "") == "2026-11"
    assert dynohours.shown_month(now, "2027-02") == "2027-02"  # --time-scale ran ahead
    assert dynohours.shown_month(now, "2026-10") == "2026-11"  # an old count: a new month
