"""The Metrics tab's store on a real engine: an `up` serving 50 requests (10 of them 404s)
records them per minute, with its web dyno's memory from the cgroup, and `dynosim metrics
--json` reads them from the store, during the run and after it stopped. The recorder's logic
is unit-tested on a fake engine (tests/unit/test_recorder.py)."""

from __future__ import annotations

import json
import time

from conftest import WEB, dynosim, tiny_app

APP_PY = """\
def app(environ, start_response):
    if environ["PATH_INFO"] == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def totals(app: str) -> tuple[dict[str, int], list[dict]]:
    """What `dynosim metrics --json` says: requests by status class, and the minutes."""
    result = dynosim("metrics", "-a", app, "--since", "2d", "--json", timeout=30)
    assert result.returncode == 0, result.stderr
    minutes = json.loads(result.stdout)
    counted = {kind: sum(m["requests"][kind] for m in minutes) for kind in ("2xx", "4xx")}
    return counted, minutes


def test_an_ups_requests_and_memory_are_in_dynosim_metrics(up, tmp_path):
    folder = tiny_app(tmp_path / "counted", WEB, **{"app.py": APP_PY})
    # 20x: a schedule minute is 3 s, so minutes end (and are flushed) while the test runs
    process = up(folder, "--time-scale", "20")
    process.wait_for(r"heroku\[web\.1\]: State changed from starting to up")
    statuses = [process.get("/missing" if n % 5 == 0 else f"/{n}").status_code for n in range(50)]
    assert statuses.count(200) == 40 and statuses.count(404) == 10

    deadline = time.monotonic() + 20  # a few schedule minutes: flushed while `up` runs
    while (counted := totals("counted")[0]) != {"2xx": 40, "4xx": 10}:
        assert time.monotonic() < deadline, f"not recorded: {counted}"
        time.sleep(0.5)

    assert process.stop() == 0  # shutdown stores the minute under way too
    counted, minutes = totals("counted")
    assert counted == {"2xx": 40, "4xx": 10}
    assert all(m["process_type"] == "web" for m in minutes)
    timed = [m["response_ms"] for m in minutes if m["response_ms"]]
    assert sum(rt["count"] for rt in timed) == 50
    assert all(0 <= rt["p50"] <= rt["p95"] <= rt["p99"] <= rt["max"] for rt in timed)
    memory = [m["memory"] for m in minutes if m["memory"]]
    assert memory, "no memory sample"
    assert all(0 < m["rss_mb"] < 512 and m["quota_mb"] == 512.0 for m in memory)
    assert {d for m in minutes for d in m["dynos"]} == {"web.1"}
    times = [m["time"] for m in minutes]
    assert times == sorted(set(times))  # one row per minute, in order
