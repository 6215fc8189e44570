"""The dyno manager: keeps the app's containers matching its current release and formation,
rolls new releases out, and answers the CLI's requests through `up`'s control socket.

Runs inside `up`'s event loop; the engine's blocking calls go to threads. Its jobs live
beside it: `fleet` (one dyno's life), `rollout`, `idling` (sleep, wake, dyno hours),
`monitor` (engine events, memory), `metrics` (runtime metrics), `recorder` (the Metrics tab,
per minute in the store), `routes` (what the router is told).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from .. import addons, reconcile
from ..clock import Clock
from ..container_engine import FORMATION, ONE_OFF, ContainerEngine, one_off_index
from ..dynostate import DynoState
from ..errors import EngineError, ReleaseError, UsageError
from ..formation import DEFAULT_SIZE, size
from ..logs import LogHub
from ..options import ManagerOptions
from ..procfile import RELEASE
from ..store import FAILED, Store
from .fleet import Fleet, Tracked, order
from .idling import Idling
from .metrics import Metrics
from .monitor import Monitor
from .recorder import Recorder
from .rollout import Progress, Rollout

if TYPE_CHECKING:
    from ..router import RouterEngine

SWEEP_SECONDS = 30.0  # how long shutdown sweeps for containers of cancelled starts


class DynoManager:
    def __init__(
        self,
        store: Store,
        app: str,
        hub: LogHub,
        *,
        engine: ContainerEngine,
        options: ManagerOptions | None = None,
        clock: Clock | None = None,
        schedule: Clock | None = None,
        local_env: dict[str, str] | None = None,
        addon_servers: addons.Servers | None = None,
    ) -> None:
        """`clock` times boots and stops; `schedule` (fast-forwardable) times crash cool-offs,
        stability, cycling, idling and dyno hours. `local_env` (the app's .env, when asked
        for) sits under the config vars. `addon_servers`: where the app's add-on servers run
        (default DOCKER_HOST's engine; the cluster's on Swarm)."""
        self.store, self.app, self.hub = store, app, hub
        self.addon_servers = addon_servers or addons.ONE_ENGINE
        self._serving: set[str] = set()  # add-ons started (or adopted) by this `up`
        clock = clock or Clock()
        self.fleet = Fleet(
            app, hub, engine, options or ManagerOptions(), clock, schedule or clock,
            local_env or {},
        )  # fmt: skip
        self._reconciling = asyncio.Lock()
        self.rollout = Rollout(self.fleet, store)
        self.idling = Idling(self.fleet, store, self._reconciling)
        self.monitor = Monitor(self.fleet, self._repair)
        self.recorder = Recorder(self.fleet, store)
        self.metrics = Metrics(self.fleet, store, self.recorder.usage)
        self._watchers: list[asyncio.Future] = []
        self._repairing: asyncio.Future | None = None

    @property
    def dynos(self) -> dict[str, Tracked]:
        return self.fleet.dynos

    @property
    def asleep(self) -> bool:
        return self.fleet.asleep

    # life cycle
    async def start(self) -> None:
        """Create the network, watch the engine's events, adopt what runs, roll out pending
        releases, bring the formation up."""
        engine = self.fleet.engine
        await asyncio.to_thread(engine.ensure_network, self.app)
        self._watchers = [
            self.monitor.start(), self.metrics.start(), self.recorder.start(),
            *self.idling.start(),
        ]  # fmt: skip
        await self._serve_addons()  # before the dynos that use them
        addons.update_urls(self.store, self.app)  # redis:// from before TLS: rolled out below
        async with self._reconciling:
            pending = self.store.pending_releases(self.app)
            await self._reconcile(start=not pending)  # adopt only: the new release comes next
            for release in pending:
                with contextlib.suppress(ReleaseError):  # logged; the current release runs
                    await self.rollout.roll_out(release, lambda _: None)
            if pending:
                await self._reconcile()

    async def _serve_addons(self) -> None:
        """Start the app's add-on servers this `up` does not serve yet (all at start, one
        attached since by `addons:create`), each adopted when it runs already."""
        for addon in self.store.addons(self.app):
            if addon.name in self._serving:
                continue
            where = await asyncio.to_thread(self.addon_servers.start, addon, lambda _: None)
            self._serving.add(addon.name)
            on = f" on {where}" if where else ""
            self.hub.heroku(addon.name, f"{addon.service} serving as {addon.config_var}{on}")

    async def reconcile(self) -> None:
        """Compare desired and actual, and act: adopt, start, stop, remove."""
        async with self._reconciling:
            await self._reconcile()

    def _repair(self) -> None:
        self._repairing = asyncio.ensure_future(self.reconcile())

    async def deploy(self, version: int, progress: Progress) -> None:
        """Roll out pending releases up to vN in order; ReleaseError when vN fails."""
        async with self._reconciling:
            await self._serve_addons()  # one attached since, before the release that uses it
            await self.idling.wake_locked()  # a sleeping app is woken to switch, as a request
            for release in self.store.pending_releases(self.app):
                if release.version > version:
                    break
                try:
                    await self.rollout.roll_out(release, progress)
                except ReleaseError:
                    if release.version == version:
                        raise
            await self._reconcile()
        wanted = self.store.release(self.app, version)
        if wanted is not None and wanted.status == FAILED:
            raise ReleaseError(f"release {wanted.name} failed: {wanted.failure}")

    async def _reconcile(self, start: bool = True) -> None:
        fleet = self.fleet
        fleet.release = release = self.store.current_release(self.app)
        if release is None:
            return
        formation = self.store.formation(self.app)
        self.recorder.formation(formation)
        types = [name for name in release.process_types if name != RELEASE]
        desired = {n: formation[n].quantity if n in formation else 0 for n in types}
        sizes = {n: formation[n].size for n in types if n in formation}
        for tracked in list(fleet.dynos.values()):  # waiting out a cool-off, no longer wanted
            unwanted = tracked.index > desired.get(tracked.type, 0)
            if tracked.role == FORMATION and tracked.container is None and unwanted:
                fleet.forget(tracked)
        listed = await asyncio.to_thread(fleet.engine.list, self.app)
        actual = [d for d in listed if d.container_id not in self.rollout.retiring]
        formation_names = {n for n, t in fleet.dynos.items() if t.role == FORMATION}
        cooling = {  # crashed, waiting out a cool-off: a new release starts them at once
            n: t.release
            for n, t in fleet.dynos.items()
            if t.role == FORMATION and t.state == DynoState.CRASHED and t.container is None
        }
        actions = reconcile.decide(
            desired, release.version, actual, tracked=formation_names, sizes=sizes,
            cooling=cooling,
        )  # fmt: skip
        starts = actions.start if start else []
        moved_on = set()  # a cool-off that ended meanwhile: started already, on this release
        for name in cooling.keys() & {f"{t}.{i}" for t, i in starts}:
            revived = fleet.dynos[name]  # its cool-off ends now, and its crash count with it
            if revived.state != DynoState.CRASHED or revived.container is not None:
                moved_on.add(name)
                continue
            await fleet.cancel_timers(revived)
            revived.crashes = 0
        starts = [(t, i) for t, i in starts if f"{t}.{i}" not in moved_on]
        restarted = {f"{t}.{i}" for t, i in starts}  # stopped to start again (a new size)
        await asyncio.gather(
            *(asyncio.to_thread(fleet.engine.remove, d.container_id) for d in actions.remove),
            *(fleet.stop_found(d, restart=d.name in restarted) for d in actions.stop),
        )
        await asyncio.gather(
            *(fleet.adopt(d) for d in actions.adopt),
            *(fleet.start(self._fresh(t, i, sizes.get(t, DEFAULT_SIZE))) for t, i in starts),
        )
        fleet.routes.update()

    def _fresh(self, process_type: str, index: int, size_name: str) -> Tracked:
        """The dyno to start: a new one, or a crashed one revived by a new release (its
        cool-off cancelled and its crash count reset above; its state goes on from crashed)."""
        fleet = self.fleet
        tracked = fleet.dynos.get(f"{process_type}.{index}")
        if tracked is None or tracked.role != FORMATION:
            return fleet.track(process_type, index, size=size_name)
        tracked.size = size_name
        tracked.command = fleet.release.process_types[process_type] if fleet.release else ""
        return tracked

    async def shutdown(self) -> None:
        """Stop every dyno (SIGTERM, grace, SIGKILL), remove containers and the network."""
        fleet, engine = self.fleet, self.fleet.engine
        fleet.closing = True
        self.idling.flush_hours()
        for task in self._watchers:
            task.cancel()
        for tracked in fleet.dynos.values():
            paused = fleet.options.sleep_mode == "pause" and tracked.asleep
            if paused and tracked.container is not None:
                with contextlib.suppress(EngineError):
                    await asyncio.to_thread(engine.unpause, tracked.container)
        for tracked in fleet.dynos.values():
            await fleet.cancel_timers(tracked)
        await asyncio.gather(
            *(fleet.stop(t) for t in list(fleet.dynos.values())),
            *list(self.rollout.background),  # replaced web dynos still draining
        )
        await fleet.end_followers()
        self.monitor.close()
        self.recorder.close()  # the minute under way too
        for addon in self.store.addons(self.app):  # after the dynos
            await asyncio.to_thread(self.addon_servers.stop, addon)
        # Engine calls of cancelled restarts may still be finishing in their threads (a
        # removal, a create): sweep the app's containers until the network can go too.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SWEEP_SECONDS
        while loop.time() < deadline:
            leftovers = await asyncio.to_thread(engine.list, self.app)
            await asyncio.gather(
                *(asyncio.to_thread(engine.remove, d.container_id) for d in leftovers)
            )
            if await asyncio.to_thread(engine.remove_network, self.app, 2.0):
                break

    def attach_router(self, router: RouterEngine) -> None:
        """Route to the web dynos: those already up at once, the others as they come up.

        `up` attaches the router after the dynos started booting, so that loading the router
        overlaps with creating and starting their containers.
        """
        fleet = self.fleet
        fleet.routes.router = router
        router.on_request = self.idling.touched
        router.on_wake = self.idling.wake_requested
        for tracked in (*fleet.dynos.values(), *fleet.preboot):
            if tracked.is_web and tracked.state == DynoState.UP and tracked.address:
                fleet.routes.add(tracked)
        fleet.routes.update()

    async def web_up(self) -> None:
        """Until every web dyno of the formation is up (woken by each state change)."""
        while not all(t.state == DynoState.UP for t in self.dynos.values() if t.is_web):
            await self.fleet.state_changed.wait()

    # requests from the CLI (through the control channel)
    def snapshot(self) -> list[dict[str, Any]]:
        return [t.snapshot() for t in sorted(self.dynos.values(), key=order)]

    def select(self, target: str | None) -> list[Tracked]:
        """Dynos named by `web.2`, a type `web`, or all formation dynos (None)."""
        if target is None:
            chosen = [t for t in self.dynos.values() if t.role == FORMATION]
        elif "." in target:
            chosen = [self.dynos[target]] if target in self.dynos else []
        else:
            chosen = [t for t in self.dynos.values() if t.type == target]
        if target is not None and not chosen:
            raise UsageError(f"Couldn't find that process type or dyno ({target}).")
        return sorted(chosen, key=order)

    async def restart(self, target: str | None) -> list[str]:
        """Heroku's ps:restart: each dyno stopped and started again, crash count reset."""
        chosen = [t for t in self.select(target) if t.role == FORMATION]
        await asyncio.gather(*(self.fleet.restart(t, "Restarting") for t in chosen))
        return [t.name for t in chosen]

    async def stop_dyno(self, target: str) -> None:
        """Heroku's ps:stop (a dyno or a type): formation dynos stop and come back, one-offs
        just stop."""

        async def stop(tracked: Tracked) -> None:
            if tracked.role == FORMATION:
                await self.fleet.restart(tracked, None)
            else:
                await self.fleet.stop(tracked)

        await asyncio.gather(*(stop(t) for t in self.select(target)))

    async def run_detached(self, command: str, env: dict[str, str], size_name: str) -> str:
        """A one-off dyno whose output goes to the log stream; it is never restarted."""
        fleet = self.fleet
        if fleet.release is None:
            raise UsageError(f"app {self.app} has no release yet")
        index = one_off_index(await asyncio.to_thread(fleet.engine.list, self.app))
        tracked = fleet.track("run", index, role=ONE_OFF, size=size(size_name).name)
        tracked.command = command
        await fleet.start(tracked, env=env)
        return tracked.name

    # sleep and wake (free and eco dynos)
    def sleeps(self) -> bool:
        return self.idling.sleeps()

    async def sleep(self, reason: str = "Idling") -> None:
        await self.idling.sleep(reason)

    async def wake(self) -> None:
        await self.idling.wake()
