"""`dynosim up`: deploy an app folder as a release, then run its formation behind the router."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import importlib
import re
import signal
import socket
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from . import build, control, dyno, logs, procfile, source
from .clock import Clock
from .errors import UsageError
from .formation import DEFAULT_SIZE
from .logs import LogHub, LogLine
from .store import Release, Store
from .supervisor import Supervisor

if TYPE_CHECKING:
    from .router import Router

Progress = Callable[[str], None]


def app_name(app_dir: Path) -> str:
    """A Heroku-style app name from a folder name: lowercase letters, digits and dashes."""
    name = re.sub(r"[^a-z0-9]+", "-", app_dir.resolve().name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"app-{name}".rstrip("-")
    return name[:30].rstrip("-")


def check_port_free(host: str, port: int) -> None:
    """Fail before a long build, not after it, when the router's port is taken."""
    listen(host, port).close()


def listen(host: str, port: int) -> socket.socket:
    """The router's listening socket, opened before the router itself is loaded."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(1024)
    except OSError:
        listener.close()
        raise UsageError(
            f"{host}:{port} is already in use; choose another port with --port"
        ) from None
    return listener


def deploy(
    store: Store,
    app: str,
    app_dir: Path,
    *,
    progress: Progress,
    base_image: str | None = None,
    strict_runtime: bool = False,
) -> tuple[Release, bool]:
    """Build the folder and record a release; (release, whether it is new).

    The app's network is created meanwhile (it is needed next, and costs ~0.1 s); a failed
    deploy removes it again, so nothing is left behind.
    """
    types = procfile.load(app_dir)
    with ThreadPoolExecutor(max_workers=1) as side:
        network = side.submit(dyno.ensure_network, app)
        try:
            return _deploy(store, app, app_dir, types, progress, base_image, strict_runtime)
        except BaseException:
            with contextlib.suppress(Exception):
                network.result()
                dyno.remove_network(app)
            raise


def _deploy(
    store: Store,
    app: str,
    app_dir: Path,
    types: dict[str, procfile.ProcessType],
    progress: Progress,
    base_image: str | None,
    strict_runtime: bool,
) -> tuple[Release, bool]:
    build_image, run_image, description = build.stack_images(
        app_dir, base_image=base_image, strict=strict_runtime, progress=progress
    )
    settings = build.HostSettings.from_environ()
    for warning in settings.warnings:
        progress(f" !     {warning}")
    left_out = source.untracked(app_dir)
    if left_out:
        shown = ", ".join(left_out[:5]) + (", ..." if len(left_out) > 5 else "")
        progress(f" !     {len(left_out)} files not tracked by git are not deployed: {shown}")
    plan = build.plan(app, app_dir, build_image=build_image, run_image=run_image, settings=settings)
    progress(f"-----> {app}: Python app on {description}")
    image = build.build(plan, progress)
    store.ensure_app(app, app_dir.resolve())
    process_types = {t.name: t.command for t in types.values()}
    current = store.current_release(app)
    if current and current.image == image.id and current.process_types == process_types:
        progress(f"-----> Current release {current.name} already runs this build")
        return current, False
    release = store.create_release(
        app,
        image=image.id,
        source_hash=image.source_hash,
        description=f"Deploy {image.source_hash[:7]}",
        process_types=process_types,
        config=current.config if current else {},
    )
    store.ensure_formation(app, [t.name for t in procfile.dyno_types(types)])
    progress(f"-----> Released {release.name}")
    return release, True


async def serve(
    store: Store,
    app: str,
    *,
    printer: Callable[[LogLine], None],
    new_release: Release | None = None,
    host: str = "127.0.0.1",
    port: int = 5000,
    grace: float = 30.0,
    boot_timeout: float = 60.0,
    cycling: bool = False,
    time_scale: float = 1.0,
    ready: Callable[[Router], None] | None = None,
) -> None:
    """Run the formation behind the router until SIGINT/SIGTERM, then stop every dyno.

    `time_scale` > 1 fast-forwards the platform's schedules (crash cool-offs, daily cycling)
    for fidelity runs and tests; boots, requests and stops keep real time.
    """
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=64, thread_name_prefix="docker"))
    hub = LogHub()
    hub.subscribe(printer)
    if new_release:
        user = getpass.getuser()
        hub.emit(LogLine("app", "api", f"{new_release.description} by {user}"))
        hub.emit(LogLine("app", "api", f"Release {new_release.name} created by {user}"))
    supervisor = Supervisor(
        store,
        app,
        hub,
        grace=grace,
        boot_timeout=boot_timeout,
        schedule=Clock(speed=time_scale),
        cycling=cycling,
    )
    channel = control.Server(app, lambda request: _control(supervisor, hub, request))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    listener = listen(host, port)  # clients may connect at once; they wait in the backlog
    try:
        await channel.start()
    except BaseException:
        listener.close()
        raise
    starting = asyncio.ensure_future(supervisor.start())
    router: Router | None = None
    try:
        # aiohttp loads in a thread while the dynos' containers are created and started
        routing = await asyncio.to_thread(importlib.import_module, ".router", __package__)
        router = routing.Router(
            app, lambda message: hub.heroku("router", message), host=host, port=port
        )
        await router.start(sock=listener)
        supervisor.attach_router(router)
        await starting
        if ready:
            ready(router)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await channel.close()
        with contextlib.suppress(Exception):
            await starting
        if router is not None:
            with contextlib.suppress(Exception):
                await router.close()
        listener.close()
        await supervisor.shutdown()


async def _control(supervisor: Supervisor, hub: LogHub, request: dict) -> AsyncIterator[dict]:
    """Answer one request from a CLI command in another terminal."""
    command = request.get("command")
    if command == "ps":
        yield {"dynos": supervisor.snapshot()}
    elif command == "reconcile":
        await supervisor.reconcile()
        yield {"dynos": supervisor.snapshot()}
    elif command == "restart":
        yield {"restarted": await supervisor.restart(request.get("target"))}
    elif command == "stop":
        await supervisor.stop_dyno(request["dyno"])
        yield {"stopped": request["dyno"]}
    elif command == "run_detached":
        name = await supervisor.run_detached(
            request["command_line"], request.get("env", {}), request.get("size", DEFAULT_SIZE)
        )
        yield {"dyno": name}
    elif command == "logs":
        wanted = logs.Filter(request.get("ps"), request.get("source"))
        queue: asyncio.Queue[LogLine] = asyncio.Queue()
        unsubscribe = hub.subscribe(queue.put_nowait) if request.get("tail") else None
        try:
            recent = [line for line in hub.recent if wanted(line)]
            num = int(request.get("num", 100))
            for line in recent[len(recent) - num :] if num < len(recent) else recent:
                yield line.to_json()
            while unsubscribe:
                line = await queue.get()
                if wanted(line):
                    yield line.to_json()
        finally:
            if unsubscribe:
                unsubscribe()
    else:
        raise UsageError(f"unknown control request {command!r}")
