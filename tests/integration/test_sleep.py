"""Free-tier sleep against real Docker: idle eco apps sleep, the first request wakes them and
is answered, paid dynos never sleep; pause mode freezes real containers. The manager's logic
(H20 on a failed wake, H82 on an empty pool, dyno hours, worker-only apps) is unit-tested on a
fake engine (tests/unit/test_manager.py)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from conftest import dynosim, tiny_app

from dynosim.docker import client as docker_client

UP = r"heroku\[{}\]: State changed from starting to up"
WEB = "web: uwsgi --http-socket :$PORT --master --die-on-term --wsgi-file app.py --callable app\n"
WORKER = "worker: sleep infinity\n"


def status(app: str, dyno: str) -> str:
    (container,) = docker_client.client().containers.list(
        ignore_removed=True,
        all=True,
        filters={"label": [f"dynosim.app={app}", f"dynosim.type={dyno}"]},
    )
    return container.status


def asleep(process, mark: int, *dynos: str) -> None:
    """Wait until each dyno logged Idling and then went down."""
    for name in dynos:
        idling = process.wait_for(re.escape(f"heroku[{name}]: Idling"), after=mark, timeout=60)
        after = next(i for i, line in enumerate(process.lines) if idling.group(0) in line)
        process.wait_for(re.escape(f"heroku[{name}]: State changed from up to down"), after=after)


def test_an_idle_eco_app_sleeps_and_wakes_on_its_first_request(up, tmp_path):
    process = up(tiny_app(tmp_path / "dozy", WEB + WORKER), "--idle-timeout", "2")
    process.wait_for(UP.format(r"web\.1"))
    process.wait_for(UP.format(r"worker\.1"))
    time.sleep(5)  # idle for more than the idle timeout: Standard-1X dynos never sleep
    assert "Idling" not in process.output
    mark = process.mark()
    assert dynosim("ps:scale", "-a", "dozy", "web=1:eco", "worker=1:eco").returncode == 0

    asleep(process, mark, "web.1", "worker.1")
    ps = dynosim("ps", "-a", "dozy").stdout
    assert "\nweb.1: idle " in ps and "\nworker.1: idle " in ps
    assert "Eco dyno hours quota remaining this month: 54" in ps
    assert status("dozy", "web") == "exited"

    mark = process.mark()
    with ThreadPoolExecutor(max_workers=20) as pool:  # 20 requests arrive at a sleeping app
        answers = list(pool.map(lambda _: process.get("/"), range(20)))
    assert [(a.status_code, a.text) for a in answers] == [(200, "web.1")] * 20
    process.wait_for(r"heroku\[web\.1\]: Unidling", after=mark)
    process.wait_for(UP.format(r"worker\.1"), after=mark)  # the worker woke with the web dyno
    assert "code=H" not in process.output


def test_pause_mode_freezes_the_dynos_and_thaws_them_for_a_request(up, tmp_path):
    app_dir = tiny_app(tmp_path / "frozen", WEB)
    # Heroku's 30 idle minutes, fast-forwarded 900 times: 2 s
    process = up(app_dir, "--sleep-mode", "pause", "--time-scale", "900")
    process.wait_for(UP.format(r"web\.1"))
    assert dynosim("ps:scale", "-a", "frozen", "web=1:eco").returncode == 0
    asleep(process, 0, "web.1")
    assert status("frozen", "web") == "paused"
    assert process.get("/").text == "web.1"
    assert status("frozen", "web") == "running"


def test_sleep_and_wake_through_the_python_api(dyno_app, tmp_path):
    app = dyno_app(tiny_app(tmp_path / "napper", WEB), formation={"web": "1:eco"})
    assert app.sleep() is True
    assert status(app.name, "web") == "exited"
    app.wake()  # returns once web.1 is up again
    assert status(app.name, "web") == "running"
    assert requests.get(app.url, timeout=10).text == "web.1"
    assert "code=H" not in "\n".join(line.message for line in app.logs(ps="router"))
