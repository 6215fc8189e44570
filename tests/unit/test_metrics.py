"""The Metrics tab's pure parts (dynosim.metrics): the log lines it reads, a minute's bucket
(status classes, bounded response-time reservoir, memory, load, events), merging, the stored
rows as a process type's minutes, --since and the table."""

from __future__ import annotations

import datetime as dt

import pytest

from dynosim import metrics
from dynosim.errors import UsageError
from dynosim.router import wire
from dynosim.router.haproxy.log import heroku_line

MB = metrics.MB
FIELDS = wire.Fields("GET", "/a?status=500 service=9ms", "demo.localhost", "rid", "1.2.3.4", "http")


def test_the_routers_own_line_is_read_field_by_field_quoted_values_whole():
    line = wire.log_line(FIELDS, "info", "", "web.2", 0.001, 0.042, 404, 512)
    assert metrics.router_request(line) == metrics.Request("web.2", 404, 42, "")


def test_an_h_error_line_has_its_code_and_status_and_no_service_time():
    line = wire.log_line(FIELDS, "error", "H12", "web.1", 0.001, None, 503, None)
    assert metrics.router_request(line) == metrics.Request("web.1", 503, None, "H12")


def test_haproxys_line_made_into_herokus_reads_the_same():
    raw = "\t".join(
        ["dynosim", "1.2.3.4", "----", "201", "17", "0", "0", "1", "13", "dyno1", "0", "-",
         "rid-rid-rid-rid-rid-rid", "-", "POST", "demo.localhost", "/items"]
    )  # fmt: skip
    line = heroku_line(raw, lambda slot: "web.1")
    assert line is not None
    assert metrics.router_request(line) == metrics.Request("web.1", 201, 12, "")


def test_a_path_cannot_fake_the_fields_the_router_writes_after_it():
    path = '/x" dyno=web.9 connect=1ms service=9ms status=500 bytes=1 protocol=http y="'
    fields = wire.Fields("GET", path, "demo.localhost", "rid", "1.2.3.4", "http")
    line = wire.log_line(fields, "info", "", "web.2", 0.001, 0.042, 404, 10)
    assert metrics.router_request(line) == metrics.Request("web.2", 404, 42, "")


@pytest.mark.parametrize(
    "message",
    [
        "State changed from up to crashed",
        "Starting process with command `x`",
        "",
        "at=info dyno=web.1 connect=1ms service=2ms status=2xx bytes=1 protocol=http",
        "note dyno=web.1 connect=1ms service=2ms status=200 bytes=1 protocol=http",
    ],
)
def test_other_router_lines_are_no_request(message):
    assert metrics.router_request(message) is None


@pytest.mark.parametrize(
    ("source", "dyno", "message", "kind"),
    [
        ("heroku", "web.1", "Error R14 (Memory quota exceeded)", "R14"),
        ("heroku", "web.1", "Error R10 (Boot timeout) -> Web process failed to bind", "R10"),
        ("heroku", "worker.1", "State changed from up to crashed", "crash"),
        ("heroku", "web.1", "State changed from starting to crashed", "crash"),
        ("heroku", "web.1", "Restarting", "restart"),
        ("heroku", "web.1", "Cycling", "restart"),
        ("heroku", "web.1", "Idling", "sleep"),
        ("heroku", "web.1", "Dyno hours quota exhausted; sleeping until next month", "sleep"),
        ("heroku", "web.1", "Unidling", "wake"),
        ("app", "api", "Deploy 1a2b3c4 by dev", "deploy"),
        ("app", "api", "Set GREETING config vars by dev", "config"),
        ("app", "api", "Remove GREETING config vars by dev", "config"),
        ("app", "api", "Rollback to v2 by dev", "rollback"),
        ("app", "api", "Attach DATABASE (@ref:postgresql-curly-123) by dev", "addon"),
        ("app", "api", "Release v4 failed: release command exited with status 1", "release-failed"),
        ("app", "api", "Release v4 created by dev", None),
        ("app", "api", "Deployed v4", None),
        ("heroku", "web.1", "State changed from starting to up", None),
        ("app", "web.1", "Error R14 (Memory quota exceeded)", None),  # the app's own output
        ("heroku", "router", "at=error code=H12", None),  # counted from the request
    ],
)
def test_events_are_read_from_the_platforms_and_the_apis_lines(source, dyno, message, kind):
    assert metrics.event(source, dyno, message) == kind


def test_a_bucket_counts_status_classes_and_takes_exact_percentiles_up_to_its_reservoir():
    bucket = metrics.Bucket()
    for ms in range(1, 101):
        bucket.request(200, ms)
    bucket.request(404, 7)
    bucket.request(503, None)  # H12: no response time
    bucket.request(101, 3)  # no class of the tab's, timed all the same (nearest rank of 102)
    summary = bucket.summary()
    assert summary["requests"] == {"2xx": 100, "4xx": 1, "5xx": 1}
    assert summary["response_ms"] == {"count": 102, "p50": 49, "p95": 95, "p99": 99, "max": 100}
    assert "memory" not in summary and summary["events"] == {}


def test_a_busy_minute_keeps_a_bounded_sample_with_the_count_and_max_exact():
    bucket = metrics.Bucket(times=metrics.Reservoir(size=100))
    for i in range(10_000):
        bucket.request(200, i % 1000)
    bucket.request(200, 5000)
    assert len(bucket.times.values) == 100
    rt = bucket.summary()["response_ms"]
    assert rt["count"] == 10_001 and rt["max"] == 5000
    assert 300 <= rt["p50"] <= 700  # a uniform sample of 0..999


def test_memory_and_load_are_the_mean_and_peak_of_the_samples():
    bucket = metrics.Bucket()
    bucket.usage(100 * MB, 0, 512 * MB, 0.5)
    bucket.usage(300 * MB, 2 * MB, 512 * MB, 1.5)
    bucket.event("R14")
    bucket.event("R14")
    assert bucket.summary() == {
        "requests": {},
        "events": {"R14": 2},
        "memory": {
            "samples": 2, "rss_mb": 200.0, "rss_max_mb": 300.0, "swap_max_mb": 2.0,
            "quota_mb": 512.0,
        },
        "load": {"mean": 1.0, "max": 1.5},
    }  # fmt: skip


def test_two_parts_of_one_minute_merge():
    first, second = metrics.Bucket(), metrics.Bucket()
    for ms in (10, 20, 30):
        first.request(200, ms)
    second.request(500, 90)
    first.usage(100 * MB, 0, 512 * MB, 1.0)
    second.usage(200 * MB, 0, 512 * MB, 2.0)
    second.usage(200 * MB, 0, 512 * MB, 2.0)
    second.event("deploy")
    merged = metrics.merge(first.summary(), second.summary())
    assert merged["requests"] == {"2xx": 3, "5xx": 1}
    assert merged["response_ms"] == {"count": 4, "p50": 20, "p95": 30, "p99": 30, "max": 90}
    assert merged["memory"]["rss_mb"] == pytest.approx(166.67) and merged["events"] == {"deploy": 1}
    assert merged["load"] == {"mean": pytest.approx(1.67), "max": 2.0}


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("1h", 3600), ("24h", 86400),
                                                ("2d", 172800)])  # fmt: skip
def test_since_takes_minutes_hours_and_days(text, seconds):
    assert metrics.since(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "0h", "1w", "h", "-1h", "1.5h"])
def test_since_refuses_anything_else(text):
    with pytest.raises(UsageError, match="--since takes minutes, hours or days"):
        metrics.since(text)


T0 = 1_800_000_000 // 60 * 60


def test_stored_rows_become_a_types_minutes_with_its_dynos_and_the_apps_events():
    rows = [
        (T0, "", "", {"requests": {}, "events": {"deploy": 1}}),
        (T0, "web", "", {"requests": {"2xx": 3}, "events": {"H12": 1}}),
        (T0, "web", "web.1", {"requests": {}, "events": {}, "memory": {"rss_mb": 1.0},
                              "load": {"mean": 0.1, "max": 0.2}}),
        (T0, "worker", "", {"requests": {}, "events": {"crash": 1}}),
        (T0 + 120, "", "", {"requests": {}, "events": {"config": 1}}),
    ]  # fmt: skip
    found = metrics.minutes(rows, "web")
    assert [m.time for m in found] == [
        dt.datetime.fromtimestamp(T0, dt.UTC),
        dt.datetime.fromtimestamp(T0 + 120, dt.UTC),
    ]
    assert found[0].data["events"] == {"H12": 1, "deploy": 1}
    assert found[0].dynos == {"web.1": {"memory": {"rss_mb": 1.0}, "load": {"mean": 0.1,
                                                                         "max": 0.2}}}  # fmt: skip
    assert found[1].to_json() == {
        "time": dt.datetime.fromtimestamp(T0 + 120, dt.UTC).isoformat(),
        "process_type": "web",
        "requests": {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0},
        "response_ms": None,
        "memory": None,
        "load": None,
        "events": {"config": 1},
        "dynos": {},
    }
    assert metrics.minutes(rows, "worker")[1] == metrics.Minute(
        found[1].time, "worker", {"events": {"config": 1}}
    )
    assert metrics.minutes(rows, "clock") == []  # no minute of its own: no app events either


def test_retention_follows_herokus_metrics_page_per_tier():
    assert metrics.RETENTION == {
        "free": 86400, "eco": 86400, "basic": 86400, "standard": 7 * 86400,
        "performance": 7 * 86400,
    }  # fmt: skip
