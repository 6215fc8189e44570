"""`dynosim up --engine swarm` on the session's real 3-node Swarm (`swarm_cluster`): web dynos
as services spread over the nodes, served through the router on 127.0.0.1, `ps` saying where
each runs, one dyno restarted alone, one dyno's crash back-off, a lost node's dynos taken out
of the router and started elsewhere, and Ctrl-C leaving nothing on any node."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest
from conftest import ROOT, Load, copy_app

APP = "swarmapp"
UP_LINE = r"heroku\[web\.{}\]: State changed from starting to up"
NODE_OF = re.compile(r"^(web\.\d+): up .* on (node\d)$")


@pytest.fixture(scope="module")
def swarm_app(tmp_path_factory) -> Path:
    """A copy of the uv test app (a Flask app answering with its DYNO)."""
    return copy_app(ROOT / "tests/integration/apps/uv_app", tmp_path_factory.mktemp("s") / APP)


def placement(swarm_cluster) -> dict[str, str]:
    """Dyno -> node, as `ps` shows it."""
    lines = swarm_cluster.dynosim(APP, "ps").splitlines()
    return dict(m.groups() for line in lines if (m := NODE_OF.match(line)))


def served_by(served, dynos: set[str], attempts: int = 400) -> set[str]:
    """GET / until every dyno in `dynos` answered (each answers with its DYNO)."""
    seen: set[str] = set()
    for _ in range(attempts):
        response = served.get("/")
        assert response.status_code == 200, response.text
        seen.add(response.json()["dyno"])
        if seen >= dynos:
            break
    return seen


def scale(served, swarm_cluster, count: int, timeout: float = 120) -> dict[str, str]:
    """`ps:scale web=COUNT`, then until `ps` shows exactly web.1 to web.COUNT up: where each
    runs."""
    swarm_cluster.dynosim(APP, "ps:scale", f"web={count}")
    wanted = {f"web.{n}" for n in range(1, count + 1)}
    deadline = time.monotonic() + timeout
    while set(placed := placement(swarm_cluster)) != wanted:
        assert time.monotonic() < deadline, f"{placed}\n{served.output}"
        time.sleep(0.5)
    return placed


def test_web_dynos_spread_over_the_nodes_serve_restart_alone_and_ctrl_c_cleans_every_node(
    swarm_cluster, swarm_app, up
):
    served = up(swarm_app, "--engine", "swarm", env=swarm_cluster.env)
    served.wait_for(UP_LINE.format(1), timeout=600)
    # the network keeper went first (docker.swarm_keeper): on every node, even where no dyno
    # runs (web=1), and each node knew all three on the app network before web.1 started
    assert _keepers_and_peers(swarm_cluster) == [(1, 3)] * 3
    assert set(scale(served, swarm_cluster, 2)) == {"web.1", "web.2"}  # each `on nodeN`
    assert served_by(served, {"web.1", "web.2"}) == {"web.1", "web.2"}

    mark = served.mark()
    swarm_cluster.dynosim(APP, "ps:restart", "web.2")
    served.wait_for(UP_LINE.format(2), timeout=120, after=mark)
    restarted = served.lines[mark:]
    assert any("heroku[web.2]: Restarting" in line for line in restarted)
    assert not any("heroku[web.1]:" in line for line in restarted), restarted

    placed = scale(served, swarm_cluster, 6)
    six = {f"web.{n}" for n in range(1, 7)}
    assert len(set(placed.values())) >= 2, placed
    assert served_by(served, six) == six

    assert served.stop() == 0
    assert swarm_cluster.left(APP) == []


def test_one_dynos_crashes_follow_herokus_back_off_while_the_others_serve(
    swarm_cluster, swarm_app, up
):
    """A crash restarts at once, the second in a row waits its cool-off (dynosim's schedule,
    not Swarm's restart policy), the other dynos serving throughout; through the Python
    router (the other tests get HAProxy, the default where it is installed)."""
    served = up(swarm_app, "--engine", "swarm", "--router", "python", env=swarm_cluster.env)
    served.wait_for(UP_LINE.format(1), timeout=600)
    assert "(router: python)" in served.output
    scale(served, swarm_cluster, 3)

    for crashes in (1, 2):
        mark = served.mark()
        _kill(swarm_cluster, "web.1")
        served.wait_for(r"heroku\[web\.1\]: Process exited with status 137", after=mark)
        served.wait_for(r"heroku\[web\.1\]: State changed from up to crashed", after=mark)
        if crashes == 1:  # at once
            served.wait_for(UP_LINE.format(1), timeout=120, after=mark)
    served.wait_for(r"heroku\[web\.1\]: Crashed 2 times in a row; restarting in 20 min", after=mark)
    assert served_by(served, {"web.2", "web.3"}) == {"web.2", "web.3"}
    assert served.stop() == 0
    assert swarm_cluster.left(APP, timeout=90) == []


def test_a_lost_nodes_dynos_leave_the_router_at_once_and_start_on_the_other_nodes(
    swarm_cluster, swarm_app, up, docker_client
):
    """A worker node's container is killed under load: each of its dynos is reported lost
    within 2 s of the manager marking the node down, started on the other nodes, and no GET
    fails but those already sent to it. The node, started again, is locked down as before."""
    served = up(swarm_app, "--engine", "swarm", env=swarm_cluster.env)
    served.wait_for(UP_LINE.format(1), timeout=600)
    placed = scale(served, swarm_cluster, 3)
    lost = next(n for n in ("node3", "node2") if n in placed.values())
    moved = sorted(d for d, n in placed.items() if n == lost)
    cluster_id = json.loads((swarm_cluster.home / "cluster" / "cluster.json").read_text())["id"]
    (node,) = docker_client.containers.list(
        ignore_removed=True, filters={"name": f"{cluster_id}-{lost}"}
    )
    load = Load(served.url + "/")
    mark = served.mark()
    try:
        node.kill()
        down = _until_state(swarm_cluster, lost, "down")
        for dyno in moved:
            line = rf"heroku\[{re.escape(dyno)}\]: Dyno lost: node {lost} down"
            reported = served.wait_for(line, timeout=30, after=mark).string
            at = dt.datetime.fromisoformat(reported.split()[0]).timestamp()
            assert at - down < 2.0, (at - down, reported)
        for dyno in moved:
            served.wait_for(UP_LINE.format(dyno.split(".")[1]), timeout=120, after=mark)
        load.stop(at_least=load.sent + 20)
    finally:
        node.start()
        _until_state(swarm_cluster, lost, "ready", timeout=120)
    assert len(load.failures) <= 4, load.failures  # at most the 4 requests in flight
    after = placement(swarm_cluster)
    assert set(after) == set(placed) and all(after[d] != lost for d in moved), after
    rules = node.exec_run(["iptables", "-w", "-t", "mangle", "-S", "DYNOSIM-NODE"])
    assert rules.exit_code == 0 and b"-j DROP" in rules.output, rules.output
    assert served.stop() == 0
    # the restarted node removes its dead tasks' containers
    assert swarm_cluster.left(APP, timeout=90) == []


def _until_state(swarm_cluster, hostname: str, state: str, timeout: float = 60) -> float:
    """When (epoch seconds) the manager first lists the node in `state`, polled every 0.2 s."""
    deadline = time.monotonic() + timeout
    with swarm_cluster.client() as manager:
        while time.monotonic() < deadline:
            for found in manager.nodes.list():
                named, now = found.attrs["Description"]["Hostname"], found.attrs["Status"]["State"]
                if named == hostname and now == state:
                    return time.time()
            time.sleep(0.2)
    raise AssertionError(f"{hostname} never {state}")


def _kill(swarm_cluster, dyno: str) -> None:
    """SIGKILL to the dyno's task container on the node `ps` names (a crash)."""
    node = placement(swarm_cluster)[dyno]
    socket = swarm_cluster.node_sockets[int(node.removeprefix("node")) - 1]
    name = f"dynosim-{APP}-{dyno.replace('.', '-')}-v"
    with swarm_cluster.client(socket) as engine:
        (found,) = [
            c for c in engine.containers.list(ignore_removed=True) if c.name.startswith(name)
        ]
        found.kill()


def _keepers_and_peers(swarm_cluster) -> list[tuple[int, int]]:
    """Per node: how many network keepers of the app run there, and how many nodes its
    engine's network database lists on the app's network."""
    found = []
    wanted = {"label": ["dynosim=network-keeper", f"dynosim.app={APP}"], "status": "running"}
    for socket in swarm_cluster.node_sockets:
        with swarm_cluster.client(socket) as node:
            kept = len(node.containers.list(ignore_removed=True, filters=wanted))
            network = node.api.inspect_network(f"dynosim-{APP}", verbose=True, scope="swarm")
            found.append((kept, len(network.get("Peers") or [])))
    return found
