"""An in-memory container engine for unit tests of the dyno manager: containers are records,
programs say how each dyno behaves, and a test makes dynos die or the engine restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dynosim.container_engine import (
    PORT,
    Address,
    Dyno,
    DynoSpec,
    Event,
    Exited,
    Line,
    Usage,
    WaitTimedOut,
)
from dynosim.errors import EngineError

RUNNING = ("running", "paused")


@dataclass
class Program:
    """How a dyno behaves once started."""

    binds: bool = True  # a web dyno accepts connections on $PORT
    exits: int | None = None  # exits with this code right after starting (a one-off's result)
    hangs: bool = False  # a one-off that never exits (its wait times out)
    memory_mb: int = 100
    lines: tuple[str, ...] = ()  # what it prints when it starts
    fails_to_start: str | None = None  # the engine refuses to start it, with this reason
    usage: Usage | None = None  # what `usage` reports (default: memory_mb as rss, 1 task)
    # its shutdown after SIGTERM lasts until this is set (5 s at most); set when it starts
    stops_after: threading.Event | None = None
    started: threading.Event | None = None
    node: str | None = None  # the cluster node it runs on (as a Swarm engine places it)
    port: int = PORT  # where it is reached (a Swarm engine's published port)


@dataclass(eq=False)
class FakeContainer:
    id: str
    spec: DynoSpec
    program: Program
    address: str
    status: str = "created"
    exit_code: int = -1
    oom_killed: bool = False
    removed: bool = False
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return f"{self.spec.process_type}.{self.spec.index}"

    @property
    def release(self) -> int:
        return self.spec.release.version


class _Events:
    def __init__(self, engine: FakeEngine) -> None:
        self._queue: queue.Queue[Event | BaseException | None] = queue.Queue()
        self._engine = engine

    def put(self, item: Event | BaseException | None) -> None:
        self._queue.put(item)

    def __iter__(self) -> Iterator[Event]:
        while (item := self._queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._queue.put(None)


class FakeEngine:
    """The ContainerEngine protocol, in memory. `calls` records (call, dyno, release) in order."""

    def __init__(self, programs: Callable[[DynoSpec], Program] | None = None) -> None:
        self.programs = programs or (lambda spec: Program())
        self.containers: dict[str, FakeContainer] = {}
        self.calls: list[tuple[str, str, int]] = []
        self.networks: set[str] = set()
        self.down = False  # the engine refuses every call (restarting)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._streams: list[_Events] = []

    # what a test does
    def live(self, process_type: str | None = None) -> list[FakeContainer]:
        with self._lock:
            return sorted(
                (
                    c
                    for c in self.containers.values()
                    if not c.removed
                    and c.status in RUNNING
                    and (process_type is None or c.spec.process_type == process_type)
                ),
                key=lambda c: (c.spec.process_type, c.spec.index),
            )

    def die(self, container: FakeContainer, code: int, oom: bool = False, why: str = "") -> None:
        """The dyno's process exits on its own (a crash; `oom`: the kernel killed it; `why`:
        it was lost, e.g. with its node)."""
        self._exit(container, code, oom)
        self._publish(Event(container.id, "die", code, why))

    def restart_engine(self) -> None:
        """dockerd restarts: every container stops, the event streams break."""
        for container in list(self.containers.values()):
            if container.status in RUNNING:
                self._exit(container, 255)
        for stream in list(self._streams):
            stream.put(EngineError("connection to the engine lost"))
        self._streams.clear()

    @property
    def watched(self) -> bool:
        """Whether an event stream is open."""
        return bool(self._streams)

    # the protocol
    def ensure_network(self, app: str) -> None:
        self._check()
        self.networks.add(app)

    def remove_network(self, app: str, wait: float = 0.0) -> bool:
        self.networks.discard(app)
        return True

    def list(self, app: str) -> list[Dyno]:
        self._check()
        with self._lock:
            found = [c for c in self.containers.values() if not c.removed]
        return [
            Dyno(
                app=c.spec.release.app,
                type=c.spec.process_type,
                index=c.spec.index,
                release=c.release,
                role=c.spec.role,
                status=c.status,
                container_id=c.id,
                size=c.spec.size,
            )
            for c in found
            if c.spec.release.app == app
        ]

    def get(self, container_id: str) -> FakeContainer:
        self._check()
        return self.containers[container_id]

    def create(self, spec: DynoSpec) -> FakeContainer:
        self._check()
        number = next(self._ids)
        container = FakeContainer(
            f"c{number}", spec, self.programs(spec), f"10.0.{number // 250}.{number % 250 + 2}"
        )
        with self._lock:
            self.containers[container.id] = container
        self._record("create", container)
        return container

    def start(self, container: FakeContainer) -> None:
        self._check()
        if container.program.fails_to_start:
            raise EngineError(container.program.fails_to_start)
        container.status, container.exit_code = "running", -1
        container.ended.clear()
        self._record("start", container)
        if container.program.started is not None:
            container.program.started.set()
        if container.program.exits is not None:
            self.die(container, container.program.exits)

    def stop(self, container: FakeContainer, grace: float) -> int:
        self._record("stop", container)
        if container.status in RUNNING:
            if container.program.stops_after is not None:
                container.program.stops_after.wait(5)
            self._exit(container, 143)
        self._record("stopped", container)
        return container.exit_code

    def kill(self, container: FakeContainer) -> int:
        self._record("kill", container)
        if container.status in RUNNING:
            self._exit(container, 137)
        return container.exit_code

    def remove(self, container: FakeContainer | str) -> None:
        found = self.containers.get(container if isinstance(container, str) else container.id)
        if found is not None and not found.removed:
            if found.status in RUNNING:
                self._exit(found, 137)
            found.removed = True
            self._record("remove", found)

    def pause(self, container: FakeContainer) -> None:
        container.status = "paused"
        self._record("pause", container)

    def unpause(self, container: FakeContainer) -> None:
        container.status = "running"
        self._record("unpause", container)

    def wait(self, container: FakeContainer, timeout: float) -> int:
        if container.program.hangs:
            raise WaitTimedOut(f"no exit within {timeout:g} seconds")
        container.ended.wait()
        return container.exit_code

    def exited(self, container: FakeContainer) -> Exited | None:
        self._check()
        if container.removed:
            return Exited(255)
        if container.status in RUNNING:
            return None
        return Exited(container.exit_code, container.oom_killed)

    def address(self, container: FakeContainer, app: str) -> Address | None:
        return Address(container.address, container.program.port)

    def node(self, container: FakeContainer) -> str | None:
        return container.program.node

    def memory(self, container: FakeContainer) -> int | None:
        return container.program.memory_mb * 1024 * 1024

    def usage(self, container: FakeContainer) -> Usage | None:
        self._record("usage", container)
        if container.status != "running" or container.removed:
            return None
        if container.program.usage is not None:
            return container.program.usage
        return Usage(container.program.memory_mb * 1024 * 1024, 0, 0, 0, 0, 1)

    def events(self, app: str) -> _Events:
        self._check()
        stream = _Events(self)
        self._streams.append(stream)
        return stream

    async def accepts(self, address: Address) -> bool:
        return any(
            c.address == address.host and c.status == "running" and c.program.binds
            for c in self.live()
        )

    async def follow(
        self,
        container: FakeContainer,
        since: dt.datetime | None,
        line: Line,
        printed: Callable[[], None],
    ) -> None:
        for text in container.program.lines:
            line(None, text)
            printed()
        while container.status in RUNNING and not container.removed:
            await asyncio.sleep(0.005)

    # plumbing
    def _check(self) -> None:
        if self.down:
            raise EngineError("Cannot connect to the Docker daemon")

    def _exit(self, container: FakeContainer, code: int, oom: bool = False) -> None:
        container.status, container.exit_code, container.oom_killed = "exited", code, oom
        container.ended.set()

    def _publish(self, event: Event) -> None:
        for stream in list(self._streams):
            stream.put(event)

    def _record(self, call: str, container: FakeContainer) -> None:
        with self._lock:
            self.calls.append((call, container.name, container.release))
