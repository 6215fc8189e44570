"""Benchmark the dashboard's first paint: 24 hours of per-minute metrics of 10 web dynos (a
type row and 10 dyno rows a minute, filled through the store's own API: `metrics.Bucket` and
`Store.add_metrics`), the dashboard serving them, and headless Chromium (Debian's, driven by
selenium) loading the page until its `charts-ready` mark: every chart drawn with the 24 hours.

Each cold load is a fresh browser profile (Plotly's bundle fetched and compiled); each warm
load a reload in the last one (the bundle from the browser's cache). Prints the medians of the
`charts-ready` mark and of the first contentful paint (ms since navigation start), with the
metrics JSON's size. Goal: charts-ready under 1 s. --full-bundle serves the `plotly` package's
full bundle, as a pip install without scripts/setup's npm step does.
Usage: python bench/bench_dashboard.py [--loads 5] [--full-bundle] [--json F]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT))

from browser import chromium  # noqa: E402
from common import report  # noqa: E402

from dynosim import formation, metrics  # noqa: E402
from dynosim.api import App  # noqa: E402
from dynosim.dashboard import Dashboard, server  # noqa: E402
from dynosim.store import SUCCEEDED, Store  # noqa: E402

APP, DYNOS, MINUTES = "dashbench", 10, 24 * 60
READY = "return performance.getEntriesByName('charts-ready').map(e => e.startTime)[0]"
PAINT = (
    "return performance.getEntriesByType('paint')"
    ".filter(e => e.name === 'first-contentful-paint').map(e => e.startTime)[0]"
)


def fill(store: Store) -> int:
    """An app with 10 web dynos and a day of their minutes; the rows written."""
    store.ensure_app(APP, ROOT)
    store.create_release(APP, image="bench", source_hash="bench", description="Deploy bench",
                         process_types={"web": "uwsgi uwsgi.ini"}, status=SUCCEEDED)  # fmt: skip
    store.set_formation(APP, {"web": formation.Entry("web", DYNOS, "Standard-1X")})
    rng = random.Random(7)
    now = metrics.minute_of(time.time())
    quota = formation.size("Standard-1X").memory_mb * metrics.MB
    rows = []
    for n in range(MINUTES):
        minute = now - (MINUTES - n) * metrics.MINUTE
        web = metrics.Bucket()
        for dyno in range(1, DYNOS + 1):
            own = metrics.Bucket()
            for _ in range(12):  # 5-s samples
                rss, load = rng.randint(80, 200) * metrics.MB, rng.random()
                own.usage(rss, 0, quota, load)
                web.usage(rss, 0, quota, load)
            rows.append((minute, "web", f"web.{dyno}", "standard", own.summary()))
        for _ in range(rng.randint(100, 400)):
            web.request(rng.choice((200, 200, 200, 200, 304, 404, 500)), rng.randint(2, 300))
        if n % 97 == 0:
            web.event(rng.choice(("deploy", "restart", "scale", "H12", "R14")))
        rows.append((minute, "web", "", "standard", web.summary()))
    store.add_metrics(APP, rows)
    return len(rows)


def load(browser, url: str) -> tuple[float, float]:
    """One page load: (charts-ready, first contentful paint) in ms since navigation start."""
    browser.get(url)
    deadline = time.monotonic() + 30
    while (ready := browser.execute_script(READY)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError("no charts-ready mark")
        time.sleep(0.02)
    return ready, browser.execute_script(PAINT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--full-bundle", action="store_true", help="not Plotly's basic bundle")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.full_bundle:
        server.PLOTLY_BASIC = Path(os.devnull) / "none"
    os.environ["DYNOSIM_HOME"] = tempfile.mkdtemp(prefix="dynosim-dashbench-")
    store = Store()
    rows = fill(store)
    store.close()
    dashboard = Dashboard(lambda: App(APP, ROOT), port=0)
    dashboard.start()
    cold: list[tuple[float, float]] = []
    warm: list[tuple[float, float]] = []
    try:
        with requests.Session() as session:
            session.get(dashboard.url, timeout=30)
            answer = session.get(f"{dashboard.url.split('?')[0]}api/metrics?since=24h", timeout=30)
        size = len(answer.content), int(answer.headers.get("Content-Length", 0))
        dashboard.plotly()  # made once per `up`, at its first page
        for _ in range(args.loads):
            browser = chromium()
            try:
                cold.append(load(browser, dashboard.url))
                if len(cold) == args.loads:
                    warm.extend(load(browser, dashboard.url) for _ in range(args.loads))
            finally:
                browser.quit()
    finally:
        dashboard.close()

    def median(samples: list[tuple[float, float]], part: int) -> float:
        return round(statistics.median(s[part] for s in samples), 1)

    report(
        {
            "plotly_bundle_bytes": len(dashboard.plotly()[0]),
            "metric_rows": rows,
            "metrics_json_bytes": size[0],
            "metrics_json_gzip_bytes": size[1],
            "loads": args.loads,
            "cold_charts_ready_ms": median(cold, 0),
            "cold_first_paint_ms": median(cold, 1),
            "warm_charts_ready_ms": median(warm, 0),
            "warm_first_paint_ms": median(warm, 1),
            "samples": {"cold": cold, "warm": warm},
        },
        args.json,
    )


if __name__ == "__main__":
    main()
