"""The Metrics tab's recorder (manager.recorder) on the fake engine, and its table in the store:
router lines, usage samples and events into per-minute rows, flushed once a minute is over on
the schedule clock (and at shutdown), pruned by tier and size."""

from __future__ import annotations

import pytest
import test_manager
from fake_engine import Program
from test_manager import APP, USAGE, by_type, run, tick

from dynosim import metrics as tab
from dynosim.logs import LogLine
from dynosim.manager import metrics, recorder
from dynosim.router import wire
from dynosim.store import Store

harness = test_manager.harness  # the manager on the fake engine (a fixture)
FIELDS = wire.Fields("GET", "/", "demo.localhost", "rid", "127.0.0.1", "http")


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    """Samples and flushes as fast as the tests advance the schedule."""
    monkeypatch.setattr(metrics, "REAL_FLOOR", 0.0)
    monkeypatch.setattr(recorder, "REAL_FLOOR", 0.0)


def router(h, status: int, service: float | None, code: str = "") -> None:
    at = "error" if code else "info"
    h.hub.heroku("router", wire.log_line(FIELDS, at, code, "web.1", 0.001, service, status, 10))


def stored(h, process_type: str) -> list[tab.Minute]:
    return tab.minutes(h.store.metrics(APP, 0), process_type)


def test_requests_memory_and_load_are_stored_once_their_minute_is_over(harness):
    h = harness(by_type(web=Program(usage=USAGE)))
    h.release()
    h.scale(web=1, worker=0)

    async def test():
        await h.start()
        await h.until(lambda: h.state("web.1") == "up", "web up")
        for ms in (10, 20, 30):
            router(h, 200, ms / 1000)
        router(h, 302, 0.005)
        router(h, 404, 0.002)
        router(h, 503, None, "H12")
        h.hub.heroku("router", "at=info not a request line")
        await tick(h)  # one usage sample, the feature off: no lines, but recorded
        assert h.store.metrics(APP, 0) == [] and h.manager.recorder.flushes == 0
        h.schedule.advance(recorder.FLUSH_EVERY)
        await h.until(lambda: h.manager.recorder.flushes >= 1, "a flush")
        (minute,) = [m for m in stored(h, "web") if m.data.get("requests")]
        assert minute.data["requests"] == {"2xx": 3, "3xx": 1, "4xx": 1, "5xx": 1}
        assert minute.data["response_ms"] == {"count": 5, "p50": 10, "p95": 30, "p99": 30,
                                              "max": 30}  # fmt: skip
        assert minute.data["events"] == {"H12": 1}
        memory = [m.data["memory"] for m in stored(h, "web") if "memory" in m.data]
        assert memory and {m["rss_max_mb"] for m in memory} == {50.0}
        assert {m["quota_mb"] for m in memory} == {512.0}
        dynos = {d for m in stored(h, "web") for d in m.dynos}
        assert dynos == {"web.1"}
        assert not any(line.message.startswith("source=") for line in h.hub.recent)

        router(h, 500, 0.1)  # the next minute: a row of its own
        h.schedule.advance(recorder.FLUSH_EVERY)
        await h.until(lambda: h.manager.recorder.flushes >= 2, "a second flush")
        first, second = [m for m in stored(h, "web") if m.data.get("requests")]
        assert second.time > first.time and second.data["requests"] == {"5xx": 1}
        await h.manager.shutdown()

    run(test)


def test_crashes_restarts_scaling_and_the_apis_events_are_stored_by_type_at_shutdown(harness):
    h = harness()
    h.release()
    h.scale(web=1, worker=1)

    async def test():
        await h.start()
        await h.until(lambda: h.state("web.1") == "up" and h.state("worker.1") == "up", "up")
        h.engine.die(h.engine.live("worker")[0], 1)
        await h.logged("worker.1", "State changed from up to crashed")
        await h.manager.restart("web")
        h.scale(web=2, worker=1)
        await h.manager.reconcile()
        h.hub.emit(LogLine("app", "api", "Set GREETING config vars by dev"))
        h.hub.emit(LogLine("app", "api", "Release v2 created by dev"))
        await h.manager.shutdown()  # the minute under way is stored too
        assert h.manager.recorder.buckets == {}

        def events(process_type: str) -> dict[str, int]:
            found: dict[str, int] = {}
            for minute in stored(h, process_type):
                for kind, n in minute.data.get("events", {}).items():
                    found[kind] = found.get(kind, 0) + n
            return found

        assert events("worker") == {"config": 1, "crash": 1}
        assert events("web") == {"config": 1, "restart": 1, "scale": 1}

    run(test)


def test_the_table_keeps_minutes_for_their_tiers_window_and_at_most_max_rows(tmp_path):
    store = Store(tmp_path / "state.db")
    now = tab.minute_of(1_800_000_000)
    hour, day = 3600, 86400
    data = {"requests": {"2xx": 1}, "events": {}}
    store.add_metrics(
        APP,
        [
            (now - 8 * day, "web", "", "standard", data),  # past Standard's 7 days
            (now - 6 * day, "web", "", "performance", data),
            (now - 2 * day, "web", "", "standard", data),
            (now - 2 * day, "clock", "", "basic", data),  # past Basic's 24 hours
            (now - 2 * day, "sleepy", "", "eco", data),
            (now - hour, "clock", "", "basic", data),
            (now - hour, "sleepy", "", "eco", data),
        ],
    )
    store.prune_metrics(APP, now)
    kept = [(now - m) // hour for m, _, _, _ in store.metrics(APP, 0)]
    assert kept == [6 * 24, 2 * 24, 1, 1]
    store.prune_metrics(APP, now, max_rows=2)
    assert [(now - m) // hour for m, _, _, _ in store.metrics(APP, 0)] == [1, 1]
    assert store.metrics(APP, now - hour + 60) == []  # from a later minute on: none
    store.close()


def test_a_minute_stored_twice_is_merged(tmp_path):
    store = Store(tmp_path / "state.db")
    first, second = tab.Bucket(), tab.Bucket()
    first.request(200, 10)
    second.request(404, 30)
    second.event("deploy")
    store.add_metrics(APP, [(600, "web", "", "standard", first.summary())])
    store.add_metrics(APP, [(600, "web", "", "standard", second.summary())])
    ((_, _, _, data),) = store.metrics(APP, 0)
    assert data["requests"] == {"2xx": 1, "4xx": 1} and data["events"] == {"deploy": 1}
    assert data["response_ms"]["count"] == 2 and data["response_ms"]["max"] == 30
    store.close()


def test_with_the_recorder_off_nothing_is_recorded(harness):
    """`up --no-metrics-recorder` (bench_router's control leg): no minute, no flush."""
    h = harness(by_type(web=Program(usage=USAGE)), record_metrics=False)
    h.release()
    h.scale(web=1, worker=0)

    async def test():
        await h.start()
        await h.until(lambda: h.state("web.1") == "up", "web up")
        router(h, 200, 0.01)
        await tick(h)
        h.schedule.advance(recorder.FLUSH_EVERY)
        await tick(h)
        await h.manager.shutdown()
        assert h.store.metrics(APP, 0) == [] and h.manager.recorder.buckets == {}
        assert h.manager.recorder.flushes == 0

    run(test)
