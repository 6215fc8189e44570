"""The dyno manager on a fake engine and injectable clocks: Heroku's dyno life cycle (crash
cool-offs, R10, R14/R15, scaling, preboot, release phase, sleep and wake, dyno hours, adoption,
repair after an engine restart, runtime metrics) in seconds, without Docker."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from fake_engine import FakeEngine, Program

from dynosim import addons, backoff, dynohours, features, labs
from dynosim.clock import Clock
from dynosim.container_engine import DynoSpec, Usage
from dynosim.errors import ReleaseError
from dynosim.formation import Entry
from dynosim.logs import LogHub
from dynosim.manager import DynoManager, metrics, monitor
from dynosim.options import ManagerOptions
from dynosim.router import WebStatus
from dynosim.store import FAILED, SUCCEEDED, Store

APP = "demo"
PROCFILE = {"web": "serve", "worker": "work"}


class FakeRouter:
    """What the manager tells a router: backends and the web status."""

    def __init__(self) -> None:
        self.backends: dict[str, str] = {}  # container id -> dyno name
        self.addresses: dict[str, tuple[str, int]] = {}  # dyno name -> (host, port)
        self.statuses: list[WebStatus] = []
        self.failed: list[str] = []
        self.drained: list[str] = []
        self.on_request: Callable[[], None] = lambda: None
        self.on_wake: Callable[[], None] = lambda: None

    def add_backend(self, key: str, host: str, port: int, name: str | None = None) -> None:
        self.backends[key] = name or key
        self.addresses[name or key] = (host, port)

    def remove_backend(self, key: str) -> None:
        self.backends.pop(key, None)

    async def drain(self, key: str, timeout: float) -> None:
        self.drained.append(key)
        self.remove_backend(key)

    def set_status(self, status: WebStatus) -> None:
        if not self.statuses or self.statuses[-1] != status:
            self.statuses.append(status)

    def fail_held(self, code: str) -> None:
        self.failed.append(code)

    async def quiet(self) -> None:
        return None


class Harness:
    """A store with an app, a fake engine, a log hub and a manager over them."""

    def __init__(self, tmp_path: Path, programs=None, **options) -> None:
        self.store = Store(tmp_path / "state.db")
        self.store.ensure_app(APP, tmp_path)
        self.engine = FakeEngine(programs)
        self.hub = LogHub(keep=10_000)
        self.router = FakeRouter()
        self.schedule = Clock()  # cool-offs, cycling, idling, hours: advanced by the tests
        self.options = ManagerOptions(**{"grace": 5.0, **options})
        self.addon_servers: addons.Servers | None = None
        self.manager = self.new_manager()

    def new_manager(self) -> DynoManager:
        return DynoManager(
            self.store,
            APP,
            self.hub,
            engine=self.engine,
            clock=Clock(speed=1000),  # boots and stops: 60 s of boot timeout is 60 ms
            schedule=self.schedule,
            options=self.options,
            addon_servers=self.addon_servers,
        )

    async def start(self) -> None:
        """Start the manager, and wait until it watches the engine's events (as Docker's
        stream, the fake's only reports what happens once it is open)."""
        await self.manager.start()
        await self.until(lambda: self.engine.watched, "events watched")

    def release(self, process_types=PROCFILE, pending=False, **fields):
        release = self.store.create_release(
            APP,
            image="dynosim/demo:1",
            source_hash="h",
            description="Deploy 1",
            process_types=process_types,
            status="pending" if pending else SUCCEEDED,
            **fields,
        )
        return release

    def scale(self, size: str = "Standard-1X", **quantities: int) -> None:
        self.store.set_formation(
            APP, {name: Entry(name, count, size) for name, count in quantities.items()}
        )

    def lines(self, dyno: str | None = None) -> list[str]:
        return [
            f"{line.source}[{line.dyno}]: {line.message}"
            for line in self.hub.recent
            if dyno is None or line.dyno == dyno
        ]

    def messages(self, dyno: str) -> list[str]:
        return [line.message for line in self.hub.recent if line.dyno == dyno]

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 5) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"never {what}:\n" + "\n".join(self.lines()))
            await asyncio.sleep(0.005)

    async def logged(self, dyno: str, pattern: str, count: int = 1) -> None:
        regex = re.compile(pattern)
        await self.until(
            lambda: sum(bool(regex.search(m)) for m in self.messages(dyno)) >= count,
            f"{count} x {pattern!r} from {dyno}",
        )

    async def up(self, *dynos: str) -> None:
        await self.until(lambda: all(self.state(d) == "up" for d in dynos), " and ".join(dynos))

    async def restarted_after_a_first_crash(self, process_type: str) -> None:
        """Its dyno .1 up, crashed once, and up again (a first crash restarts at once)."""
        await self.up(f"{process_type}.1")
        self.crash(process_type)
        await self.until(lambda: len(self.engine.live(process_type)) == 1, "first restart")
        await self.up(f"{process_type}.1")

    def crash(self, process_type: str, code: int = 1, oom: bool = False, why: str = "") -> None:
        """The first running dyno of the type exits on its own (or is lost: `why`)."""
        self.engine.die(self.engine.live(process_type)[0], code, oom, why)

    def state(self, dyno: str) -> str:
        tracked = self.manager.dynos.get(dyno)
        return str(tracked.state) if tracked else "gone"


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


@pytest.fixture
def harness(tmp_path):
    made: list[Harness] = []

    def make(programs=None, *, formation=None, size="Standard-1X", **options) -> Harness:
        """With a `formation`, the app has its first release (PROCFILE) and that formation."""
        h = Harness(tmp_path, programs, **options)
        if formation is not None:
            h.release()
            h.scale(size, **formation)
        made.append(h)
        return h

    return make


def by_type(**programs: Program) -> Callable[[DynoSpec], Program]:
    return lambda spec: programs.get(spec.process_type, Program())


# scaling
def test_scaling_up_starts_the_next_numbers_and_down_stops_the_highest_first(harness):
    h = harness(formation=dict(web=1, worker=0))

    async def test():
        await h.start()
        await h.up("web.1")
        h.scale(web=3, worker=0)
        await h.manager.reconcile()
        await h.until(lambda: len(h.engine.live("web")) == 3, "3 web dynos")
        h.scale(web=1, worker=0)
        await h.manager.reconcile()
        assert [c.name for c in h.engine.live()] == ["web.1"]
        stops = [name for call, name, _ in h.engine.calls if call == "stop"]
        assert stops == ["web.3", "web.2"]
        await h.manager.shutdown()
        assert h.engine.live() == [] and h.engine.networks == set()

    run(test)


def test_a_size_change_restarts_the_web_dynos_with_requests_held_never_h14(harness):
    """`ps:type web=Standard-2X`: the web dynos go from up to starting (a restart, as Heroku
    logs it) and come back at the new size; meanwhile requests are held, never answered H14
    (no web dynos in the formation): found on Swarm, where the stops take longer."""
    h = harness(formation=dict(web=2, worker=0))

    async def test():
        await h.start()
        h.manager.attach_router(h.router)
        await h.until(lambda: len(h.router.backends) == 2, "2 backends")
        h.router.statuses.clear()
        h.scale("Standard-2X", web=2, worker=0)
        await h.manager.reconcile()
        await h.up("web.1", "web.2")
        assert {c.spec.size for c in h.engine.live("web")} == {"Standard-2X"}
        statuses = h.router.statuses
        assert WebStatus.NONE not in statuses and statuses[-2:] == [
            WebStatus.STARTING,
            WebStatus.UP,
        ]
        for dyno in ("web.1", "web.2"):
            changes = [m for m in h.messages(dyno) if m.startswith("State changed")]
            assert changes[-2:] == [
                "State changed from up to starting",
                "State changed from starting to up",
            ]
        await h.manager.shutdown()

    run(test)


# crashes
def test_on_a_cluster_ps_says_where_each_dyno_runs_and_the_router_gets_its_port(harness):
    h = harness(by_type(web=Program(node="node2", port=30001)), formation={"web": 1})

    async def test() -> None:
        await h.start()
        await h.up("web.1")
        h.manager.attach_router(h.router)
        (web,) = h.manager.snapshot()
        assert web["node"] == "node2"
        assert h.router.addresses["web.1"][1] == 30001
        await h.manager.shutdown()

    run(test)


def test_crashes_restart_at_once_then_after_heroku_cool_offs_of_20_and_40_minutes(harness):
    h = harness(formation=dict(web=0, worker=1))

    async def test():
        await h.start()
        await h.up("worker.1")
        for crash, wait in ((1, 0), (2, 20), (3, 40)):
            h.crash("worker")
            await h.logged("worker.1", "^Process exited with status 1$", crash)
            if wait:
                await h.logged(
                    "worker.1", f"Crashed {crash} times in a row; restarting in {wait} min"
                )
                await asyncio.sleep(0.05)
                assert h.engine.live("worker") == []  # still cooling off
                h.schedule.advance(wait * 60)
            await h.until(lambda: h.engine.live("worker"), f"restart after crash {crash}")
            await h.until(lambda: h.state("worker.1") == "up", f"up after crash {crash}")
        assert h.messages("worker.1").count("Process exited with status 1") == 3
        await h.manager.shutdown()

    run(test)


def test_a_dyno_up_for_ten_minutes_counts_its_next_crash_as_the_first(harness):
    h = harness(formation=dict(web=0, worker=1))

    async def test():
        await h.start()
        await h.restarted_after_a_first_crash("worker")
        h.schedule.advance(backoff.STABLE)
        h.crash("worker")
        await h.until(lambda: len(h.engine.live("worker")) == 1, "restart at once")
        assert not any("times in a row" in m for m in h.messages("worker.1"))
        await h.manager.shutdown()

    run(test)


def test_a_dyno_lost_with_its_node_is_logged_and_restarts_at_once_even_after_a_crash(harness):
    h = harness(formation=dict(web=0, worker=1))

    async def test():
        await h.start()
        await h.restarted_after_a_first_crash("worker")
        h.crash("worker", code=255, why="node node3 down")
        await h.logged("worker.1", "Dyno lost: node node3 down")
        await h.until(lambda: len(h.engine.live("worker")) == 1, "restart at once")
        assert not any("times in a row" in m for m in h.messages("worker.1"))
        await h.manager.shutdown()

    run(test)


def test_a_web_dyno_that_never_binds_gets_r10_is_killed_and_restarted(harness):
    h = harness(by_type(web=Program(binds=False)), formation=dict(web=1, worker=0))

    async def test():
        await h.start()
        await h.logged("web.1", "Crashed 2 times in a row; restarting in 20 min")
        r10 = (
            "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 60 seconds"
            " of launch"
        )
        messages = h.messages("web.1")
        assert messages.count(r10) == 2
        after = messages[messages.index(r10) :]
        assert after[1:3] == ["Stopping process with SIGKILL", "Process exited with status 137"]
        assert h.router.backends == {}
        await h.manager.shutdown()

    run(test)


# memory
def test_over_its_quota_a_dyno_logs_r14_and_killed_at_twice_it_r15(harness):
    h = harness(by_type(worker=Program(memory_mb=600)), formation=dict(web=0, worker=1))

    async def test():
        await h.start()
        await h.logged("worker.1", r"^Error R14 \(Memory quota exceeded\)$")
        assert "Process running mem=600MB(117.2%)" in h.messages("worker.1")
        h.crash("worker", 137, oom=True)
        await h.logged("worker.1", r"^Error R15 \(Memory quota vastly exceeded\)$")
        messages = h.messages("worker.1")
        r15 = messages.index("Error R15 (Memory quota vastly exceeded)")
        assert messages[r15 - 1] == "Process running mem=1024MB(200.0%)"
        assert messages[r15 + 1 : r15 + 3] == [
            "Stopping process with SIGKILL",
            "Process exited with status 137",
        ]
        await h.up("worker.1")
        await h.manager.shutdown()

    run(test)


# releases
def set_preboot(h: Harness) -> None:
    """What `dynosim features:enable preboot` writes (stored.Features), in the harness's store."""
    h.store.set_setting(APP, features.feature(features.PREBOOT).setting, features.ON)


def web_calls(h: Harness) -> list[tuple[str, int]]:
    """The engine's start and stop calls on web dynos, with the release of each."""
    return [
        (call, release)
        for call, name, release in h.engine.calls
        if name.startswith("web") and call in ("start", "stop")
    ]


def test_preboot_routes_to_the_new_web_dynos_before_the_old_ones_stop(harness):
    h = harness(formation=dict(web=2, worker=0))
    set_preboot(h)

    async def test():
        await h.start()
        h.manager.attach_router(h.router)
        await h.until(lambda: len(h.router.backends) == 2, "2 backends")
        old = set(h.router.backends)
        h.release(pending=True, config={"GREETING": "hi"})
        await h.manager.deploy(2, lambda _: None)
        await h.until(lambda: len(h.engine.live("web")) == 2, "old dynos retired")
        assert set(h.router.drained) == old
        assert {c.release for c in h.engine.live("web")} == {2}
        assert set(h.router.backends) == {c.id for c in h.engine.live("web")}
        calls = [
            (call, release) for call, name, release in h.engine.calls if name.startswith("web")
        ]
        last_new_start = max(i for i, c in enumerate(calls) if c == ("start", 2))
        first_old_stop = min(i for i, c in enumerate(calls) if c == ("stop", 1))
        assert last_new_start < first_old_stop
        assert h.store.release(APP, 2).status == SUCCEEDED
        await h.manager.shutdown()

    run(test)


def test_without_preboot_the_new_web_dynos_start_as_the_old_ones_get_sigterm_requests_wait(
    harness,
):
    # Heroku: "the dyno manager spins up new dynos as soon as it sends the shutdown signals to
    # the old dynos"; here the old ones exit only once a new one started (or after 5 s)
    started = threading.Event()
    h = harness(
        lambda spec: Program(stops_after=started) if spec.release.version == 1
        else Program(started=started),
        formation=dict(web=2, worker=0),
    )  # fmt: skip

    async def test():
        await h.start()
        h.manager.attach_router(h.router)
        await h.until(lambda: len(h.router.backends) == 2, "2 backends")
        old = set(h.router.backends)
        h.router.statuses.clear()
        h.release(pending=True, config={"GREETING": "hi"})
        await h.manager.deploy(2, lambda _: None)
        assert set(h.router.drained) == old  # drained as the router drains, then SIGTERM
        assert {c.release for c in h.engine.live("web")} == {2}
        assert set(h.router.backends) == {c.id for c in h.engine.live("web")}
        calls = [
            (call, release) for call, name, release in h.engine.calls if name.startswith("web")
        ]
        first_old_stop = min(i for i, c in enumerate(calls) if c == ("stop", 1))
        first_new_start = min(i for i, c in enumerate(calls) if c == ("start", 2))
        first_old_exit = min(i for i, c in enumerate(calls) if c == ("stopped", 1))
        assert first_old_stop < first_new_start < first_old_exit
        # up while web.2 still serves, then requests are held (STARTING) until a new one is
        # up: none is failed, and never H14 (no web dynos)
        assert h.router.statuses == [WebStatus.UP, WebStatus.STARTING, WebStatus.UP]
        assert h.router.failed == []
        assert h.messages("web.1").count("State changed from up to starting") == 1
        assert h.store.release(APP, 2).status == SUCCEEDED
        await h.manager.shutdown()

    run(test)


def test_eco_web_dynos_never_preboot_even_with_the_feature_on(harness):
    h = harness(formation=dict(web=1, worker=0), size="Eco")
    set_preboot(h)

    async def test():
        await h.start()
        h.manager.attach_router(h.router)
        await h.up("web.1")
        h.release(pending=True, config={"GREETING": "hi"})
        await h.manager.deploy(2, lambda _: None)
        calls = web_calls(h)
        assert calls.index(("stop", 1)) < calls.index(("start", 2))
        await h.manager.shutdown()

    run(test)


@pytest.mark.parametrize(
    "broken", [Program(binds=False), Program(exits=1)], ids=["never-binds", "crashes"]
)
def test_without_preboot_a_new_web_dyno_that_fails_fails_the_release_and_the_old_one_restarts(
    harness, broken
):
    h = harness(
        lambda spec: Program() if spec.release.version == 1 else broken,
        formation=dict(web=1, worker=0),
        boot_timeout=0.05,
    )

    async def test():
        await h.start()
        h.manager.attach_router(h.router)
        await h.up("web.1")
        h.release(pending=True, config={"BROKEN": "1"})
        with pytest.raises(ReleaseError) as failed:
            await h.manager.deploy(2, lambda _: None)
        assert str(failed.value) == (
            "release v2 failed: web.1 of v2 did not come up; the previous release is started again"
        )
        assert h.store.release(APP, 2).status == FAILED
        await h.up("web.1")
        assert [(c.name, c.release) for c in h.engine.live("web")] == [("web.1", 1)]
        assert h.router.statuses[-1] == WebStatus.UP
        await h.manager.shutdown()

    run(test)


class FakeAddonServers:
    """Where add-on servers run, as the manager calls it: what it was asked, in order, beside
    the engine's calls."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine, self.calls = engine, []

    def start(self, found, progress) -> str | None:
        self.calls.append(("start", found.name, len(self.engine.live())))
        return "node2"

    def stop(self, found) -> None:
        self.calls.append(("stop", found.name, len(self.engine.live())))

    def remove(self, found) -> None:
        self.calls.append(("remove", found.name, len(self.engine.live())))

    def tidy(self, app: str) -> None:
        self.calls.append(("tidy", app, len(self.engine.live())))


def test_add_on_servers_start_before_the_dynos_and_stop_after_where_up_runs_them(harness):
    h = harness(formation=dict(web=1, worker=0))
    servers = h.addon_servers = FakeAddonServers(h.engine)
    h.manager = h.new_manager()
    database = addons.new_addon(APP, "heroku-postgresql", "DATABASE_URL")
    h.store.add_addon(database)
    cache = addons.new_addon(APP, "heroku-redis", "REDIS_URL")

    async def test():
        await h.start()
        await h.up("web.1")
        assert servers.calls == [("start", database.name, 0)]  # before any dyno
        assert h.lines(database.name) == [
            f"heroku[{database.name}]: heroku-postgresql serving as DATABASE_URL on node2"
        ]
        h.store.add_addon(cache)  # addons:create while `up` runs: started before its release
        h.release(pending=True)
        await h.manager.deploy(2, lambda _: None)
        assert servers.calls[1:] == [("start", cache.name, 1)]
        await h.manager.shutdown()
        assert servers.calls[2:] == [("stop", database.name, 0), ("stop", cache.name, 0)]

    run(test)


def test_a_failing_release_phase_fails_the_release_and_the_old_one_keeps_serving(harness):
    h = harness(
        by_type(release=Program(exits=1, lines=("migrating", "boom"))),
        formation=dict(web=1, worker=0),
    )

    async def test():
        await h.start()
        await h.up("web.1")
        h.release({**PROCFILE, "release": "migrate"}, pending=True)
        with pytest.raises(ReleaseError) as failed:
            await h.manager.deploy(2, lambda _: None)
        assert str(failed.value) == (
            "release v2 failed: release command `migrate` exited with status 1"
        )
        assert [line for line in failed.value.tail if line in ("migrating", "boom")] == [
            "migrating",
            "boom",
        ]
        assert h.store.release(APP, 2).status == FAILED
        assert [(c.name, c.release) for c in h.engine.live()] == [("web.1", 1)]
        await h.manager.shutdown()

    run(test)


def test_a_release_phase_that_outlasts_its_timeout_is_killed(harness):
    h = harness(
        by_type(release=Program(hangs=True)), release_timeout=3600, formation=dict(web=0, worker=0)
    )

    async def test():
        await h.start()
        h.release({**PROCFILE, "release": "migrate"}, pending=True)
        with pytest.raises(ReleaseError, match="release command timed out after 3600 seconds"):
            await h.manager.deploy(2, lambda _: None)
        assert ("kill", next(n for _, n, _ in h.engine.calls if n.startswith("release")), 2) in (
            h.engine.calls
        )
        await h.manager.shutdown()

    run(test)


def test_a_new_release_starts_a_cooling_off_dyno_at_once_and_resets_its_count(harness):
    h = harness(formation=dict(web=0, worker=1))

    async def test():
        await h.start()
        await h.up("worker.1")
        h.crash("worker")
        await h.until(lambda: h.engine.live("worker"), "restarted at once")
        await h.up("worker.1")
        h.crash("worker")
        await h.logged("worker.1", "Crashed 2 times in a row; restarting in 20 min")
        h.release(pending=True, config={"FIXED": "1"})
        await h.manager.deploy(2, lambda _: None)
        await h.until(lambda: [c.release for c in h.engine.live("worker")] == [2], "worker on v2")
        h.crash("worker")
        await h.until(lambda: [c.release for c in h.engine.live("worker")] == [2], "restarted")
        assert h.messages("worker.1").count("Crashed 2 times in a row; restarting in 20 min") == 1
        await h.manager.shutdown()

    run(test)


# sleep, wake, dyno hours
def test_an_eco_app_sleeps_after_30_idle_minutes_and_a_request_wakes_it(harness):
    h = harness(formation=dict(web=1, worker=1), size="Eco")

    async def test():
        await h.start()
        h.manager.attach_router(h.router)
        await h.until(lambda: len(h.engine.live()) == 2 and h.router.backends, "up and routed")
        h.schedule.advance(30 * 60)
        await h.until(lambda: h.manager.asleep and not h.engine.live(), "asleep")
        assert h.router.statuses[-1] == WebStatus.SLEEPING and h.router.backends == {}
        assert "Idling" in h.messages("web.1") and "Idling" in h.messages("worker.1")
        h.router.on_wake()  # a request arrived: the router holds it and asks for a wake
        await h.until(lambda: h.router.backends and len(h.engine.live()) == 2, "awake")
        assert h.router.statuses[-1] == WebStatus.UP and h.router.failed == []
        assert "Unidling" in h.messages("web.1")
        await h.manager.shutdown()

    run(test)


def test_a_wake_whose_web_dyno_cannot_bind_answers_the_held_requests_h20(harness):
    h = harness(sleep_mode="stop", formation=dict(web=1, worker=0), size="Eco")

    async def test():
        await h.start()
        h.manager.attach_router(h.router)
        await h.until(lambda: h.router.backends, "routed")
        await h.manager.sleep()
        for container in h.engine.containers.values():
            container.program = Program(binds=False)
        await h.manager.wake()
        assert h.router.failed == ["H20"]
        await h.manager.shutdown()

    run(test)


def test_pause_mode_freezes_and_thaws_the_same_containers(harness):
    h = harness(sleep_mode="pause", formation=dict(web=1, worker=0), size="Eco")

    async def test():
        await h.start()
        await h.up("web.1")
        await h.manager.sleep()
        await h.manager.wake()
        await h.up("web.1")
        assert [c for c, _, _ in h.engine.calls if c in ("create", "pause", "unpause")] == [
            "create",
            "pause",
            "unpause",
        ]
        await h.manager.shutdown()

    run(test)


def test_eco_dyno_hours_are_counted_per_running_dyno_until_the_app_sleeps(harness):
    h = harness(formation=dict(web=1, worker=1), size="Eco")

    async def test():
        await h.start()
        await h.up("web.1", "worker.1")
        month = dynohours.month(h.schedule.wall())
        h.schedule.advance(600)  # 10 minutes, 2 dynos
        await asyncio.sleep(0.01)  # the jump happens on the loop's next turn
        await h.manager.sleep()
        used = h.store.dyno_seconds(month)
        assert 1200 <= used < 1210
        h.schedule.advance(3600)  # asleep: nothing is counted
        await asyncio.sleep(0.01)
        await h.manager.shutdown()
        assert h.store.dyno_seconds(month) == used

    run(test)


# a new supervisor, a restarted engine
def test_a_new_manager_adopts_running_dynos_instead_of_starting_duplicates(harness):
    h = harness(formation=dict(web=1, worker=1))

    async def test():
        await h.start()
        await h.until(lambda: len(h.engine.live()) == 2, "2 dynos")
        running = [c.id for c in h.engine.live()]
        h.manager = h.new_manager()  # the first `up` was killed: its dynos run on
        await h.start()
        await h.up("web.1", "worker.1")
        assert [c.id for c in h.engine.live()] == running
        assert "Adopted running dyno from an earlier dynosim up" in h.messages("web.1")
        assert [c for c, _, _ in h.engine.calls].count("create") == 2
        await h.manager.shutdown()

    run(test)


def test_after_an_engine_restart_the_formation_is_repaired(harness, monkeypatch):
    monkeypatch.setattr(monitor, "EVENTS_RETRY", 0.01)
    h = harness(formation=dict(web=1, worker=1))

    async def test():
        await h.start()
        await h.until(lambda: len(h.engine.live()) == 2, "2 dynos")
        before = {c.id for c in h.engine.live()}
        h.engine.restart_engine()
        await h.logged("api", "Docker engine connection restored; repairing the formation")
        await h.until(
            lambda: len(h.engine.live()) == 2 and not before & {c.id for c in h.engine.live()},
            "2 new dynos",
        )
        assert "Process exited with status 255" in h.messages("worker.1")
        await h.manager.shutdown()

    run(test)


def test_a_restart_resets_the_crash_count(harness):
    h = harness(formation=dict(web=0, worker=1))

    async def test():
        await h.start()
        await h.up("worker.1")
        h.crash("worker")
        await h.until(lambda: h.engine.live("worker"), "restarted at once")
        assert await h.manager.restart("worker") == ["worker.1"]
        await h.up("worker.1")
        h.crash("worker")
        await h.until(lambda: h.engine.live("worker"), "a first crash again: at once")
        assert "Restarting" in h.messages("worker.1")
        assert not any("times in a row" in m for m in h.messages("worker.1"))
        await h.manager.shutdown()

    run(test)


def test_with_cycling_each_dyno_restarts_within_a_day_and_216_minutes(harness):
    h = harness(cycling=True, formation=dict(web=1, worker=0))

    async def test():
        await h.start()
        await h.up("web.1")
        first = h.engine.live("web")[0]
        h.schedule.advance(24 * 3600 + 216 * 60)
        await h.logged("web.1", "^Cycling$")
        await h.until(lambda: h.engine.live("web") and h.engine.live("web")[0] is not first, "new")
        await h.up("web.1")
        assert "State changed from up to starting" in h.messages("web.1")
        await h.manager.shutdown()

    run(test)


def test_an_app_of_eco_workers_only_never_sleeps_but_its_hours_count(harness):
    h = harness(formation=dict(web=0, worker=1), size="Eco")

    async def test():
        await h.start()
        await h.up("worker.1")
        month = dynohours.month(h.schedule.wall())
        h.schedule.advance(40 * 60)
        await asyncio.sleep(0.05)
        await h.manager.sleep()
        assert not h.manager.asleep and len(h.engine.live()) == 1
        assert "Idling" not in h.messages("worker.1")
        assert h.store.dyno_seconds(month) >= 40 * 60
        await h.manager.shutdown()

    run(test)


def test_an_exhausted_pool_sleeps_the_app_and_held_requests_get_h82(harness):
    h = harness(
        quota_hours=0.5, idle_timeout=24 * 3600.0, formation=dict(web=1, worker=0), size="Eco"
    )

    async def test():
        await h.start()
        h.manager.attach_router(h.router)
        await h.until(lambda: h.router.backends, "routed")
        h.schedule.advance(3600)  # an hour of one eco dyno: the half-hour pool is spent
        await h.logged("web.1", "^Dyno hours quota exhausted; sleeping until next month$")
        await h.until(lambda: h.router.statuses[-1] == WebStatus.EXHAUSTED, "exhausted")
        h.router.on_wake()
        await h.until(lambda: h.router.failed == ["H82"], "H82")
        assert h.engine.live() == []
        await h.manager.shutdown()

    run(test)


# runtime metrics (labs:enable log-runtime-metrics)
MiB = 1024 * 1024
USAGE = Usage(50 * MiB, 5 * MiB // 2, MiB, 348836, 343403, 1)
DYNO_ID = r"heroku\.\d+\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def set_runtime_metrics(h: Harness, on: bool) -> None:
    """What `dynosim labs:enable` writes (stored.Labs), in the harness's store."""
    h.store.set_setting(APP, metrics.FEATURE.setting, labs.ON if on else "")


async def tick(h: Harness, samples: int = 1) -> None:
    """Fast-forward the schedule clock by one metrics sample at a time, each taken before
    the next (the sampler is asleep again once `ticks` moved)."""
    for _ in range(samples):
        before = h.manager.metrics.ticks
        h.schedule.advance(metrics.SAMPLE)
        await h.until(lambda at=before: h.manager.metrics.ticks > at, "a metrics sample")


@pytest.fixture
def fast_metrics(monkeypatch):
    """Samples as fast as the tests advance the schedule (no real-time floor)."""
    monkeypatch.setattr(metrics, "REAL_FLOOR", 0.0)


def metric_lines(h: Harness, dyno: str) -> list[str]:
    return [m for m in h.messages(dyno) if m.startswith(f"source={dyno} ")]


@pytest.mark.usefixtures("fast_metrics")
def test_runtime_metrics_are_off_by_default_and_follow_the_setting_at_the_next_sample(harness):
    h = harness(by_type(worker=Program(usage=USAGE)), formation=dict(web=0, worker=1))

    async def test():
        await h.start()
        await h.up("worker.1")
        await tick(h, 4)
        assert metric_lines(h, "worker.1") == []
        usage_calls = sum(call == "usage" for call, _, _ in h.engine.calls)
        assert usage_calls >= 4  # sampled for the Metrics tab all the same, a call a tick

        set_runtime_metrics(h, True)  # while it runs: no restart, no message to the manager
        await tick(h)
        load, memory = metric_lines(h, "worker.1")
        dyno_id = h.manager.metrics.dyno_id(h.engine.live("worker")[0])
        assert re.fullmatch(DYNO_ID, dyno_id)
        assert load == (
            f"source=worker.1 dyno={dyno_id} sample#load_avg_1m=0.08 sample#load_avg_5m=0.02"
            " sample#load_avg_15m=0.01"
        )
        assert memory == (
            f"source=worker.1 dyno={dyno_id} sample#memory_total=53.50MB"
            " sample#memory_rss=50.00MB sample#memory_cache=2.50MB sample#memory_swap=1.00MB"
            " sample#memory_pgpgin=348836pages sample#memory_pgpgout=343403pages"
            " sample#memory_quota=512.00MB"
        )
        assert f"heroku[worker.1]: {load}" in h.lines("worker.1")  # a heroku[worker.1] line

        set_runtime_metrics(h, False)
        await tick(h, 8)
        assert len(metric_lines(h, "worker.1")) == 2
        await h.manager.shutdown()

    run(test)


@pytest.mark.usefixtures("fast_metrics")
def test_runtime_metrics_come_every_fourth_5_second_sample_for_each_running_dyno(harness):
    h = harness(formation=dict(web=1, worker=1))
    set_runtime_metrics(h, True)

    async def test():
        await h.start()
        await h.up("web.1", "worker.1")
        await tick(h, 13)  # a minute after the first sample
        assert h.manager.metrics.samples == 13
        for dyno in ("web.1", "worker.1"):  # samples 1, 5, 9 and 13: at 0, 20, 40 and 60 s
            kinds = [line.split(" sample#")[1].split("=")[0] for line in metric_lines(h, dyno)]
            assert kinds == ["load_avg_1m", "memory_total"] * 4
        await h.manager.shutdown()

    run(test)


@pytest.mark.usefixtures("fast_metrics")
def test_the_dyno_id_is_new_with_every_container_and_the_source_stays(harness):
    h = harness(formation=dict(web=0, worker=1))
    set_runtime_metrics(h, True)

    async def test():
        await h.start()
        await h.up("worker.1")
        await tick(h, 4)
        before = {line.split()[1] for line in metric_lines(h, "worker.1")}
        assert len(before) == 1
        assert await h.manager.restart("worker") == ["worker.1"]
        await h.up("worker.1")
        await tick(h, 4)  # a 20-s round: one pair from the new container
        after = {line.split()[1] for line in metric_lines(h, "worker.1")} - before
        assert len(after) == 1 and re.fullmatch(f"dyno={DYNO_ID}", after.pop())
        assert all(line.startswith("source=worker.1 ") for line in metric_lines(h, "worker.1"))
        await h.manager.shutdown()

    run(test)


@pytest.mark.usefixtures("fast_metrics")
def test_on_cgroup_v2_the_memory_line_leaves_out_the_page_counts_it_has_not(harness):
    v2 = Usage(50 * MiB, 0, 0, None, None, 0)
    h = harness(by_type(worker=Program(usage=v2)), formation=dict(web=0, worker=1))
    set_runtime_metrics(h, True)

    async def test():
        await h.start()
        await h.up("worker.1")
        await tick(h)
        memory = metric_lines(h, "worker.1")[1]
        assert memory.endswith(
            " sample#memory_total=50.00MB sample#memory_rss=50.00MB sample#memory_cache=0.00MB"
            " sample#memory_swap=0.00MB sample#memory_quota=512.00MB"
        )
        assert metric_lines(h, "worker.1")[0].endswith(
            "sample#load_avg_1m=0.00 sample#load_avg_5m=0.00 sample#load_avg_15m=0.00"
        )
        await h.manager.shutdown()

    run(test)
