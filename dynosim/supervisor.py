"""The dyno manager: keeps the app's containers matching its current release and formation,
and rolls new releases out (release phase, then preboot: new web dynos take traffic before the
old ones are drained and stopped).

Runs inside `dynosim up`'s event loop. Docker's blocking calls go to threads; Docker's event
stream reports deaths as they happen; every platform event is logged the way Heroku logs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import addons, backoff, dynohours, reconcile
from .clock import Clock
from .container_engine import (
    FORMATION,
    KILL_FACTOR,
    ONE_OFF,
    PORT,
    Container,
    ContainerEngine,
    Dyno,
    DynoSpec,
    Event,
    EventStream,
    WaitTimedOut,
    machine_memory_mb,
    memory_limit_mb,
    one_off_index,
)
from .dynostate import DynoState
from .errors import EngineError, ReleaseError, UsageError
from .formation import DEFAULT_SIZE, size
from .logs import LogHub, LogLine
from .procfile import RELEASE, WEB
from .store import FAILED, SUCCEEDED, Release, Store

if TYPE_CHECKING:
    from .router import RouterEngine

#: Readiness polls every 10 ms for the first 2 s (most apps bind by then), then every 50 ms,
#: so a slow boot of many dynos at once does not spend a core on connection attempts.
READY_POLL, READY_POLL_LATER, READY_FAST_FOR = 0.01, 0.05, 2.0
#: Heroku cycles each dyno every 24 h plus up to 216 min (random), when cycling is on.
CYCLE_BASE, CYCLE_JITTER = 24 * 3600.0, 216 * 60.0
#: Memory is sampled this often; R14 is logged at most every 20 s per dyno while over quota.
MEMORY_SAMPLE, R14_EVERY = 2.0, 20.0
EVENTS_RETRY = 1.0  # seconds, doubled after each failure in a row, at most 30
EVENTS_FAILURES_REPORTED = 3  # an engine restart fails once or twice; more is reported
#: Heroku kills a release phase after an hour.
RELEASE_TIMEOUT = 3600.0
#: Free and eco apps sleep after 30 minutes without a request to their web dynos.
IDLE_TIMEOUT = 30 * 60.0
#: Dyno hours are written to the store this often (schedule time) and at every sleep.
HOURS_EVERY = 60.0
SLEEP_MODES = ("stop", "pause")
#: A waking app's workers start once the held requests are answered, or after this long.
WORKERS_AFTER = 5.0
Progress = Callable[[str], None]


SWEEP_SECONDS = 30.0  # how long shutdown sweeps for containers of cancelled starts


@dataclass(eq=False)
class Tracked:
    """What the supervisor knows of one dyno."""

    type: str
    index: int
    role: str = FORMATION
    command: str = ""
    size: str = DEFAULT_SIZE
    state: DynoState = DynoState.DOWN
    since: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    container: Container | None = None
    address: str | None = None  # where the router reaches a web dyno that is up
    started: float = 0.0  # clock time it last went up
    crashes: int = 0
    release: int = 0  # the release it runs, or last ran (a crashed dyno: the one it crashed on)
    stopping: bool = False
    restart: asyncio.Task | None = None
    cycle: asyncio.Task | None = None
    warned_memory: float = float("-inf")
    asleep: bool = False  # stopped or paused because the app idled (not a crash)
    output: asyncio.Event = field(default_factory=asyncio.Event)  # it printed something
    follower: asyncio.Task[None] | None = None  # streams its container's output to the hub
    tasks: set[asyncio.Task] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"{self.type}.{self.index}"

    @property
    def is_web(self) -> bool:
        return self.type == WEB and self.role == FORMATION

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "role": self.role,
            "state": DynoState.IDLE if self.asleep else self.state,
            "since": self.since.isoformat(),
            "command": self.command,
            "size": self.size,
            "release": self.release,
        }


class Supervisor:
    def __init__(
        self,
        store: Store,
        app: str,
        hub: LogHub,
        router: RouterEngine | None = None,
        *,
        engine: ContainerEngine,
        grace: float = 30.0,
        boot_timeout: float = 60.0,
        clock: Clock | None = None,
        schedule: Clock | None = None,
        cycling: bool = False,
        local_env: dict[str, str] | None = None,
        release_timeout: float = RELEASE_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        sleep_mode: str = "stop",
        quota_hours: float = dynohours.BASE_HOURS,
    ) -> None:
        """`clock` times boots and stops; `schedule` (fast-forwardable) times crash cool-offs,
        stability and daily cycling. `local_env` (the app's .env) sits under the config vars."""
        self.store, self.app, self.hub, self.router = store, app, hub, router
        self.engine = engine
        self.grace, self.boot_timeout, self.cycling = grace, boot_timeout, cycling
        self.local_env, self.release_timeout = local_env or {}, release_timeout
        self.idle_timeout, self.sleep_mode, self.quota_hours = idle_timeout, sleep_mode, quota_hours
        self.asleep = False
        self._exhausted = False
        self._last_request = 0.0
        self._woken = asyncio.Event()
        self._waking: asyncio.Future | None = None
        self._counted_at: dt.datetime | None = None
        self._watchers: list[asyncio.Future] = []
        self.clock = clock or Clock()
        self.schedule = schedule or self.clock
        self.dynos: dict[str, Tracked] = {}
        self.release: Release | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: EventStream | None = None
        self._closing = False
        self._reconciling = asyncio.Lock()
        self._repair: asyncio.Future | None = None
        self._memory: asyncio.Future | None = None
        self._preboot: list[Tracked] = []  # a new release's web dynos, booting beside the old
        self._retiring: set[str] = set()  # containers of replaced web dynos, being drained
        self._background: set[asyncio.Task] = set()
        self._followers: set[asyncio.Task] = set()  # dynos' output streams
        self._state_changed = asyncio.Event()

    # life cycle
    async def start(self) -> None:
        """Create the network, watch Docker's events, adopt what runs, roll out pending
        releases, bring the formation up."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.engine.ensure_network, self.app)
        self._watch_events()
        self._memory = asyncio.ensure_future(self._watch_memory())
        self._last_request, self._counted_at = self.schedule.now(), self.schedule.wall()
        self._watchers = [
            asyncio.ensure_future(self._watch_idle()),
            asyncio.ensure_future(self._count_hours()),
        ]
        attached = self.store.addons(self.app)
        await asyncio.to_thread(addons.start_all, attached)  # before the dynos that use them
        addons.update_urls(self.store, self.app)  # redis:// from before TLS: rolled out below
        for addon in attached:
            self.hub.heroku(addon.name, f"{addon.service} serving as {addon.config_var}")
        async with self._reconciling:
            pending = self.store.pending_releases(self.app)
            await self._reconcile(start=not pending)  # adopt only: the new release comes next
            for release in pending:
                with contextlib.suppress(ReleaseError):  # logged; the current release runs
                    await self._roll_out(release, lambda _: None)
            if pending:
                await self._reconcile()

    async def reconcile(self) -> None:
        """Compare desired and actual, and act: adopt, start, stop, remove."""
        async with self._reconciling:
            await self._reconcile()

    async def deploy(self, version: int, progress: Progress) -> None:
        """Roll out pending releases up to vN in order; ReleaseError when vN fails."""
        async with self._reconciling:
            await self._wake()  # a sleeping app is woken to switch, as a request would
            for release in self.store.pending_releases(self.app):
                if release.version > version:
                    break
                try:
                    await self._roll_out(release, progress)
                except ReleaseError:
                    if release.version == version:
                        raise
            await self._reconcile()
        wanted = self.store.release(self.app, version)
        if wanted is not None and wanted.status == FAILED:
            raise ReleaseError(f"release {wanted.name} failed: {wanted.failure}")

    async def _roll_out(self, release: Release, progress: Progress) -> None:
        """Release phase, then the switch; the release ends succeeded or failed (and raises)."""
        user = release.user or "you"
        self.hub.emit(LogLine("app", "api", f"{release.description} by {user}"))
        self.hub.emit(LogLine("app", "api", f"Release {release.name} created by {user}"))
        try:
            for phase, command in (
                (RELEASE, release.release_phase and release.process_types.get(RELEASE)),
                ("postdeploy", release.postdeploy),
            ):
                if command:
                    progress(f"Running {phase} command `{command}`...")
                    await self._phase(release, phase, command)
            progress(f"Starting the dynos of {release.name}...")
            await self._preboot_web(release)
        except ReleaseError as exc:
            self.store.finish_release(self.app, release.version, FAILED, str(exc))
            self.hub.emit(LogLine("app", "api", f"Release {release.name} failed: {exc}"))
            raise ReleaseError(f"release {release.name} failed: {exc}", exc.tail) from None
        self.store.finish_release(self.app, release.version, SUCCEEDED)
        self.release = self.store.current_release(self.app)
        self.hub.emit(LogLine("app", "api", f"Deployed {release.name}"))

    async def _phase(self, release: Release, phase: str, command: str) -> None:
        """Run a release-phase command in a one-off dyno; ReleaseError unless it exits 0."""
        index = one_off_index(await asyncio.to_thread(self.engine.list, self.app))
        tracked = Tracked(phase, index, role=ONE_OFF, command=command)
        self._set_state(tracked, DynoState.STARTING)
        spec = DynoSpec(release, phase, index, ONE_OFF, command, base_env=self.local_env)
        try:
            container = await asyncio.to_thread(self.engine.create, spec)
        except EngineError as exc:
            raise ReleaseError(f"{phase} dyno could not be created: {_reason(exc)}") from None
        try:
            self.hub.heroku(tracked.name, f"Starting process with command `{command}`")
            try:
                await asyncio.to_thread(self.engine.start, container)
            except EngineError as exc:
                raise ReleaseError(f"{phase} dyno did not start: {_reason(exc)}") from None
            follower = self._follow(tracked, container, since=None)
            self._set_state(tracked, DynoState.UP)
            try:
                code = await asyncio.to_thread(self.engine.wait, container, self.release_timeout)
            except EngineError as exc:
                self.hub.heroku(tracked.name, "Stopping process with SIGKILL")
                code = await asyncio.to_thread(self.engine.kill, container)
                self.hub.heroku(tracked.name, f"Process exited with status {code}")
                if isinstance(exc, WaitTimedOut):
                    message = f"{phase} command timed out after {self.release_timeout:g} seconds"
                else:
                    message = f"{phase} dyno could not be watched: {_reason(exc)}"
                raise ReleaseError(message, self._tail(tracked.name)) from None
            await asyncio.wait({follower}, timeout=5)
            self.hub.heroku(tracked.name, f"Process exited with status {code}")
            self._set_state(tracked, DynoState.COMPLETE)
            if code != 0:
                raise ReleaseError(
                    f"{phase} command `{command}` exited with status {code}",
                    self._tail(tracked.name),
                )
        finally:
            await asyncio.to_thread(self.engine.remove, container)

    def _tail(self, dyno_name: str, lines: int = 20) -> list[str]:
        output = [line.message for line in self.hub.recent if line.dyno == dyno_name]
        return output[-lines:]

    async def _preboot_web(self, release: Release) -> None:
        """Boot the release's web dynos beside the serving ones; once all are up they take
        over and the old ones are drained and stopped. If one crashes or never binds, the
        new ones are stopped and the old ones keep serving (ReleaseError)."""
        entry = self.store.formation(self.app).get(WEB)
        serving = [t for t in self.dynos.values() if t.is_web and t.container is not None]
        if WEB not in release.process_types or not entry or not entry.quantity or not serving:
            return  # nothing to keep serving: the new dynos simply start
        new = [
            Tracked(WEB, i, command=release.process_types[WEB], size=entry.size)
            for i in range(1, entry.quantity + 1)
        ]
        self._preboot = new
        try:
            await asyncio.gather(*(self._start(t, release=release) for t in new))
            failed = await self._until_settled(new)
        finally:
            self._preboot = []
        if failed:
            for tracked in new:
                await self._cancel_timers(tracked)
            await asyncio.gather(*(self._stop(t) for t in new))
            if failed.follower is not None:  # its last words belong in the error
                await asyncio.wait({failed.follower}, timeout=5)
            raise ReleaseError(
                f"{failed.name} of {release.name} did not come up; the previous release keeps"
                " serving",
                self._tail(failed.name),
            )
        for old in [t for t in self.dynos.values() if t.is_web]:
            await self._cancel_timers(old)
            del self.dynos[old.name]
            if old.container is not None:
                self._retiring.add(old.container.id)
                self._in_background(self._retire(old))
        for tracked in new:
            self.dynos[tracked.name] = tracked
        self._update_router()

    async def _until_settled(self, new: list[Tracked]) -> Tracked | None:
        """Wait until every new dyno is up (None) or one of them failed (that one)."""
        deadline = self.clock.now() + self.boot_timeout + 10
        while self.clock.now() < deadline:
            failed = [t for t in new if t.state in (DynoState.CRASHED, DynoState.DOWN)]
            if failed:
                return failed[0]
            if all(t.state == DynoState.UP for t in new):
                return None
            changed = self._state_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), 1.0)
        return next(t for t in new if t.state != DynoState.UP)

    async def _retire(self, old: Tracked) -> None:
        """Drain a replaced web dyno in the router, then stop it."""
        assert old.container is not None
        container_id = old.container.id
        try:
            if self.router:
                await self.router.drain(container_id, self.grace)
            await self._stop(old)
        finally:
            self._retiring.discard(container_id)

    def _in_background(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reconcile(self, start: bool = True) -> None:
        self.release = release = self.store.current_release(self.app)
        if release is None:
            return
        formation = self.store.formation(self.app)
        types = [name for name in release.process_types if name != RELEASE]
        desired = {n: formation[n].quantity if n in formation else 0 for n in types}
        sizes = {n: formation[n].size for n in types if n in formation}
        for tracked in list(self.dynos.values()):  # waiting out a cool-off, no longer wanted
            unwanted = tracked.index > desired.get(tracked.type, 0)
            if tracked.role == FORMATION and tracked.container is None and unwanted:
                self._forget(tracked)
        listed = await asyncio.to_thread(self.engine.list, self.app)
        actual = [d for d in listed if d.container_id not in self._retiring]
        formation_names = {n for n, t in self.dynos.items() if t.role == FORMATION}
        cooling = {  # crashed, waiting out a cool-off: a new release starts them at once
            n: t.release
            for n, t in self.dynos.items()
            if t.role == FORMATION and t.state == DynoState.CRASHED and t.container is None
        }
        actions = reconcile.decide(
            desired, release.version, actual, tracked=formation_names, sizes=sizes,
            cooling=cooling,
        )  # fmt: skip
        starts = actions.start if start else []
        moved_on = set()  # a cool-off that ended meanwhile: started already, on this release
        for name in cooling.keys() & {f"{t}.{i}" for t, i in starts}:
            revived = self.dynos[name]  # its cool-off ends now, and its crash count with it
            if revived.state != DynoState.CRASHED or revived.container is not None:
                moved_on.add(name)
                continue
            await self._cancel_timers(revived)
            revived.crashes = 0
        starts = [(t, i) for t, i in starts if f"{t}.{i}" not in moved_on]
        await asyncio.gather(
            *(asyncio.to_thread(self.engine.remove, d.container_id) for d in actions.remove),
            *(self._stop_found(d) for d in actions.stop),
        )
        await asyncio.gather(
            *(self._adopt(d) for d in actions.adopt),
            *(self._start(self._fresh(t, i, sizes.get(t, DEFAULT_SIZE))) for t, i in starts),
        )
        self._update_router()

    def _fresh(self, process_type: str, index: int, size_name: str) -> Tracked:
        """The dyno to start: a new one, or a crashed one revived by a new release (its
        cool-off cancelled and its crash count reset above; its state goes on from crashed)."""
        tracked = self.dynos.get(f"{process_type}.{index}")
        if tracked is None or tracked.role != FORMATION:
            return self._track(process_type, index, size=size_name)
        tracked.size = size_name
        tracked.command = self.release.process_types[process_type] if self.release else ""
        return tracked

    async def shutdown(self) -> None:
        """Stop every dyno (SIGTERM, grace, SIGKILL), remove containers and the network."""
        self._closing = True
        if self._memory:
            self._memory.cancel()
        self._flush_hours()
        for task in self._watchers:
            task.cancel()
        for tracked in self.dynos.values():
            if tracked.asleep and self.sleep_mode == "pause" and tracked.container is not None:
                with contextlib.suppress(EngineError):
                    await asyncio.to_thread(self.engine.unpause, tracked.container)
        for tracked in self.dynos.values():
            await self._cancel_timers(tracked)
        await asyncio.gather(
            *(self._stop(t) for t in list(self.dynos.values())),
            *list(self._background),  # replaced web dynos still draining
        )
        if self._followers:  # stopped dynos' last lines: their streams end with them
            _, unended = await asyncio.wait(set(self._followers), timeout=2)
            for task in unended:
                task.cancel()
        if self._events is not None:
            self._events.close()
        await asyncio.to_thread(addons.stop_all, self.store.addons(self.app))  # after the dynos
        # Docker calls of cancelled restarts may still be finishing in their threads (a removal,
        # a create): sweep the app's containers until the network can go too (30 s at most).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SWEEP_SECONDS
        while loop.time() < deadline:
            leftovers = await asyncio.to_thread(self.engine.list, self.app)
            await asyncio.gather(
                *(asyncio.to_thread(self.engine.remove, d.container_id) for d in leftovers)
            )
            if await asyncio.to_thread(self.engine.remove_network, self.app, 2.0):
                break

    def attach_router(self, router: RouterEngine) -> None:
        """Route to the web dynos: those already up at once, the others as they come up.

        `up` attaches the router after the dynos started booting, so that loading the router
        overlaps with creating and starting their containers.
        """
        self.router = router
        router.on_request = self._touched
        router.on_wake = self._wake_requested
        for tracked in (*self.dynos.values(), *self._preboot):
            if tracked.is_web and tracked.state == DynoState.UP and tracked.address:
                self._route(tracked)
        self._update_router()

    async def web_up(self) -> None:
        """Until every web dyno of the formation is up (woken by each state change)."""
        while not all(t.state == DynoState.UP for t in self.dynos.values() if t.is_web):
            await self._state_changed.wait()

    # requests from the CLI (through the control channel)
    def snapshot(self) -> list[dict[str, Any]]:
        return [t.snapshot() for t in sorted(self.dynos.values(), key=_order)]

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
        return sorted(chosen, key=_order)

    async def restart(self, target: str | None) -> list[str]:
        """Heroku's ps:restart: each dyno stopped and started again, crash count reset."""
        chosen = [t for t in self.select(target) if t.role == FORMATION]
        await asyncio.gather(*(self._restart(t, "Restarting") for t in chosen))
        return [t.name for t in chosen]

    async def stop_dyno(self, target: str) -> None:
        """Heroku's ps:stop (a dyno or a type): formation dynos stop and come back, one-offs
        just stop."""

        async def stop(tracked: Tracked) -> None:
            if tracked.role == FORMATION:
                await self._restart(tracked, None)
            else:
                await self._stop(tracked)

        await asyncio.gather(*(stop(t) for t in self.select(target)))

    async def run_detached(self, command: str, env: dict[str, str], size_name: str) -> str:
        """A one-off dyno whose output goes to the log stream; it is never restarted."""
        release = self.release
        if release is None:
            raise UsageError(f"app {self.app} has no release yet")
        index = one_off_index(await asyncio.to_thread(self.engine.list, self.app))
        tracked = self._track("run", index, role=ONE_OFF, size=size(size_name).name)
        tracked.command = command
        await self._start(tracked, env=env)
        return tracked.name

    # sleep and wake (free and eco dynos), dyno hours
    def _touched(self) -> None:
        self._last_request = self.schedule.now()

    def _sleepers(self) -> list[Tracked]:
        """The dynos that sleep with the app: its free and eco formation dynos that run."""
        return [
            t
            for t in self.dynos.values()
            if t.role == FORMATION and size(t.size).sleeps and t.container is not None
        ]

    def sleeps(self) -> bool:
        """Apps sleep when all their web dynos are free or eco; worker-only apps never do."""
        web = [t for t in self.dynos.values() if t.is_web]
        return bool(web) and all(size(t.size).sleeps for t in web)

    def _may_idle(self) -> bool:
        return self.sleeps() and all(
            t.state == DynoState.UP for t in self.dynos.values() if t.is_web
        )

    async def _watch_idle(self) -> None:
        while not self._closing:
            if self.asleep:
                await self._woken.wait()
                continue
            wait = self._last_request + self.idle_timeout - self.schedule.now()
            if wait > 0:
                await self.schedule.sleep(wait)
            elif self._may_idle():
                await self.sleep()
            else:  # paid dynos, or not up yet: look again an idle period later
                self._last_request = self.schedule.now()

    async def sleep(self, reason: str = "Idling") -> None:
        """Stop (or freeze, in pause mode) the web dynos and free/eco workers; the next request
        wakes them."""
        async with self._reconciling:
            sleepers = [
                t for t in self._sleepers() if t.state in (DynoState.UP, DynoState.STARTING)
            ]
            if self.asleep or not sleepers or not self.sleeps():
                return
            self._flush_hours()
            self.asleep = True
            self._woken.clear()
            for tracked in sleepers:
                await self._cancel_timers(tracked)
                tracked.asleep = True
                self.hub.heroku(tracked.name, reason)
                self._unroute(tracked)
            self._update_router()
            await asyncio.gather(*(self._doze(t) for t in sleepers))

    async def _doze(self, tracked: Tracked) -> None:
        container = tracked.container
        assert container is not None
        if self.sleep_mode == "pause":
            await asyncio.to_thread(self.engine.pause, container)
        else:
            await asyncio.to_thread(self.engine.stop, container, self.grace)
        self._set_state(tracked, DynoState.DOWN)

    def _wake_requested(self) -> None:
        """A request reached the sleeping app (the router holds it): wake the app once."""
        if self.asleep and (self._waking is None or self._waking.done()):
            self._waking = asyncio.ensure_future(self.wake())

    async def wake(self) -> None:
        async with self._reconciling:
            await self._wake()

    async def _wake(self) -> None:
        """Start (or thaw) the sleeping dynos; requests held meanwhile go to the first web dyno
        up, or get H20 when none comes up within the boot timeout."""
        if not self.asleep:
            return
        if self._refresh_exhausted():
            self._update_router()
            if self.router:
                self.router.fail_held("H82")
            return
        sleepers = [t for t in self.dynos.values() if t.asleep]
        self.asleep, self._last_request = False, self.schedule.now()
        self._counted_at = self.schedule.wall()
        for tracked in sleepers:
            self.hub.heroku(tracked.name, "Unidling")
            tracked.asleep = False
            self._set_state(tracked, DynoState.STARTING)
        web = [t for t in sleepers if t.is_web]
        await asyncio.gather(*(self._rouse(t) for t in web))  # first: a request is waiting
        if self.router and not any(
            t.is_web and t.state == DynoState.UP for t in self.dynos.values()
        ):
            self.router.fail_held("H20")
        elif self.router and web:  # workers would compete for the CPU with the answer
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.router.quiet(), WORKERS_AFTER / self.clock.speed)
        await asyncio.gather(*(self._rouse(t) for t in sleepers if not t.is_web))
        self._woken.set()

    async def _rouse(self, tracked: Tracked) -> None:
        container = tracked.container
        assert container is not None
        try:
            if self.sleep_mode == "pause":
                await asyncio.to_thread(self.engine.unpause, container)
            else:
                await asyncio.to_thread(self.engine.start, container)
                self._follow(tracked, container, since=dt.datetime.now(dt.UTC))
        except EngineError as exc:
            self.hub.heroku(tracked.name, f"Error starting dyno: {_reason(exc)}")
            self._crashed(tracked, exit_code=None)
            return
        if tracked.is_web:  # thawed, it still listens where it did; restarted, it may move
            address = tracked.address if self.sleep_mode == "pause" else None
            await self._wait_until_up(tracked, container, address)
        else:
            self._set_state(tracked, DynoState.UP)

    async def _count_hours(self) -> None:
        while not self._closing:
            await self.schedule.sleep(HOURS_EVERY)
            self._flush_hours()
            if self._exhausted and not self.asleep:
                await self.sleep("Dyno hours quota exhausted; sleeping until next month")
            elif self.asleep and self._exhausted and not self._refresh_exhausted():
                self._update_router()  # a new month: the next request wakes the app

    def _flush_hours(self) -> None:
        """Add the free/eco dyno-seconds since the last count to the month's pool usage."""
        now = self.schedule.wall()
        running = sum(1 for t in self._sleepers() if not t.asleep)
        if self._counted_at is not None and running:
            for month, seconds in dynohours.split(self._counted_at, now, running).items():
                self.store.add_dyno_seconds(month, seconds)
            if dynohours.month(now) != dynohours.month(self._counted_at):
                self.store.set_setting("", dynohours.CHARGED_MONTH, dynohours.month(now))
        self._counted_at = now
        self._refresh_exhausted()

    def _refresh_exhausted(self) -> bool:
        used = self.store.dyno_seconds(dynohours.month(self.schedule.wall()))
        self._exhausted = dynohours.remaining(self.quota_hours, used) <= 0
        return self._exhausted

    # one dyno
    def _track(self, process_type: str, index: int, **fields: Any) -> Tracked:
        tracked = Tracked(process_type, index, **fields)
        if not tracked.command and self.release and process_type in self.release.process_types:
            tracked.command = self.release.process_types[process_type]
        self.dynos[tracked.name] = tracked
        return tracked

    def _forget(self, tracked: Tracked) -> None:
        for task in (tracked.restart, tracked.cycle):
            if task:
                task.cancel()
        if self.dynos.get(tracked.name) is tracked:
            del self.dynos[tracked.name]

    def _set_state(self, tracked: Tracked, state: DynoState) -> None:
        if tracked.state != state:
            self.hub.heroku(tracked.name, f"State changed from {tracked.state} to {state}")
            tracked.state, tracked.since = state, dt.datetime.now(dt.UTC)
            changed, self._state_changed = self._state_changed, asyncio.Event()
            changed.set()
        if state == DynoState.UP:
            tracked.started = self.schedule.now()
            if self.cycling and tracked.role == FORMATION:
                if tracked.cycle:
                    tracked.cycle.cancel()
                tracked.cycle = asyncio.ensure_future(self._cycle_later(tracked))
        self._update_router()

    async def _start(
        self, tracked: Tracked, env: dict[str, str] | None = None, release: Release | None = None
    ) -> None:
        release = release or self.release
        assert release is not None
        tracked.release = release.version
        self._set_state(tracked, DynoState.STARTING)
        chosen = size(tracked.size)
        if memory_limit_mb(chosen) < chosen.memory_mb * KILL_FACTOR:
            self.hub.heroku(
                tracked.name,
                f"Warning: {chosen.name} is killed at {chosen.memory_mb * KILL_FACTOR} MB;"
                f" this machine has {machine_memory_mb()} MB, so that is the limit",
            )
        try:
            container = await asyncio.to_thread(self._create, release, tracked, env)
            tracked.container = container
            self.hub.heroku(tracked.name, f"Starting process with command `{tracked.command}`")
            await asyncio.to_thread(self.engine.start, container)
            tracked.follower = self._follow(tracked, container, since=None)
        except EngineError as exc:
            self.hub.heroku(tracked.name, f"Error starting dyno: {_reason(exc)}")
            self._crashed(tracked, exit_code=None)
            return
        if tracked.is_web:
            self._spawn(tracked, self._wait_until_up(tracked, container))
        else:
            self._set_state(tracked, DynoState.UP)

    def _create(self, release: Release, tracked: Tracked, env: dict[str, str] | None) -> Container:
        """The engine's create, in a thread. A container made once shutdown has begun is removed
        here: its caller was cancelled, and the shutdown's sweep for leftovers may be over."""
        spec = DynoSpec(
            release, tracked.type, tracked.index, tracked.role, tracked.command, tracked.size,
            env=env, base_env=self.local_env,
        )  # fmt: skip
        container = self.engine.create(spec)
        if self._closing:
            self.engine.remove(container)
            raise asyncio.CancelledError
        return container

    async def _adopt(self, found: Dyno) -> None:
        """Take over a dyno left running by an earlier supervisor (no duplicate is started)."""
        tracked = self._track(found.type, found.index, size=found.size)
        tracked.release = found.release
        container = await asyncio.to_thread(self.engine.get, found.container_id)
        tracked.container, tracked.state = container, DynoState.STARTING
        self.hub.heroku(tracked.name, "Adopted running dyno from an earlier dynosim up")
        self._follow(tracked, container, since=dt.datetime.now(dt.UTC))
        if tracked.is_web:
            await self._wait_until_up(tracked, container)
        else:
            self._set_state(tracked, DynoState.UP)

    async def _wait_until_up(
        self, tracked: Tracked, container: Container, ip: str | None = None
    ) -> None:
        """Up means accepting connections on $PORT; R10 if that takes longer than boot_timeout.

        A connection is tried at once, again whenever the dyno prints something (servers log
        as they bind), and at the latest after a short poll interval."""
        ip = ip or await asyncio.to_thread(self.engine.address, container, self.app)
        started = self.clock.now()
        deadline = started + self.boot_timeout
        while self.clock.now() < deadline:
            if tracked.container is not container or tracked.state != DynoState.STARTING:
                return
            if ip and await self.engine.accepts(ip, PORT):
                tracked.address = ip
                self._set_state(tracked, DynoState.UP)
                self._route(tracked)
                return
            fast = self.clock.now() - started < READY_FAST_FOR
            tracked.output.clear()
            with contextlib.suppress(TimeoutError):
                poll = READY_POLL if fast else READY_POLL_LATER
                await asyncio.wait_for(tracked.output.wait(), poll / self.clock.speed)
        if tracked.container is not container or tracked.state != DynoState.STARTING:
            return
        self.hub.heroku(
            tracked.name,
            "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within"
            f" {self.boot_timeout:g} seconds of launch",
        )
        self.hub.heroku(tracked.name, "Stopping process with SIGKILL")
        tracked.stopping = True  # the kill is ours: logged here, not again by the die event
        exit_code = await asyncio.to_thread(self.engine.kill, container)
        tracked.stopping = False
        self.hub.heroku(tracked.name, f"Process exited with status {exit_code}")
        self._crashed(tracked, exit_code=None)

    def _crashed(self, tracked: Tracked, exit_code: int | None) -> None:
        """Log the exit; a formation dyno restarts on Heroku's cool-off, a one-off completes."""
        if exit_code is not None:
            self.hub.heroku(tracked.name, f"Process exited with status {exit_code}")
        self._unroute(tracked)
        container, tracked.container = tracked.container, None
        if tracked.cycle:
            tracked.cycle.cancel()
        if tracked.role == ONE_OFF:
            self._set_state(tracked, DynoState.COMPLETE)
            self._spawn(tracked, self._remove_and_forget(tracked, container))
            return
        stable = tracked.state == DynoState.UP and (
            self.schedule.now() - tracked.started >= backoff.STABLE
        )
        tracked.crashes = 1 if stable else tracked.crashes + 1
        # the restart is scheduled first, so that the router holds requests for it
        tracked.restart = asyncio.ensure_future(self._restart_later(tracked, container))
        self._set_state(tracked, DynoState.CRASHED)

    async def _remove_and_forget(self, tracked: Tracked, container: Container | None) -> None:
        if container is not None:
            await asyncio.to_thread(self.engine.remove, container)
        self._forget(tracked)

    async def _restart_later(self, tracked: Tracked, old: Container | None) -> None:
        """Remove the dead container, wait out the cool-off, start the dyno again."""
        if old is not None:
            await asyncio.to_thread(self.engine.remove, old)
        wait = backoff.delay(tracked.crashes)
        if self._closing:
            return
        if wait:
            self.hub.heroku(
                tracked.name,
                f"Crashed {tracked.crashes} times in a row; restarting in {wait / 60:g} min",
            )
            await self.schedule.sleep(wait)
        tracked.restart = None
        if not self._closing and self.dynos.get(tracked.name) is tracked:
            await self._start(tracked)

    async def _restart(self, tracked: Tracked, reason: str | None) -> None:
        """Stop and start one formation dyno; restarts reset the crash count (Heroku)."""
        await self._cancel_timers(tracked)
        tracked.crashes = 0
        if reason:
            self.hub.heroku(tracked.name, reason)
        if tracked.container is not None:
            await self._stop(tracked, then=DynoState.STARTING if reason else DynoState.DOWN)
        if not self._closing and self.dynos.get(tracked.name) is tracked:
            await self._start(tracked)

    async def _cycle_later(self, tracked: Tracked) -> None:
        await self.schedule.sleep(CYCLE_BASE + random.uniform(0, CYCLE_JITTER))
        tracked.cycle = None
        if not self._closing and tracked.state == DynoState.UP:
            await self._restart(tracked, "Cycling")

    async def _cancel_timers(self, tracked: Tracked) -> None:
        for task in (tracked.restart, tracked.cycle):
            if task and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        tracked.restart = tracked.cycle = None

    async def _stop(self, tracked: Tracked, then: DynoState = DynoState.DOWN) -> None:
        """SIGTERM, grace, SIGKILL with Heroku's log lines; the state becomes `then`."""
        container = tracked.container
        if container is None:
            if tracked.state not in (DynoState.DOWN, DynoState.COMPLETE):
                self._set_state(tracked, DynoState.DOWN)
            return
        tracked.stopping = True
        self._unroute(tracked)
        if then != DynoState.DOWN:
            self._set_state(tracked, then)
        self.hub.heroku(tracked.name, "Stopping all processes with SIGTERM")
        started = self.clock.now()
        exit_code = await asyncio.to_thread(self.engine.stop, container, self.grace)
        if exit_code == 137 and self.clock.now() - started >= self.grace:
            self.hub.heroku(
                tracked.name,
                "Error R12 (Exit timeout) -> At least one process failed to exit within"
                f" {self.grace:g} seconds of SIGTERM",
            )
            self.hub.heroku(tracked.name, "Stopping remaining processes with SIGKILL")
        self.hub.heroku(tracked.name, f"Process exited with status {exit_code}")
        tracked.container, tracked.stopping = None, False
        if then == DynoState.DOWN:
            self._set_state(
                tracked, DynoState.COMPLETE if tracked.role == ONE_OFF else DynoState.DOWN
            )
        await asyncio.to_thread(self.engine.remove, container)
        if tracked.role == ONE_OFF:
            self._forget(tracked)

    async def _stop_found(self, found: Dyno) -> None:
        """Stop a dyno that is no longer wanted (scaled down, old release, other size)."""
        tracked = self.dynos.get(found.name)
        if (
            tracked is None
            or tracked.container is None
            or tracked.container.id != found.container_id
        ):
            container = await asyncio.to_thread(self.engine.get, found.container_id)
            tracked = Tracked(found.type, found.index, state=DynoState.UP, container=container)
            await self._stop(tracked)
            return
        await self._cancel_timers(tracked)
        await self._stop(tracked)
        self._forget(tracked)

    # memory: R14 over quota, R15 when the kernel kills at twice the quota
    async def _watch_memory(self) -> None:
        """Sample every running dyno's memory (one cheap one-shot stats call each)."""
        while not self._closing:
            await self.clock.sleep(MEMORY_SAMPLE)
            running = [
                (t, t.container)
                for t in self.dynos.values()
                if t.container is not None and not t.asleep
            ]
            samples = await asyncio.gather(
                *(asyncio.to_thread(self.engine.memory, c) for _, c in running),
                return_exceptions=True,
            )
            for (tracked, container), used in zip(running, samples, strict=True):
                if isinstance(used, int):
                    self._on_memory(tracked, container, used)

    def _on_memory(self, tracked: Tracked, container: Container, used: int) -> None:
        if tracked.container is not container:
            return
        quota = size(tracked.size).memory_mb * 1024 * 1024
        now = self.clock.now()
        if used > quota and now - tracked.warned_memory >= R14_EVERY:
            tracked.warned_memory = now
            self.hub.heroku(tracked.name, _memory_line(used, quota))
            self.hub.heroku(tracked.name, "Error R14 (Memory quota exceeded)")

    async def _died(self, tracked: Tracked, container: Container, exit_code: int) -> None:
        try:
            ended = await asyncio.to_thread(self.engine.exited, container)
        except EngineError:
            ended = None
        oom = ended is not None and ended.oom_killed
        if tracked.container is not container or tracked.stopping:
            return
        if oom:
            quota = size(tracked.size).memory_mb * 1024 * 1024
            used = memory_limit_mb(size(tracked.size)) * 1024 * 1024
            self.hub.heroku(tracked.name, _memory_line(used, quota))
            self.hub.heroku(tracked.name, "Error R15 (Memory quota vastly exceeded)")
            self.hub.heroku(tracked.name, "Stopping process with SIGKILL")
        self._crashed(tracked, exit_code=exit_code)

    # Docker plumbing
    def _spawn(self, tracked: Tracked, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        tracked.tasks.add(task)
        task.add_done_callback(tracked.tasks.discard)

    def _watch_events(self) -> None:
        """Docker's event stream, read in a thread: deaths are seen at once, not polled.

        When the stream breaks (the engine restarted), it is reopened and the formation
        reconciled, so dynos the restart took away come back.
        """
        loop = self._loop
        assert loop is not None

        def read() -> None:
            broken, failures = False, 0
            while not self._closing:
                try:
                    self._events = self.engine.events(self.app)
                    failures = 0
                    if broken:
                        loop.call_soon_threadsafe(self._after_engine_restart)
                    for event in self._events:
                        loop.call_soon_threadsafe(self._on_event, event)
                except Exception as exc:  # the engine went away, or refuses the stream
                    failures += 1
                    if failures == EVENTS_FAILURES_REPORTED and not self._closing:
                        line = f"Docker events unavailable ({_reason(exc)}); retrying"
                        loop.call_soon_threadsafe(self.hub.heroku, "api", line)
                broken = True
                if not self._closing:
                    threading.Event().wait(min(EVENTS_RETRY * 2 ** max(failures - 1, 0), 30.0))

        threading.Thread(target=read, name="docker-events", daemon=True).start()

    def _after_engine_restart(self) -> None:
        self.hub.heroku("api", "Docker engine connection restored; repairing the formation")
        for tracked in list(self.dynos.values()):
            if tracked.container is not None and not tracked.stopping:
                self._spawn(tracked, self._check_alive(tracked, tracked.container))
        self._repair = asyncio.ensure_future(self.reconcile())

    async def _check_alive(self, tracked: Tracked, container: Container) -> None:
        ended = await asyncio.to_thread(self.engine.exited, container)
        if ended is not None and tracked.container is container and not tracked.stopping:
            self._crashed(tracked, exit_code=ended.exit_code)

    def _on_event(self, event: Event) -> None:
        tracked = next(
            (
                t
                for t in (*self.dynos.values(), *self._preboot)
                if t.container is not None and t.container.id == event.container_id
            ),
            None,
        )
        if tracked is None or tracked.container is None or tracked.stopping or tracked.asleep:
            return
        if event.kind == "die":
            self._spawn(tracked, self._died(tracked, tracked.container, event.exit_code))
        elif event.kind == "destroy":  # removed by hand without dying first
            self._crashed(tracked, exit_code=255)

    def _follow(
        self, tracked: Tracked, container: Container, since: dt.datetime | None
    ) -> asyncio.Task[None]:
        """Stream a container's output into the hub (the task ends with the container's
        output); each arrival is also a readiness hint for a booting web dyno."""
        hub, name = self.hub, tracked.name

        def line(time: dt.datetime | None, message: str) -> None:
            hub.app(name, message, time)

        async def follow() -> None:
            with contextlib.suppress(Exception):  # the engine went away: nothing more to read
                await self.engine.follow(container, since, line, tracked.output.set)

        task = asyncio.ensure_future(follow())
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)
        return task

    def _route(self, tracked: Tracked) -> None:
        if self.router and tracked.container is not None and tracked.address:
            self.router.add_backend(tracked.container.id, tracked.address, PORT, tracked.name)

    def _unroute(self, tracked: Tracked) -> None:
        if self.router and tracked.container is not None:
            self.router.remove_backend(tracked.container.id)

    def _update_router(self) -> None:
        if self.router is None:
            return
        from .router import WebStatus  # loaded with the router itself

        web = [t for t in self.dynos.values() if t.is_web]
        states = {t.state for t in web}
        if self.asleep:
            status = WebStatus.EXHAUSTED if self._exhausted else WebStatus.SLEEPING
        elif DynoState.UP in states:
            status = WebStatus.UP
        elif DynoState.STARTING in states or any(t.restart and t.crashes <= 1 for t in web):
            status = WebStatus.STARTING
        elif DynoState.CRASHED in states:
            status = WebStatus.CRASHED
        else:
            status = WebStatus.NONE
        self.router.set_status(status)


def _order(tracked: Tracked) -> tuple[int, str, int]:
    return (tracked.role != FORMATION, tracked.type, tracked.index)


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300]


def _memory_line(used: int, quota: int) -> str:
    return f"Process running mem={used // (1024 * 1024)}MB({100 * used / quota:.1f}%)"
