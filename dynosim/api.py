"""dynosim's Python API: what the CLI does, for programs and tests. The CLI is built on it (it
only parses and prints); pytest users get it through the `dyno_app` fixture.

    app = App.open("examples/flask_app")
    app.start()                          # build (or reuse the image), serve in the background
    requests.get(app.url)                # web dynos are up behind the router
    app.config_set(GREETING="hello")     # a new release, rolled out with zero downtime
    app.wait_for_log(r"app\\[web\\.1\\]: ")
    app.stop()                           # every dyno stopped, containers and network removed

State lives in $DYNOSIM_HOME like the CLI's; errors are `dynosim.errors.DynosimError`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import control, dotenv, logs, names, releases
from . import formation as formations
from .clock import Clock
from .errors import DynosimError, ReleaseError, UsageError
from .logs import LogLine
from .options import BOOT_TIMEOUT, GRACE, IDLE_TIMEOUT, SLEEP_MODES, ManagerOptions, ServeOptions
from .store import Release, Store

if TYPE_CHECKING:
    from .manager import DynoManager
    from .router import RouterEngine

Progress = Callable[[str], None]
HOST = "127.0.0.1"


def _quiet(line: str) -> None:
    """Progress that goes nowhere (the API's default; the CLI prints it)."""


@dataclass(frozen=True)
class RunResult:
    """A finished one-off dyno: its name (run.N), exit status and output (None when it was
    attached to the terminal)."""

    dyno: str
    status: int
    output: str | None


@dataclass(frozen=True)
class Deployed:
    """What a deploy made: the release, whether it is new (a changed build), and whether a
    running app took it over (else the next start rolls it out)."""

    release: Release
    new: bool
    rolled_out: bool


class App:
    """One app: its folder, its releases and formation in the store, and — once started here
    — its dynos served in a background thread."""

    def __init__(self, name: str, path: Path | None = None) -> None:
        """Use :meth:`open` (a folder) or :meth:`named` (an app already deployed)."""
        self.name, self.path = name, path
        self._store: Store | None = None
        self._serving: _Background | None = None
        #: The schedule clock (crash cool-offs, cycling, idling) of an app started here;
        #: `app.clock.advance(seconds)` fast-forwards it.
        self.clock: Clock | None = None

    @classmethod
    def open(cls, path: str | Path = ".", *, name: str | None = None) -> App:
        """The app of a folder with a Procfile (or heroku.yml); named after the folder unless
        `name` is given. Nothing is built until :meth:`build` / :meth:`deploy` / :meth:`start`."""
        folder = Path(path)
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder")
        if name is not None:
            return cls(names.check_app_name(name), folder.resolve())
        return cls(names.app_name_from_folder(folder), folder.resolve())

    @classmethod
    def named(cls, name: str | None = None, *, here: Path | None = None) -> App:
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

    def _folder(self) -> Path:
        if self.path is None:
            raise UsageError(f"app {self.name} has no folder; open it with App.open(path)")
        return self.path

    # -- builds and releases -------------------------------------------------------------------

    def build(
        self,
        *,
        progress: Progress = _quiet,
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
        release; (release, whether it is new). A running app rolls it out on :meth:`deploy`.
        `stack` (forky, ...) overrides the app's stack setting (:meth:`stack_set`) for this
        build (the app's version files pick the Python, which it must carry); `config` vars
        go on the release; `prune` removes the app's images that no kept release uses;
        `image_name` tags the image under another name than the app's (apps of one folder
        then share it);
        `local_env` (the .env asked for) may give app.json's required vars their values."""
        from . import deployment

        return deployment.deploy(
            self.store, self.name, self._folder(), progress=progress, base_image=base_image,
            strict_runtime=strict_runtime, cache=cache, stack_suite=stack or self.stack(),
            config=config,
            prune=prune, image_name=image_name, local_env=local_env,
        )  # fmt: skip

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

    def deploy(self, *, progress: Progress = _quiet, **build_options: Any) -> Deployed:
        """Build and roll the new release out to the running app (like a git push); without
        one, the next start rolls it out. ReleaseError when its release phase or boot fails."""
        release, is_new = self.build(progress=progress, **build_options)
        rolled_out = is_new and self.roll_out(release, progress)
        if not self.running:  # the build made the app network; nothing uses it yet
            from .docker import dynos

            if not dynos.listing(self.name):
                dynos.remove_network(self.name)
        return Deployed(release, is_new, rolled_out)

    def roll_out(self, release: Release, progress: Progress = _quiet) -> bool:
        """Have the running app take `release`; False when none runs (the next start will)."""
        rolled = releases.roll_out(self.name, release, progress)
        if rolled:
            self._settle()
        return rolled

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

    def rollback(self, version: str | None = None, *, roll_out: bool = True) -> Release:
        """A new release with the code and config of `version` (default: the one before the
        current), rolled out unless `roll_out` is False."""
        target = self.rollback_target(version)
        return self._new(releases.rollback(self.store, self.name, target), roll_out)

    def _new(self, release: Release, roll_out: bool) -> Release:
        if roll_out:
            self.roll_out(release)
        return release

    # -- config vars -----------------------------------------------------------------------------

    def config(self) -> dict[str, str]:
        """The config vars of the newest release."""
        return dict(releases.latest(self.store, self.name).config)

    def config_set(
        self, values: Mapping[str, str] | None = None, *, roll_out: bool = True, **more: str
    ) -> Release:
        """Set config vars (a mapping and/or keywords): a new release, and the dynos restart
        with it unless `roll_out` is False. ConfigError on a bad name; nothing is written."""
        changes = {**(values or {}), **more}
        return self._new(releases.set_config(self.store, self.name, changes), roll_out)

    def config_unset(self, *keys: str, roll_out: bool = True) -> Release:
        """Remove config vars: a new release, rolled out unless `roll_out` is False."""
        return self._new(releases.unset_config(self.store, self.name, keys), roll_out)

    # -- formation -------------------------------------------------------------------------------

    def scale(self, *changes: str, **quantities: int | str) -> dict[str, formations.Entry]:
        """`ps:scale`: scale("web=3", "worker+1") or scale(web=3, worker="1:Standard-2X");
        recorded, and a running app reconciles (returns once its web dynos are up)."""
        return self._change(formations.scale, changes, quantities)

    def resize(self, *changes: str, **sizes: str) -> dict[str, formations.Entry]:
        """`ps:type`: resize(web="Standard-2X"); the dynos are replaced with the new size."""
        return self._change(formations.retype, changes, sizes)

    def _change(self, change, changes: tuple[str, ...], named: Mapping[str, Any]):
        from . import operations

        args = [*changes, *(f"{key}={value}" for key, value in named.items())]
        result = operations.change_formation(self.store, self.name, change, args)
        self._settle()
        return result

    def formation(self) -> dict[str, formations.Entry]:
        return self.store.formation(self.name)

    # -- dynos -----------------------------------------------------------------------------------

    def dynos(self) -> list[dict[str, Any]]:
        """Every dyno (formation and one-offs) with name, type, state, since, command, size."""
        from . import operations

        return operations.dynos(self.store, self.name)

    def restart(self, target: str | None = None) -> list[str]:
        """`ps:restart` all dynos, a type (web) or a dyno (web.2); returns the restarted names
        once the web dynos are up again. NotRunning without a running app."""
        restarted = control.ControlClient(self.name).restart(target)
        self._settle()
        return restarted

    def stop_dyno(self, dyno: str) -> None:
        """`ps:stop`: a formation dyno stops and comes back, a one-off just stops."""
        control.ControlClient(self.name).stop(dyno)

    def kill(self, dyno: str) -> None:
        """Crash a dyno (SIGKILL, as an out-of-memory kill or a segfault would), returning once
        the platform saw it crash: the router no longer sends it requests."""
        from .docker import client as docker_client

        found = [d for d in self._live_dynos() if d.name == dyno]
        if not found:
            raise UsageError(f"Couldn't find that dyno ({dyno}).")
        mark = self.mark()
        docker_client.client().api.kill(found[0].container_id)
        escaped = re.escape(dyno)
        self.wait_for_log(rf"heroku\[{escaped}\]: State changed from \w+ to crashed", after=mark)

    def _live_dynos(self):
        from .docker import dynos

        return [d for d in dynos.listing(self.name) if d.status == "running"]

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
        one_off = operations.one_off(
            self.store, self.name, command, dict(env or {}), size_name, tty=tty, attach=attach,
            local_env=local_env,
        )  # fmt: skip
        with one_off as (dyno_name, container):
            if announce:
                announce(dyno_name)
            if attach:
                interactive = tty or not sys.stdin.isatty()
                return RunResult(dyno_name, operations.attach(container, interactive), None)
            container.start()
            status = int(container.wait()["StatusCode"])
            return RunResult(dyno_name, status, container.logs().decode(errors="replace"))

    def run_detached(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        size: str = formations.DEFAULT_SIZE,
    ) -> str:
        """A one-off dyno whose output goes to the log stream; its name (run.N)."""
        return control.ControlClient(self.name).run_detached(
            command, env, formations.size(size).name
        )

    # -- sleep -----------------------------------------------------------------------------------

    def sleep(self) -> bool:
        """`ps:sleep`: free/eco dynos sleep now; False when the app has none to sleep."""
        return control.ControlClient(self.name).sleep()

    def wake(self) -> None:
        """`ps:wake`: start the sleeping dynos; returns once they are up."""
        control.ControlClient(self.name).wake()

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

    # -- logs --------------------------------------------------------------------------------------

    def log_stream(
        self,
        num: int = 100,
        *,
        tail: bool = False,
        ps: str | None = None,
        source: str | None = None,
    ) -> Iterator[LogLine]:
        """The running app's recent lines (its last 1500), then with `tail` new ones as they
        come; `ps` a dyno (web.1) or type (web), `source` app or heroku."""
        yield from control.ControlClient(self.name).logs(num, tail=tail, ps=ps, source=source)

    def logs(self, ps: str | None = None, source: str | None = None) -> list[LogLine]:
        """Every line since this object started the app (else the running app's last 1500)."""
        wanted = logs.Filter(ps, source)
        if self._serving is None:
            return list(self.log_stream(1500, ps=ps, source=source))
        return [line for line in self._serving.snapshot() if wanted(line)]

    def mark(self) -> int:
        """A position in the log: wait_for_log(..., after=mark) looks only at later lines."""
        return len(self._background().snapshot())

    def wait_for_log(self, pattern: str, timeout: float = 60.0, after: int = 0) -> LogLine:
        """The first line (formatted as Heroku does, from position `after` on) that matches
        the regex, waiting for it; UsageError naming the pattern when `timeout` passes."""
        return self._background().wait_for(re.compile(pattern), timeout, after)

    # -- serving -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a `dynosim up` (or this object's start) serves the app now."""
        return control.is_running(self.name)

    def check_can_serve(
        self, port: int, https_port: int | None = None, router_engine: str = "auto"
    ) -> None:
        """Fail before a long build, not after it: one server per app, free router ports, the
        router engine asked for at hand."""
        from . import listeners, up

        if self.running:
            raise UsageError(f"dynosim up is already running for app {self.name}")
        up.check_router_engine(router_engine)
        if port:
            listeners.check_port_free(HOST, port)
        if https_port:
            listeners.check_port_free(HOST, https_port, "--https-port")

    def local_env(self, env_file: bool = True) -> dict[str, str]:
        """The folder's .env (``{}`` without one, or when not `env_file`), which dynos get
        under their config vars when asked for (`--env-file`, heroku local's habit); Heroku
        never reads it. A malformed file is a ConfigError naming file and line."""
        return dotenv.load(self._folder() / ".env") if env_file else {}

    def serve(
        self,
        options: ServeOptions | None = None,
        *,
        printer: Callable[[LogLine], None] | None = None,
        ready: Callable[[RouterEngine, DynoManager], None] | None = None,
        stop: asyncio.Event | None = None,
        schedule: Clock | None = None,
    ) -> None:
        """Serve the app in this thread until SIGINT/SIGTERM (or `stop`): roll out pending
        releases, run the formation behind the router, stream logs to `printer`, then stop
        every dyno. `options` are those of `dynosim up`."""
        import uvloop

        from . import up

        store = Store()  # this thread's own connection
        try:
            printer = printer or logs.Printer()
            serving = up.serve(
                store, self.name, options or ServeOptions(), printer=printer, ready=ready,
                stop=stop, schedule=schedule,
            )  # fmt: skip
            uvloop.run(serving)  # the router's data path is ~1.5x faster on libuv
        finally:
            store.close()

    def start(
        self,
        *,
        port: int = 0,
        https: bool = True,
        grace: float = GRACE,
        boot_timeout: float = BOOT_TIMEOUT,
        time_scale: float = 1.0,
        cycling: bool = False,
        idle_timeout: float | None = None,
        sleep_mode: str | None = None,
        env_file: bool = False,
        formation: Mapping[str, int | str] | None = None,
        progress: Progress = _quiet,
        echo: Callable[[LogLine], None] | None = None,
        **build_options: Any,
    ) -> None:
        """Build (no build when the image exists), scale to `formation` ({"web": 2}; types not
        named keep theirs), then serve in a background thread on 127.0.0.1:`port` (0: a free
        one; with `https`, HTTPS on another free one) and return once every web dyno is up.
        `time_scale` speeds the schedule clock up (:attr:`clock`), `cycling` cycles dynos
        daily; `idle_timeout` / `sleep_mode` as :meth:`idling` takes them; `env_file` gives
        the dynos the folder's .env under the config vars (off, as on Heroku). Log lines are kept
        for :meth:`logs` / :meth:`wait_for_log` (and passed to `echo`). ReleaseError (with the
        log's tail) when the release fails or a web dyno never comes up."""
        if self._serving is not None:
            raise UsageError(f"app {self.name} is already started")
        self.check_can_serve(port)
        local_env = self.local_env(env_file)
        self.build(progress=progress, local_env=local_env, **build_options)
        if formation:
            self.scale(**formation)
        self.clock = Clock(speed=time_scale)
        manager = ManagerOptions(
            grace=grace, boot_timeout=boot_timeout, cycling=cycling,
            **self.idling(idle_timeout, sleep_mode),
        )  # fmt: skip
        options = ServeOptions(
            port=port, https_port=0 if https else None, time_scale=time_scale,
            local_env=local_env, manager=manager,
        )  # fmt: skip
        self._serving = serving = _Background(self, echo)  # stop() reaches it from now on
        try:
            serving.start(options, self.clock)
            if self.current_release() is None:
                raise ReleaseError(f"the first release of {self.name} failed", serving.tail())
            self._settle(boot_timeout + 5)
        except BaseException:
            self.stop()
            raise

    def _background(self) -> _Background:
        if self._serving is None:
            raise UsageError(f"app {self.name} was not started by this App; call start() first")
        return self._serving

    def _settle(self, timeout: float = 65.0) -> None:
        """Until every web dyno of a formation served here is up (nothing to wait for when
        another process serves it)."""
        if self._serving is not None:
            self._serving.web_up(timeout)

    @property
    def started(self) -> bool:
        """Whether this object serves the app (since :meth:`start`, until :meth:`stop`)."""
        return self._serving is not None

    @property
    def url(self) -> str:
        """The router's http:// address."""
        return self._background().router_url

    @property
    def https_url(self) -> str | None:
        """The router's https:// address, when the router offers HTTPS (else None)."""
        return self._background().https_url

    def stop(self, timeout: float = 120.0) -> None:
        """Stop serving: every dyno gets SIGTERM (SIGKILL after the grace period), containers
        and the app network are removed. A no-op when this object is not serving."""
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop(timeout)

    def close(self) -> None:
        """Stop, and close the state database."""
        self.stop()
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Background:
    """`up.serve` in a daemon thread with its own event loop; its log lines are kept."""

    def __init__(self, app: App, echo: Callable[[LogLine], None] | None) -> None:
        self.app, self.echo = app, echo
        self.lines: list[LogLine] = []
        self.changed = threading.Condition()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.cancelled = False  # stop() came before the loop was ready
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()  # bound to the serving loop when it first waits on it
        self.router: RouterEngine | None = None
        self.supervisor: DynoManager | None = None
        self.thread = threading.Thread(target=self._run, name=f"dynosim-{app.name}", daemon=True)

    def start(self, options: ServeOptions, schedule: Clock) -> None:
        self.options, self.schedule = options, schedule
        self.thread.start()
        self.ready.wait()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self.app.serve(
                self.options, printer=self._keep, ready=self._ready, stop=self.stopping,
                schedule=self.schedule,
            )  # fmt: skip
        except BaseException as exc:  # handed to the thread that called start()
            self.error = exc
        finally:
            self.ready.set()
            with self.changed:
                self.changed.notify_all()

    def _ready(self, router: RouterEngine, supervisor: DynoManager) -> None:
        self.loop = asyncio.get_running_loop()
        self.router, self.supervisor = router, supervisor
        if self.cancelled:
            self.stopping.set()
        self.ready.set()

    def _keep(self, line: LogLine) -> None:
        with self.changed:
            self.lines.append(line)
            self.changed.notify_all()
        if self.echo:
            self.echo(line)

    def snapshot(self) -> list[LogLine]:
        with self.changed:
            return list(self.lines)

    def tail(self, count: int = 20) -> list[str]:
        return [line.format() for line in self.snapshot()[-count:]]

    def wait_for(self, regex: re.Pattern[str], timeout: float, after: int) -> LogLine:
        deadline = time.monotonic() + timeout
        seen = after
        with self.changed:
            while True:
                for line in self.lines[seen:]:
                    if regex.search(line.format()):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or not self.thread.is_alive():
                    raise UsageError(
                        f"no log line matching {regex.pattern!r} within {timeout:g} s; last"
                        " lines:\n" + "\n".join(self.tail())
                    )
                self.changed.wait(min(left, 1.0))

    def call(self, coroutine, timeout: float) -> Any:
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def web_up(self, timeout: float) -> None:
        assert self.supervisor is not None
        try:
            self.call(self.supervisor.web_up(), timeout)
        except TimeoutError:
            raise ReleaseError(
                f"the web dynos of {self.app.name} were not up within {timeout:g} s", self.tail()
            ) from None

    @property
    def router_url(self) -> str:
        assert self.router is not None
        return self.router.url

    @property
    def https_url(self) -> str | None:
        return getattr(self.router, "https_url", None)

    def stop(self, timeout: float) -> None:
        self.cancelled = True
        if not self.thread.ident:  # never started
            return
        if self.loop is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise DynosimError(f"app {self.app.name} did not stop within {timeout:g} s")
        _sweep(self.app.name)


def _sweep(app: str) -> None:
    """Remove what a Docker call still running at shutdown made after the supervisor's own
    sweep (a crash restart's container create finishing late). Once the loop has ended no
    such call is left, so this one is final."""
    import docker.errors

    from .docker import client as docker_client
    from .docker import dynos

    for found in dynos.listing(app):
        with contextlib.suppress(docker.errors.APIError):  # gone meanwhile
            docker_client.client().api.remove_container(found.container_id, force=True)
    dynos.remove_network(app, wait=2.0)
