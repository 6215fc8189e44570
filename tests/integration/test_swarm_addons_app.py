"""A Heroku-shaped app with add-ons on the session's real 3-node Swarm (`swarm_cluster`): the
Flask-SQLAlchemy shop on Postgres with its Redis worker and a `release:` migration.
`addons:create` with DOCKER_HOST on the cluster provisions the servers there; `up --engine
swarm` runs them as services on the workers, runs the release phase on the cluster, serves
data written through Postgres, has the worker consume a job from Redis, starts a third add-on
made while it runs (`addons:create` finds the app on the cluster) before the release that
attaches it, runs a `run:detached` one-off whose output reaches the logs, and answers
`pg:psql` and `redis:cli` fed from a pipe, `pg:backups:capture`, `pg:reset` and
`pg:backups:restore` on the cluster's servers (their one-off clients on the servers' nodes);
Ctrl-C leaves no service, container or network on any node but keeps the add-ons' data (a
`pg:psql` then starts the server for its duration, and removes it after), which
`addons:destroy` removes."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from conftest import ROOT, copy_app, dynosim
from test_addons import eventually, output, processes, wait_for_process

APP = "swarmshop"
UP = r"heroku\[{}\]: State changed from starting to up"


def command(swarm_cluster, *args: str, docker_host: bool = True) -> str:
    env = {**os.environ, **swarm_cluster.env}
    if not docker_host:  # the engine the cluster runs on, where apps are built
        env.pop("DOCKER_HOST")
        if "DOCKER_HOST" in os.environ:
            env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    done = dynosim(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def shop(swarm_cluster, tmp_path) -> Path:
    """The shop deployed, its add-ons created on the cluster, then a `release:` migration
    added (the next build runs it); its add-ons destroyed at the end."""
    folder = copy_app(ROOT / "tests/integration/apps/pg_redis_app", tmp_path / APP)
    command(swarm_cluster, "deploy", str(folder), docker_host=False)
    for service in ("heroku-postgresql", "heroku-redis"):
        assert "Created " in command(swarm_cluster, "addons:create", "-a", APP, service)
    with (folder / "Procfile").open("a") as procfile:
        procfile.write("release: python release.py\n")
    yield folder
    for var in ("DATABASE_URL", "REDIS_URL", "CACHE_URL"):  # what the test left
        dynosim("addons:destroy", "-a", APP, var, "--confirm", APP,
                env={**os.environ, **swarm_cluster.env})  # fmt: skip


def test_an_app_with_postgres_redis_a_release_phase_and_one_offs_runs_on_the_cluster(
    swarm_cluster, shop, up
):
    assert swarm_cluster.left(APP) == []  # provisioned, then stopped: no `up` yet
    assert len(addon_volumes(swarm_cluster)) == 2  # their data made on their nodes
    served = up(shop, "--engine", "swarm", env=swarm_cluster.env)
    served.wait_for(UP.format(r"web\.1"), timeout=600)
    served.wait_for(r"app\[worker\.1\]: worker: waiting for jobs", timeout=120)
    output = served.output
    phase = re.search(r"heroku\[(release\.\d+)\]: Starting process with command `python", output)
    assert phase, output  # the release phase, on the cluster, as on one engine
    for line in (
        f"app[{phase[1]}]: release: item table ready",
        f"heroku[{phase[1]}]: Process exited with status 0",
        "app[api]: Deployed v4",
    ):
        assert line in output, output
    servers = addon_services(swarm_cluster)
    assert set(servers.values()) <= {"node2", "node3"}, servers  # on the workers
    assert sorted(served_as(output, servers)) == ["DATABASE_URL", "REDIS_URL"], output

    for name in ("apple", "pear"):
        posted = requests.post(f"{served.url}/items?name={name}", timeout=30)
        assert posted.status_code == 201, served.output[-4000:]
    assert served.get("/items").json() == ["apple", "pear"]
    assert requests.post(f"{served.url}/jobs?value=hello", timeout=30).status_code == 202
    served.wait_for(r"app\[worker\.1\]: worker: processed hello", timeout=60)
    assert served.get("/results").json() == ["HELLO"]

    # an add-on made while the app runs on the cluster goes there (DOCKER_HOST left as is)
    created = command(swarm_cluster, "addons:create", "-a", APP, "heroku-redis", "--as", "CACHE",
                      docker_host=False)  # fmt: skip
    assert "as CACHE_URL" in created
    served.wait_for(r"app\[api\]: Deployed v5", timeout=120)
    servers = addon_services(swarm_cluster)
    assert "CACHE_URL" in served_as(served.output, servers), servers

    script = (
        "import os, redis\nfrom app import Item, app\n"
        "with app.app_context(): print('items:', Item.query.count())\n"
        "print('cache:', redis.from_url(os.environ['CACHE_URL'], ssl_cert_reqs=None).ping())"
    )
    mark = served.mark()
    command(swarm_cluster, "run:detached", "-a", APP, shlex.join(["python", "-c", script]))
    served.wait_for(r"app\[run\.\d+\]: items: 2$", timeout=120, after=mark)
    served.wait_for(r"app\[run\.\d+\]: cache: True$", timeout=60, after=mark)
    served.wait_for(r"heroku\[run\.\d+\]: Process exited with status 0", timeout=60, after=mark)

    began = time.monotonic()
    clients_reach_the_cluster_s_servers(swarm_cluster, served)
    print(f"pg:* and redis:cli under `up`: {time.monotonic() - began:.1f} s")  # a figure only
    assert served.stop() == 0
    assert swarm_cluster.left(APP) == []
    # with no `up`, pg:psql starts the server on its node for its duration, then removes it
    items = "select string_agg(name, ',' order by name) from item;"
    began = time.monotonic()
    assert "apple,pear" in piped(swarm_cluster, "pg:psql", items).stdout
    print(f"pg:psql with no `up`: {time.monotonic() - began:.1f} s")
    assert swarm_cluster.left(APP) == []
    kept = addon_volumes(swarm_cluster)  # the data stays on the nodes, as on one engine
    assert kept == {f"dynosim-{APP}-{name}": node for name, node in servers.items()}, kept

    for var in ("DATABASE_URL", "REDIS_URL", "CACHE_URL"):
        command(swarm_cluster, "addons:destroy", "-a", APP, var, "--confirm", APP)
    assert addon_volumes(swarm_cluster) == {}  # and addons:destroy removes it on its node
    assert swarm_cluster.left(APP) == []


def clients_reach_the_cluster_s_servers(swarm_cluster, served) -> None:
    """pg:psql and redis:cli fed from a pipe, pg:backups:capture, pg:reset and
    pg:backups:restore act on the servers on the workers, and print as on one engine; no
    password shows in `ps` while psql runs in its one-off container on the server's node."""
    secrets = [urlsplit(url).password for url in config_urls(swarm_cluster)]
    items = "select string_agg(name, ',' order by name) from item, pg_sleep(3);"
    psql = piped(swarm_cluster, "pg:psql", items, wait=False)
    running_client(swarm_cluster, "psql")  # this command's psql, in its one-off on a node
    # seen from this host while it runs (the container's process execs psql a moment after
    # the engine reports it running)
    assert not any(s in wait_for_process("psql") for s in secrets)
    assert [line for line in processes() if any(s in line for s in secrets)] == []
    assert "apple,pear" in output(psql)

    captured = command(swarm_cluster, "pg:backups:capture", "-a", APP)
    assert re.fullmatch(r"Starting backup of postgresql-\S+\.\.\. done\nBackup b001 saved to "
                        rf"\S+/backups/{APP}/b001\.dump\n", captured), captured  # fmt: skip
    reset = command(swarm_cluster, "pg:reset", "-a", APP, "--confirm", APP)
    assert re.fullmatch(r"Resetting postgresql-\S+\.\.\. done\n", reset), reset
    assert eventually(lambda: served.get("/items").status_code == 500)  # no table any more
    restored = command(swarm_cluster, "pg:backups:restore", "b001", "-a", APP, "--confirm", APP)
    assert re.fullmatch(r"Restoring b001 to postgresql-\S+\.\.\. done\n", restored), restored
    assert eventually(lambda: served.get("/items").json() == ["apple", "pear"])

    redis_cli = piped(swarm_cluster, "redis:cli", "SET k v\nGET k\n")
    assert redis_cli.stdout.splitlines() == ["OK", "v"], redis_cli.stderr
    keys = [("6379>", "GET k\r"), ('"v"', "quit\r")]
    status, shown = swarm_cluster.in_terminal("redis:cli", "-a", APP, keys=keys)
    assert status == 0, shown  # a TTY on both ends: its prompt, and the quoted answer


def piped(swarm_cluster, name: str, text: str, wait: bool = True):
    """`dynosim NAME -a APP` from the cluster's terminal, its input `text` from a pipe: the
    finished process, asserting it succeeded (or with `wait` False, the running one)."""
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "dynosim", name, "-a", APP],
        env={**os.environ, **swarm_cluster.env},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    if not wait:
        assert process.stdin
        process.stdin.write(text)
        process.stdin.close()
        return process
    stdout, stderr = process.communicate(text, timeout=300)
    assert process.returncode == 0, stdout + stderr
    print(f"{name} piped: {time.monotonic() - began:.2f} s")
    return subprocess.CompletedProcess(process.args, 0, stdout, stderr)


def running_client(swarm_cluster, program: str, timeout: float = 120) -> None:
    """Wait until a node runs this app's add-on client one-off (`oneoffs.create`) whose
    command is `program`."""
    labelled = {"label": ["dynosim=addon-client", f"dynosim.app={APP}"], "status": "running"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for socket in swarm_cluster.node_sockets:
            with swarm_cluster.client(socket) as node:
                for container in node.containers.list(ignore_removed=True, filters=labelled):
                    if (container.attrs["Config"]["Cmd"] or [""])[0] == program:
                        return
        time.sleep(0.1)
    raise AssertionError(f"no add-on client of {APP} running {program} on a node")


def config_urls(swarm_cluster) -> list[str]:
    """The app's add-on URLs (which carry their passwords)."""
    config = json.loads(command(swarm_cluster, "config", "-a", APP, "--json"))
    return [value for key, value in config.items() if key.endswith("_URL")]


def addon_services(swarm_cluster) -> dict[str, str]:
    """The app's add-on services: name -> the node of its running task."""
    found = {}
    with swarm_cluster.client() as manager:
        labelled = {"label": ["dynosim=addon", f"dynosim.app={APP}"]}
        for service in manager.services.list(filters=labelled):
            nodes = {t["NodeID"] for t in service.tasks() if t["Status"]["State"] == "running"}
            names = [manager.nodes.get(n).attrs["Description"]["Hostname"] for n in nodes]
            found[service.name] = ",".join(names)
    return found


def served_as(output: str, servers: dict[str, str]) -> list[str]:
    """The config vars `up` says its add-on servers serve as, each on the node it runs on."""
    return [
        match[1]
        for name, node in servers.items()
        for match in re.finditer(rf"heroku\[{name}\]: heroku-\S+ serving as (\S+) on {node}$",
                                 output, re.MULTILINE)
    ]  # fmt: skip


def addon_volumes(swarm_cluster) -> dict[str, str]:
    """The app's add-on volumes on the nodes: name -> node."""
    found = {}
    for number, socket in enumerate(swarm_cluster.node_sockets, start=1):
        with swarm_cluster.client(socket) as node:
            for volume in node.volumes.list(filters={"name": f"dynosim-{APP}-"}):
                found[volume.name] = f"node{number}"
    return found
