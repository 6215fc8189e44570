"""The container-engine seam: what the dyno manager asks of whatever runs its dynos.

One protocol, a Docker adapter (`dynosim.docker.DockerEngine`), a fake for unit tests
(`tests/unit/fake_engine.py`), a Swarm adapter (`dynosim.docker.swarm.SwarmEngine`;
docs/architecture.md, "Swarm engine").
Pure: the types here are dynosim's own, never an SDK's.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from .errors import EngineError
from .formation import DEFAULT_SIZE, Size

if TYPE_CHECKING:
    from .store import Release

FORMATION, ONE_OFF = "formation", "one-off"
#: Where every dyno listens; the router and the readiness probe connect here.
PORT = 5000

#: Heroku kills a dyno at twice its memory quota (R15); below that it only warns (R14).
KILL_FACTOR = 2

#: `line(time, message)`: one line a dyno printed, with the engine's timestamp if it has one.
Line = Callable[[dt.datetime | None, str], None]


class Address(NamedTuple):
    """Where the router reaches a web dyno: on one engine its IP on the app network and $PORT;
    on Swarm its node's address and the port published there."""

    host: str
    port: int = PORT


def machine_memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


def memory_limit_mb(chosen: Size) -> int:
    """The hard limit of a dyno: the R15 kill point, clamped to the machine."""
    return min(chosen.memory_mb * KILL_FACTOR, machine_memory_mb())


@dataclass(frozen=True)
class Dyno:
    """A dyno as the engine lists it (found by its labels, e.g. after a restart of `up`)."""

    app: str
    type: str
    index: int
    release: int
    role: str  # FORMATION or ONE_OFF
    status: str  # Docker's words: created, running, paused, exited, dead
    container_id: str
    size: str = DEFAULT_SIZE

    @property
    def name(self) -> str:
        return f"{self.type}.{self.index}"


def one_off_index(listed: list[Dyno]) -> int:
    """Heroku's one-off numbers look random (run.9157): a free four-digit one."""
    taken = {d.index for d in listed if d.role == ONE_OFF}
    return random.choice([n for n in range(1000, 10000) if n not in taken])


@dataclass(frozen=True)
class DynoSpec:
    """What to run: the release's image and config for one dyno; the engine adds the lockdown
    (non-root, no capabilities, the size's limits) and the app's network."""

    release: Release
    process_type: str
    index: int
    role: str = FORMATION
    command: str = ""
    size: str = DEFAULT_SIZE
    env: dict[str, str] | None = None  # a one-off's -e values
    base_env: dict[str, str] | None = None  # the app's .env, under the config vars


class Container(Protocol):
    """A handle on one dyno's container, as `create` or `get` returned it."""

    @property
    def id(self) -> str: ...


@dataclass(frozen=True)
class Exited:
    """How a container that is not running ended."""

    exit_code: int
    oom_killed: bool = False


@dataclass(frozen=True)
class Event:
    """A container died (with its exit code) or was removed without dying first."""

    container_id: str
    kind: str  # "die" or "destroy"
    exit_code: int = -1
    reason: str = ""  # what the engine knows beyond the exit (a cluster node went down)


@dataclass(frozen=True)
class Usage:
    """What a dyno's container uses now (Heroku's runtime metrics): memory in bytes as its
    cgroup counts it, pages moved in and out (None where the kernel keeps no such counter:
    cgroup v2), and the tasks the load average counts (running, runnable or in uninterruptible
    sleep; an estimate from CPU time when the engine's host files are out of reach)."""

    rss: int
    cache: int
    swap: int
    pgpgin: int | None
    pgpgout: int | None
    runnable: float

    @property
    def total(self) -> int:
        """rss + cache + swap: what Heroku's memory_total and R14 count."""
        return self.rss + self.cache + self.swap


class EventStream(Protocol):
    def __iter__(self) -> Iterator[Event]: ...

    def close(self) -> None: ...


class WaitTimedOut(EngineError):
    """`wait` ran out of time; the container still runs."""


class ContainerEngine(Protocol):
    """Blocking calls, safe from any thread (the manager runs them with `asyncio.to_thread`),
    except the two coroutines, which run on the manager's loop. Failures are EngineError."""

    def ensure_network(self, app: str) -> None: ...

    def remove_network(self, app: str, wait: float = 0.0) -> bool: ...

    def list(self, app: str) -> list[Dyno]: ...

    def get(self, container_id: str) -> Container: ...

    def create(self, spec: DynoSpec) -> Container: ...

    def start(self, container: Container) -> None: ...

    def stop(self, container: Container, grace: float) -> int:
        """SIGTERM, `grace` seconds, SIGKILL; the exit code (-1 when it cannot be told)."""
        ...

    def kill(self, container: Container) -> int: ...

    def remove(self, container: Container | str) -> None:
        """Remove a container (or one by id), gone already or not."""
        ...

    def pause(self, container: Container) -> None: ...

    def unpause(self, container: Container) -> None: ...

    def wait(self, container: Container, timeout: float) -> int:
        """The exit code once it exits; WaitTimedOut after `timeout` seconds."""
        ...

    def exited(self, container: Container) -> Exited | None:
        """None while it runs (or is paused); how it ended otherwise (gone: exit code 255)."""
        ...

    def address(self, container: Container, app: str) -> Address | None:
        """Where the router reaches it (None when it is not running)."""
        ...

    def node(self, container: Container) -> str | None:
        """The cluster node it runs on (`ps` shows it); None on one engine."""
        ...

    def memory(self, container: Container) -> int | None:
        """Bytes in use as `docker stats` counts them (no inactive page cache)."""
        ...

    def usage(self, container: Container) -> Usage | None:
        """Memory and runnable tasks now (runtime metrics); None when it is not running."""
        ...

    def events(self, app: str) -> EventStream: ...

    async def accepts(self, address: Address) -> bool:
        """Whether a connection to the dyno at `address` is accepted now."""
        ...

    async def follow(
        self,
        container: Container,
        since: dt.datetime | None,
        line: Line,
        printed: Callable[[], None],
    ) -> None:
        """Hand every line the container prints (from `since`, else from its start) to `line`,
        and call `printed` whenever output arrives, until its output ends."""
        ...
