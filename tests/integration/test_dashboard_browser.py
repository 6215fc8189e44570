"""`up`'s dashboard in a real headless Chromium against a real `up` of the example app (one
`up` shared by every assertion): no token, 403; `dynosim dashboard` prints the URL; the page
loads, its throughput chart holds the requests the test sent (read from Plotly's own data on
the page), a log line the test caused appears in the live tail, and a scale made on the page
goes through the API and shows in the dyno list. The server's logic is unit-tested
(tests/unit/test_dashboard.py). DYNOSIM_SCREENSHOT=path saves the page (docs/dashboard.png)."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import requests
from browser import chromium
from conftest import EXAMPLE, copy_app, dynosim

pytestmark = pytest.mark.docker

THROUGHPUT = """
const chart = document.getElementById('chart-throughput');
const sums = {};
for (const trace of chart.data || []) sums[trace.name] = trace.y.reduce((a, b) => a + (b || 0), 0);
return sums;
"""


def until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.25)
    return found


def test_the_dashboard_in_a_real_browser(up, tmp_path):
    # an app of its own: the scale below must not reach other tests' apps
    app_dir = copy_app(EXAMPLE, tmp_path / "dashboard")
    # 60x: a schedule minute is 1 s, so the minutes of the requests are stored at once
    process = up(app_dir, "--time-scale", "60", "--dashboard-port", "0")
    url = process.wait_for(r"-----> Dashboard: (http://127\.0\.0\.1:\d+/\?token=\S+)")[1]
    process.wait_for(r"heroku\[web\.1\]: State changed from starting to up")
    base = url.split("?")[0]
    assert requests.get(base, timeout=10).status_code == 403
    assert requests.get(base + "?token=wrong", timeout=10).status_code == 403
    assert requests.get(base + "api/overview", timeout=10).status_code == 403
    printed = dynosim("dashboard", "-a", "dashboard", "--no-browser", timeout=30)
    assert printed.returncode == 0, printed.stderr
    assert url in printed.stdout

    browser = chromium()
    try:
        browser.get(url)
        until(lambda: browser.execute_script("return document.documentElement.dataset.chartsReady"),
              30, "charts")  # fmt: skip
        assert "token" not in browser.current_url  # now a cookie, out of the address bar
        before = browser.execute_script(THROUGHPUT)  # earlier ups of the app in this session

        marker = uuid.uuid4().hex
        statuses = [process.get(f"/stores/{marker}" if n % 4 == 0 else "/").status_code
                    for n in range(24)]  # fmt: skip
        assert statuses.count(200) == 18 and statuses.count(404) == 6
        until(lambda: marker in browser.find_element("id", "logs").text, 30, "log line")
        sent = {"2xx": 18, "3xx": 0, "4xx": 6, "5xx": 0}
        expected = {kind: before.get(kind, 0) + n for kind, n in sent.items()}
        until(lambda: browser.execute_script(THROUGHPUT) == expected, 60, f"{sent} charted")
        response = browser.execute_script(
            "return document.getElementById('chart-response').data.map(t => t.name)"
        )
        assert response == ["p50", "p95", "p99", "max"]

        quantity = browser.find_element("id", "quantity-web")
        quantity.clear()
        quantity.send_keys("2")
        browser.find_element("id", "scale-web").click()
        until(lambda: browser.find_elements("css selector", '[data-dyno="web.2"]'), 60, "web.2")
        process.wait_for(r"heroku\[web\.2\]: State changed from starting to up", 60)
        ps = dynosim("ps", "-a", "dashboard", "--json", timeout=30)
        assert "web.2" in {row["name"] for row in json.loads(ps.stdout)}
        _screenshot(browser, process)
    finally:
        browser.quit()


def _screenshot(browser, process) -> None:
    """With DYNOSIM_SCREENSHOT=path, the page after a few more (schedule) minutes of traffic
    and a config change, saved there (docs/dashboard.png)."""
    target = os.environ.get("DYNOSIM_SCREENSHOT")
    if not target:
        return
    with requests.Session() as session:
        for n in range(240):  # 12 s: 12 minutes of the 60x schedule
            session.get(process.url + ("/stores/none" if n % 7 == 0 else "/"), timeout=30)
            time.sleep(0.05)
    changed = dynosim("config:set", "-a", "dashboard", "GREETING=hello", timeout=120)
    assert changed.returncode == 0, changed.stderr
    time.sleep(8)  # a metrics poll after it
    browser.save_screenshot(target)
