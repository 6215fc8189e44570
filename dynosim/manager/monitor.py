"""Watching the running dynos: the engine's events (deaths seen at once, not polled), memory
(R14 over the quota, R15 when the kernel kills at twice it), and repair after an engine
restart."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from ..container_engine import Container, Event, EventStream, memory_limit_mb
from ..errors import EngineError
from ..formation import size
from .fleet import Fleet, Tracked, reason

#: Memory is sampled this often; R14 is logged at most every 20 s per dyno while over quota.
MEMORY_SAMPLE, R14_EVERY = 2.0, 20.0
EVENTS_RETRY = 1.0  # seconds, doubled after each failure in a row, at most 30
EVENTS_FAILURES_REPORTED = 3  # an engine restart fails once or twice; more is reported


class Monitor:
    def __init__(self, fleet: Fleet, repair: Callable[[], None]) -> None:
        self.fleet, self.repair = fleet, repair  # repair: reconcile after an engine restart
        self.events: EventStream | None = None

    def start(self) -> asyncio.Future:
        self._watch_events(asyncio.get_running_loop())
        return asyncio.ensure_future(self._watch_memory())

    def close(self) -> None:
        if self.events is not None:
            self.events.close()

    # memory
    async def _watch_memory(self) -> None:
        """Sample every running dyno's memory (one cheap one-shot stats call each)."""
        fleet = self.fleet
        while not fleet.closing:
            await fleet.clock.sleep(MEMORY_SAMPLE)
            running = [
                (t, t.container)
                for t in fleet.dynos.values()
                if t.container is not None and not t.asleep
            ]
            samples = await asyncio.gather(
                *(asyncio.to_thread(fleet.engine.memory, c) for _, c in running),
                return_exceptions=True,
            )
            for (tracked, container), used in zip(running, samples, strict=True):
                if isinstance(used, int):
                    self._on_memory(tracked, container, used)

    def _on_memory(self, tracked: Tracked, container: Container, used: int) -> None:
        if tracked.container is not container:
            return
        quota = size(tracked.size).memory_mb * 1024 * 1024
        now = self.fleet.clock.now()
        if used > quota and now - tracked.warned_memory >= R14_EVERY:
            tracked.warned_memory = now
            self.fleet.hub.heroku(tracked.name, memory_line(used, quota))
            self.fleet.hub.heroku(tracked.name, "Error R14 (Memory quota exceeded)")

    async def _died(
        self, tracked: Tracked, container: Container, exit_code: int, why: str = ""
    ) -> None:
        fleet = self.fleet
        if why:  # the routes go at once (a lost node's dynos answer nothing any more)
            fleet.routes.remove(tracked)
        try:
            ended = await asyncio.to_thread(fleet.engine.exited, container)
        except EngineError:
            ended = None
        if tracked.container is not container or tracked.stopping:
            return
        if ended is not None and ended.oom_killed:
            quota = size(tracked.size).memory_mb * 1024 * 1024
            used = memory_limit_mb(size(tracked.size)) * 1024 * 1024
            fleet.hub.heroku(tracked.name, memory_line(used, quota))
            fleet.hub.heroku(tracked.name, "Error R15 (Memory quota vastly exceeded)")
            fleet.hub.heroku(tracked.name, "Stopping process with SIGKILL")
        if why:
            fleet.hub.heroku(tracked.name, f"Dyno lost: {why}")
        fleet.crashed(tracked, exit_code=exit_code, lost=bool(why))

    # engine events
    def _watch_events(self, loop: asyncio.AbstractEventLoop) -> None:
        """The engine's event stream, read in a thread. When it breaks (the engine restarted),
        it is reopened and the formation repaired, so dynos the restart took away come back."""
        fleet = self.fleet

        def read() -> None:
            broken, failures = False, 0
            while not fleet.closing:
                try:
                    self.events = fleet.engine.events(fleet.app)
                    failures = 0
                    if broken:
                        loop.call_soon_threadsafe(self._after_engine_restart)
                    for event in self.events:
                        loop.call_soon_threadsafe(self._on_event, event)
                except Exception as exc:  # the engine went away, or refuses the stream
                    failures += 1
                    if failures == EVENTS_FAILURES_REPORTED and not fleet.closing:
                        line = f"Docker events unavailable ({reason(exc)}); retrying"
                        loop.call_soon_threadsafe(fleet.hub.heroku, "api", line)
                broken = True
                if not fleet.closing:
                    threading.Event().wait(min(EVENTS_RETRY * 2 ** max(failures - 1, 0), 30.0))

        threading.Thread(target=read, name="docker-events", daemon=True).start()

    def _after_engine_restart(self) -> None:
        fleet = self.fleet
        fleet.hub.heroku("api", "Docker engine connection restored; repairing the formation")
        for tracked in list(fleet.dynos.values()):
            if tracked.container is not None and not tracked.stopping:
                fleet.spawn(tracked, self._check_alive(tracked, tracked.container))
        self.repair()

    async def _check_alive(self, tracked: Tracked, container: Container) -> None:
        ended = await asyncio.to_thread(self.fleet.engine.exited, container)
        if ended is not None and tracked.container is container and not tracked.stopping:
            self.fleet.crashed(tracked, exit_code=ended.exit_code)

    def _on_event(self, event: Event) -> None:
        fleet = self.fleet
        tracked = next(
            (
                t
                for t in (*fleet.dynos.values(), *fleet.preboot)
                if t.container is not None and t.container.id == event.container_id
            ),
            None,
        )
        if tracked is None or tracked.container is None or tracked.stopping or tracked.asleep:
            return
        if event.kind == "die":
            died = self._died(tracked, tracked.container, event.exit_code, event.reason)
            fleet.spawn(tracked, died)
        elif event.kind == "destroy":  # removed by hand without dying first
            fleet.crashed(tracked, exit_code=255)


def memory_line(used: int, quota: int) -> str:
    return f"Process running mem={used // (1024 * 1024)}MB({100 * used / quota:.1f}%)"
