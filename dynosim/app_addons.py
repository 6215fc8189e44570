"""An app's add-ons (heroku-postgresql, heroku-redis), as `App.addons` offers them: provision
and attach, find, detach and destroy, client sessions, pg:reset and pg:backups. The servers
themselves are `addons`'."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UsageError
from .store import Addon, Release
from .stored import Progress, StoredApp, quiet

if TYPE_CHECKING:
    from .addons import Servers


class AppAddons:
    """The add-ons of one app. A change of attachment is a release, rolled out with
    `roll_out` (the app's) unless asked not to."""

    def __init__(self, app: StoredApp, roll_out: Callable[[Release], bool]) -> None:
        self.app, self._roll_out = app, roll_out

    def attached(self) -> list[Addon]:
        """The app's add-ons, in the order they were made."""
        return self.app.store.addons(self.app.name)

    def create(
        self,
        service: str,
        *,
        attach_as: str | None = None,
        roll_out: bool = True,
        progress: Progress = quiet,
    ) -> tuple[Addon, Release]:
        """Provision `service` (heroku-postgresql, heroku-redis, optionally `:plan`), wait
        until it serves, and attach it as a config var (DATABASE_URL, or `attach_as`_URL):
        the add-on and its release. Its server runs where DOCKER_HOST points (this engine, or
        the local Swarm cluster when it names the cluster's manager), or on the cluster while
        an `up --engine swarm` serves the app."""
        from . import addons

        created, release = addons.create(
            self.app.store, self.app.name, service, attach_as, progress, self._servers()
        )
        if roll_out:
            self._roll_out(release)
        return created, release

    def find(self, name: str) -> Addon:
        """An add-on by its name, config var (DATABASE_URL) or attachment (DATABASE)."""
        from . import addons

        return addons.addon(self.app.store, self.app.name, name)

    def of_service(self, service: str, name: str | None = None) -> Addon:
        """The add-on named (as :meth:`find` takes it), else the app's first of `service`."""
        if name:
            return self.find(name)
        for found in self.attached():
            if found.service == service:
                return found
        raise UsageError(
            f"{self.app.name} has no {service} add-on; create one with: dynosim addons:create"
        )

    @staticmethod
    def container_name(found: Addon) -> str:
        """The add-on's container, and its data volume, are named this."""
        from . import addons

        return addons.container_name(found)

    def destroy(self, found: Addon, *, roll_out: bool = True) -> Release:
        """Detach the add-on (a release without its config var, rolled out unless `roll_out`
        is False), then remove its server and its data (where :meth:`create`
        would run it)."""
        from . import addons

        release = addons.destroy(self.app.store, self.app.name, found, self._servers())
        if roll_out:
            self._roll_out(release)
        return release

    def session(self, found: Addon) -> int:
        """An interactive client (psql, redis-cli) on this terminal, or fed piped input, in a
        one-off container beside the server (where :meth:`create` would run it); its exit
        status."""
        from . import addons

        return addons.session(found, self._servers(), tty=sys.stdin.isatty())

    def reset(self, found: Addon) -> None:
        """`pg:reset`: an empty database of the same name, owner and password."""
        from . import addons

        addons.reset(found, self._servers())

    def capture(self, found: Addon) -> Path:
        """`pg:backups:capture`: a pg_dump into the app's state folder; its file."""
        from . import addons

        return addons.capture(found, self._servers())

    def backups(self) -> list[Path]:
        """The app's backups, oldest first (b001.dump, b002.dump, ...)."""
        from . import addons

        return addons.backups(self.app.name)

    def backup(self, name: str | None = None) -> Path:
        """A backup by name (b003), default the newest; UsageError when there is none."""
        available = {b.stem: b for b in self.backups()}
        if not available:
            raise UsageError(
                f"{self.app.name} has no backups; capture one with: dynosim pg:backups:capture"
            )
        chosen = name or max(available)
        if chosen not in available:
            raise UsageError(f"Couldn't find backup {chosen}; see: dynosim pg:backups")
        return available[chosen]

    def restore(self, found: Addon, backup: Path) -> None:
        """`pg:backups:restore`: replace the database's contents with `backup`'s."""
        from . import addons

        addons.restore(found, backup, self._servers())

    def _servers(self) -> Servers:
        """Where the app's add-on servers run for its commands: `cluster_addons.here`."""
        from . import cluster_addons

        return cluster_addons.here(self.app.name)
