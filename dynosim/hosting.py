"""Serving an app in this process: `up.serve` in this thread (the CLI's `up`), or in a
background thread with its own event loop whose log lines are kept (`App.start`, the pytest
plugin), with what only such a host can offer: its router's address, its log, its clock."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import control, logs
from . import formation as formations
from .clock import Clock
from .errors import DynosimError, ReleaseError, UsageError
from .logs import LogLine
from .options import (
    BOOT_TIMEOUT,
    ENGINE_SETTING,
    GRACE,
    HOST,
    SWARM_SETTING,
    ManagerOptions,
    ServeOptions,
    check_sleep_mode,
)
from .store import Store
from .stored import Progress, StoredApp, quiet

if TYPE_CHECKING:
    from .container_engine import ContainerEngine
    from .control_commands import Build
    from .control_handler import Builder
    from .manager import DynoManager
    from .router import RouterEngine
    from .store import Release


def on_swarm(options: ServeOptions) -> ServeOptions:
    """`options` with the Swarm they run on found (from DOCKER_HOST), once, before a build
    points DOCKER_HOST at the engine builds run on."""
    if options.engine != "swarm" or options.swarm is not None:
        return options
    from . import cluster

    return replace(options, swarm=cluster.swarm_target())


class Host:
    """Serves one app here: in the foreground (:meth:`serve`) or, from :meth:`start` until
    :meth:`stop`, in a background thread."""

    def __init__(self, app: StoredApp) -> None:
        self.app = app
        self._thread: _ServeThread | None = None
        #: The schedule clock (crash cool-offs, cycling, idling) of an app started here.
        self.clock: Clock | None = None
        self._restore = contextlib.ExitStack()  # DOCKER_HOST as before a Swarm start

    def check_can_serve(
        self, port: int, https_port: int | None = None, router_engine: str = "auto"
    ) -> None:
        """Fail before a long build, not after it: one server per app, free router ports, the
        router engine asked for at hand."""
        from . import listeners, up

        if control.is_running(self.app.name):
            raise UsageError(f"dynosim up is already running for app {self.app.name}")
        up.check_router_engine(router_engine)
        if port:
            listeners.check_port_free(HOST, port)
        if https_port:
            listeners.check_port_free(HOST, https_port, "--https-port")

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
        options = on_swarm(options or ServeOptions())
        try:
            store.set_setting(self.app.name, ENGINE_SETTING, options.engine)  # `run` goes there
            if options.swarm is not None:
                store.set_setting(self.app.name, SWARM_SETTING, options.swarm.manager)
            printer = printer or logs.Printer()
            serving = up.serve(
                store, self.app.name, options, printer=printer, ready=ready,
                stop=stop, schedule=schedule, builder=_builder(self.app.name),
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
        progress: Progress = quiet,
        echo: Callable[[LogLine], None] | None = None,
        engine: str = "docker",
        **build_options: Any,
    ) -> None:
        """Build (no build when the image exists), scale to `formation` ({"web": 2}; types not
        named keep theirs), then serve in a background thread on 127.0.0.1:`port` (0: a free
        one; with `https`, HTTPS on another free one) and return once every web dyno is up.
        `time_scale` speeds the schedule clock up (:attr:`clock`), `cycling` cycles dynos
        daily; `idle_timeout` / `sleep_mode` as `StoredApp.idling` takes them; `env_file` gives
        the dynos the folder's .env under the config vars (off, as on Heroku). Log lines are kept
        for :meth:`logs` / :meth:`wait_for_log` (and passed to `echo`); `build_options` go to
        `StoredApp.build`; `engine="swarm"`: on the Swarm DOCKER_HOST names (docs/testing.md).
        ReleaseError (with the log's tail) when the release fails or a web dyno never comes up."""
        if self._thread is not None:
            raise UsageError(f"app {self.app.name} is already started")
        self.check_can_serve(port)
        check_sleep_mode(engine, sleep_mode)  # before the app remembers it
        local_env = self.app.local_env(env_file)
        manager = ManagerOptions(
            grace=grace, boot_timeout=boot_timeout, cycling=cycling,
            **self.app.idling(idle_timeout, sleep_mode),
        )  # fmt: skip
        serving = ServeOptions(
            port=port, https_port=0 if https else None, time_scale=time_scale,
            local_env=local_env, manager=manager, engine=engine,
        )  # fmt: skip
        options = on_swarm(serving)
        try:
            if options.swarm is not None:
                from . import cluster

                self._restore.enter_context(cluster.building_on(options.swarm))
            self.app.build(progress=progress, local_env=local_env, **build_options)
            if formation:
                self.app.change_formation(formations.scale, (), formation)
            self.clock = Clock(speed=time_scale)
            self._thread = thread = _ServeThread(self, echo)  # stop() reaches it from now on
            thread.start(options, self.clock)
            if self.app.current_release() is None:
                raise ReleaseError(f"the first release of {self.app.name} failed", thread.tail())
            self.settle(boot_timeout + 5)
        except BaseException:
            self.stop()
            raise

    def _serving(self) -> _ServeThread:
        if self._thread is None:
            raise UsageError(f"app {self.app.name} was not started by this App; call start() first")
        return self._thread

    def settle(self, timeout: float = 65.0) -> None:
        """Until every web dyno of a formation served here is up (nothing to wait for when
        another process serves it)."""
        if self._thread is not None:
            self._thread.web_up(timeout)

    @property
    def started(self) -> bool:
        """Whether this host serves the app (since :meth:`start`, until :meth:`stop`)."""
        return self._thread is not None

    @property
    def url(self) -> str:
        """The router's http:// address."""
        return self._serving().router_url

    @property
    def https_url(self) -> str | None:
        """The router's https:// address, when the router offers HTTPS (else None)."""
        return self._serving().https_url

    def logs(self, ps: str | None = None, source: str | None = None) -> list[LogLine]:
        """Every line since :meth:`start`, of dyno or type `ps` and source `source`."""
        wanted = logs.Filter(ps, source)
        return [line for line in self._serving().snapshot() if wanted(line)]

    def mark(self) -> int:
        """A position in the log: wait_for_log(..., after=mark) looks only at later lines."""
        return len(self._serving().snapshot())

    def wait_for_log(self, pattern: str, timeout: float = 60.0, after: int = 0) -> LogLine:
        """The first line (formatted as Heroku does, from position `after` on) that matches
        the regex, waiting for it; UsageError naming the pattern when `timeout` passes."""
        return self._serving().wait_for(re.compile(pattern), timeout, after)

    def kill(self, dyno: str) -> None:
        """Crash a dyno (SIGKILL, as an out-of-memory kill or a segfault would), returning once
        the platform saw it crash: the router no longer sends it requests."""
        engine = self._serving().engine
        listed = engine.list(self.app.name)
        found = [d for d in listed if d.status == "running" and d.name == dyno]
        if not found:
            raise UsageError(f"Couldn't find that dyno ({dyno}).")
        mark = self.mark()
        engine.kill(engine.get(found[0].container_id))
        escaped = re.escape(dyno)
        self.wait_for_log(rf"heroku\[{escaped}\]: State changed from \w+ to crashed", after=mark)

    def stop(self, timeout: float = 120.0) -> None:
        """Stop serving: every dyno gets SIGTERM (SIGKILL after the grace period), containers
        and the app network are removed. A no-op when this host is not serving."""
        thread, self._thread = self._thread, None
        try:
            if thread is not None:
                thread.stop(timeout)
        finally:
            self._restore.close()


class _ServeThread:
    """`Host.serve` in a daemon thread with its own event loop; its log lines are kept."""

    def __init__(self, host: Host, echo: Callable[[LogLine], None] | None) -> None:
        self.host, self.name, self.echo = host, host.app.name, echo
        self.lines: list[LogLine] = []
        self.changed = threading.Condition()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.cancelled = False  # stop() came before the loop was ready
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()  # bound to the serving loop when it first waits on it
        self.router: RouterEngine | None = None
        self.supervisor: DynoManager | None = None
        self.thread = threading.Thread(target=self._run, name=f"dynosim-{self.name}", daemon=True)

    def start(self, options: ServeOptions, schedule: Clock) -> None:
        self.options, self.schedule = options, schedule
        self.thread.start()
        self.ready.wait()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            self.host.serve(
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
                f"the web dynos of {self.name} were not up within {timeout:g} s", self.tail()
            ) from None

    @property
    def engine(self) -> ContainerEngine:
        assert self.supervisor is not None
        return self.supervisor.fleet.engine

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
            raise DynosimError(f"app {self.name} did not stop within {timeout:g} s")
        _sweep(self.name, self.options)


def _sweep(app: str, options: ServeOptions) -> None:
    """Remove what an engine call still running at shutdown made after the dyno manager's own
    sweep (a crash restart's container create finishing late), on the engine the app ran on.
    Once the loop has ended no such call is left, so this one is final."""
    from . import up

    engine = up.dyno_engine(options)
    try:
        for found in engine.list(app):
            engine.remove(found.container_id)  # gone meanwhile: fine
        engine.remove_network(app, wait=2.0)
    finally:
        if hasattr(engine, "close"):
            engine.close()


def _builder(app: str) -> Builder:
    """Builds what `deploy` and git pushes send the running `up` (over its control socket), as
    they would have in their own processes; in a worker thread, so with a store of its own."""

    def build(request: Build, progress: Progress) -> tuple[Release, bool]:
        from . import deployment

        stored = StoredApp(app)
        try:
            return deployment.deploy(
                stored.store, app, Path(request.folder), progress=progress,
                base_image=request.base_image, strict_runtime=request.strict_runtime,
                cache=request.cache, stack_suite=stored.stack(), description=request.description,
                home=Path(request.home) if request.home else None,
            )  # fmt: skip
        finally:
            stored.close()

    return build
