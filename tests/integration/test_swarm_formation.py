"""The formation commands on the session's real 3-node Swarm (`swarm_cluster`) behaving and
printing as on one engine: R14 and R15 for one dyno (its memory and OOM flag from its node's
engine), `ps:type`, `ps:stop`, `logs --tail`, `releases:rollback`, a wake right after
`ps:sleep`; and the pytest plugin's `dyno_app` (so `App.start`) with `engine="swarm"`."""

from __future__ import annotations

import time

import requests
from conftest import WEB, tail_follows_the_router, tiny_app
from test_dyno_manager import HOG

from dynosim.docker.swarm_events import POLL_EVERY

pytest_plugins = ["pytester"]

APP = "swarmtypes"
UP = r"heroku\[{}\]: State changed from starting to up"
MB = 2**20


def web_service(swarm_cluster) -> dict:
    with swarm_cluster.client() as manager:
        (found,) = [s.attrs for s in manager.services.list() if f"{APP}-web-1" in s.name]
    return found


def test_r14_r15_ps_type_ps_stop_logs_tail_and_rollback_as_on_one_engine(
    swarm_cluster, up, tmp_path
):
    app_dir = tiny_app(tmp_path / APP, WEB + "worker: python hog.py\n", **{"hog.py": HOG})
    served = up(app_dir, "--engine", "swarm", "--grace", "2", env=swarm_cluster.env)
    served.wait_for(UP.format(r"web\.1"), timeout=600)

    served.wait_for(r"app\[worker\.1\]: holding 700 MB")
    served.wait_for(r"heroku\[worker\.1\]: Process running mem=\d+MB\(1[0-9]{2}\.\d%\)")
    served.wait_for(r"heroku\[worker\.1\]: Error R14 \(Memory quota exceeded\)")
    served.wait_for(r"heroku\[worker\.1\]: Error R15 \(Memory quota vastly exceeded\)")
    served.wait_for(r"heroku\[worker\.1\]: Process exited with status 137")
    swarm_cluster.dynosim(APP, "ps:scale", "worker=0")

    limits = web_service(swarm_cluster)["Spec"]["TaskTemplate"]["Resources"]
    assert (limits["Limits"]["MemoryBytes"], limits["Reservations"]["MemoryBytes"]) == (
        1024 * MB,  # the R15 point of a Standard-1X
        512 * MB,  # its quota, where Swarm places it
    )
    mark = served.mark()
    changed = swarm_cluster.dynosim(APP, "ps:type", "web=standard-2X")
    assert changed == (
        "Changing dyno types... done, now running web at 1:Standard-2X, worker at 0:Standard-1X\n"
    )
    served.wait_for(UP.format(r"web\.1"), timeout=120, after=mark)
    limits = web_service(swarm_cluster)["Spec"]["TaskTemplate"]["Resources"]
    assert limits["Limits"]["MemoryBytes"] == 2048 * MB
    assert "=== web (Standard-2X)" in swarm_cluster.dynosim(APP, "ps")

    before = web_service(swarm_cluster)["ID"]
    mark = served.mark()
    swarm_cluster.dynosim(APP, "ps:stop", "web.1")
    served.wait_for(r"heroku\[web\.1\]: Stopping all processes with SIGTERM", after=mark)
    served.wait_for(UP.format(r"web\.1"), timeout=120, after=mark)
    assert web_service(swarm_cluster)["ID"] != before
    assert requests.get(served.url, timeout=10).text == "web.1"

    tail_follows_the_router(APP, served.url, swarm_cluster.env)

    swarm_cluster.dynosim(APP, "config:set", "GREETING=hello")  # v2
    mark = served.mark()
    rolled = swarm_cluster.dynosim(APP, "releases:rollback", "v1")
    assert rolled.startswith(f"Rolling back ⬢ {APP} to v1... done, v3\n")
    served.wait_for(r"app\[api\]: Deployed v3", after=mark)
    served.wait_for(UP.format(r"web\.1"), timeout=120, after=mark)
    labels = web_service(swarm_cluster)["Spec"]["Labels"]
    assert labels["dynosim.release"] == "3"
    assert "Rollback to v1" in swarm_cluster.dynosim(APP, "releases")

    mark = served.mark()
    swarm_cluster.dynosim(APP, "ps:type", "web=eco")
    served.wait_for(UP.format(r"web\.1"), timeout=120, after=mark)
    mark = served.mark()
    swarm_cluster.dynosim(APP, "ps:sleep")
    served.wait_for(r"heroku\[web\.1\]: State changed from up to down", after=mark)
    woken = requests.get(served.url, timeout=60)  # before the next poll of the tasks
    assert (woken.status_code, woken.text) == (200, "web.1")
    time.sleep(2 * POLL_EVERY)  # the stopped task's end, polled after the wake, is no crash
    assert not any("crashed" in line for line in served.lines[mark:]), served.lines[mark:]
    assert served.stop() == 0
    assert swarm_cluster.left(APP) == []


#: A user's test, run by pytest in a shell where DOCKER_HOST names the cluster's manager.
ON_SWARM = """
import os, pathlib, docker, requests

def test_on_swarm(dyno_app):
    app = dyno_app({folder!r}, formation={{"web": 2}}, engine="swarm")
    pathlib.Path({seen!r}).write_text(app.name)
    assert {{requests.get(app.url, timeout=10).text for _ in range(40)}} == {{"web.1", "web.2"}}
    manager = docker.DockerClient(base_url={manager!r})
    names = sorted(s.name for s in manager.services.list() if app.name in s.name)
    assert names == [f"dynosim-{{app.name}}-network"] + [
        f"dynosim-{{app.name}}-web-{{n}}-v1" for n in (1, 2)
    ]
    ran = app.run("echo $DYNO")
    assert (ran.status, ran.output.strip()) == (0, ran.dyno)
    mark = app.mark()
    app.kill("web.2")  # returns once the router no longer sends it requests
    assert {{requests.get(app.url, timeout=10).text for _ in range(10)}} == {{"web.1"}}
    app.wait_for_log(r"heroku\\[web\\.2\\]: State changed from starting to up", after=mark)
    app.stop()
    assert os.environ["DOCKER_HOST"] == {manager!r}
"""


def test_the_plugins_dyno_app_runs_an_app_on_the_swarm_docker_host_names(
    swarm_cluster, pytester, tmp_path, monkeypatch
):
    """A user's pytest session after `eval "$(dynosim cluster:create 3)"`: from the plugin's
    private DYNOSIM_HOME the app is built beside the cluster and served, its one-offs run and
    its dynos are killed on it; DOCKER_HOST is the manager again once it stopped, and nothing
    is left on any node."""
    seen = tmp_path / "app-name"
    monkeypatch.setenv("DOCKER_HOST", swarm_cluster.docker_host)
    pytester.makepyfile(
        ON_SWARM.format(
            folder=str(tiny_app(tmp_path / "plugged", WEB)),
            seen=str(seen),
            manager=swarm_cluster.docker_host,
        )
    )
    result = pytester.runpytest_subprocess("--dynosim-reuse-images", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.assert_outcomes(passed=1)
    assert swarm_cluster.left(seen.read_text()) == []
