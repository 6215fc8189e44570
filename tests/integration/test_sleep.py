"""Free-tier sleep against real Docker: idle eco apps sleep, the first request wakes them and
is answered, paid dynos never sleep, a failed wake is H20, an empty pool is H82."""

from __future__ import annotations

import os
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
        all=True, filters={"label": [f"dynosim.app={app}", f"dynosim.type={dyno}"]}
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


def quota(app: str, env: dict) -> str:
    """What `ps` says is left of the dyno-hours pool."""
    ps = dynosim("ps", "-a", app, env=env).stdout
    return re.search(r"quota remaining this month: (.*)", ps)[1]


def test_dyno_hours_are_counted_while_eco_dynos_run_and_not_while_they_sleep(up, tmp_path):
    # 600x: the default 30 idle minutes pass in 3 s, an hour of two dynos in 6 s
    home = {**os.environ, "DYNOSIM_HOME": str(tmp_path / "home")}
    process = up(tiny_app(tmp_path / "meter", WEB + WORKER), "--time-scale", "600", env=home)
    process.wait_for(UP.format(r"worker\.1"))
    mark = process.mark()
    assert dynosim("ps:scale", "-a", "meter", "web=1:eco", "worker=1:eco", env=home).returncode == 0
    asleep(process, mark, "web.1", "worker.1")
    used = quota("meter", home)
    assert used != "550h 0m (100%)"  # two dynos ran for more than a simulated minute
    time.sleep(3)  # half an hour asleep
    assert quota("meter", home) == used


def test_worker_only_apps_never_sleep(up, tmp_path):
    home = {**os.environ, "DYNOSIM_HOME": str(tmp_path / "home")}
    process = up(tiny_app(tmp_path / "busy", WORKER), "--time-scale", "600", env=home)
    process.wait_for(UP.format(r"worker\.1"))
    mark = process.mark()
    assert dynosim("ps:scale", "-a", "busy", "worker=1:eco", env=home).returncode == 0
    process.wait_for(UP.format(r"worker\.1"), after=mark)
    time.sleep(4)  # 40 simulated idle minutes
    asked = dynosim("ps:sleep", "-a", "busy", env=home)
    assert "does not sleep" in asked.stdout
    assert "Idling" not in process.output
    assert status("busy", "worker") == "running"
    assert quota("busy", home).startswith("549h")  # its hours are counted all the same


def test_a_wake_that_never_binds_port_answers_the_held_request_with_h20(up, tmp_path):
    # the dyno boots once; restarted from sleep it never binds $PORT (its /tmp survives)
    web = "web: if [ -e /tmp/booted ]; then exec sleep 1000; fi; touch /tmp/booted; " + WEB[5:]
    process = up(tiny_app(tmp_path / "groggy", web), "--idle-timeout", "1", "--boot-timeout", "3")
    process.wait_for(UP.format(r"web\.1"))
    assert dynosim("ps:scale", "-a", "groggy", "web=1:eco").returncode == 0
    asleep(process, 0, "web.1")
    assert process.get("/").status_code == 503
    process.wait_for(r"Error R10 \(Boot timeout\)")
    process.wait_for(r'heroku\[router\]: at=error code=H20 desc="App boot timeout"', unless=None)


def test_an_exhausted_dyno_hours_pool_sleeps_the_app_and_answers_h82(up, tmp_path):
    # a pool of 0.1 h, used by 2 eco dynos at 100x speed: empty after ~2 s. The pool is the
    # user's (the state folder's), so this test has a state folder of its own.
    home = {**os.environ, "DYNOSIM_HOME": str(tmp_path / "home")}
    app_dir = tiny_app(tmp_path / "spent", WEB + WORKER)
    process = up(app_dir, "--dyno-hours", "0.1", "--time-scale", "100", env=home)
    process.wait_for(UP.format(r"web\.1"))
    scaled = dynosim("ps:scale", "-a", "spent", "web=1:eco", "worker=1:eco", env=home)
    assert scaled.returncode == 0
    process.wait_for(r"heroku\[web\.1\]: Dyno hours quota exhausted", timeout=60)
    response = requests.get(process.url, timeout=30)
    assert response.status_code == 503
    process.wait_for(r'heroku\[router\]: at=info code=H82 desc="Free app running time quota')
    assert ": 0h 0m (0%)" in dynosim("ps", "-a", "spent", env=home).stdout


def test_sleep_and_wake_through_the_python_api(dyno_app, tmp_path):
    app = dyno_app(tiny_app(tmp_path / "napper", WEB), formation={"web": "1:eco"})
    assert app.sleep() is True
    assert status(app.name, "web") == "exited"
    app.wake()  # returns once web.1 is up again
    assert status(app.name, "web") == "running"
    assert requests.get(app.url, timeout=10).text == "web.1"
    assert "code=H" not in "\n".join(line.message for line in app.logs(ps="router"))
