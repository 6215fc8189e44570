"""Add-ons against real Docker: a real PostgreSQL and Redis for a Flask-SQLAlchemy app and its
Redis worker, attached as config vars, kept across restarts, backed up, reset, destroyed."""

from __future__ import annotations

import subprocess
import sys
import time

import requests
from conftest import ROOT, copy_app, dynosim

from dynosim import engine

APP_SOURCE = ROOT / "tests" / "integration" / "apps" / "pg_redis_app"
UP = r"heroku\[{}\]: State changed from starting to up"


def volumes(app: str) -> set[str]:
    listed = engine.client().volumes.list(filters={"label": f"dynosim.app={app}"})
    return {v.name for v in listed}


def addon_servers(app: str) -> list[str]:
    listed = engine.client().containers.list(
        filters={"label": ["dynosim=addon", f"dynosim.app={app}"], "status": "running"}
    )
    return sorted(c.id for c in listed)


def session(command: str, text: str) -> subprocess.CompletedProcess[str]:
    """A psql / redis-cli session fed from a pipe, as a user would script it."""
    run = [sys.executable, "-m", "dynosim", command, "-a", "shop"]
    return subprocess.run(run, input=text, capture_output=True, text=True, timeout=120)


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


def test_postgres_and_redis_add_ons_serve_a_real_app_and_keep_its_data(up, tmp_path):
    app_dir = copy_app(APP_SOURCE, tmp_path / "shop")
    others = volumes("shop")
    assert dynosim("deploy", str(app_dir)).returncode == 0
    created = dynosim("addons:create", "-a", "shop", "heroku-postgresql")
    assert created.returncode == 0, created.stderr
    assert "Created postgresql-" in created.stdout and " as DATABASE_URL\n" in created.stdout
    assert dynosim("addons:create", "-a", "shop", "heroku-redis").returncode == 0
    config = dynosim("config", "-a", "shop", "--json").stdout
    assert '"DATABASE_URL": "postgres://u' in config and '"REDIS_URL": "redis://:' in config
    assert "Attach DATABASE (@ref:postgresql-" in dynosim("releases", "-a", "shop").stdout

    process = up(app_dir)
    process.wait_for(UP.format(r"web\.1"))
    process.wait_for(r"app\[worker\.1\]: worker: waiting for jobs")
    for name in ("apple", "pear", "plum"):
        assert requests.post(f"{process.url}/items?name={name}", timeout=30).status_code == 201
    assert process.get("/items").json() == ["apple", "pear", "plum"]

    assert requests.post(f"{process.url}/jobs?value=hello", timeout=30).status_code == 202
    assert eventually(lambda: process.get("/results").json() == ["HELLO"])

    mark = process.mark()
    assert dynosim("ps:restart", "-a", "shop").returncode == 0
    process.wait_for(UP.format(r"web\.1"), after=mark)
    assert eventually(lambda: process.get("/items").json() == ["apple", "pear", "plum"])

    servers = addon_servers("shop")
    process.process.kill()  # SIGKILL: the next up adopts the add-on servers like the dynos
    process.process.wait(10)
    adopted = up(app_dir)
    adopted.wait_for(UP.format(r"web\.1"))
    assert eventually(lambda: adopted.get("/items").json() == ["apple", "pear", "plum"])
    assert addon_servers("shop") == servers  # the same containers, not new ones

    assert adopted.stop() == 0
    assert engine.client().containers.list(filters={"label": "dynosim.app=shop"}) == []
    assert len(volumes("shop") - others) == 2  # the data outlives the servers

    again = up(app_dir)
    again.wait_for(UP.format(r"web\.1"))
    assert eventually(lambda: again.get("/items").json() == ["apple", "pear", "plum"])

    psql = session("pg:psql", "select string_agg(name, ',' order by name) from item;")
    assert "apple,pear,plum" in psql.stdout
    assert session("redis:cli", "LRANGE results 0 -1").stdout == "HELLO\n"

    captured = dynosim("pg:backups:capture", "-a", "shop")
    assert "Backup b001 saved to" in captured.stdout, captured.stderr
    assert dynosim("pg:reset", "-a", "shop", "--confirm", "shop").returncode == 0
    assert eventually(lambda: again.get("/items").status_code == 500)  # no table any more
    restored = dynosim("pg:backups:restore", "b001", "-a", "shop", "--confirm", "shop")
    assert restored.returncode == 0, restored.stderr
    assert eventually(lambda: again.get("/items").json() == ["apple", "pear", "plum"])

    refused = dynosim("addons:destroy", "-a", "shop", "DATABASE_URL")
    assert refused.returncode == 2 and "--confirm shop" in refused.stderr
    assert len(volumes("shop") - others) == 2
    for addon in ("DATABASE_URL", "REDIS_URL"):
        gone = dynosim("addons:destroy", "-a", "shop", addon, "--confirm", "shop")
        assert gone.returncode == 0, gone.stderr
    assert volumes("shop") == others
    assert dynosim("addons", "-a", "shop").stdout == "No add-ons for app shop.\n"
    assert "DATABASE_URL" not in dynosim("config", "-a", "shop", "--json").stdout
