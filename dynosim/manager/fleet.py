"""The app's dynos and one dyno's life: start, readiness (R10), crash and Heroku's cool-offs,
restart, daily cycling, stop (R12), adoption, its output followed into the log hub."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from .. import backoff
from ..clock import Clock
from ..container_engine import (
    FORMATION,
    KILL_FACTOR,
    ONE_OFF,
    Address,
    Container,
    ContainerEngine,
    Dyno,
    DynoSpec,
    machine_memory_mb,
    memory_limit_mb,
)
from ..dynostate import DynoState
from ..errors import EngineError
from ..formation import DEFAULT_SIZE, size
from ..logs import LogHub
from ..options import ManagerOptions
from ..procfile import WEB
from ..store import Release
from .routes import Routes

#: Readiness polls every 10 ms for the first 2 s (most apps bind by then), then every 50 ms,
#: so a slow boot of many dynos at once does not spend a core on connection attempts.
READY_POLL, READY_POLL_LATER, READY_FAST_FOR = 0.01, 0.05, 2.0
#: Heroku cycles each dyno every 24 h plus up to 216 min (random), when cycling is on.
CYCLE_BASE, CYCLE_JITTER = 24 * 3600.0, 216 * 60.0


@dataclass(eq=False)
class Tracked:
    """What the manager knows of one dyno."""

    type: str
    index: int
    role: str = FORMATION
    command: str = ""
    size: str = DEFAULT_SIZE
    state: DynoState = DynoState.DOWN
    since: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    container: Container | None = None
    address: Address | None = None  # where the router reaches a web dyno that is up
    node: str | None = None  # the cluster node it runs on (Swarm), for `ps`
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
        placed = {"node": self.node} if self.node else {}
        return {
            "name": self.name,
            "type": self.type,
            "role": self.role,
            "state": DynoState.IDLE if self.asleep else self.state,
            "since": self.since.isoformat(),
            "command": self.command,
            "size": self.size,
            "release": self.release,
            **placed,
        }


def order(tracked: Tracked) -> tuple[int, str, int]:
    return (tracked.role != FORMATION, tracked.type, tracked.index)


def reason(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300]


class Fleet:
    """The dynos by name, and what happens to each of them. `clock` times boots and stops;
    `schedule` (fast-forwardable) times cool-offs, stability and cycling."""

    def __init__(
        self,
        app: str,
        hub: LogHub,
        engine: ContainerEngine,
        options: ManagerOptions,
        clock: Clock,
        schedule: Clock,
        local_env: dict[str, str],
    ) -> None:
        self.app, self.hub, self.engine, self.options = app, hub, engine, options
        self.clock, self.schedule, self.local_env = clock, schedule, local_env
        self.dynos: dict[str, Tracked] = {}
        self.preboot: list[Tracked] = []  # a new release's web dynos, booting beside the old
        self.release: Release | None = None
        self.closing = False
        self.asleep = False  # the app idled (free and eco dynos)
        self.exhausted = False  # the month's free dyno hours are used up
        self.routes = Routes(self)
        self.state_changed = asyncio.Event()  # set (and replaced) on every state change
        self._followers: set[asyncio.Task] = set()  # dynos' output streams

    def track(self, process_type: str, index: int, **fields: Any) -> Tracked:
        tracked = Tracked(process_type, index, **fields)
        if not tracked.command and self.release and process_type in self.release.process_types:
            tracked.command = self.release.process_types[process_type]
        self.dynos[tracked.name] = tracked
        return tracked

    def forget(self, tracked: Tracked) -> None:
        for task in (tracked.restart, tracked.cycle):
            if task:
                task.cancel()
        if self.dynos.get(tracked.name) is tracked:
            del self.dynos[tracked.name]

    def set_state(self, tracked: Tracked, state: DynoState) -> None:
        if tracked.state != state:
            self.hub.heroku(tracked.name, f"State changed from {tracked.state} to {state}")
            tracked.state, tracked.since = state, dt.datetime.now(dt.UTC)
            changed, self.state_changed = self.state_changed, asyncio.Event()
            changed.set()
        if state == DynoState.UP:
            tracked.started = self.schedule.now()
            if self.options.cycling and tracked.role == FORMATION:
                if tracked.cycle:
                    tracked.cycle.cancel()
                tracked.cycle = asyncio.ensure_future(self._cycle_later(tracked))
        self.routes.update()

    async def start(
        self, tracked: Tracked, env: dict[str, str] | None = None, release: Release | None = None
    ) -> None:
        release = release or self.release
        assert release is not None
        tracked.release = release.version
        self.set_state(tracked, DynoState.STARTING)
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
            tracked.follower = self.follow(tracked, container, since=None)
            await self.placed(tracked, container)
        except EngineError as exc:
            self.hub.heroku(tracked.name, f"Error starting dyno: {reason(exc)}")
            self.crashed(tracked, exit_code=None)
            return
        if tracked.is_web:
            self.spawn(tracked, self.wait_until_up(tracked, container))
        else:
            self.set_state(tracked, DynoState.UP)

    def _create(self, release: Release, tracked: Tracked, env: dict[str, str] | None) -> Container:
        """The engine's create, in a thread. A container made once shutdown has begun is removed
        here: its caller was cancelled, and the shutdown's sweep for leftovers may be over."""
        spec = DynoSpec(
            release, tracked.type, tracked.index, tracked.role, tracked.command, tracked.size,
            env=env, base_env=self.local_env,
        )  # fmt: skip
        container = self.engine.create(spec)
        if self.closing:
            self.engine.remove(container)
            raise asyncio.CancelledError
        return container

    async def adopt(self, found: Dyno) -> None:
        """Take over a dyno left running by an earlier `up` (no duplicate is started)."""
        tracked = self.track(found.type, found.index, size=found.size)
        tracked.release = found.release
        container = await asyncio.to_thread(self.engine.get, found.container_id)
        tracked.container, tracked.state = container, DynoState.STARTING
        self.hub.heroku(tracked.name, "Adopted running dyno from an earlier dynosim up")
        self.follow(tracked, container, since=dt.datetime.now(dt.UTC))
        await self.placed(tracked, container)
        if tracked.is_web:
            await self.wait_until_up(tracked, container)
        else:
            self.set_state(tracked, DynoState.UP)

    async def placed(self, tracked: Tracked, container: Container) -> None:
        """Note the node it runs on (a cluster's; nothing on one engine)."""
        tracked.node = await asyncio.to_thread(self.engine.node, container)

    async def wait_until_up(
        self, tracked: Tracked, container: Container, address: Address | None = None
    ) -> None:
        """Up means accepting connections on $PORT; R10 if that takes longer than boot_timeout.

        A connection is tried at once, again whenever the dyno prints something (servers log
        as they bind), and at the latest after a short poll interval."""
        address = address or await asyncio.to_thread(self.engine.address, container, self.app)
        boot_timeout = self.options.boot_timeout
        started = self.clock.now()
        deadline = started + boot_timeout
        while self.clock.now() < deadline:
            if tracked.container is not container or tracked.state != DynoState.STARTING:
                return
            if address and await self.engine.accepts(address):
                tracked.address = address
                self.set_state(tracked, DynoState.UP)
                self.routes.add(tracked)
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
            f" {boot_timeout:g} seconds of launch",
        )
        self.hub.heroku(tracked.name, "Stopping process with SIGKILL")
        tracked.stopping = True  # the kill is ours: logged here, not again by the die event
        exit_code = await asyncio.to_thread(self.engine.kill, container)
        tracked.stopping = False
        self.hub.heroku(tracked.name, f"Process exited with status {exit_code}")
        self.crashed(tracked, exit_code=None)

    def crashed(self, tracked: Tracked, exit_code: int | None, lost: bool = False) -> None:
        """Log the exit; a formation dyno restarts on Heroku's cool-off, a one-off completes.
        A dyno `lost` with its node did not crash: like a restart, it starts again at once."""
        if exit_code is not None:
            self.hub.heroku(tracked.name, f"Process exited with status {exit_code}")
        self.routes.remove(tracked)
        container, tracked.container = tracked.container, None
        if tracked.cycle:
            tracked.cycle.cancel()
        if tracked.role == ONE_OFF:
            self.set_state(tracked, DynoState.COMPLETE)
            self.spawn(tracked, self._remove_and_forget(tracked, container))
            return
        stable = tracked.state == DynoState.UP and (
            self.schedule.now() - tracked.started >= backoff.STABLE
        )
        tracked.crashes = 1 if stable or lost else tracked.crashes + 1
        # the restart is scheduled first, so that the router holds requests for it
        tracked.restart = asyncio.ensure_future(self._restart_later(tracked, container))
        self.set_state(tracked, DynoState.CRASHED)

    async def _remove_and_forget(self, tracked: Tracked, container: Container | None) -> None:
        if container is not None:
            await asyncio.to_thread(self.engine.remove, container)
        self.forget(tracked)

    async def _restart_later(self, tracked: Tracked, old: Container | None) -> None:
        """Remove the dead container, wait out the cool-off, start the dyno again."""
        if old is not None:
            await asyncio.to_thread(self.engine.remove, old)
        wait = backoff.delay(tracked.crashes)
        if self.closing:
            return
        if wait:
            self.hub.heroku(
                tracked.name,
                f"Crashed {tracked.crashes} times in a row; restarting in {wait / 60:g} min",
            )
            await self.schedule.sleep(wait)
        tracked.restart = None
        if not self.closing and self.dynos.get(tracked.name) is tracked:
            await self.start(tracked)

    async def restart(self, tracked: Tracked, reason: str | None) -> None:
        """Stop and start one formation dyno; restarts reset the crash count (Heroku)."""
        await self.cancel_timers(tracked)
        tracked.crashes = 0
        if reason:
            self.hub.heroku(tracked.name, reason)
        if tracked.container is not None:
            await self.stop(tracked, then=DynoState.STARTING if reason else DynoState.DOWN)
        if not self.closing and self.dynos.get(tracked.name) is tracked:
            await self.start(tracked)

    async def _cycle_later(self, tracked: Tracked) -> None:
        await self.schedule.sleep(CYCLE_BASE + random.uniform(0, CYCLE_JITTER))
        tracked.cycle = None
        if not self.closing and tracked.state == DynoState.UP:
            await self.restart(tracked, "Cycling")

    async def cancel_timers(self, tracked: Tracked) -> None:
        for task in (tracked.restart, tracked.cycle):
            if task and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        tracked.restart = tracked.cycle = None

    async def stop(self, tracked: Tracked, then: DynoState = DynoState.DOWN) -> None:
        """SIGTERM, grace, SIGKILL with Heroku's log lines; the state becomes `then`."""
        container = tracked.container
        if container is None:
            if tracked.state not in (DynoState.DOWN, DynoState.COMPLETE):
                self.set_state(tracked, DynoState.DOWN)
            return
        grace = self.options.grace
        tracked.stopping = True
        self.routes.remove(tracked)
        if then != DynoState.DOWN:
            self.set_state(tracked, then)
        self.hub.heroku(tracked.name, "Stopping all processes with SIGTERM")
        started = self.clock.now()
        exit_code = await asyncio.to_thread(self.engine.stop, container, grace)
        if exit_code == 137 and self.clock.now() - started >= grace:
            self.hub.heroku(
                tracked.name,
                "Error R12 (Exit timeout) -> At least one process failed to exit within"
                f" {grace:g} seconds of SIGTERM",
            )
            self.hub.heroku(tracked.name, "Stopping remaining processes with SIGKILL")
        self.hub.heroku(tracked.name, f"Process exited with status {exit_code}")
        tracked.container, tracked.stopping = None, False
        if then == DynoState.DOWN:
            self.set_state(
                tracked, DynoState.COMPLETE if tracked.role == ONE_OFF else DynoState.DOWN
            )
        await asyncio.to_thread(self.engine.remove, container)
        if tracked.role == ONE_OFF:
            self.forget(tracked)

    async def stop_found(self, found: Dyno, restart: bool = False) -> None:
        """Stop a dyno no longer wanted (scaled down, old release, other size); one that starts
        again (`restart`: a new size) stays tracked, up to starting: requests wait, never H14."""
        tracked = self.dynos.get(found.name)
        container = tracked.container if tracked is not None else None
        if tracked is None or container is None or container.id != found.container_id:
            container = await asyncio.to_thread(self.engine.get, found.container_id)
            tracked = Tracked(found.type, found.index, state=DynoState.UP, container=container)
            await self.stop(tracked)
            return
        await self.cancel_timers(tracked)
        if restart:
            tracked.crashes = 0  # a restart resets it (Heroku)
        await self.stop(tracked, then=DynoState.STARTING if restart else DynoState.DOWN)
        if not restart:
            self.forget(tracked)

    def spawn(self, tracked: Tracked, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        tracked.tasks.add(task)
        task.add_done_callback(tracked.tasks.discard)

    def follow(
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

    async def end_followers(self) -> None:
        """Stopped dynos' last lines: their streams end with them (2 s at most)."""
        if self._followers:
            _, unended = await asyncio.wait(set(self._followers), timeout=2)
            for task in unended:
                task.cancel()
