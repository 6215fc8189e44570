"""An app as the store records it: its folder, releases, config vars, formation and settings,
and what is made from them here (builds that add a release, one-off dyno containers). No
running `up` is needed; a change that one should apply nudges it (formation) or is handed to
`remote.RemoteControl.roll_out` by the caller (releases)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import dotenv, features, labs, metrics, names, releases
from . import formation as formations
from .errors import UsageError
from .options import ENGINE_SETTING, IDLE_TIMEOUT, SLEEP_MODES
from .progress import Progress, quiet
from .store import Release, Store

#: A formation change: formation.scale or formation.retype (current, process types, arguments).
FormationChange = Callable[
    [dict[str, formations.Entry], list[str], list[str]], dict[str, formations.Entry]
]


@dataclass(frozen=True)
class RunResult:
    """A finished one-off dyno: its name (run.N), exit status and output (None when it was
    attached to the terminal)."""

    dyno: str
    status: int
    output: str | None


class Labs:
    """An app's Heroku Labs features (`dynosim labs`), on or off in its settings. A running
    `up` reads them at its next sample: no restart is needed, unlike on Heroku."""

    def __init__(self, app: StoredApp) -> None:
        self._app = app

    def list(self) -> list[tuple[labs.Feature, bool]]:
        """Every feature dynosim has, by name, and whether it is on for the app."""
        return [(f, self.enabled(f.name)) for f in sorted(labs.FEATURES, key=lambda f: f.name)]

    def enabled(self, name: str) -> bool:
        """Whether the feature is on; UsageError for a feature dynosim does not have."""
        found = labs.feature(name)
        return self._app.store.setting(self._app.name, found.setting, "") == labs.ON

    def enable(self, name: str) -> labs.Feature:
        """`labs:enable`: the feature is on from now on (UsageError: no such feature)."""
        return self._set(name, labs.ON)

    def disable(self, name: str) -> labs.Feature:
        """`labs:disable`: the feature is off from now on."""
        return self._set(name, "")

    def _set(self, name: str, value: str) -> labs.Feature:
        found = labs.feature(name)
        self._app.store.set_setting(self._app.name, found.setting, value)
        return found


class Features:
    """An app's features (`dynosim features`; Heroku's app features that are not labs), off
    until enabled. A running `up` reads them at its next deploy: no restart is needed."""

    def __init__(self, app: StoredApp) -> None:
        self._app = app

    def list(self) -> list[tuple[features.Feature, bool]]:
        """Every feature dynosim has, by name, and whether it is on for the app."""
        ordered = sorted(features.FEATURES, key=lambda f: f.name)
        return [(f, self.enabled(f.name)) for f in ordered]

    def enabled(self, name: str) -> bool:
        """Whether the feature is on; UsageError for a feature dynosim does not have."""
        found = features.feature(name)
        return self._app.store.setting(self._app.name, found.setting, "") == features.ON

    def enable(self, name: str) -> features.Feature:
        """`features:enable`: on from now on. UsageError (Heroku's words) when it is on
        already, or for preboot while the app's web dynos are eco or basic."""
        if self.enabled(name):
            raise UsageError(f"{name} is already enabled.")
        web = self._app.store.formation(self._app.name).get("web")
        if name == features.PREBOOT and web and not features.prebootable(web.size):
            raise UsageError(features.NO_PREBOOT)
        return self._set(name, features.ON)

    def disable(self, name: str) -> features.Feature:
        """`features:disable`: off from now on (UsageError when it is off already)."""
        if not self.enabled(name):
            raise UsageError(f"{name} is already disabled.")
        return self._set(name, "")

    def _set(self, name: str, value: str) -> features.Feature:
        found = features.feature(name)
        self._app.store.set_setting(self._app.name, found.setting, value)
        return found


class StoredApp:
    """One app's records in $DYNOSIM_HOME's store, and the commands that read or add to them."""

    def __init__(self, name: str, path: Path | None = None) -> None:
        self.name, self.path = name, path
        self._store: Store | None = None
        self.labs, self.features = Labs(self), Features(self)

    @classmethod
    def open(cls, path: str | Path = ".", *, name: str | None = None) -> StoredApp:
        """The app of a folder, named after it unless `name` is given."""
        folder = Path(path)
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder")
        if name is not None:
            return cls(names.check_app_name(name), folder.resolve())
        return cls(names.app_name_from_folder(folder), folder.resolve())

    @classmethod
    def named(cls, name: str | None = None, *, here: Path | None = None) -> StoredApp:
        """An app deployed before: by name, else the one deployed from `here` (default: the
        current folder)."""
        store = Store()
        try:
            apps = store.apps()
            if name:
                if name not in apps:
                    raise UsageError(f"Couldn't find that app ({name}); deploy it with: dynosim up")
                return cls(name, apps[name])
            folder = (here or Path.cwd()).resolve()
            found = store.app_for_path(folder)
        finally:
            store.close()
        if found is None:
            raise UsageError(
                f"no app is deployed from {folder}; pass -a APP or run dynosim up here first"
            )
        return cls(found, folder)

    @property
    def store(self) -> Store:
        """The state database (opened on first use, in the thread that uses it)."""
        if self._store is None:
            self._store = Store()
        return self._store

    def close(self) -> None:
        """Close the state database (it opens again on next use)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def folder(self) -> Path:
        """The app's folder; UsageError for an app named without one."""
        if self.path is None:
            raise UsageError(f"app {self.name} has no folder; open it with App.open(path)")
        return self.path

    # -- builds and releases -------------------------------------------------------------------

    def build(
        self,
        *,
        progress: Progress = quiet,
        base_image: str | None = None,
        strict_runtime: bool = False,
        cache: bool = True,
        stack: str | None = None,
        config: Mapping[str, str] | None = None,
        prune: bool = True,
        image_name: str | None = None,
        local_env: Mapping[str, str] | None = None,
    ) -> tuple[Release, bool]:
        """Build the folder (no build at all when its image exists) and record a pending
        release; (release, whether it is new). `stack` (forky, ...) overrides the app's stack
        setting (:meth:`stack_set`) for this build (the app's version files pick the Python,
        which it must carry); `config` vars go on the release; `prune` removes the app's
        images that no kept release uses; `image_name` tags the image under another name
        than the app's (apps of one folder then share it); `local_env` (the .env asked for)
        may give app.json's required vars their values."""
        from . import deployment

        return deployment.deploy(
            self.store, self.name, self.folder(), progress=progress, base_image=base_image,
            strict_runtime=strict_runtime, cache=cache, stack_suite=stack or self.stack(),
            config=config,
            prune=prune, image_name=image_name, local_env=local_env,
        )  # fmt: skip

    def remove_unused_network(self) -> None:
        """A build makes the app network; remove it while no dyno uses it."""
        from .docker import dynos

        if not dynos.listing(self.name):
            dynos.remove_network(self.name)

    def stack(self) -> str | None:
        """The app's stack setting (`dynosim stack:set`); None: the stack its Python picks."""
        return self.store.setting(self.name, "stack", "") or None

    def stack_set(self, suite: str) -> list[str]:
        """Set the app's stack, used by every build from now on, as on Heroku; the warnings
        to show (an end-of-life stack, which Heroku would refuse)."""
        from . import runtime

        chosen = runtime.stack_by_suite(suite)
        self.store.set_setting(self.name, "stack", chosen.suite)
        return [runtime.end_of_life_warning(chosen)] if chosen.end_of_life else []

    def releases(self, num: int = 15) -> list[Release]:
        """The newest releases first."""
        return self.store.releases(self.name, num)

    def release(self, version: str | None = None) -> Release:
        """Release `v7` (or `7`); the current one when None."""
        return releases.find(self.store, self.name, version)

    def current_release(self) -> Release | None:
        """What serves now (None before the first release succeeded)."""
        return self.store.current_release(self.name)

    def rollback_target(self, version: str | None = None) -> Release:
        """The release a rollback to `version` (v7; default: the succeeded one before the
        current) copies; UsageError when it failed or its image is gone."""
        number = releases.parse_version(version) if version else None
        target = releases.rollback_target(self.store, self.name, number)
        releases.check_images(target)
        return target

    def rollback(self, version: str | None = None) -> Release:
        """A new (pending) release with the code and config of `version` (default: the one
        before the current)."""
        target = self.rollback_target(version)
        return releases.rollback(self.store, self.name, target)

    # -- config vars -----------------------------------------------------------------------------

    def config(self) -> dict[str, str]:
        """The config vars of the newest release."""
        return dict(releases.latest(self.store, self.name).config)

    def config_set(self, changes: Mapping[str, str]) -> Release:
        """A new (pending) release with these config vars set. ConfigError on a bad name;
        nothing is written."""
        return releases.set_config(self.store, self.name, changes)

    def config_unset(self, keys: tuple[str, ...]) -> Release:
        """A new (pending) release without these config vars."""
        return releases.unset_config(self.store, self.name, keys)

    # -- formation and settings --------------------------------------------------------------

    def change_formation(
        self, change: FormationChange, changes: tuple[str, ...], named: Mapping[str, Any]
    ) -> dict[str, formations.Entry]:
        """Record a `ps:scale` / `ps:type` change given as arguments ("web=3") and keywords
        (web=3); a running `up` is nudged to apply it."""
        from . import operations

        args = [*changes, *(f"{key}={value}" for key, value in named.items())]
        return operations.change_formation(self.store, self.name, change, args)

    def formation(self) -> dict[str, formations.Entry]:
        return self.store.formation(self.name)

    def metrics(
        self, process_type: str = "web", since: str = "1h", *, dynos: bool = True
    ) -> list[metrics.Minute]:
        """The Metrics tab's minutes of a process type from `since` ago (30m, 1h, 24h, 2d) on,
        oldest first; none when nothing was recorded then. Without `dynos`, the minutes
        carry no per-dyno memory and load (the dashboard's charts need only the type's)."""
        start = metrics.minute_of(time.time() - metrics.since(since))
        return metrics.minutes(self.store.metrics(self.name, start, dynos), process_type)

    def quota_line(self, dynos: list[dict[str, Any]]) -> str | None:
        """Heroku's last `ps` line for free or eco dynos (what is left of the pool), else None."""
        from . import operations

        return operations.quota_line(self.store, dynos)

    def idling(
        self,
        idle_timeout: float | None = None,
        sleep_mode: str | None = None,
        quota_hours: float | None = None,
        verified: bool = False,
    ) -> dict[str, Any]:
        """Sleep settings for serving: given ones are remembered (per app; the dyno-hours pool
        per user), missing ones come from the store or Heroku's defaults."""
        from .dynohours import BASE_HOURS, VERIFIED_HOURS

        if verified and quota_hours is None:
            quota_hours = VERIFIED_HOURS
        for owner, key, value in (
            (self.name, "idle_timeout", idle_timeout),
            (self.name, "sleep_mode", sleep_mode),
            ("", "quota_hours", quota_hours),
        ):
            if value is not None:
                self.store.set_setting(owner, key, str(value))
        return {
            "idle_timeout": float(self.store.setting(self.name, "idle_timeout", str(IDLE_TIMEOUT))),
            "sleep_mode": self.store.setting(self.name, "sleep_mode", SLEEP_MODES[0]),
            "quota_hours": float(self.store.setting("", "quota_hours", str(BASE_HOURS))),
        }

    def local_env(self, env_file: bool = True) -> dict[str, str]:
        """The folder's .env (``{}`` without one, or when not `env_file`), which dynos get
        under their config vars when asked for (`--env-file`, heroku local's habit); Heroku
        never reads it. A malformed file is a ConfigError naming file and line."""
        return dotenv.load(self.folder() / ".env") if env_file else {}

    # -- one-off dynos -------------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        size: str = formations.DEFAULT_SIZE,
        attach: bool = False,
        tty: bool = False,
        announce: Callable[[str], None] | None = None,
        env_file: bool = False,
    ) -> RunResult:
        """A one-off dyno (run.N) of the current release: its exit status and output, or with
        `attach` its input and output on this terminal (`dynosim run`). With `env_file`, the
        app folder's .env sits under its config vars (`dynosim run --env-file`)."""
        from . import operations

        size_name = formations.size(size).name
        local_env = self.local_env() if env_file else {}
        if self.store.setting(self.name, ENGINE_SETTING, "") == "swarm":
            ran = operations.run_on_swarm(
                self.store, self.name, command, dict(env or {}), size_name, attach=attach,
                tty=tty, local_env=local_env, announce=announce,
            )  # fmt: skip
            return RunResult(*ran)
        one_off = operations.one_off(
            self.store, self.name, command, dict(env or {}), size_name, tty=tty, attach=attach,
            local_env=local_env,
        )  # fmt: skip
        with one_off as (dyno_name, container):
            if announce:
                announce(dyno_name)
            if attach:
                interactive = tty or not sys.stdin.isatty()
                from .docker import oneoffs

                return RunResult(dyno_name, oneoffs.attach(container, interactive), None)
            container.start()
            status = int(container.wait()["StatusCode"])
            return RunResult(dyno_name, status, container.logs().decode(errors="replace"))
