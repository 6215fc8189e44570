"""Add-on URLs and client sessions: TLS as Heroku's, passwords never in process arguments,
pre-TLS attachments moved to rediss:// once, and the clients of pg:psql, redis:cli and the
backups made beside the server wherever `Servers.reach` finds it (this engine, a Swarm node)."""

import contextlib
import datetime as dt

import pytest

from dynosim import addons
from dynosim.errors import UsageError
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


class Beside:
    """`addons.Servers.reach` of a server on an engine the docker CLI names `host` (a Swarm
    node's), counting how often it was reached."""

    host = "unix:///nodes/node2/docker.sock"

    def __init__(self) -> None:
        self.reached = 0

    @contextlib.contextmanager
    def reach(self, found):
        self.reached += 1
        yield addons.Reached("server", self.host)


@pytest.fixture
def clients(monkeypatch):
    """Fake one-off clients: what was created (argv, environment), attached, written, removed."""
    made = []

    def create(server, app, command, environment, **flags):
        made.append({"server": server, "app": app, "argv": command, "env": environment, **flags})
        return f"client{len(made)}"

    def attach(client, interactive, host=None):
        made.append({"attached": client, "host": host, "interactive": interactive})
        return 0

    def write_file(client, path, data, mode, owner):
        made.append({"wrote": (client, path, data, oct(mode), owner)})

    fakes = {
        "create": create,
        "attach": attach,
        "write_file": write_file,
        "run": lambda client: 0,
        "remove": lambda client: made.append({"removed": client}),
        "read_file": lambda client, path: b"dump of " + path.encode(),
    }
    for name, fake in fakes.items():
        monkeypatch.setattr(addons.oneoffs, name, fake)
    monkeypatch.setattr(addons.servers, "execute", lambda container, argv: (0, "112\n"))
    return made


@pytest.mark.parametrize(("found", "secret"), [(PG, "pgsecret"), (REDIS, "redissecret")])
def test_a_session_attaches_a_client_beside_the_server_on_its_engine(clients, found, secret):
    where = Beside()
    assert addons.session(found, where, tty=False) == 0
    created, attached, removed = clients
    assert created["server"] == "server" and created["app"] == "demo"
    assert created["stdin"] and not created["tty"]  # piped input reaches the client
    assert not any(secret in argument for argument in created["argv"])
    assert secret in created["env"].values()
    assert attached == {"attached": "client1", "host": where.host, "interactive": True}
    assert removed == {"removed": "client1"} and where.reached == 1


def test_backups_are_captured_and_restored_beside_the_server_and_numbered(store, clients):
    where = Beside()
    first, second = addons.capture(PG, where), addons.capture(PG, where)
    assert [first.name, second.name] == ["b001.dump", "b002.dump"]
    assert first.read_bytes() == b"dump of /tmp/backup.dump"
    assert first.stat().st_mode & 0o777 == 0o600
    clients.clear()
    addons.restore(PG, first, where)
    created, wrote, removed = clients
    assert created["argv"][:1] == ["pg_restore"] and created["argv"][-1] == "/tmp/restore.dump"
    assert created["env"]["PGPASSWORD"] == "pgsecret" and not created["stdin"]
    assert wrote == {"wrote": ("client1", "/tmp/restore.dump", first.read_bytes(), "0o600", 112)}
    assert removed == {"removed": "client1"} and where.reached == 3


def test_a_client_that_fails_is_removed_and_its_last_line_said(store, clients, monkeypatch):
    monkeypatch.setattr(addons.oneoffs, "run", lambda client: 1)
    monkeypatch.setattr(addons.oneoffs, "output", lambda client: "pg_dump: error: gone\n")
    with pytest.raises(UsageError, match="^pg_dump failed: pg_dump: error: gone$"):
        addons.capture(PG, Beside())
    assert clients[-1] == {"removed": "client1"}
    assert addons.backups("demo") == []  # nothing half-written
