"""Add-ons against real Docker: a real PostgreSQL and Redis for a Flask-SQLAlchemy app and its
Redis worker, attached as config vars, kept across restarts, backed up, reset, destroyed; both
over TLS only, as Heroku's, with no password in any process's arguments; and Heroku's Django
getting-started shape (dj-database-url `ssl_require=True`) migrating in its release phase."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time

import docker.types
import pytest
import requests
from conftest import ROOT, copy_app, dynosim

from dynosim import addons, container_engine, formation, releases
from dynosim.docker import client as docker_client
from dynosim.store import Store

APPS = ROOT / "tests" / "integration" / "apps"
APP = "pgshop"
UP = r"heroku\[{}\]: State changed from starting to up"

#: Run in a one-off dyno of the shop: clients that skip TLS are refused, as on Heroku.
CLIENTS = """
import os, urllib.parse, psycopg, redis
url = urllib.parse.urlsplit(os.environ["REDIS_URL"])
try:
    redis.Redis(host=url.hostname, port=url.port, password=url.password).ping()
except redis.ConnectionError:
    print("plain redis: refused")
try:
    psycopg.connect(os.environ["DATABASE_URL"], sslmode="disable")
except psycopg.OperationalError as exc:
    print("plain postgres:", "no encryption" in str(exc))
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    ssl = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    print("libpq prefer: ssl", ssl[0])
print("rediss:", redis.from_url(os.environ["REDIS_URL"], ssl_cert_reqs=None).ping())
"""


def volumes(app: str) -> set[str]:
    listed = docker_client.client().volumes.list(filters={"label": f"dynosim.app={app}"})
    return {v.name for v in listed}


def addon_servers(app: str) -> list[str]:
    listed = docker_client.client().containers.list(
        ignore_removed=True,
        filters={"label": ["dynosim=addon", f"dynosim.app={app}"], "status": "running"},
    )
    return sorted(c.id for c in listed)


def session(command: str, text: str) -> subprocess.Popen[str]:
    """A psql / redis-cli session fed from a pipe, as a user would script it."""
    run = [sys.executable, "-m", "dynosim", command, "-a", APP]
    process = subprocess.Popen(
        run, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdin
    process.stdin.write(text)
    process.stdin.close()
    return process


def output(process: subprocess.Popen[str]) -> str:
    assert process.stdout
    text = process.stdout.read()
    assert process.wait(120) == 0, process.stderr.read() if process.stderr else ""
    return text


def processes() -> list[str]:
    """Every process's arguments on the host, as any local user sees them."""
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()


def passwords(app: str) -> list[str]:
    store = Store()
    return [found.settings["password"] for found in store.addons(app)]


def shown_password(app: str) -> list[str]:
    """The lines of `ps` that show one of the app's add-on passwords (none, we expect)."""
    secrets = passwords(app)
    return [line for line in processes() if any(secret in line for secret in secrets)]


def wait_for_process(program: str, timeout: float = 60) -> str:
    """The arguments of the first process running `program` (any path), once one runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in processes():
            if line and line.split()[0].rsplit("/", 1)[-1] == program:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no process {program!r} appeared")


def eventually(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (requests.RequestException, ValueError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{check} never held")
        time.sleep(0.2)


def forget_certificates(app: str) -> None:
    """Make the add-ons' volumes look as they did before the servers spoke TLS: no certificate
    (and REDIS_URL handed out as redis://), as an app provisioned by an older dynosim has."""
    store = Store()
    for found in store.addons(app):
        chosen = addons.SERVICES[found.service]
        docker_client.client().containers.run(
            chosen.image,
            ["sh", "-c", "rm -rf /data/tls /var/lib/postgresql/data/server.*"],
            entrypoint=[],
            mounts=[docker.types.Mount(chosen.data, addons.container_name(found), type="volume")],
            labels={docker_client.LABEL: "test", docker_client.LABEL_APP: app},
            remove=True,
        )
        if found.service == addons.REDIS.name:
            plain = chosen.url(found).replace("rediss://", "redis://")
            releases.set_config(store, app, {found.config_var: plain}, release_phase=False)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The shop app deployed with a Postgres and a Redis add-on, shared by this module's tests
    (provisioning the servers is their slow part). Whatever is left is destroyed at the end."""
    app_dir = copy_app(APPS / "pg_redis_app", tmp_path_factory.mktemp("addons") / APP)
    assert dynosim("deploy", str(app_dir)).returncode == 0
    created = dynosim("addons:create", "-a", APP, "heroku-postgresql")
    assert created.returncode == 0, created.stderr
    assert "Created postgresql-" in created.stdout and " as DATABASE_URL\n" in created.stdout
    created = dynosim("addons:create", "-a", APP, "heroku-redis")
    assert created.returncode == 0, created.stderr
    yield app_dir
    for addon in ("DATABASE_URL", "REDIS_URL"):
        dynosim("addons:destroy", "-a", APP, addon, "--confirm", APP)


def test_postgres_and_redis_add_ons_serve_a_real_app_over_tls_and_keep_its_data(shop, up):
    config = dynosim("config", "-a", APP, "--json").stdout
    assert '"DATABASE_URL": "postgres://u' in config and '"REDIS_URL": "rediss://:' in config
    assert "Attach DATABASE (@ref:postgresql-" in dynosim("releases", "-a", APP).stdout

    process = up(shop)
    process.wait_for(UP.format(r"web\.1"))
    process.wait_for(r"app\[worker\.1\]: worker: waiting for jobs")
    for name in ("apple", "pear", "plum"):
        assert requests.post(f"{process.url}/items?name={name}", timeout=30).status_code == 201
    assert process.get("/items").json() == ["apple", "pear", "plum"]
    assert requests.post(f"{process.url}/jobs?value=hello", timeout=30).status_code == 202
    assert eventually(lambda: process.get("/results").json() == ["HELLO"])
    assert shown_password(APP) == []  # the servers and their readiness probes

    mark = process.mark()
    assert dynosim("ps:restart", "-a", APP).returncode == 0
    process.wait_for(UP.format(r"web\.1"), after=mark)
    assert eventually(lambda: process.get("/items").json() == ["apple", "pear", "plum"])

    servers = addon_servers(APP)
    process.process.kill()  # SIGKILL: the next up adopts the add-on servers like the dynos
    process.process.wait(10)
    adopted = up(shop)
    adopted.wait_for(UP.format(r"web\.1"))
    assert eventually(lambda: adopted.get("/items").json() == ["apple", "pear", "plum"])
    assert addon_servers(APP) == servers  # the same containers, not new ones
    assert adopted.stop() == 0
    assert (
        docker_client.client().containers.list(
            ignore_removed=True, filters={"label": f"dynosim.app={APP}"}
        )
        == []
    )
    assert len(volumes(APP)) == 2  # the data outlives the servers

    forget_certificates(APP)  # add-ons provisioned before TLS: the next up brings them along
    plain = Store().latest_release(APP).version
    again = up(shop)
    again.wait_for(rf"app\[api\]: Deployed v{plain + 1}")  # new certificates, rediss:// again
    listed = dynosim("releases", "-a", APP).stdout.splitlines()
    assert any(
        f"v{plain + 1} " in line and "Update REDIS by heroku-redis" in line for line in listed
    ), listed
    assert '"REDIS_URL": "rediss://:' in dynosim("config", "-a", APP, "--json").stdout
    assert eventually(lambda: again.get("/items").json() == ["apple", "pear", "plum"])
    assert again.get("/results").json() == ["HELLO"]

    clients = dynosim("run", "-a", APP, "--no-tty", "python -c " + shlex.quote(CLIENTS))
    assert clients.stdout.splitlines() == [
        "plain redis: refused",
        "plain postgres: True",
        "libpq prefer: ssl True",
        "rediss: True",
    ], clients.stderr

    psql = session("pg:psql", "select string_agg(name, ',' order by name) from item, pg_sleep(1);")
    assert wait_for_process("psql")  # the client in its one-off container, on this host
    assert shown_password(APP) == []
    (client,) = docker_client.client().containers.list(
        ignore_removed=True, filters={"label": ["dynosim=addon-client", f"dynosim.app={APP}"]}
    )
    standard = formation.size(formation.DEFAULT_SIZE)  # locked down like a dyno
    assert client.attrs["HostConfig"]["PidsLimit"] == standard.pids
    assert (
        client.attrs["HostConfig"]["Memory"] == container_engine.memory_limit_mb(standard) * 2**20
    )
    assert "apple,pear,plum" in output(psql)
    redis_cli = session("redis:cli", "BLPOP nothing 1\nLRANGE results 0 -1\n")
    assert "--tls" in wait_for_process("redis-cli")
    assert shown_password(APP) == []
    assert output(redis_cli).splitlines()[-1] == "HELLO"

    captured = dynosim("pg:backups:capture", "-a", APP)
    assert "Backup b001 saved to" in captured.stdout, captured.stderr
    assert dynosim("pg:reset", "-a", APP, "--confirm", APP).returncode == 0
    assert eventually(lambda: again.get("/items").status_code == 500)  # no table any more
    restored = dynosim("pg:backups:restore", "b001", "-a", APP, "--confirm", APP)
    assert restored.returncode == 0, restored.stderr
    assert eventually(lambda: again.get("/items").json() == ["apple", "pear", "plum"])


def test_a_django_app_with_ssl_require_migrates_in_its_release_phase(up, tmp_path):
    app_dir = copy_app(APPS / "django_pg_app", tmp_path / "gettingstarted")
    assert dynosim("deploy", str(app_dir)).returncode == 0  # v1: no database yet
    created = dynosim("addons:create", "-a", "gettingstarted", "heroku-postgresql")
    assert created.returncode == 0, created.stderr
    with (app_dir / "hello" / "views.py").open("a") as views:
        views.write("# a change after the add-on came: a new release, migrated on deploy\n")
    assert dynosim("deploy", str(app_dir)).returncode == 0  # v3, migrated over TLS

    try:
        process = up(app_dir)
        process.wait_for(r"app\[api\]: Deployed v3")
        assert "Applying hello.0001_initial... OK" in process.output
        assert "Release v1 failed" in process.output  # migrate without DATABASE_URL, as Heroku
        first = eventually(lambda: process.get("/db/").json())  # once web.1 serves v3
        assert first["ssl"] is True and first["tls"] in ("TLSv1.2", "TLSv1.3")
        assert process.get("/db/").json()["greetings"] == first["greetings"] + 1
        assert shown_password("gettingstarted") == []
        assert process.stop() == 0
    finally:
        destroy = ("addons:destroy", "-a", "gettingstarted", "DATABASE_URL")
        gone = dynosim(*destroy, "--confirm", "gettingstarted")
    assert gone.returncode == 0, gone.stderr


def test_destroying_add_ons_removes_their_data(shop):
    assert len(volumes(APP)) == 2
    refused = dynosim("addons:destroy", "-a", APP, "DATABASE_URL")
    assert refused.returncode == 2 and f"--confirm {APP}" in refused.stderr
    assert len(volumes(APP)) == 2
    for addon in ("DATABASE_URL", "REDIS_URL"):
        gone = dynosim("addons:destroy", "-a", APP, addon, "--confirm", APP)
        assert gone.returncode == 0, gone.stderr
    assert volumes(APP) == set()
    assert dynosim("addons", "-a", APP).stdout == f"No add-ons for app {APP}.\n"
    assert "DATABASE_URL" not in dynosim("config", "-a", APP, "--json").stdout
