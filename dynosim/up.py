"""`dynosim up`: deploy an app folder as a release, then run its formation behind the router."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import (
    appjson,
    build,
    container_build,
    control,
    herokuyml,
    listeners,
    logs,
    procfile,
    releases,
    source,
)
from . import control_commands as commands
from .clock import Clock
from .control_commands import Command, Reply
from .docker import DockerEngine, dynos
from .errors import ManifestError, UsageError
from .formation import DEFAULT_SIZE, Entry, check_limits, size
from .logs import LogHub, LogLine
from .manager import DynoManager
from .options import ROUTER_ENGINES, ServeOptions
from .store import Release, Store

if TYPE_CHECKING:
    from .router import RouterEngine

Progress = Callable[[str], None]


def deploy(
    store: Store,
    app: str,
    app_dir: Path,
    *,
    progress: Progress,
    base_image: str | None = None,
    strict_runtime: bool = False,
    cache: bool = True,
    stack_suite: str | None = None,
    config: Mapping[str, str] | None = None,
    prune: bool = True,
    image_name: str | None = None,
    local_env: Mapping[str, str] | None = None,
) -> tuple[Release, bool]:
    """Build the folder and record a pending release; (release, whether it is new). Without
    `cache`, every image layer is built again; `stack_suite` overrides the stack the runtime
    picks; `config` vars are set on the release (and seen by the build) on top of the app's;
    `prune` removes images no kept release uses (the pytest plugin manages its own);
    `image_name` names the images instead of the app (apps of one folder can share them);
    app.json's vars take their values from `config`, then `local_env` (the .env asked for).

    The app's network is created meanwhile (it is needed next, and costs ~0.1 s); a failed
    deploy removes it again, so nothing is left behind.
    """
    manifest = herokuyml.load(app_dir)
    types = _process_types(app_dir, manifest)
    first = store.latest_release(app) is None
    provided = {**(local_env or {}), **(config or {})}
    setup = _first_release_setup(app_dir, types, provided) if first else None
    with ThreadPoolExecutor(max_workers=1) as side:
        network = side.submit(dynos.ensure_network, app)
        try:
            # the build sees the config vars of the release it builds on (Heroku's build does)
            base = setup[0] if setup else getattr(store.latest_release(app), "config", {})
            release_config = {**base, **(config or {})}
            built = _build(
                image_name or app, app_dir, manifest, progress, base_image, strict_runtime,
                release_config, cache, stack_suite,
            )  # fmt: skip
        except BaseException:
            with contextlib.suppress(Exception):
                network.result()
                if not control.is_running(app):
                    dynos.remove_network(app)
            raise
    image, images = built
    store.ensure_app(app, app_dir.resolve())
    latest = store.latest_release(app)
    unchanged = latest and (latest.image, latest.images) == (image.id, images)
    if latest and unchanged and latest.process_types == types and latest.config == release_config:
        progress(f"-----> Current release {latest.name} already runs this build")
        return latest, False
    _, formation, postdeploy = setup or ({}, {}, "")
    release = store.create_release(
        app,
        image=image.id,
        images=images,
        source_hash=image.source_hash,
        description=f"Deploy {image.source_hash[:7]}",
        process_types=types,
        config=release_config,
        postdeploy=postdeploy,
    )
    store.ensure_formation(app, [t for t in types if t != procfile.RELEASE])
    if formation:
        store.set_formation(app, formation)
    if prune:
        with contextlib.suppress(Exception):  # retention is housekeeping, never a failed deploy
            releases.prune_images(store, app)
    progress(f"-----> Released {release.name}")
    return release, True


def _process_types(app_dir: Path, manifest: herokuyml.HerokuYml | None) -> dict[str, str]:
    """Type -> command, from heroku.yml when the app has one (its Procfile is then unused, as on
    Heroku's container stack), else from the Procfile. An empty command runs the image's CMD."""
    if manifest is None:
        return {t.name: t.command for t in procfile.load(app_dir).values()}
    types = {name: process.command or "" for name, process in manifest.processes.items()}
    if manifest.release:
        types[procfile.RELEASE] = manifest.release.command or ""
    return types


def _first_release_setup(
    app_dir: Path, types: dict[str, str], provided: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, Entry], str]:
    """What app.json gives an app's first release: config vars (`provided` values first),
    formation, postdeploy."""
    spec = appjson.load(app_dir)
    if spec is None:
        return {}, {}, ""
    config_vars = appjson.initial_config(spec, provided)
    entries = {}
    for name, (quantity, size_name) in spec.formation.items():
        if name not in types:
            raise ManifestError(f"{app_dir / 'app.json'}: formation.{name}: no such process type")
        entries[name] = Entry(name, quantity, size(size_name or DEFAULT_SIZE).name)
    check_limits(entries)
    return config_vars, entries, spec.postdeploy or ""


def _build(
    app: str,
    app_dir: Path,
    manifest: herokuyml.HerokuYml | None,
    progress: Progress,
    base_image: str | None,
    strict_runtime: bool,
    config: dict[str, str] | None = None,
    cache: bool = True,
    stack_suite: str | None = None,
) -> tuple[build.Image, dict[str, str]]:
    """The release's default image, and the per-type images of a heroku.yml app. `config`:
    the app's config vars, which the build's hooks and collectstatic see."""
    if manifest is not None:
        for warning in manifest.warnings:
            progress(f" !     {warning}")
        built = container_build.build_images(app, app_dir, manifest, progress, cache=cache)
        images = {name: built[p.image].id for name, p in manifest.processes.items()}
        if manifest.release:
            images[procfile.RELEASE] = built[manifest.release.image].id
        default = built.get(procfile.WEB) or next(iter(built.values()))
        return default, images
    build_image, run_image, description = build.stack_images(
        app_dir, base_image=base_image, strict=strict_runtime, progress=progress, suite=stack_suite
    )
    settings = build.HostSettings.from_environ()
    for warning in settings.warnings:
        progress(f" !     {warning}")
    left_out = source.untracked(app_dir)
    if left_out:
        shown = ", ".join(left_out[:5]) + (", ..." if len(left_out) > 5 else "")
        progress(f" !     {len(left_out)} files not tracked by git are not deployed: {shown}")
    plan = build.plan(
        app,
        app_dir,
        build_image=build_image,
        run_image=run_image,
        settings=settings,
        config=config,
    )
    progress(f"-----> {app}: Python app on {description}")
    return build.build(plan, progress, cache=cache), {}


async def serve(
    store: Store,
    app: str,
    options: ServeOptions,
    *,
    printer: Callable[[LogLine], None],
    ready: Callable[[RouterEngine, DynoManager], None] | None = None,
    schedule: Clock | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Roll out pending releases and run the formation behind the router until SIGINT/SIGTERM
    (or `stop` is set, for a loop that is not in the main thread), then stop every dyno.

    `schedule` is the clock of the platform's schedules (cool-offs, cycling, idling), when
    the caller wants to hold it (the Python API's `App.clock`); else one running
    `options.time_scale` times fast. `options.router_engine` "haproxy" moves requests with
    HAProxy, "python" with dynosim's own proxy, "auto" with HAProxy when it is installed
    (docs/usage.md, "Router engines").
    """
    loop = asyncio.get_running_loop()
    signals = () if stop is not None else (signal.SIGINT, signal.SIGTERM)
    stop = stop or asyncio.Event()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=64, thread_name_prefix="docker"))
    hub = LogHub()
    hub.subscribe(printer)
    supervisor = DynoManager(
        store,
        app,
        hub,
        engine=DockerEngine(),
        options=options.manager,
        schedule=schedule or Clock(speed=options.time_scale),
        local_env=options.local_env,
    )
    channel = control.Server(app, ControlHandler(supervisor, hub))
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    host, port, https_port = options.host, options.port, options.https_port
    listener = listeners.listen(host, port)  # clients may connect at once; they wait in the backlog
    tls_listener = None
    try:
        if https_port is not None:
            tls_listener = listeners.listen(host, https_port, "--https-port")
        await channel.start()
    except BaseException:
        listener.close()
        if tls_listener is not None:
            tls_listener.close()
        raise
    starting = asyncio.ensure_future(supervisor.start())
    router: RouterEngine | None = None
    try:
        # the router loads (and its certificate is made) while the dynos' containers start
        router = await _router(
            options.router_engine,
            app,
            lambda message: hub.heroku("router", message),
            host=host,
            port=port,
            https_port=https_port if tls_listener is not None else None,
            keepalive=options.dyno_keepalive,
        )
        await router.start(sock=listener, tls_sock=tls_listener)
        supervisor.attach_router(router)
        await starting
        if ready:
            ready(router, supervisor)
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await channel.close()
        with contextlib.suppress(Exception):
            await starting
        if router is not None:
            with contextlib.suppress(Exception):
                await router.close()
        listener.close()
        if tls_listener is not None:
            tls_listener.close()
        await supervisor.shutdown()


def check_router_engine(engine: str) -> None:
    """UsageError unless `engine` is one and can run here."""
    if engine not in ROUTER_ENGINES:
        raise UsageError(f"unknown router {engine!r}; choose one of {', '.join(ROUTER_ENGINES)}")
    from .router.haproxy import executable

    if engine == "haproxy" and executable() is None:
        raise UsageError(
            "--router haproxy: haproxy is not installed (apt-get install haproxy); "
            "--router python needs nothing more"
        )


async def _router(
    engine: str, app: str, log: Callable[[str], None], *, https_port: int | None, **options: Any
) -> RouterEngine:
    """The router `engine` names; its module and the app's certificate load in a thread (the
    dynos' containers start meanwhile)."""
    from . import certs

    routing = await asyncio.to_thread(importlib.import_module, ".router.haproxy", __package__)
    check_router_engine(engine)
    if engine == "haproxy" or (engine == "auto" and routing.executable()):
        issued = await asyncio.to_thread(certs.issue, app) if https_port is not None else None
        return routing.HAProxyRouter(app, log, https_port=https_port, certificate=issued, **options)
    from .router import Router

    context = None
    if https_port is not None:
        context = await asyncio.to_thread(lambda: certs.server_context(certs.issue(app)))
    return Router(app, log, https_port=https_port, ssl_context=context, **options)


class ControlHandler:
    """Answers the commands CLI commands in other terminals send: a method per command type,
    each calling the supervisor (or reading the log hub)."""

    def __init__(self, supervisor: DynoManager, hub: LogHub) -> None:
        self.supervisor, self.hub = supervisor, hub
        self.methods: dict[type[Command], Callable[[Any], AsyncIterator[Reply]]] = {
            commands.Ps: self.ps,
            commands.Deploy: self.deploy,
            commands.Sleep: self.sleep,
            commands.Wake: self.wake,
            commands.Reconcile: self.reconcile,
            commands.Restart: self.restart,
            commands.Stop: self.stop,
            commands.RunDetached: self.run_detached,
            commands.Logs: self.logs,
        }

    def __call__(self, command: Command) -> AsyncIterator[Reply]:
        return self.methods[type(command)](command)

    async def ps(self, _: commands.Ps) -> AsyncIterator[Reply]:
        yield commands.Dynos(self.supervisor.snapshot())

    async def deploy(self, command: commands.Deploy) -> AsyncIterator[Reply]:
        progress: asyncio.Queue[str] = asyncio.Queue()
        rolling = asyncio.ensure_future(
            self.supervisor.deploy(command.version, progress.put_nowait)
        )
        while not (rolling.done() and progress.empty()):
            waiting = asyncio.ensure_future(progress.get())
            await asyncio.wait({waiting, rolling}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                yield commands.Progress(waiting.result())
            else:
                waiting.cancel()
        rolling.result()  # a ReleaseError goes back to the CLI
        yield commands.Released(command.version)

    async def sleep(self, _: commands.Sleep) -> AsyncIterator[Reply]:
        await self.supervisor.sleep()
        yield commands.Asleep(self.supervisor.asleep)

    async def wake(self, _: commands.Wake) -> AsyncIterator[Reply]:
        await self.supervisor.wake()
        yield commands.Asleep(self.supervisor.asleep)

    async def reconcile(self, _: commands.Reconcile) -> AsyncIterator[Reply]:
        await self.supervisor.reconcile()
        yield commands.Dynos(self.supervisor.snapshot())

    async def restart(self, command: commands.Restart) -> AsyncIterator[Reply]:
        yield commands.Restarted(await self.supervisor.restart(command.target))

    async def stop(self, command: commands.Stop) -> AsyncIterator[Reply]:
        await self.supervisor.stop_dyno(command.dyno)
        yield commands.Stopped(command.dyno)

    async def run_detached(self, command: commands.RunDetached) -> AsyncIterator[Reply]:
        name = await self.supervisor.run_detached(command.command_line, command.env, command.size)
        yield commands.Started(name)

    async def logs(self, command: commands.Logs) -> AsyncIterator[Reply]:
        wanted = logs.Filter(command.ps, command.source)
        queue: asyncio.Queue[LogLine] = asyncio.Queue()
        unsubscribe = self.hub.subscribe(queue.put_nowait) if command.tail else None
        try:
            recent = [line for line in self.hub.recent if wanted(line)]
            num = command.num
            for line in recent[len(recent) - num :] if num < len(recent) else recent:
                yield commands.LogEntry(line)
            while unsubscribe:
                line = await queue.get()
                if wanted(line):
                    yield commands.LogEntry(line)
        finally:
            if unsubscribe:
                unsubscribe()
