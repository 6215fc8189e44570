"""Add-on URLs and client sessions: TLS as Heroku's, passwords never in process arguments, and
pre-TLS attachments moved to rediss:// once."""

import datetime as dt

import pytest

from dynosim import addons
from dynosim.store import Addon, Store

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
PG = Addon("demo", "postgresql-clean-1", addons.POSTGRESQL.name, "essential-0", "DATABASE_URL",
           {"user": "u1", "password": "pgsecret", "database": "d1"}, NOW)  # fmt: skip
REDIS = Addon("demo", "redis-clean-2", addons.REDIS.name, "mini", "REDIS_URL",
              {"password": "redissecret"}, NOW)  # fmt: skip


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "home"))
    opened = Store()
    opened.ensure_app("demo", tmp_path)
    yield opened
    opened.close()


def release(store: Store, config: dict[str, str]) -> None:
    store.create_release(
        "demo", image="i", source_hash="h", description="Deploy", process_types={}, config=config
    )


def test_urls_are_heroku_s_redis_over_tls_and_postgres_as_handed_out():
    assert addons.REDIS.url(REDIS) == "rediss://:redissecret@redis-clean-2:6379"
    assert addons.POSTGRESQL.url(PG) == "postgres://u1:pgsecret@postgresql-clean-1:5432/d1"


@pytest.mark.parametrize(("found", "secret"), [(PG, "pgsecret"), (REDIS, "redissecret")])
def test_client_sessions_speak_tls_with_the_password_in_the_environment_only(found, secret):
    command, environment = addons.client_command(found)
    assert not any(secret in argument for argument in command)
    assert secret in environment.values()
    if found is REDIS:
        assert command[:3] == ["redis-cli", "--tls", "--insecure"]
        assert environment == {"REDISCLI_AUTH": "redissecret"}
    else:
        assert command == ["psql"] and environment["PGSSLMODE"] == "require"


def test_a_pre_tls_redis_url_is_updated_once_and_other_urls_are_left_alone(store):
    plain = "redis://:redissecret@redis-clean-2:6379"
    release(store, {"DATABASE_URL": addons.POSTGRESQL.url(PG), "REDIS_URL": plain, "X": "1"})
    store.add_addon(PG)
    store.add_addon(REDIS)
    (made,) = addons.update_urls(store, "demo")
    assert made.description == "Update REDIS by heroku-redis" and not made.release_phase
    assert made.config == {
        "DATABASE_URL": addons.POSTGRESQL.url(PG),
        "REDIS_URL": "rediss://:redissecret@redis-clean-2:6379",
        "X": "1",
    }
    assert addons.update_urls(store, "demo") == []
    release(store, {"REDIS_URL": "redis://elsewhere:6379"})  # set by the app itself
    assert addons.update_urls(store, "demo") == []
