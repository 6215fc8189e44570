"""dynosim's Python API: what the CLI does, for programs and tests. The CLI is built on it (it
only parses and prints); pytest users get it through the `dyno_app` fixture.

    app = App.open("examples/flask_app")
    app.start()                          # build (or reuse the image), serve in the background
    requests.get(app.url)                # web dynos are up behind the router
    app.config_set(GREETING="hello")     # a new release, rolled out (zero downtime: preboot)
    app.wait_for_log(r"app\\[web\\.1\\]: ")
    app.stop()                           # every dyno stopped, containers and network removed

`App` is a facade over three parts, each usable on its own: `stored.StoredApp` (the store's
records and the commands on them: builds, releases, config, formation, one-offs),
`remote.RemoteControl` (the running `up`, over its control socket) and `hosting.Host`
(serving here); `App.addons` is `app_addons.AppAddons`, `App.labs` is `stored.Labs` (Heroku
Labs features), `App.features` is `stored.Features` (app features: preboot), `App.git` is
`gitpush.GitRemote` (`git push dynosim main`), `App.ci()` runs its tests as Heroku CI does
(`ci.HerokuCI`), `App.doctor()` says what will break on Heroku (`doctor.Doctor`). State lives
in $DYNOSIM_HOME like the CLI's; errors are `dynosim.errors.DynosimError`s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import formation as formations
from .logs import LogLine
from .options import BOOT_TIMEOUT, GRACE, ServeOptions
from .remote import RemoteControl
from .store import Release, Store
from .stored import Progress, RunResult, StoredApp, quiet

if TYPE_CHECKING:
    import asyncio

    from .app_addons import AppAddons
    from .ci import HerokuCI
    from .clock import Clock
    from .doctor import Doctor
    from .gitpush import GitRemote
    from .hosting import Host
    from .manager import DynoManager
    from .metrics import Minute
    from .router import RouterEngine

__all__ = ["App", "Deployed", "RunResult"]
T = TypeVar("T")


@dataclass(frozen=True)
class Deployed:
    """What a deploy made: the release, whether it is new (a changed build), and whether a
    running app took it over (else the next start rolls it out)."""

    release: Release
    new: bool
    rolled_out: bool


class _Parts:
    """The parts of an App made on first use: importing them (asyncio, Docker, the doctor's
    checks) would slow every CLI command that needs none of them."""

    _stored: StoredApp
    roll_out: Callable[..., bool]

    @cached_property
    def _host(self) -> Host:
        from .hosting import Host

        return Host(self._stored)

    @cached_property
    def addons(self) -> AppAddons:
        from .app_addons import AppAddons

        return AppAddons(self._stored, self.roll_out)

    @cached_property
    def git(self) -> GitRemote:
        from .gitpush import GitRemote

        return GitRemote(self._stored)

    @cached_property
    def ci(self) -> HerokuCI:
        from .ci import HerokuCI

        return HerokuCI(self._stored)

    @cached_property
    def doctor(self) -> Doctor:
        from .doctor import Doctor

        return Doctor(self._stored)


class App(_Parts):
    """One app: folder, releases, formation, add-ons (`addons`), labs and features (`labs`,
    `features`), git remote (`git`) and, once started here, its dynos served in a thread. Each
    command goes to the part that does it; a change of what serves returns once web is up."""

    def __init__(self, name: str, path: Path | None = None) -> None:
        self._stored = StoredApp(name, path)
        self._remote = RemoteControl(self._stored)
        self.labs, self.features = self._stored.labs, self._stored.features

    @classmethod
    def open(cls, path: str | Path = ".", *, name: str | None = None) -> App:
        """The app of a folder (Procfile or heroku.yml), named after it unless `name` is given."""
        found = StoredApp.open(path, name=name)
        return cls(found.name, found.path)

    @classmethod
    def named(cls, name: str | None = None, *, here: Path | None = None) -> App:
        """An app deployed before: by name, else the one deployed from `here` (default: cwd)."""
        found = StoredApp.named(name, here=here)
        return cls(found.name, found.path)

    @property
    def name(self) -> str:
        return self._stored.name

    @name.setter
    def name(self, name: str) -> None:
        self._stored.name = name

    @property
    def path(self) -> Path | None:
        return self._stored.path

    @path.setter
    def path(self, path: Path | None) -> None:
        self._stored.path = path

    @property
    def store(self) -> Store:
        """The state database (opened on first use, in the thread that uses it)."""
        return self._stored.store

    def close(self) -> None:
        """Stop, and close the state database."""
        self.stop()
        self._stored.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the store's records, and what is built from them (StoredApp) --------------------------
    def build(
        self, *, progress: Progress = quiet, base_image: str | None = None,
        strict_runtime: bool = False, cache: bool = True, stack: str | None = None,
        config: Mapping[str, str] | None = None, prune: bool = True,
        image_name: str | None = None, local_env: Mapping[str, str] | None = None,
    ) -> tuple[Release, bool]:  # fmt: skip
        """Build the folder and record a pending release (options: :meth:`StoredApp.build`);
        (release, whether it is new). A running app rolls it out on :meth:`deploy`."""
        return self._stored.build(
            progress=progress, base_image=base_image, strict_runtime=strict_runtime, cache=cache,
            stack=stack, config=config, prune=prune, image_name=image_name, local_env=local_env,
        )  # fmt: skip

    def deploy(self, *, progress: Progress = quiet, **build_options: Any) -> Deployed:
        """Build and roll the new release out to the running app (like a git push); without
        one, the next start rolls it out. ReleaseError when its release phase or boot fails."""
        if built := self._remote.build(progress, **build_options):  # quickest: in a running up
            return self._settled(Deployed(*built, rolled_out=built[1]))
        release, is_new = self.build(progress=progress, **build_options)
        rolled_out = is_new and self.roll_out(release, progress)
        if not self.running:  # the build made the app network; nothing uses it yet
            self._stored.remove_unused_network()
        return Deployed(release, is_new, rolled_out)

    def stack(self) -> str | None:
        """The app's stack setting (`dynosim stack:set`); None: the stack its Python picks."""
        return self._stored.stack()

    def stack_set(self, suite: str) -> list[str]:
        """Set the app's stack for every build from now on; the warnings to show."""
        return self._stored.stack_set(suite)

    def releases(self, num: int = 15) -> list[Release]:
        """The newest releases first."""
        return self._stored.releases(num)

    def release(self, version: str | None = None) -> Release:
        """Release `v7` (or `7`); the current one when None."""
        return self._stored.release(version)

    def current_release(self) -> Release | None:
        """What serves now (None before the first release succeeded)."""
        return self._stored.current_release()

    def rollback_target(self, version: str | None = None) -> Release:
        """The release a rollback to `version` copies (:meth:`StoredApp.rollback_target`)."""
        return self._stored.rollback_target(version)

    def rollback(self, version: str | None = None, *, roll_out: bool = True) -> Release:
        """A new release with `version`'s code and config (default: the previous), rolled out."""
        return self._new(self._stored.rollback(version), roll_out)

    def _new(self, release: Release, roll_out: bool) -> Release:
        if roll_out:
            self.roll_out(release)
        return release

    def _settled(self, result: T) -> T:
        """`result`, once the web dynos are up again when this object serves the app."""
        if "_host" in self.__dict__:  # never made: this object serves nothing
            self._host.settle()
        return result

    def config(self) -> dict[str, str]:
        """The config vars of the newest release."""
        return self._stored.config()

    def config_set(
        self, values: Mapping[str, str] | None = None, *, roll_out: bool = True, **more: str
    ) -> Release:
        """Set config vars (a mapping and/or keywords): a new release, and the dynos restart
        with it unless `roll_out` is False. ConfigError on a bad name; nothing is written."""
        return self._new(self._stored.config_set({**(values or {}), **more}), roll_out)

    def config_unset(self, *keys: str, roll_out: bool = True) -> Release:
        """Remove config vars: a new release, rolled out unless `roll_out` is False."""
        return self._new(self._stored.config_unset(keys), roll_out)

    def scale(self, *changes: str, **quantities: int | str) -> dict[str, formations.Entry]:
        """`ps:scale`: scale("web=3", "worker+1") or scale(web=3, worker="1:Standard-2X");
        recorded, and a running app reconciles (returns once its web dynos are up)."""
        return self._settled(self._stored.change_formation(formations.scale, changes, quantities))

    def resize(self, *changes: str, **sizes: str) -> dict[str, formations.Entry]:
        """`ps:type`: resize(web="Standard-2X"); the dynos are replaced with the new size."""
        return self._settled(self._stored.change_formation(formations.retype, changes, sizes))

    def formation(self) -> dict[str, formations.Entry]:
        """The app's process types: quantity and size."""
        return self._stored.formation()

    def metrics(
        self, process_type: str = "web", since: str = "1h", *, dynos: bool = True
    ) -> list[Minute]:
        """Per-minute metrics from the store (:meth:`StoredApp.metrics`); no `up` needed."""
        return self._stored.metrics(process_type, since, dynos=dynos)

    def quota_line(self, dynos: list[dict[str, Any]]) -> str | None:
        """Heroku's last `ps` line for free or eco `dynos`: what is left of the pool."""
        return self._stored.quota_line(dynos)

    def idling(
        self, idle_timeout: float | None = None, sleep_mode: str | None = None,
        quota_hours: float | None = None, verified: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """Sleep settings for serving, the given ones remembered (:meth:`StoredApp.idling`)."""
        return self._stored.idling(idle_timeout, sleep_mode, quota_hours, verified)

    def local_env(self, env_file: bool = True) -> dict[str, str]:
        """The folder's .env when `env_file` (:meth:`StoredApp.local_env`), else ``{}``."""
        return self._stored.local_env(env_file)

    def run(
        self, command: str, *, env: Mapping[str, str] | None = None,
        size: str = formations.DEFAULT_SIZE, attach: bool = False, tty: bool = False,
        announce: Callable[[str], None] | None = None, env_file: bool = False,
    ) -> RunResult:  # fmt: skip
        """A one-off dyno (run.N) of the current release (:meth:`StoredApp.run`)."""
        return self._stored.run(
            command, env=env, size=size, attach=attach, tty=tty, announce=announce,
            env_file=env_file,
        )  # fmt: skip

    # -- the running up, over its control socket (RemoteControl) -------------------------------
    @property
    def running(self) -> bool:
        """Whether a `dynosim up` (or this object's start) serves the app now."""
        return self._remote.running

    def roll_out(self, release: Release, progress: Progress = quiet) -> bool:
        """Have the running app take `release`; False when none runs (the next start will)."""
        return self._settled(True) if self._remote.roll_out(release, progress) else False

    def dynos(self) -> list[dict[str, Any]]:
        """Every dyno (formation and one-offs) with name, type, state, since, command, size."""
        return self._remote.dynos()

    def restart(self, target: str | None = None) -> list[str]:
        """`ps:restart` all, a type (web) or a dyno (web.2); the names, once web is up again."""
        return self._settled(self._remote.restart(target))

    def stop_dyno(self, dyno: str) -> None:
        """`ps:stop`: a formation dyno stops and comes back, a one-off just stops."""
        self._remote.stop_dyno(dyno)

    def run_detached(
        self, command: str, *, env: Mapping[str, str] | None = None,
        size: str = formations.DEFAULT_SIZE,
    ) -> str:  # fmt: skip
        """A one-off dyno whose output goes to the log stream; its name (run.N)."""
        return self._remote.run_detached(command, env=env, size=size)

    def sleep(self) -> bool:
        """`ps:sleep`: free/eco dynos sleep now; False when the app has none to sleep."""
        return self._remote.sleep()

    def wake(self) -> None:
        """`ps:wake`: start the sleeping dynos; returns once they are up."""
        self._remote.wake()

    def dashboard_url(self) -> str | None:
        """The running `up`'s dashboard URL with its secret token (None: it serves none)."""
        return self._remote.dashboard_url()

    def log_stream(
        self, num: int = 100, *, tail: bool = False, ps: str | None = None,
        source: str | None = None,
    ) -> Iterator[LogLine]:  # fmt: skip
        """The running app's recent lines, then with `tail` new ones as they come."""
        return self._remote.log_stream(num, tail=tail, ps=ps, source=source)

    # -- serving in this process (Host) --------------------------------------------------------
    @property
    def clock(self) -> Clock | None:
        """The schedule clock of an app started here: `app.clock.advance(seconds)`."""
        return self._host.clock

    def check_can_serve(
        self, port: int, https_port: int | None = None, router_engine: str = "auto"
    ) -> None:
        """Fail before a long build: one server per app, free ports, the router engine."""
        self._host.check_can_serve(port, https_port, router_engine)

    def serve(
        self, options: ServeOptions | None = None, *,
        printer: Callable[[LogLine], None] | None = None,
        ready: Callable[[RouterEngine, DynoManager], None] | None = None,
        stop: asyncio.Event | None = None, schedule: Clock | None = None,
    ) -> None:  # fmt: skip
        """Serve the app in this thread until SIGINT/SIGTERM or `stop` (:meth:`Host.serve`)."""
        self._host.serve(options, printer=printer, ready=ready, stop=stop, schedule=schedule)

    def start(
        self, *, port: int = 0, https: bool = True, grace: float = GRACE,
        boot_timeout: float = BOOT_TIMEOUT, time_scale: float = 1.0, cycling: bool = False,
        idle_timeout: float | None = None, sleep_mode: str | None = None,
        env_file: bool = False, formation: Mapping[str, int | str] | None = None,
        progress: Progress = quiet, echo: Callable[[LogLine], None] | None = None,
        engine: str = "docker", **build_options: Any,
    ) -> None:  # fmt: skip
        """Build, scale to `formation` ({"web": 2}), serve on 127.0.0.1:`port` (0: a free one) in
        a thread until :meth:`stop`, once web is up, on one Docker engine or (`engine="swarm"`)
        the Swarm DOCKER_HOST names (:meth:`Host.start`; `build_options`: build)."""
        self._host.start(
            port=port, https=https, grace=grace, boot_timeout=boot_timeout, time_scale=time_scale,
            cycling=cycling, idle_timeout=idle_timeout, sleep_mode=sleep_mode, env_file=env_file,
            formation=formation, progress=progress, echo=echo, engine=engine, **build_options,
        )  # fmt: skip

    @property
    def started(self) -> bool:
        """Whether this object serves the app (since :meth:`start`, until :meth:`stop`)."""
        return self._host.started

    @property
    def url(self) -> str:
        """The router's http:// address."""
        return self._host.url

    @property
    def https_url(self) -> str | None:
        """The router's https:// address, when the router offers HTTPS (else None)."""
        return self._host.https_url

    def logs(self, ps: str | None = None, source: str | None = None) -> list[LogLine]:
        """Every line since this object started the app (else the running app's last 1500)."""
        if not self._host.started:
            return list(self.log_stream(1500, ps=ps, source=source))
        return self._host.logs(ps, source)

    def mark(self) -> int:
        """A position in the log: wait_for_log(..., after=mark) looks only at later lines."""
        return self._host.mark()

    def wait_for_log(self, pattern: str, timeout: float = 60.0, after: int = 0) -> LogLine:
        """The first line from `after` on matching the regex, waiting up to `timeout`."""
        return self._host.wait_for_log(pattern, timeout, after)

    def kill(self, dyno: str) -> None:
        """Crash a dyno started here (SIGKILL), returning once the platform saw it crash."""
        self._host.kill(dyno)

    def stop(self, timeout: float = 120.0) -> None:
        """Stop serving here (:meth:`Host.stop`); a no-op when this object is not serving."""
        self._host.stop(timeout)
