"""`dynosim up` on the example app, end to end, against the real engine."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import requests

from dynosim.docker import client as docker_client

LOG_LINE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 "


def containers(app: str):
    return docker_client.client().containers.list(
        ignore_removed=True, all=True, filters={"label": f"dynosim.app={app}"}
    )


def dyno_container(app: str, name: str):
    """The running container of a dyno (its Docker name also carries the release)."""
    (found,) = [
        c
        for c in docker_client.client().containers.list(
            ignore_removed=True, filters={"label": f"dynosim.app={app}"}
        )
        if f"{c.labels['dynosim.type']}.{c.labels['dynosim.index']}" == name
    ]
    return found


@pytest.fixture
def running(dyno_app, example_app):
    """The example app, up and answering through the router (the plugin's fixture)."""
    return dyno_app(example_app)


def get(app, path: str = "/") -> requests.Response:
    return requests.get(app.url + path, timeout=30)


def test_requests_through_the_router_reach_web_1_and_return_the_apps_json(running):
    home = get(running)
    assert home.status_code == 200
    assert home.json()["dyno"] == "web.1"

    created = get(running, "/stores")  # the REST API works through the router both ways
    assert created.json() == {"stores": []}
    store = requests.post(running.url + "/store/corner", timeout=10)
    assert store.status_code == 201
    item = requests.post(
        running.url + "/item/chair",
        data=json.dumps({"price": 15.5, "store_id": store.json()["id"]}),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert item.status_code == 201
    assert get(running, "/items").json()["items"][0]["name"] == "chair"

    running.wait_for_log(
        LOG_LINE + r'heroku\[router\]: at=info method=POST path="/item/chair" host=127\.0\.0\.1:\d+'
        r' request_id=[0-9a-f-]{36} fwd="127\.0\.0\.1" dyno=web\.1 connect=\d+ms service=\d+ms'
        r" status=201 bytes=\d+ protocol=http$"
    )


def test_https_through_the_router_is_trusted_with_dynosims_ca(running):
    import requests

    from dynosim import certs

    secure = requests.get(running.https_url + "/", verify=str(certs.ca_path()), timeout=10)
    assert secure.status_code == 200
    assert secure.json()["dyno"] == "web.1"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(running.https_url + "/", timeout=10)
    running.wait_for_log(
        LOG_LINE + r'heroku\[router\]: at=info method=GET path="/" .* status=200 bytes=\d+'
        r" protocol=https$"
    )


def test_boot_sequence_and_worker_logs_in_herokus_format(running):
    running.wait_for_log(
        LOG_LINE + r"heroku\[web\.1\]: Starting process with command `uwsgi uwsgi\.ini`"
    )
    running.wait_for_log(LOG_LINE + r"heroku\[worker\.1\]: State changed from starting to up")
    running.wait_for_log(LOG_LINE + r"app\[web\.1\]: .*uWSGI")
    running.wait_for_log(LOG_LINE + r"app\[worker\.1\]: worker: \d+ stores, \d+ items, stock value")


def haproxy_processes_of(app: str) -> list[str]:
    """Command lines of HAProxy processes running a dynosim config of `app`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "haproxy" in cmdline and f"dynosim-{app}-" in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.parametrize("router", ["haproxy", "python"])
def test_ctrl_c_stops_every_dyno_and_leaves_nothing_behind(up, example_app, router):
    app = "flask-app"
    running = up(example_app, "--grace", "10", "--router", router)
    running.wait_for(r"heroku\[web\.1\]: State changed from starting to up")
    running.wait_for(rf"is running: http://127\.0\.0\.1:\d+ and https://\S+ \(router: {router}\)")
    assert requests.get(running.url, timeout=10).json()["dyno"] == "web.1"
    assert bool(haproxy_processes_of(app)) == (router == "haproxy")
    names = {re.sub(r"-v\d+$", "", c.name) for c in containers(app)}
    assert names == {"dynosim-flask-app-web.1", "dynosim-flask-app-worker.1"}
    assert running.stop() == 0
    for dyno in ("web.1", "worker.1"):
        assert f"heroku[{dyno}]: Stopping all processes with SIGTERM" in running.output
        assert f"heroku[{dyno}]: State changed from up to down" in running.output
    assert containers(app) == []
    networks = docker_client.client().networks.list(names=[f"dynosim-{app}"])  # a prefix filter
    assert [n.name for n in networks if n.name == f"dynosim-{app}"] == []
    assert haproxy_processes_of(app) == []


def test_dynos_are_locked_down_and_get_port_and_dyno(running):
    web = dyno_container(running.name, "web.1")
    host = web.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 256
    assert host["Memory"] == 2 * 512 * 1024 * 1024  # Standard-1X: killed (R15) at twice 512 MB
    assert host["MemorySwap"] == host["Memory"]
    assert host["PortBindings"] in (None, {})  # reached on the app network, not published
    env = dict(item.split("=", 1) for item in web.attrs["Config"]["Env"])
    assert env["PORT"] == "5000" and env["DYNO"] == "web.1"
    assert web.exec_run("id -u").output.decode().strip() != "0"
    assert web.exec_run("pwd").output.decode().strip() == "/app"


def test_dyno_filesystem_is_writable_private_and_gone_after_a_restart(running):
    web = dyno_container(running.name, "web.1")
    assert web.exec_run(["bash", "-c", "echo hi > /app/upload.txt"]).exit_code == 0
    worker = dyno_container(running.name, "worker.1")
    assert worker.exec_run(["test", "-e", "/app/upload.txt"]).exit_code == 1  # not shared

    mark = running.mark()
    running.kill("web.1")  # a crash: the dyno manager restarts it at once, from the image
    running.wait_for_log(r"heroku\[web\.1\]: Process exited with status 137", after=mark)
    running.wait_for_log(r"heroku\[web\.1\]: State changed from up to crashed", after=mark)
    running.wait_for_log(r"heroku\[web\.1\]: State changed from crashed to starting", after=mark)
    running.wait_for_log(r"heroku\[web\.1\]: State changed from starting to up", after=mark)
    fresh = dyno_container(running.name, "web.1")
    assert fresh.id != web.id
    assert fresh.exec_run(["test", "-e", "/app/upload.txt"]).exit_code == 1
    assert get(running).status_code == 200
