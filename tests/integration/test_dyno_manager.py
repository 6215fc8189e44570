"""The dyno manager against real Docker: scaling, restarts, memory limits and the kernel's OOM
kill, adoption by labels, a dyno removed by hand, one-offs, logs. Crash cool-offs, R10 and
cycling are unit-tested on a fake engine (tests/unit/test_manager.py)."""

from __future__ import annotations

import requests
from conftest import WEB, dynosim, tail_follows_the_router, tiny_app

from dynosim.docker import client as docker_client

UP = r"heroku\[{}\]: State changed from starting to up"


def containers(app: str, role: str = "formation"):
    return docker_client.client().containers.list(
        ignore_removed=True,
        all=True,
        filters={"label": [f"dynosim.app={app}", f"dynosim.role={role}"]},
    )


def answering(url: str, requests_count: int = 60) -> set[str]:
    return {requests.get(url, timeout=10).text for _ in range(requests_count)}


def test_scale_1_3_1_spreads_requests_and_stops_the_highest_numbers_first(up, tmp_path):
    app_dir = tiny_app(tmp_path / "scaler", WEB)
    process = up(app_dir, "--grace", "5")
    process.wait_for(UP.format(r"web\.1"))

    mark = process.mark()
    scaled = dynosim("ps:scale", "-a", "scaler", "web=3")
    assert scaled.stdout == "Scaling dynos... done, now running web at 3:Standard-1X\n"
    for name in (r"web\.2", r"web\.3"):
        process.wait_for(UP.format(name), after=mark)
    assert answering(process.url) == {"web.1", "web.2", "web.3"}

    ps = dynosim("ps", "-a", "scaler").stdout
    assert ps.startswith(f"=== web (Standard-1X): {WEB[5:].strip()} (3)\nweb.1: up ")
    assert "\nweb.3: up " in ps

    mark = process.mark()
    assert dynosim("ps:scale", "-a", "scaler", "web-2").returncode == 0
    process.wait_for(r"heroku\[web\.2\]: State changed from up to down", after=mark)
    stops = [line for line in process.lines[mark:] if "Stopping all processes" in line]
    assert [line.split("heroku[")[1][:5] for line in stops] == ["web.3", "web.2"]
    assert [c.name for c in containers("scaler")] == ["dynosim-scaler-web.1-v1"]
    assert answering(process.url, 10) == {"web.1"}


def test_a_stopped_or_restarted_formation_dyno_comes_back(dyno_app, tmp_path):
    app = dyno_app(tiny_app(tmp_path / "phoenix", WEB))
    first = containers(app.name)[0].id

    mark = app.mark()
    app.stop_dyno("web.1")
    app.wait_for_log(r"heroku\[web\.1\]: Stopping all processes with SIGTERM", after=mark)
    app.wait_for_log(UP.format(r"web\.1"), after=mark)
    second = containers(app.name)[0].id
    assert second != first

    mark = app.mark()
    assert app.restart("web") == ["web.1"]  # returns once web.1 is up again
    app.wait_for_log(r"heroku\[web\.1\]: Restarting", after=mark)
    app.wait_for_log(r"heroku\[web\.1\]: State changed from up to starting", after=mark)
    assert containers(app.name)[0].id not in (first, second)
    assert requests.get(app.url, timeout=10).text == "web.1"


HOG = """\
import time
blocks = []
while len(blocks) < 14:  # 700 MB: over the 512 MB quota, under the 1 GB kill limit
    blocks.append(b"x" * (50 * 2**20))
    time.sleep(0.1)
print("holding", len(blocks) * 50, "MB", flush=True)
time.sleep(4)
while True:  # on to twice the quota: the kernel kills the dyno there
    blocks.append(b"x" * (50 * 2**20))
    time.sleep(0.05)
"""


def test_memory_over_quota_logs_r14_and_twice_the_quota_is_killed_with_r15(up, tmp_path):
    app_dir = tiny_app(tmp_path / "hog", "worker: python hog.py\n", **{"hog.py": HOG})
    process = up(app_dir, "--grace", "2")
    process.wait_for(r"app\[worker\.1\]: holding 700 MB")
    process.wait_for(r"heroku\[worker\.1\]: Process running mem=\d+MB\(1[0-9]{2}\.\d%\)")
    process.wait_for(r"heroku\[worker\.1\]: Error R14 \(Memory quota exceeded\)")
    process.wait_for(r"heroku\[worker\.1\]: Process running mem=1024MB\(200\.0%\)")
    process.wait_for(r"heroku\[worker\.1\]: Error R15 \(Memory quota vastly exceeded\)")
    process.wait_for(r"heroku\[worker\.1\]: Process exited with status 137")


def test_after_the_supervisor_is_killed_the_next_up_adopts_its_dynos(up, tmp_path):
    app_dir = tiny_app(tmp_path / "orphans", WEB)
    first = up(app_dir, "--grace", "5")
    first.wait_for(UP.format(r"web\.1"))
    before = sorted(c.id for c in containers("orphans"))
    first.process.kill()  # SIGKILL: no chance to clean up
    first.process.wait(10)
    assert sorted(c.id for c in containers("orphans") if c.status == "running") == before

    second = up(app_dir, "--grace", "5")
    second.wait_for(r"heroku\[web\.1\]: Adopted running dyno from an earlier dynosim up")
    second.wait_for(r"heroku\[web\.1\]: State changed from starting to up")
    assert sorted(c.id for c in containers("orphans")) == before  # no duplicates
    answer = requests.get(second.url, timeout=10)
    assert answer.text == "web.1", second.output
    assert second.stop() == 0
    assert containers("orphans") == []


def test_a_dyno_removed_by_hand_is_repaired(dyno_app, tmp_path):
    app = dyno_app(tiny_app(tmp_path / "handsoff", WEB))
    mark = app.mark()
    containers(app.name)[0].remove(force=True)
    app.wait_for_log(r"heroku\[web\.1\]: State changed from up to crashed", after=mark)
    app.wait_for_log(UP.format(r"web\.1"), after=mark)
    assert requests.get(app.url, timeout=10).text == "web.1"


def test_a_one_off_dyno_returns_its_status_and_output(dyno_app, tmp_path):
    app = dyno_app(tiny_app(tmp_path / "errand", WEB))
    result = app.run("echo $GREETING on $DYNO; exit 7", env={"GREETING": "hello"})
    assert (result.status, result.output) == (7, f"hello on {result.dyno}\n")
    assert result.dyno.startswith("run.")
    assert containers(app.name, role="one-off") == []


def test_one_off_dynos_get_the_environment_and_pass_the_exit_status_through(up, tmp_path):
    app_dir = tiny_app(tmp_path / "oneoff", WEB)
    process = up(app_dir, "--grace", "5")
    process.wait_for(UP.format(r"web\.1"))

    result = dynosim(
        "run",
        "-a",
        "oneoff",
        "-x",
        "-e",
        "GREETING=hello",
        "echo $GREETING $DYNO $PORT $(id -u); exit 7",
    )
    assert result.returncode == 7, result.stderr
    greeting, dyno_name, port, uid = result.stdout.split()
    assert (greeting, port) == ("hello", "5000")
    assert dyno_name.startswith("run.") and uid != "0"
    assert (
        f"Running `echo $GREETING $DYNO $PORT $(id -u); exit 7` on ⬢ oneoff... up, {dyno_name}"
        in result.stderr
    )
    assert dynosim("run", "-a", "oneoff", "exit 7").returncode == 0  # without -x, like heroku
    assert containers("oneoff", role="one-off") == []

    detached = dynosim("run:detached", "-a", "oneoff", "echo detached on $DYNO")
    name = detached.stdout.split("up, ")[1].split()[0]
    process.wait_for(rf"app\[{name}\]: detached on {name}")
    process.wait_for(rf"heroku\[{name}\]: State changed from up to complete")


def test_logs_filter_and_follow(up, tmp_path):
    app_dir = tiny_app(tmp_path / "chatty", WEB)
    process = up(app_dir, "--grace", "5")
    process.wait_for(UP.format(r"web\.1"))
    recent = dynosim("logs", "-a", "chatty", "-n", "3", "--ps", "web", "--source", "heroku")
    lines = recent.stdout.splitlines()
    assert len(lines) == 3
    assert all(" heroku[web.1]: " in line for line in lines)

    tail_follows_the_router("chatty", process.url)


def test_ps_type_replaces_dynos_with_the_new_size(up, tmp_path):
    app_dir = tiny_app(tmp_path / "grower", WEB)
    process = up(app_dir, "--grace", "5")
    process.wait_for(UP.format(r"web\.1"))
    assert containers("grower")[0].attrs["HostConfig"]["Memory"] == 1024 * 2**20  # 2 x 512 MB
    mark = process.mark()
    result = dynosim("ps:type", "-a", "grower", "web=standard-2X")
    assert result.stdout == "Changing dyno types... done, now running web at 1:Standard-2X\n"
    process.wait_for(UP.format(r"web\.1"), after=mark)
    assert containers("grower")[0].attrs["HostConfig"]["Memory"] == 2048 * 2**20
    assert "=== web (Standard-2X)" in dynosim("ps", "-a", "grower").stdout
