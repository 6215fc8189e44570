"""`ps:restart` of each web dyno in turn under GETs and POSTs: whichever router engine moves
the bytes, every failed request gets an answer with a status (never a dropped connection), and
the router logs a line for it, as Heroku's does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import WEB, Load, dynosim, tiny_app

UP = r"heroku\[{}\]: State changed from starting to up"
ROUTER_ERROR = re.compile(r"heroku\[router\]: at=error code=H\d+ .*status=(\d{3})")
APP = """import os, time


def app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    time.sleep(0.05)  # requests in flight when a dyno is stopped
    start_response("201 Created" if body else "200 OK", [("Content-Type", "text/plain")])
    return [body or os.environ["DYNO"].encode()]
"""


@pytest.mark.parametrize("router", ["haproxy", "python"])
def test_every_request_failed_by_ps_restart_has_a_status_and_a_router_line(
    up, tmp_path: Path, router: str
):
    app_dir = tiny_app(tmp_path / f"restarts-{router}", WEB, **{"app.py": APP})
    process = up(app_dir, "--grace", "5", "--router", router)
    process.wait_for(UP.format(r"web\.1"))
    assert dynosim("ps:scale", "-a", f"restarts-{router}", "web=2").returncode == 0
    process.wait_for(UP.format(r"web\.2"))
    mark = process.mark()
    load = Load(process.url, post=True)
    try:
        for dyno in ("web.1", "web.2"):
            at = process.mark()
            result = dynosim("ps:restart", "-a", f"restarts-{router}", dyno)
            assert result.returncode == 0, result.stderr
            process.wait_for(UP.format(re.escape(dyno)), after=at)
    finally:
        load.stop(at_least=500)
    dropped = [failure for failure in load.failures if not failure[:3].isdigit()]
    assert dropped == [], f"{len(dropped)} of {load.sent} got no answer: {dropped[:3]}"
    answered = sorted(int(failure[:3]) for failure in load.failures)
    logged = sorted(
        int(match.group(1)) for line in process.lines[mark:] if (match := ROUTER_ERROR.search(line))
    )
    assert all(status >= 500 for status in answered), answered
    assert answered == logged, f"answered {answered}, logged {logged}"
    assert process.stop() == 0
