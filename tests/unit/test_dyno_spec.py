"""Pure parts of the dyno spec: environment precedence and memory limits."""

import datetime as dt

from dynosim import container_engine, formation
from dynosim.docker import dynos
from dynosim.store import Release

RELEASE = Release(
    app="demo",
    version=3,
    image="sha256:x",
    source_hash="x",
    description="Deploy x",
    process_types={"web": "uwsgi uwsgi.ini"},
    config={"DATABASE_URL": "postgres://db", "PORT": "1234", "DYNO": "fake"},
    created_at=dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
)


def test_dynos_get_the_release_config_and_the_platform_sets_port_and_dyno():
    env = dynos.environment(RELEASE, "web.2", {"EXTRA": "1", "DATABASE_URL": "override"})
    assert env == {"DATABASE_URL": "override", "EXTRA": "1", "PORT": "5000", "DYNO": "web.2"}


def test_memory_limit_is_twice_the_quota_clamped_to_the_machine(monkeypatch):
    assert container_engine.memory_limit_mb(formation.size("Standard-1X")) == 1024
    monkeypatch.setattr(container_engine, "machine_memory_mb", lambda: 4096)
    assert container_engine.memory_limit_mb(formation.size("Performance-L")) == 4096
    assert container_engine.memory_limit_mb(formation.size("Standard-2X")) == 2048
