"""Desired state: apps, releases and formation in an owner-only SQLite database.

Releases are immutable (image, config vars, process types) except for their status: a release
is created `pending`, becomes `succeeded` once its release phase passed and its dynos took over,
or `failed`. The newest succeeded release is current (what runs); the newest release that did
not fail is what the next change builds on. Formation (quantity and size per process type)
lives beside them and survives deploys.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import StateError
from .formation import DEFAULT_SIZE, Entry, size
from .metrics import MAX_ROWS, RETENTION, merge

SCHEMA_VERSION = 5
PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
MIGRATIONS = {
    1: """
    CREATE TABLE apps (
        name TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE releases (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        image TEXT NOT NULL,
        source_hash TEXT NOT NULL,
        description TEXT NOT NULL,
        process_types TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (app, version)
    );
    CREATE TABLE formation (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        type TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        size TEXT NOT NULL,
        PRIMARY KEY (app, type)
    );
    """,
    2: """
    ALTER TABLE releases ADD COLUMN status TEXT NOT NULL DEFAULT 'succeeded';
    ALTER TABLE releases ADD COLUMN failure TEXT NOT NULL DEFAULT '';
    ALTER TABLE releases ADD COLUMN images TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE releases ADD COLUMN postdeploy TEXT NOT NULL DEFAULT '';
    ALTER TABLE releases ADD COLUMN user TEXT NOT NULL DEFAULT ''
    """,
    3: """
    ALTER TABLE releases ADD COLUMN release_phase INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE addons (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        service TEXT NOT NULL,
        plan TEXT NOT NULL,
        config_var TEXT NOT NULL,
        settings TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (app, name)
    )
    """,
    4: """
    CREATE TABLE dyno_hours (month TEXT PRIMARY KEY, seconds REAL NOT NULL);
    CREATE TABLE settings (
        app TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (app, key)
    )
    """,
    5: """
    CREATE TABLE metrics (
        app TEXT NOT NULL,
        minute INTEGER NOT NULL,
        process_type TEXT NOT NULL,
        dyno TEXT NOT NULL,
        tier TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (app, minute, process_type, dyno)
    )
    """,
}


def data_dir() -> Path:
    """$DYNOSIM_HOME, else $XDG_DATA_HOME/dynosim, else ~/.local/share/dynosim."""
    if os.environ.get("DYNOSIM_HOME"):
        return Path(os.environ["DYNOSIM_HOME"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "dynosim"


@dataclass(frozen=True)
class Release:
    app: str
    version: int
    image: str
    source_hash: str
    description: str
    process_types: dict[str, str]
    config: dict[str, str]
    created_at: dt.datetime
    status: str = SUCCEEDED
    failure: str = ""  # why it failed, in one line
    images: dict[str, str] = field(default_factory=dict)  # process type -> own image (heroku.yml)
    postdeploy: str = ""  # app.json's scripts.postdeploy, on an app's first release only
    user: str = ""
    release_phase: bool = True  # Heroku skips it for releases that only attach an add-on

    @property
    def name(self) -> str:
        return f"v{self.version}"

    def image_for(self, process_type: str) -> str:
        return self.images.get(process_type, self.image)

    @property
    def all_images(self) -> set[str]:
        return {self.image, *self.images.values()}


class Store:
    """One SQLite file; every method is one transaction."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else data_dir() / "state.db"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        old_umask = os.umask(0o077)  # the db and its -wal/-shm files: owner only
        try:
            self.db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            current = int(row["value"]) if row else 0
            if current > SCHEMA_VERSION:
                raise StateError(
                    f"{self.path}: made by a newer dynosim (schema {current}); upgrade dynosim"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    # apps
    def ensure_app(self, name: str, path: Path) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO apps (name, path, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET path = excluded.path",
                (name, str(path), _now()),
            )

    def remove_app(self, name: str) -> None:
        """Forget an app: its releases, formation and add-ons (by cascade), settings and
        metrics. A throwaway app (Heroku CI's test run) leaves no record behind."""
        with self.transaction() as db:
            for table in ("settings", "metrics", "addons", "formation", "releases", "apps"):
                column = "name" if table == "apps" else "app"
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

    def app_for_path(self, path: Path) -> str | None:
        row = self.db.execute("SELECT name FROM apps WHERE path = ?", (str(path),)).fetchone()
        return row["name"] if row else None

    # releases
    def create_release(
        self,
        app: str,
        *,
        image: str,
        source_hash: str,
        description: str,
        process_types: dict[str, str],
        config: dict[str, str] | None = None,
        images: dict[str, str] | None = None,
        postdeploy: str = "",
        status: str = PENDING,
        release_phase: bool = True,
    ) -> Release:
        """Record the next release vN; `pending` until a dyno manager has rolled it out."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(version), 0) AS v FROM releases WHERE app = ?", (app,)
            ).fetchone()
            version = row["v"] + 1
            db.execute(
                "INSERT INTO releases (app, version, image, source_hash, description,"
                " process_types, config, created_at, status, images, postdeploy, user,"
                " release_phase) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    app,
                    version,
                    image,
                    source_hash,
                    description,
                    json.dumps(process_types),
                    json.dumps(config or {}),
                    _now(),
                    status,
                    json.dumps(images or {}),
                    postdeploy,
                    _user(),
                    int(release_phase),
                ),
            )
        release = self.release(app, version)
        assert release is not None
        return release

    def release(self, app: str, version: int) -> Release | None:
        row = self.db.execute(
            "SELECT * FROM releases WHERE app = ? AND version = ?", (app, version)
        ).fetchone()
        return _release(row) if row else None

    def releases(self, app: str, limit: int = 1000) -> list[Release]:
        """Newest first."""
        rows = self.db.execute(
            "SELECT * FROM releases WHERE app = ? ORDER BY version DESC LIMIT ?", (app, limit)
        ).fetchall()
        return [_release(r) for r in rows]

    def current_release(self, app: str) -> Release | None:
        """The release that runs: the newest that succeeded."""
        return self._newest(app, "status = 'succeeded'")

    def latest_release(self, app: str) -> Release | None:
        """What the next config change or deploy builds on: the newest that did not fail."""
        return self._newest(app, "status != 'failed'")

    def pending_releases(self, app: str) -> list[Release]:
        """Releases not rolled out yet, oldest first."""
        rows = self.db.execute(
            "SELECT * FROM releases WHERE app = ? AND status = 'pending' ORDER BY version", (app,)
        ).fetchall()
        return [_release(r) for r in rows]

    def finish_release(self, app: str, version: int, status: str, failure: str = "") -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE releases SET status = ?, failure = ? WHERE app = ? AND version = ?",
                (status, failure, app, version),
            )

    def _newest(self, app: str, condition: str) -> Release | None:
        row = self.db.execute(
            f"SELECT * FROM releases WHERE app = ? AND {condition} ORDER BY version DESC LIMIT 1",
            (app,),
        ).fetchone()
        return _release(row) if row else None

    # formation
    def formation(self, app: str) -> dict[str, Entry]:
        rows = self.db.execute(
            "SELECT type, quantity, size FROM formation WHERE app = ? ORDER BY type", (app,)
        ).fetchall()
        return {r["type"]: Entry(r["type"], r["quantity"], size(r["size"]).name) for r in rows}

    def set_formation(self, app: str, entries: dict[str, Entry]) -> None:
        """Record a whole formation at once (ps:scale applies all its arguments or none)."""
        with self.transaction() as db:
            for entry in entries.values():
                db.execute(
                    "INSERT INTO formation (app, type, quantity, size) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(app, type) DO UPDATE SET quantity = excluded.quantity,"
                    " size = excluded.size",
                    (app, entry.type, entry.quantity, entry.size),
                )

    def apps(self) -> dict[str, Path]:
        rows = self.db.execute("SELECT name, path FROM apps ORDER BY name").fetchall()
        return {r["name"]: Path(r["path"]) for r in rows}

    def ensure_formation(self, app: str, types: list[str], quantity: int = 1) -> None:
        """Give process types seen for the first time a quantity; keep what the user scaled."""
        with self.transaction() as db:
            for name in types:
                db.execute(
                    "INSERT OR IGNORE INTO formation (app, type, quantity, size) VALUES (?,?,?,?)",
                    (app, name, quantity, DEFAULT_SIZE),
                )

    # free dyno hours: one pool per user (this state database), per calendar month
    def add_dyno_seconds(self, month: str, seconds: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO dyno_hours (month, seconds) VALUES (?, ?) ON CONFLICT(month)"
                " DO UPDATE SET seconds = seconds + excluded.seconds",
                (month, seconds),
            )

    def dyno_seconds(self, month: str) -> float:
        row = self.db.execute("SELECT seconds FROM dyno_hours WHERE month = ?", (month,)).fetchone()
        return row["seconds"] if row else 0.0

    # settings: per app, or for the user as a whole (app "")
    def setting(self, app: str, key: str, default: str) -> str:
        row = self.db.execute(
            "SELECT value FROM settings WHERE app = ? AND key = ?", (app, key)
        ).fetchone()
        return row["value"] if row else default

    def set_setting(self, app: str, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO settings (app, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT(app, key) DO UPDATE SET value = excluded.value",
                (app, key, value),
            )

    # metrics: a row per minute of a process type (dyno ""), of a dyno, or of the app (both "")
    def add_metrics(self, app: str, rows: list[tuple[int, str, str, str, dict]]) -> None:
        """Minutes (minute, process type, dyno, tier, summary); one stored already (an `up`
        stopped within it) is merged with the new one."""
        with self.transaction() as db:
            for minute, process_type, dyno, tier, data in rows:
                key = (app, minute, process_type, dyno)
                old = db.execute(
                    "SELECT data FROM metrics WHERE app = ? AND minute = ? AND process_type = ?"
                    " AND dyno = ?",
                    key,
                ).fetchone()
                if old is not None:
                    data = merge(json.loads(old["data"]), data)
                db.execute(
                    "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?)",
                    (*key, tier, json.dumps(data, sort_keys=True)),
                )

    def metrics(self, app: str, since: int) -> list[tuple[int, str, str, dict]]:
        """The app's rows from the minute `since` (Unix time) on, oldest first."""
        rows = self.db.execute(
            "SELECT minute, process_type, dyno, data FROM metrics WHERE app = ? AND minute >= ?"
            " ORDER BY minute, process_type, dyno",
            (app, since),
        ).fetchall()
        return [(r["minute"], r["process_type"], r["dyno"], json.loads(r["data"])) for r in rows]

    def prune_metrics(self, app: str, now: int, max_rows: int = MAX_ROWS) -> None:
        """Drop minutes older than their tier's retention, then the oldest beyond `max_rows`."""
        with self.transaction() as db:
            for tier, seconds in RETENTION.items():
                db.execute(
                    "DELETE FROM metrics WHERE app = ? AND tier = ? AND minute < ?",
                    (app, tier, now - seconds),
                )
            db.execute(
                "DELETE FROM metrics WHERE rowid IN (SELECT rowid FROM metrics WHERE app = ?"
                " ORDER BY minute DESC LIMIT -1 OFFSET ?)",
                (app, max_rows),
            )

    # add-ons
    def add_addon(self, addon: Addon) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO addons VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    addon.app,
                    addon.name,
                    addon.service,
                    addon.plan,
                    addon.config_var,
                    json.dumps(addon.settings),
                    addon.created_at.isoformat(),
                ),
            )

    def addons(self, app: str) -> list[Addon]:
        rows = self.db.execute(
            "SELECT * FROM addons WHERE app = ? ORDER BY created_at", (app,)
        ).fetchall()
        return [
            Addon(
                r["app"],
                r["name"],
                r["service"],
                r["plan"],
                r["config_var"],
                json.loads(r["settings"]),
                dt.datetime.fromisoformat(r["created_at"]),
            )
            for r in rows
        ]

    def remove_addon(self, app: str, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM addons WHERE app = ? AND name = ?", (app, name))


@dataclass(frozen=True)
class Addon:
    """A provisioned add-on: a real server for one app, reached through `config_var`."""

    app: str
    name: str  # Heroku-style, e.g. postgresql-curly-12345
    service: str  # heroku-postgresql, heroku-redis
    plan: str
    config_var: str  # DATABASE_URL, REDIS_URL, HEROKU_POSTGRESQL_AMBER_URL, ...
    settings: dict[str, str]  # user, password, database: secrets, owner-only like the rest
    created_at: dt.datetime


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _release(row: sqlite3.Row) -> Release:
    return Release(
        app=row["app"],
        version=row["version"],
        image=row["image"],
        source_hash=row["source_hash"],
        description=row["description"],
        process_types=json.loads(row["process_types"]),
        config=json.loads(row["config"]),
        created_at=dt.datetime.fromisoformat(row["created_at"]),
        status=row["status"],
        failure=row["failure"],
        images=json.loads(row["images"]),
        postdeploy=row["postdeploy"],
        user=row["user"],
        release_phase=bool(row["release_phase"]),
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "you"
