"""Runtime metrics on a real engine: a worker's memory and load as its cgroup counts them,
in Heroku's lines, once `log-runtime-metrics` is turned on while it runs."""

from __future__ import annotations

import re

from conftest import tiny_app

HOLD = """\
import threading
import time

block = b"x" * (50 * 2**20)


def spin():
    while True:
        pass


threading.Thread(target=spin, daemon=True).start()
print("holding", len(block) // 2**20, "MB", flush=True)
while True:
    time.sleep(1)
"""
DYNO = r"dyno=heroku\.\d+\.[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}"
LOAD = (
    rf"heroku\[worker\.1\]: source=worker\.1 {DYNO} sample#load_avg_1m=(\d+\.\d\d)"
    r" sample#load_avg_5m=\d+\.\d\d sample#load_avg_15m=\d+\.\d\d$"
)
MEMORY = (
    rf"heroku\[worker\.1\]: source=worker\.1 {DYNO} sample#memory_total=[\d.]+MB"
    r" sample#memory_rss=([\d.]+)MB sample#memory_cache=[\d.]+MB sample#memory_swap=[\d.]+MB"
    r"( sample#memory_pgpgin=\d+pages sample#memory_pgpgout=\d+pages)?"
    r" sample#memory_quota=512\.00MB$"
)


def test_a_worker_holding_50_mb_reports_its_memory_and_load_once_enabled(dyno_app, tmp_path):
    # 10x: a sample every 0.5 s, the lines every 2 s (the schedule clock, as --time-scale)
    folder = tiny_app(tmp_path / "metered", "worker: python hold.py\n", **{"hold.py": HOLD})
    app = dyno_app(folder, time_scale=10)
    app.wait_for_log(r"app\[worker\.1\]: holding 50 MB")
    assert not any("sample#" in line.message for line in app.logs())  # off by default

    mark = app.mark()
    app.labs.enable("log-runtime-metrics")  # while it runs: the next sample takes it
    first = app.wait_for_log(MEMORY, timeout=10, after=mark)
    rss = float(re.search(MEMORY, first.format()).group(1))
    assert 40 <= rss <= 200
    app.wait_for_log(LOAD, timeout=10, after=mark)  # each memory line follows a load line
    later = app.wait_for_log(LOAD, timeout=10, after=app.mark())  # 4 samples on
    assert float(re.search(LOAD, later.format()).group(1)) > 0  # the spinning thread: R
