"""`dynosim up`'s serving half: the dyno manager and the router in one event loop, the
control socket beside them, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from . import addons, control, listeners
from .addons import Servers
from .clock import Clock
from .container_engine import ContainerEngine
from .control_handler import Builder, ControlHandler
from .docker import DockerEngine
from .errors import UsageError
from .logs import LogHub, LogLine
from .manager import DynoManager
from .options import ROUTER_ENGINES, ServeOptions
from .store import Store

if TYPE_CHECKING:
    from .cluster import SwarmTarget
    from .router import RouterEngine


async def serve(
    store: Store,
    app: str,
    options: ServeOptions,
    *,
    printer: Callable[[LogLine], None],
    ready: Callable[[RouterEngine, DynoManager], None] | None = None,
    schedule: Clock | None = None,
    stop: asyncio.Event | None = None,
    builder: Builder | None = None,
) -> None:
    """Roll out pending releases and run the formation behind the router until SIGINT/SIGTERM
    (or `stop` is set, for a loop that is not in the main thread), then stop every dyno.

    `schedule` is the clock of the platform's schedules (cool-offs, cycling, idling), when
    the caller wants to hold it (the Python API's `App.clock`); else one running
    `options.time_scale` times fast. `options.router_engine` "haproxy" moves requests with
    HAProxy, "python" with dynosim's own proxy, "auto" with HAProxy when it is installed
    (docs/usage.md, "Router engines"). `builder` builds what deploys send the control socket.
    """
    loop = asyncio.get_running_loop()
    signals = () if stop is not None else (signal.SIGINT, signal.SIGTERM)
    stop = stop or asyncio.Event()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=64, thread_name_prefix="docker"))
    hub = LogHub()
    hub.subscribe(printer)
    schedule = schedule or Clock(speed=options.time_scale)
    addon_servers = await asyncio.to_thread(_addon_servers, options.swarm, store, app)
    engine = await asyncio.to_thread(dyno_engine, options)
    manager = DynoManager(
        store, app, hub, engine=engine, options=options.manager, schedule=schedule,
        local_env=options.local_env, addon_servers=addon_servers,
    )  # fmt: skip
    channel = control.Server(app, ControlHandler(manager, hub, options.dashboard_url, builder))
    sockets = await _listen(options, channel)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(manager.start())
    router: RouterEngine | None = None
    try:
        # the router loads (and its certificate is made) while the dynos' containers start
        router = await _router(options, app, lambda message: hub.heroku("router", message))
        await router.start(sock=sockets.plain, tls_sock=sockets.tls)
        manager.attach_router(router)
        await starting
        if ready:
            ready(router, manager)
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
        sockets.close()
        await manager.shutdown()
        _close(engine, options, app)


def dyno_engine(options: ServeOptions) -> ContainerEngine:
    """One Docker engine, or the Swarm `Host.serve` found."""
    if options.engine == "docker":
        return DockerEngine()
    assert options.swarm is not None, "Host.serve finds the Swarm"
    from . import cluster

    return cluster.swarm_engine(options.swarm, options.manager.grace)


def _close(engine: ContainerEngine, options: ServeOptions, app: str) -> None:
    """The engine's client; on Swarm, the build's bridge network on the engine it ran on."""
    if hasattr(engine, "close"):
        engine.close()
    if options.engine == "swarm":
        addons.ONE_ENGINE.tidy(app)


def _addon_servers(swarm: SwarmTarget | None, store: Store, app: str) -> Servers:
    """Where the app's add-on servers run: beside its dynos (on Swarm, services on the local
    cluster's workers, on the app's overlay); UsageError for add-ons on a Swarm dynosim did
    not make (no node access to place and probe them yet)."""
    if swarm is None:
        return addons.ONE_ENGINE
    if swarm.cluster is not None:
        from . import cluster_addons

        return cluster_addons.OnCluster(swarm.cluster)
    if store.addons(app):
        raise UsageError(
            f"--engine swarm: {app}'s add-ons run on a cluster made by dynosim cluster:create"
            " only (they need its nodes' engines)"
        )
    return addons.ONE_ENGINE


class _Sockets:
    """The router's listening sockets, opened before anything else: clients may connect at
    once, and wait in the backlog until the router takes them."""

    def __init__(self, options: ServeOptions) -> None:
        self.plain = listeners.listen(options.host, options.port)
        self.tls: socket.socket | None = None
        try:
            if options.https_port is not None:
                self.tls = listeners.listen(options.host, options.https_port, "--https-port")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for sock in (self.plain, self.tls):
            if sock is not None:
                sock.close()


async def _listen(options: ServeOptions, channel: control.Server) -> _Sockets:
    sockets = _Sockets(options)
    try:
        await channel.start()
    except BaseException:
        sockets.close()
        raise
    return sockets


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


async def _router(options: ServeOptions, app: str, log: Callable[[str], None]) -> RouterEngine:
    """The router `options` name; its module and the app's certificate load in a thread (the
    dynos' containers start meanwhile)."""
    from . import certs

    engine, https_port = options.router_engine, options.https_port
    settings = dict(host=options.host, port=options.port, keepalive=options.dyno_keepalive)

    routing = await asyncio.to_thread(importlib.import_module, ".router.haproxy", __package__)
    check_router_engine(engine)
    if engine == "haproxy" or (engine == "auto" and routing.executable()):
        issued = await asyncio.to_thread(certs.issue, app) if https_port is not None else None
        return routing.HAProxyRouter(
            app, log, https_port=https_port, certificate=issued, **settings
        )
    from .router import Router

    context = None
    if https_port is not None:
        context = await asyncio.to_thread(lambda: certs.server_context(certs.issue(app)))
    return Router(app, log, https_port=https_port, ssl_context=context, **settings)
