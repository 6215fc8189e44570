"""The dyno manager: keeps the app's containers matching its current release and formation.

Runs inside `dynosim up`'s event loop. Docker's blocking calls go to threads; Docker's event
stream reports deaths as they happen; every platform event is logged the way Heroku logs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from dataclasses import dataclass, field

import docker.errors
from docker.models.containers import Container

from . import backoff, dyno, engine, reconcile
from .clock import Clock
from .logs import LogHub
from .procfile import WEB
from .router import Router, WebStatus
from .store import Release, Store

READY_POLL = 0.01


@dataclass(eq=False)
class Tracked:
    """What the supervisor knows of one formation dyno."""

    type: str
    index: int
    state: str = "down"  # starting, up, crashed, down (Heroku's dyno states)
    container: Container | None = None
    started: float = 0.0  # clock time it last went up
    started_at: dt.datetime | None = None
    crashes: int = 0
    stopping: bool = False
    restart: asyncio.Task | None = None
    tasks: set[asyncio.Task] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"{self.type}.{self.index}"

    @property
    def is_web(self) -> bool:
        return self.type == WEB


class Supervisor:
    def __init__(
        self,
        store: Store,
        app: str,
        hub: LogHub,
        router: Router | None = None,
        *,
        grace: float = 30.0,
        boot_timeout: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        self.store, self.app, self.hub, self.router = store, app, hub, router
        self.grace, self.boot_timeout = grace, boot_timeout
        self.clock = clock or Clock()
        self.dynos: dict[str, Tracked] = {}
        self.release: Release | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: object | None = None
        self._closing = False

    # life cycle
    async def start(self) -> None:
        """Create the network, watch Docker's events, bring the formation up."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(dyno.ensure_network, self.app)
        self._watch_events()
        await self.reconcile()

    async def reconcile(self) -> None:
        """Compare desired and actual, and act: adopt, start, stop, remove."""
        self.release = self.store.current_release(self.app)
        if self.release is None:
            return
        release = self.release
        formation = self.store.formation(self.app)
        desired = {
            name: formation[name].quantity if name in formation else 0
            for name in release.process_types
            if name != "release"
        }
        actual = await asyncio.to_thread(dyno.listing, self.app)
        actions = reconcile.decide(desired, release.version, actual, tracked=set(self.dynos))
        await asyncio.gather(
            *(asyncio.to_thread(self._remove_id, d.container_id) for d in actions.remove),
            *(self._stop_untracked(d) for d in actions.stop),
            *(self._adopt(d) for d in actions.adopt),
            *(self._start(self._track(t, i)) for t, i in actions.start),
        )
        self._update_router()

    async def shutdown(self) -> None:
        """Stop every dyno (SIGTERM, grace, SIGKILL), remove containers and the network."""
        self._closing = True
        for tracked in self.dynos.values():
            if tracked.restart:
                tracked.restart.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tracked.restart
        await asyncio.gather(*(self._stop(t) for t in list(self.dynos.values())))
        leftovers = await asyncio.to_thread(dyno.listing, self.app)
        await asyncio.gather(
            *(asyncio.to_thread(self._remove_id, d.container_id) for d in leftovers)
        )
        if self._events is not None:
            with contextlib.suppress(Exception):
                self._events.close()  # type: ignore[attr-defined]
        await asyncio.to_thread(dyno.remove_network, self.app)

    # one dyno
    def _track(self, process_type: str, index: int) -> Tracked:
        tracked = Tracked(process_type, index)
        self.dynos[tracked.name] = tracked
        return tracked

    def _set_state(self, tracked: Tracked, state: str) -> None:
        if tracked.state != state:
            self.hub.heroku(tracked.name, f"State changed from {tracked.state} to {state}")
            tracked.state = state
        if state == "up":
            tracked.started, tracked.started_at = self.clock.now(), dt.datetime.now(dt.UTC)
        self._update_router()

    async def _start(self, tracked: Tracked) -> None:
        release = self.release
        assert release is not None
        command = release.process_types[tracked.type]
        self._set_state(tracked, "starting")
        try:
            container = await asyncio.to_thread(dyno.create, release, tracked.type, tracked.index)
            tracked.container = container
            self.hub.heroku(tracked.name, f"Starting process with command `{command}`")
            await asyncio.to_thread(container.start)
            self._follow_logs(tracked.name, container, since=None)
        except docker.errors.DockerException as exc:
            self.hub.heroku(tracked.name, f"Error starting dyno: {exc}")
            tracked.container = None
            self._crashed(tracked, exit_code=None)
            return
        if tracked.is_web:
            self._spawn(tracked, self._wait_until_up(tracked, container))
        else:
            self._set_state(tracked, "up")

    async def _adopt(self, found: dyno.Dyno) -> None:
        """Take over a dyno left running by an earlier supervisor (no duplicate is started)."""
        tracked = self._track(found.type, found.index)
        container = await asyncio.to_thread(engine.client().containers.get, found.container_id)
        tracked.container, tracked.state = container, "starting"
        self.hub.heroku(tracked.name, "Adopted running dyno from an earlier dynosim up")
        self._follow_logs(tracked.name, container, since=dt.datetime.now(dt.UTC))
        if tracked.is_web:
            await self._wait_until_up(tracked, container)
        else:
            self._set_state(tracked, "up")

    async def _wait_until_up(self, tracked: Tracked, container: Container) -> None:
        """Up means accepting connections on $PORT; R10 if that takes longer than boot_timeout."""
        ip = await asyncio.to_thread(dyno.address, container, self.app)
        deadline = self.clock.now() + self.boot_timeout
        while self.clock.now() < deadline:
            if tracked.container is not container or tracked.state != "starting":
                return
            if ip and await _accepts(ip, dyno.PORT):
                self._set_state(tracked, "up")
                if self.router:
                    self.router.add_backend(tracked.name, ip, dyno.PORT)
                return
            await self.clock.sleep(READY_POLL)
        if tracked.container is not container or tracked.state != "starting":
            return
        self.hub.heroku(
            tracked.name,
            "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within"
            f" {self.boot_timeout:g} seconds of launch",
        )
        self.hub.heroku(tracked.name, "Stopping process with SIGKILL")
        tracked.stopping = True  # the kill is ours: the exit is logged here, not as a new crash
        exit_code = await asyncio.to_thread(_kill, container)
        tracked.stopping = False
        self.hub.heroku(tracked.name, f"Process exited with status {exit_code}")
        self._crashed(tracked, exit_code=None)

    def _crashed(self, tracked: Tracked, exit_code: int | None) -> None:
        """Log the crash and restart on Heroku's cool-off schedule."""
        if exit_code is not None:
            self.hub.heroku(tracked.name, f"Process exited with status {exit_code}")
        if self.router:
            self.router.remove_backend(tracked.name)
        was_stable = tracked.state == "up" and self.clock.now() - tracked.started >= backoff.STABLE
        tracked.crashes = 1 if was_stable else tracked.crashes + 1
        self._set_state(tracked, "crashed")
        container, tracked.container = tracked.container, None
        tracked.restart = asyncio.ensure_future(self._restart_later(tracked, container))

    async def _restart_later(self, tracked: Tracked, old: Container | None) -> None:
        """Remove the dead container, wait out the cool-off, start the dyno again."""
        if old is not None:
            await asyncio.to_thread(dyno.remove, old)
        if self._closing:
            return
        wait = backoff.delay(tracked.crashes)
        if wait:
            self.hub.heroku(
                tracked.name, f"Crashed {tracked.crashes} times; restarting in {wait / 60:g} min"
            )
            await self.clock.sleep(wait)
        tracked.restart = None
        if not self._closing and self.dynos.get(tracked.name) is tracked:
            await self._start(tracked)

    async def _stop(self, tracked: Tracked) -> None:
        container = tracked.container
        if container is None or tracked.state == "down":
            if tracked.state != "down":
                self._set_state(tracked, "down")
            return
        tracked.stopping = True
        if self.router:
            self.router.remove_backend(tracked.name)
        self.hub.heroku(tracked.name, "Stopping all processes with SIGTERM")
        started = self.clock.now()
        exit_code = await asyncio.to_thread(_stop_and_wait, container, self.grace)
        if exit_code == 137 and self.clock.now() - started >= self.grace:
            self.hub.heroku(
                tracked.name,
                "Error R12 (Exit timeout) -> At least one process failed to exit within"
                f" {self.grace:g} seconds of SIGTERM",
            )
            self.hub.heroku(tracked.name, "Stopping remaining processes with SIGKILL")
        self.hub.heroku(tracked.name, f"Process exited with status {exit_code}")
        self._set_state(tracked, "down")
        tracked.container = None
        await asyncio.to_thread(dyno.remove, container)

    async def _stop_untracked(self, found: dyno.Dyno) -> None:
        container = await asyncio.to_thread(engine.client().containers.get, found.container_id)
        tracked = Tracked(found.type, found.index, state="up", container=container)
        await self._stop(tracked)

    # Docker plumbing
    def _spawn(self, tracked: Tracked, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        tracked.tasks.add(task)
        task.add_done_callback(tracked.tasks.discard)

    @staticmethod
    def _remove_id(container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            engine.client().api.remove_container(container_id, force=True)

    def _watch_events(self) -> None:
        """Docker's event stream, read in a thread: deaths are seen at once, not polled."""
        events = engine.client().events(
            decode=True,
            filters={
                "type": "container",
                "event": ["die"],
                "label": [f"{engine.LABEL_APP}={self.app}"],
            },
        )
        self._events = events
        loop = self._loop
        assert loop is not None

        def read() -> None:
            with contextlib.suppress(Exception):
                for event in events:
                    loop.call_soon_threadsafe(self._on_die, event)

        threading.Thread(target=read, name="docker-events", daemon=True).start()

    def _on_die(self, event: dict) -> None:
        attributes = event.get("Actor", {}).get("Attributes", {})
        name = f"{attributes.get(dyno.L_TYPE)}.{attributes.get(dyno.L_INDEX)}"
        tracked = self.dynos.get(name)
        if tracked is None or tracked.container is None or tracked.stopping:
            return
        if tracked.container.id != event.get("id"):
            return
        self._crashed(tracked, exit_code=int(attributes.get("exitCode", -1)))

    def _follow_logs(self, name: str, container: Container, since: dt.datetime | None) -> None:
        """Stream a container's output into the hub from a thread of its own."""
        hub, loop = self.hub, self._loop
        assert loop is not None

        def read() -> None:
            buffer = b""
            with contextlib.suppress(Exception):
                for chunk in container.logs(stream=True, follow=True, timestamps=True, since=since):
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        time, message = _split_timestamp(line.decode(errors="replace"))
                        loop.call_soon_threadsafe(hub.app, name, message, time)

        threading.Thread(target=read, name=f"logs-{name}", daemon=True).start()

    def _update_router(self) -> None:
        if self.router is None:
            return
        web = [t for t in self.dynos.values() if t.is_web]
        states = {t.state for t in web}
        if "up" in states:
            status = WebStatus.UP
        elif "starting" in states or any(t.restart and t.crashes <= 1 for t in web):
            status = WebStatus.STARTING
        elif "crashed" in states:
            status = WebStatus.CRASHED
        else:
            status = WebStatus.NONE
        self.router.set_status(status)


async def _accepts(ip: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=1.0)
    except (TimeoutError, OSError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _stop_and_wait(container: Container, grace: float) -> int:
    dyno.stop(container, grace)
    try:
        return int(container.wait(timeout=10)["StatusCode"])
    except Exception:
        return -1


def _kill(container: Container) -> int:
    with contextlib.suppress(docker.errors.APIError):
        container.kill()
    try:
        return int(container.wait(timeout=10)["StatusCode"])
    except Exception:
        return -1


def _split_timestamp(line: str) -> tuple[dt.datetime | None, str]:
    """Docker prefixes each line with an RFC 3339 nanosecond time; keep microseconds."""
    stamp, _, message = line.partition(" ")
    try:
        time = dt.datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return None, line
    return time, message.rstrip("\r")
