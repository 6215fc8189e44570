"""Add-ons: real PostgreSQL and Redis servers for an app, as heroku-postgresql and heroku-redis.

Each add-on is a container from an image made offline from Debian's packages, on the app's
network only (never published), with its data in a named volume that outlives the container.
It is attached to the app as a config var (DATABASE_URL, REDIS_URL), which makes a release, as
on Heroku. A running `up` starts the app's add-ons before its formation and stops them after;
a killed `up` leaves them running for the next one to adopt.

As on Heroku, both speak TLS only (1.2+), each with a self-signed certificate of its own that
the server makes in its volume at first start; clients do not verify it (`sslmode=require`,
`ssl_cert_reqs=None`). The `in-dyno` plan (Heroku CI's in-dyno databases) speaks plain TCP, as
Heroku's does (`postgres://`, `redis://`). No password is ever a process argument: the servers
read theirs from the environment or an owner-only file, the clients from PGPASSWORD /
REDISCLI_AUTH.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import names, releases, stack
from .container_engine import Container
from .docker import client as docker_client
from .docker import oneoffs, servers
from .errors import EngineError, UsageError
from .progress import Progress
from .store import Addon, Release, Store, data_dir

#: Bump when an add-on image's packages or script change, so old images are not reused
#: (an adopted server of an older image is replaced by one of this; its volume stays).
IMAGE_VERSION = 3
ROLE = "addon"
L_ADDON = "dynosim.addon"
READY_TIMEOUT = 60.0
#: Heroku CI's plan: a database for one test run, plain TCP (no TLS), as Heroku's in-dyno ones.
IN_DYNO = "in-dyno"
COLORS = ("AMBER", "BLUE", "BRONZE", "CHARCOAL", "COBALT", "CRIMSON", "GOLD", "GRAY", "GREEN")
ADJECTIVES = ("curly", "silent", "rugged", "shallow", "vertical", "cubic", "tapered", "clean")


@dataclass(frozen=True)
class Service:
    """What makes one kind of add-on: its image, its server, its URL."""

    name: str  # heroku-postgresql
    prefix: str  # postgresql-curly-12345
    default_plan: str
    packages: tuple[str, ...]
    script: str  # runtimes/addons/<script>, PID 1
    user: str
    data: str  # the volume's mount point (owned by `user` in the image)
    port: int
    config_var: str  # the first add-on's attachment
    color_var: str  # further ones: HEROKU_POSTGRESQL_AMBER_URL
    ready: tuple[str, ...]  # a command inside the container that succeeds once it serves

    @property
    def image(self) -> str:
        return f"dynosim/addon-{self.prefix}:{IMAGE_VERSION}"

    def url(self, addon: Addon) -> str:
        s = addon.settings
        if self.prefix == "redis":
            scheme = "redis" if addon.plan == IN_DYNO else "rediss"
            return f"{scheme}://:{s['password']}@{addon.name}:{self.port}"
        return f"postgres://{s['user']}:{s['password']}@{addon.name}:{self.port}/{s['database']}"

    def environment(self, addon: Addon) -> dict[str, str]:
        s = addon.settings
        plain = {"DYNOSIM_TLS": "off"} if addon.plan == IN_DYNO else {}
        if self.prefix == "redis":
            return {"REDISCLI_AUTH": s["password"], **plain}
        return {
            "DB_USER": s["user"],
            "DB_PASSWORD": s["password"],
            "DB_NAME": s["database"],
            **plain,
        }

    def ready_command(self, addon: Addon) -> list[str]:
        """What succeeds inside the container once the server serves (plain for in-dyno)."""
        if addon.plan == IN_DYNO and self.prefix == "redis":
            return ["bash", "-c", "redis-cli ping | grep -q PONG"]
        return list(self.ready)

    def new_settings(self) -> dict[str, str]:
        if self.prefix == "redis":
            return {"password": secrets.token_hex(32)}
        return {
            "user": "u" + secrets.token_hex(6),
            "password": secrets.token_hex(32),
            "database": "d" + secrets.token_hex(6),
        }


POSTGRESQL = Service(
    "heroku-postgresql", "postgresql", "essential-0",
    ("postgresql", "postgresql-client", "openssl"),
    "postgresql", "postgres", "/var/lib/postgresql/data", 5432, "DATABASE_URL",
    "HEROKU_POSTGRESQL_{}_URL", ("pg_isready", "-q", "-h", "127.0.0.1"),
)  # fmt: skip
REDIS = Service(
    "heroku-redis", "redis", "mini", ("redis-server", "redis-tools", "openssl"), "redis",
    "redis", "/data", 6379, "REDIS_URL", "HEROKU_REDIS_{}_URL",
    ("bash", "-c", "redis-cli --tls --insecure ping | grep -q PONG"),  # REDISCLI_AUTH: env
)  # fmt: skip
SERVICES = {s.name: s for s in (POSTGRESQL, REDIS)}


def service(name: str) -> Service:
    """`heroku-postgresql` or `heroku-redis`, with an optional `:plan`."""
    found = SERVICES.get(name.split(":", 1)[0])
    if found is None:
        known = ", ".join(SERVICES)
        raise UsageError(f"Couldn't find either the add-on service or plan: {name}. Known: {known}")
    return found


def addon(store: Store, app: str, name: str) -> Addon:
    """An add-on by its name, or by its config var / attachment (DATABASE_URL, DATABASE)."""
    for found in store.addons(app):
        if name in (found.name, found.config_var, found.config_var.removesuffix("_URL")):
            return found
    raise UsageError(f"Couldn't find that add-on ({name}) on {app}; see: dynosim addons")


def ensure_image(chosen: Service, progress: Progress) -> None:
    if stack.image_exists(chosen.image):
        return
    progress(f"Making the {chosen.name} image from Debian (once)")
    script = addons_dir() / chosen.script
    target = "/usr/local/bin/dynosim-addon"
    stack.debootstrap(
        chosen.image,
        "bookworm",
        list(chosen.packages),
        progress,
        hooks=[
            f"upload {script} {target}",
            f'chmod 755 "$1"{target}',
            f'chroot "$1" install -d -o {chosen.user} -g {chosen.user} -m 700 {chosen.data}',
        ],
        changes=[
            f'ENTRYPOINT ["{target}"]',
            f"USER {chosen.user}",
            f"LABEL {docker_client.LABEL}=addon-image",
        ],
    )


def addons_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "runtimes" / "addons", here.parent / "runtimes" / "addons"):
        if candidate.is_dir():
            return candidate
    raise EngineError("runtimes/addons is missing from the dynosim installation")


def create(
    store: Store,
    app: str,
    spec: str,
    attach_as: str | None,
    progress: Progress,
    servers: Servers | None = None,
) -> tuple[Addon, Release]:
    """Provision a server (on `servers`, default this engine), wait until it serves, attach it
    as a config var (a new release)."""
    if plan_of(spec) == IN_DYNO:
        raise UsageError(
            f"{spec}: in-dyno plans are for Heroku CI test runs only; list it in app.json's"
            " environments.test.addons and run dynosim ci:run"
        )
    if attach_as:
        names.check_attachment(attach_as)  # a bad name fails before anything else
    taken = set(releases.latest(store, app).config)
    created = new_addon(app, spec, config_var(service(spec), taken, attach_as, app))
    provision(store, created, progress, servers=servers)
    attachment = created.config_var.removesuffix("_URL")
    release = releases.set_config(
        store,
        app,
        {created.config_var: SERVICES[created.service].url(created)},
        description=f"Attach {attachment} (@ref:{created.name})",
        release_phase=False,
    )
    return created, release


def plan_of(spec: str) -> str:
    """The plan of `service:plan`, else the service's default plan."""
    return spec.split(":", 1)[1] if ":" in spec else service(spec).default_plan


def new_addon(app: str, spec: str, var: str) -> Addon:
    """The record of a new add-on of `spec` attached as `var`: a Heroku-style name, fresh
    credentials. Nothing runs yet (:func:`provision`)."""
    chosen = service(spec)
    name = f"{chosen.prefix}-{random.choice(ADJECTIVES)}-{random.randint(10000, 99999)}"
    now = dt.datetime.now(dt.UTC)
    return Addon(app, name, chosen.name, plan_of(spec), var, chosen.new_settings(), now)


def provision(
    store: Store,
    created: Addon,
    progress: Progress,
    *,
    keep: bool = False,
    servers: Servers | None = None,
) -> None:
    """Make its image (once), start its server on `servers` (default this engine) until it
    serves, record it; with `keep` the server goes on running, else it stops unless an `up`
    serves the app. A failure removes the server and its volume."""
    where = servers or ONE_ENGINE
    ensure_image(SERVICES[created.service], progress)
    try:
        where.start(created, progress)  # the first start creates the database
        if not keep and not served(created.app):
            where.stop(created)
            where.tidy(created.app)
    except BaseException:
        where.remove(created)
        raise
    store.add_addon(created)


def served(app: str) -> bool:
    """Whether an `up` serves the app (and so runs its add-on servers)."""
    from . import control

    return control.is_running(app)


def update_urls(store: Store, app: str) -> list[Release]:
    """Attachments handed out before the add-ons spoke TLS (`redis://`) get today's URL, each
    in a release as Heroku makes when it changes an add-on's URL (`Update REDIS by
    heroku-redis`), without a release phase. A URL the app set itself is left alone."""
    made = []
    for found in store.addons(app):
        base = store.latest_release(app)
        wanted = SERVICES[found.service].url(found)
        current = base.config.get(found.config_var) if base else None
        if base is None or current == wanted or current != _plain_url(wanted):
            continue
        attachment = found.config_var.removesuffix("_URL")
        changed = {**base.config, found.config_var: wanted}
        description = f"Update {attachment} by {found.service}"
        made.append(releases.with_config(store, base, changed, description, release_phase=False))
    return made


def _plain_url(url: str) -> str:
    return url.replace("rediss://", "redis://", 1)


def config_var(chosen: Service, taken: set[str], attach_as: str | None, app: str) -> str:
    """The config var a new add-on is attached as: `attach_as`, else the service's first one
    (DATABASE_URL), else a colour (HEROKU_POSTGRESQL_AMBER_URL); `taken`: the app's vars."""
    var = names.check_attachment(attach_as) if attach_as else None
    if var:
        if var in taken:
            raise UsageError(f"{var} is already set on {app}; choose another name with --as")
        return var
    if chosen.config_var not in taken:
        return chosen.config_var
    for color in COLORS:
        if chosen.color_var.format(color) not in taken:
            return chosen.color_var.format(color)
    raise UsageError(f"{app} has too many {chosen.name} add-ons")


def destroy(store: Store, app: str, found: Addon, servers: Servers | None = None) -> Release:
    """Detach (a release without the config var), then remove the server and its data (on
    `servers`, default this engine)."""
    base = releases.latest(store, app)
    remaining = {k: v for k, v in base.config.items() if k != found.config_var}
    release = releases.with_config(
        store,
        base,
        remaining,
        f"Detach {found.config_var.removesuffix('_URL')} (@ref:{found.name})",
        release_phase=False,
    )
    (servers or ONE_ENGINE).remove(found)
    store.remove_addon(app, found.name)
    return release


# containers
def container_name(found: Addon) -> str:
    return f"dynosim-{found.app}-{found.name}"


def start(found: Addon) -> bool:
    """Make sure the add-on serves; whether it had to be started (False: adopted)."""
    chosen = SERVICES[found.service]
    existing = servers.find(container_name(found))
    current = existing is not None and servers.image(existing) == chosen.image
    if existing is not None and servers.status(existing) == "running" and current:
        _wait_ready(found, existing)
        return False
    if existing is not None:  # stopped, or of an older image (before TLS): a new server
        servers.remove(existing)
    labels = {docker_client.LABEL: ROLE, docker_client.LABEL_APP: found.app, L_ADDON: found.name}
    container = servers.start(
        container_name(found),
        chosen.image,
        app=found.app,
        hostname=found.name,
        environment=chosen.environment(found),
        labels=labels,
        data=chosen.data,
    )
    _wait_ready(found, container)
    return True


def _wait_ready(found: Addon, container: Container) -> None:
    chosen = SERVICES[found.service]
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if servers.execute(container, chosen.ready_command(found))[0] == 0:
            return
        if servers.status(container, refresh=True) not in ("running", "restarting", "created"):
            break
        time.sleep(0.1)
    tail = servers.last_lines(container, 20)
    raise EngineError(f"{found.name} did not start serving: " + " / ".join(tail[-5:]))


def stop(found: Addon) -> None:
    _remove(found, volume=False)


def _remove(found: Addon, volume: bool) -> None:
    existing = servers.find(container_name(found))
    if existing is not None:
        servers.stop(existing, timeout=10)
        servers.remove(existing, quietly=True)
    if volume:
        servers.remove_volume(container_name(found))


@dataclass(frozen=True)
class Reached:
    """A running add-on server, where its clients run beside it: its container, and the engine
    that holds it as the docker CLI names that (None: DOCKER_HOST's)."""

    server: Container
    host: str | None = None


class Servers(Protocol):
    """Where an app's add-on servers run: this engine (`OneEngine`), or the Swarm cluster
    (`cluster_addons.OnCluster`). The same images, credentials and URLs on both."""

    def start(self, found: Addon, progress: Progress) -> str | None:
        """Make sure it serves (adopting a running server); the node it runs on, if any."""

    def stop(self, found: Addon) -> None:
        """Remove the server; its data stays for the next start."""

    def remove(self, found: Addon) -> None:
        """Remove the server and its data."""

    def tidy(self, app: str) -> None:
        """Remove the app's network if nothing is on it any more."""

    def reach(self, found: Addon) -> contextlib.AbstractContextManager[Reached]:
        """The running server (pg:*, redis:cli), started for the duration when no `up`
        serves the app."""


class OneEngine:
    """Add-on servers as containers on DOCKER_HOST's engine, on the app's bridge network."""

    def start(self, found: Addon, progress: Progress) -> str | None:
        start(found)
        return None

    def stop(self, found: Addon) -> None:
        stop(found)

    def remove(self, found: Addon) -> None:
        _remove(found, volume=True)

    def tidy(self, app: str) -> None:
        servers.remove_unused_network(app)

    @contextlib.contextmanager
    def reach(self, found: Addon) -> Iterator[Reached]:
        started = start(found)
        try:
            container = servers.find(container_name(found))
            assert container is not None
            yield Reached(container)
        finally:
            if started and not served(found.app):
                self.stop(found)
                self.tidy(found.app)


ONE_ENGINE = OneEngine()


# pg:* and redis:cli
def session(found: Addon, where: Servers, *, tty: bool = False) -> int:
    """pg:psql, redis:cli: a client attached to this terminal (a TTY with `tty`) or to piped
    input, in a one-off container beside the server; its exit status."""
    command, environment = client_command(found)
    with (
        where.reach(found) as reached,
        _client(reached, found, command, environment, tty=tty, stdin=True) as client,
    ):
        return oneoffs.attach(client, interactive=True, host=reached.host)


def client_command(found: Addon) -> tuple[list[str], dict[str, str]]:
    """The client's command and environment for a session over TLS. The password is in the
    environment (PGPASSWORD, REDISCLI_AUTH), never an argument: `ps` shows those to everyone."""
    if found.service == REDIS.name:  # the certificate is self-signed, as on Heroku
        where = ["-h", found.name, "-p", str(REDIS.port)]
        tls = [] if found.plan == IN_DYNO else ["--tls", "--insecure"]
        return ["redis-cli", *tls, *where], client_environment(found)
    return ["psql"], client_environment(found)


def client_environment(found: Addon) -> dict[str, str]:
    s = found.settings
    if found.service == REDIS.name:
        return {"REDISCLI_AUTH": s["password"]}
    return {
        "PGHOST": found.name,
        "PGPORT": str(POSTGRESQL.port),
        "PGUSER": s["user"],
        "PGDATABASE": s["database"],
        "PGPASSWORD": s["password"],
        # TLS without verification, as Heroku's clients connect; in-dyno ones are plain
        "PGSSLMODE": "disable" if found.plan == IN_DYNO else "require",
    }


def reset(found: Addon, where: Servers) -> None:
    """pg:reset: an empty database of the same name, owner and password."""
    s = found.settings
    with where.reach(found) as reached:
        for sql in (
            f'DROP DATABASE IF EXISTS "{s["database"]}" WITH (FORCE)',
            f'CREATE DATABASE "{s["database"]}" OWNER "{s["user"]}"',
        ):
            psql = ["psql", "-h", "/tmp", "-U", "postgres", "-d", "postgres", "-c", sql]
            _exec(reached.server, psql)


def backups_dir(app: str) -> Path:
    folder = data_dir() / "backups" / app
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def backups(app: str) -> list[Path]:
    return sorted(backups_dir(app).glob("b*.dump"))


def capture(found: Addon, where: Servers) -> Path:
    """pg:backups:capture: a pg_dump (custom format) over TLS, as the app's role, from a
    one-off client container, under the app's state folder: b001.dump, b002.dump, ..."""
    taken = backups(found.app)
    number = int(taken[-1].stem[1:]) + 1 if taken else 1
    target = backups_dir(found.app) / f"b{number:03d}.dump"
    command = ["pg_dump", "-Fc", "-f", "/tmp/backup.dump"]
    environment = client_environment(found)
    with where.reach(found) as reached, _client(reached, found, command, environment) as client:
        _finish(client, command)
        data = oneoffs.read_file(client, "/tmp/backup.dump")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    return target


def restore(found: Addon, backup: Path, where: Servers) -> None:
    """pg:backups:restore: replace the database's contents with a backup's, over TLS as the
    app's role from a one-off client container."""
    data = backup.read_bytes()
    database = found.settings["database"]  # without -d, pg_restore would only print the SQL
    command = ["pg_restore", "--clean", "--if-exists", "--no-owner", "-d", database]
    environment = client_environment(found)
    with (
        where.reach(found) as reached,
        _client(reached, found, [*command, "/tmp/restore.dump"], environment) as client,
    ):
        owner = int(_exec(reached.server, ["id", "-u"]))  # the image's user; the dump is its
        oneoffs.write_file(client, "/tmp/restore.dump", data, mode=0o600, owner=owner)
        _finish(client, command)


@contextlib.contextmanager
def _client(
    reached: Reached,
    found: Addon,
    command: list[str],
    environment: dict[str, str],
    *,
    tty: bool = False,
    stdin: bool = False,
) -> Iterator[Container]:
    """A created one-off client container beside the reached server (its image, engine and the
    app's network) with `environment` (the app's credentials), locked down like a dyno (no
    capabilities, a Standard-1X's pids and memory); removed afterwards."""
    client = oneoffs.create(reached.server, found.app, command, environment, tty=tty, stdin=stdin)
    try:
        yield client
    finally:
        oneoffs.remove(client)


def _finish(client: Container, command: list[str]) -> None:
    """Run a one-off client (of `command`) to its end; UsageError with its last line when it
    fails."""
    status = oneoffs.run(client)
    if status != 0:
        output = oneoffs.output(client).strip().splitlines()
        last = output[-1:] or [f"exit status {status}"]
        raise UsageError(f"{command[0]} failed: {last[0]}")


def _exec(container: Container, command: list[str]) -> str:
    status, output = servers.execute(container, command)
    if status != 0:
        last = output.strip().splitlines()[-1:] or [f"exit status {status}"]
        raise UsageError(f"{command[0]} failed: {last[0]}")
    return output
