"""The free and eco tiers: the app sleeps after 30 idle minutes and a request wakes it; their
dynos draw on the month's pool of free dyno hours."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from .. import dynohours
from ..container_engine import FORMATION
from ..dynostate import DynoState
from ..errors import EngineError
from ..formation import size
from ..store import Store
from .fleet import Fleet, Tracked, reason

#: Dyno hours are written to the store this often (schedule time) and at every sleep.
HOURS_EVERY = 60.0
#: A waking app's workers start once the held requests are answered, or after this long.
WORKERS_AFTER = 5.0


class Idling:
    def __init__(self, fleet: Fleet, store: Store, lock: asyncio.Lock) -> None:
        self.fleet, self.store, self.lock = fleet, store, lock  # the manager's reconcile lock
        self.last_request = 0.0
        self.woken = asyncio.Event()
        self.waking: asyncio.Future | None = None
        self.counted_at: dt.datetime | None = None

    def start(self) -> list[asyncio.Future]:
        schedule = self.fleet.schedule
        self.last_request, self.counted_at = schedule.now(), schedule.wall()
        return [asyncio.ensure_future(self._watch()), asyncio.ensure_future(self._count_hours())]

    def touched(self) -> None:
        """A request reached the router: the idle clock starts again."""
        self.last_request = self.fleet.schedule.now()

    def _sleepers(self) -> list[Tracked]:
        """The dynos that sleep with the app: its free and eco formation dynos that run."""
        return [
            t
            for t in self.fleet.dynos.values()
            if t.role == FORMATION and size(t.size).sleeps and t.container is not None
        ]

    def sleeps(self) -> bool:
        """Apps sleep when all their web dynos are free or eco; worker-only apps never do."""
        web = [t for t in self.fleet.dynos.values() if t.is_web]
        return bool(web) and all(size(t.size).sleeps for t in web)

    def _may_idle(self) -> bool:
        return self.sleeps() and all(
            t.state == DynoState.UP for t in self.fleet.dynos.values() if t.is_web
        )

    async def _watch(self) -> None:
        fleet = self.fleet
        while not fleet.closing:
            if fleet.asleep:
                await self.woken.wait()
                continue
            wait = self.last_request + fleet.options.idle_timeout - fleet.schedule.now()
            if wait > 0:
                await fleet.schedule.sleep(wait)
            elif self._may_idle():
                await self.sleep()
            else:  # paid dynos, or not up yet: look again an idle period later
                self.last_request = fleet.schedule.now()

    async def sleep(self, why: str = "Idling") -> None:
        """Stop (or freeze, in pause mode) the web dynos and free/eco workers; the next request
        wakes them."""
        fleet = self.fleet
        async with self.lock:
            sleepers = [
                t for t in self._sleepers() if t.state in (DynoState.UP, DynoState.STARTING)
            ]
            if fleet.asleep or not sleepers or not self.sleeps():
                return
            self.flush_hours()
            fleet.asleep = True
            self.woken.clear()
            for tracked in sleepers:
                await fleet.cancel_timers(tracked)
                tracked.asleep = True
                fleet.hub.heroku(tracked.name, why)
                fleet.routes.remove(tracked)
            fleet.routes.update()
            await asyncio.gather(*(self._doze(t) for t in sleepers))

    async def _doze(self, tracked: Tracked) -> None:
        container, engine = tracked.container, self.fleet.engine
        assert container is not None
        if self.fleet.options.sleep_mode == "pause":
            await asyncio.to_thread(engine.pause, container)
        else:
            await asyncio.to_thread(engine.stop, container, self.fleet.options.grace)
        self.fleet.set_state(tracked, DynoState.DOWN)

    def wake_requested(self) -> None:
        """A request reached the sleeping app (the router holds it): wake the app once."""
        if self.fleet.asleep and (self.waking is None or self.waking.done()):
            self.waking = asyncio.ensure_future(self.wake())

    async def wake(self) -> None:
        async with self.lock:
            await self.wake_locked()

    async def wake_locked(self) -> None:
        """Start (or thaw) the sleeping dynos; requests held meanwhile go to the first web dyno
        up, or get H20 when none comes up within the boot timeout."""
        fleet = self.fleet
        router = fleet.routes.router
        if not fleet.asleep:
            return
        if self._refresh_exhausted():
            fleet.routes.update()
            if router:
                router.fail_held("H82")
            return
        sleepers = [t for t in fleet.dynos.values() if t.asleep]
        fleet.asleep, self.last_request = False, fleet.schedule.now()
        self.counted_at = fleet.schedule.wall()
        for tracked in sleepers:
            fleet.hub.heroku(tracked.name, "Unidling")
            tracked.asleep = False
            fleet.set_state(tracked, DynoState.STARTING)
        web = [t for t in sleepers if t.is_web]
        await asyncio.gather(*(self._rouse(t) for t in web))  # first: a request is waiting
        if router and not any(t.is_web and t.state == DynoState.UP for t in fleet.dynos.values()):
            router.fail_held("H20")
        elif router and web:  # workers would compete for the CPU with the answer
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(router.quiet(), WORKERS_AFTER / fleet.clock.speed)
        await asyncio.gather(*(self._rouse(t) for t in sleepers if not t.is_web))
        self.woken.set()

    async def _rouse(self, tracked: Tracked) -> None:
        fleet, container = self.fleet, tracked.container
        assert container is not None
        pause = fleet.options.sleep_mode == "pause"
        try:
            if pause:
                await asyncio.to_thread(fleet.engine.unpause, container)
            else:
                await asyncio.to_thread(fleet.engine.start, container)
                fleet.follow(tracked, container, since=dt.datetime.now(dt.UTC))
                await fleet.placed(tracked, container)
        except EngineError as exc:
            fleet.hub.heroku(tracked.name, f"Error starting dyno: {reason(exc)}")
            fleet.crashed(tracked, exit_code=None)
            return
        if tracked.is_web:  # thawed, it still listens where it did; restarted, it may move
            await fleet.wait_until_up(tracked, container, tracked.address if pause else None)
        else:
            fleet.set_state(tracked, DynoState.UP)

    async def _count_hours(self) -> None:
        fleet = self.fleet
        while not fleet.closing:
            await fleet.schedule.sleep(HOURS_EVERY)
            self.flush_hours()
            if fleet.exhausted and not fleet.asleep:
                await self.sleep("Dyno hours quota exhausted; sleeping until next month")
            elif fleet.asleep and fleet.exhausted and not self._refresh_exhausted():
                fleet.routes.update()  # a new month: the next request wakes the app

    def flush_hours(self) -> None:
        """Add the free/eco dyno-seconds since the last count to the month's pool usage."""
        now = self.fleet.schedule.wall()
        running = sum(1 for t in self._sleepers() if not t.asleep)
        if self.counted_at is not None and running:
            for month, seconds in dynohours.split(self.counted_at, now, running).items():
                self.store.add_dyno_seconds(month, seconds)
            if dynohours.month(now) != dynohours.month(self.counted_at):
                self.store.set_setting("", dynohours.CHARGED_MONTH, dynohours.month(now))
        self.counted_at = now
        self._refresh_exhausted()

    def _refresh_exhausted(self) -> bool:
        used = self.store.dyno_seconds(dynohours.month(self.fleet.schedule.wall()))
        self.fleet.exhausted = dynohours.remaining(self.fleet.options.quota_hours, used) <= 0
        return self.fleet.exhausted
