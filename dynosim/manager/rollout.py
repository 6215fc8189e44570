"""A new release, rolled out as Heroku does: the release phase (and app.json's postdeploy) in
a one-off dyno, then the web dynos' switch. With preboot (`features:enable preboot`, standard
and performance dynos) the new web dynos take traffic before the old ones are drained and
stopped, and a failure leaves the previous release serving; without it (Heroku's default)
the old ones are drained and stopped first, the router holding requests meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from .. import features
from ..container_engine import ONE_OFF, DynoSpec, WaitTimedOut, one_off_index
from ..dynostate import DynoState
from ..errors import EngineError, ReleaseError
from ..logs import LogLine
from ..procfile import RELEASE, WEB
from ..progress import Progress
from ..store import FAILED, SUCCEEDED, Release, Store
from .fleet import Fleet, Tracked, reason


class Rollout:
    def __init__(self, fleet: Fleet, store: Store) -> None:
        self.fleet, self.store = fleet, store
        self.retiring: set[str] = set()  # containers of replaced web dynos, being drained
        self.background: set[asyncio.Task] = set()

    async def roll_out(self, release: Release, progress: Progress) -> None:
        """Release phase, then the switch; the release ends succeeded or failed (and raises)."""
        fleet, app = self.fleet, self.fleet.app
        user = release.user or "you"
        fleet.hub.emit(LogLine("app", "api", f"{release.description} by {user}"))
        fleet.hub.emit(LogLine("app", "api", f"Release {release.name} created by {user}"))
        try:
            for phase, command in (
                (RELEASE, release.release_phase and release.process_types.get(RELEASE)),
                ("postdeploy", release.postdeploy),
            ):
                if command:
                    progress(f"Running {phase} command `{command}`...")
                    await self._phase(release, phase, command)
            progress(f"Starting the dynos of {release.name}...")
            if self._preboots():
                await self._preboot_web(release)
            else:
                await self._restart_web(release)
        except ReleaseError as exc:
            self.store.finish_release(app, release.version, FAILED, str(exc))
            fleet.hub.emit(LogLine("app", "api", f"Release {release.name} failed: {exc}"))
            raise ReleaseError(f"release {release.name} failed: {exc}", exc.tail) from None
        self.store.finish_release(app, release.version, SUCCEEDED)
        fleet.release = self.store.current_release(app)
        fleet.hub.emit(LogLine("app", "api", f"Deployed {release.name}"))

    async def _phase(self, release: Release, phase: str, command: str) -> None:
        """Run a release-phase command in a one-off dyno; ReleaseError unless it exits 0."""
        fleet, engine = self.fleet, self.fleet.engine
        index = one_off_index(await asyncio.to_thread(engine.list, fleet.app))
        tracked = Tracked(phase, index, role=ONE_OFF, command=command)
        fleet.set_state(tracked, DynoState.STARTING)
        spec = DynoSpec(release, phase, index, ONE_OFF, command, base_env=fleet.local_env)
        try:
            container = await asyncio.to_thread(engine.create, spec)
        except EngineError as exc:
            raise ReleaseError(f"{phase} dyno could not be created: {reason(exc)}") from None
        try:
            fleet.hub.heroku(tracked.name, f"Starting process with command `{command}`")
            try:
                await asyncio.to_thread(engine.start, container)
            except EngineError as exc:
                raise ReleaseError(f"{phase} dyno did not start: {reason(exc)}") from None
            follower = fleet.follow(tracked, container, since=None)
            fleet.set_state(tracked, DynoState.UP)
            timeout = fleet.options.release_timeout
            try:
                code = await asyncio.to_thread(engine.wait, container, timeout)
            except EngineError as exc:
                fleet.hub.heroku(tracked.name, "Stopping process with SIGKILL")
                code = await asyncio.to_thread(engine.kill, container)
                fleet.hub.heroku(tracked.name, f"Process exited with status {code}")
                if isinstance(exc, WaitTimedOut):
                    message = f"{phase} command timed out after {timeout:g} seconds"
                else:
                    message = f"{phase} dyno could not be watched: {reason(exc)}"
                raise ReleaseError(message, self._tail(tracked.name)) from None
            await asyncio.wait({follower}, timeout=5)
            fleet.hub.heroku(tracked.name, f"Process exited with status {code}")
            fleet.set_state(tracked, DynoState.COMPLETE)
            if code != 0:
                raise ReleaseError(
                    f"{phase} command `{command}` exited with status {code}",
                    self._tail(tracked.name),
                )
        finally:
            await asyncio.to_thread(engine.remove, container)

    def _tail(self, dyno_name: str, lines: int = 20) -> list[str]:
        output = [line.message for line in self.fleet.hub.recent if line.dyno == dyno_name]
        return output[-lines:]

    def _preboots(self) -> bool:
        """Whether the app preboots: the feature on, and its web dynos standard or performance
        (eco and basic dynos have no preboot on Heroku)."""
        app, store = self.fleet.app, self.store
        entry = store.formation(app).get(WEB)
        on = store.setting(app, features.feature(features.PREBOOT).setting, "") == features.ON
        return on and (entry is None or features.prebootable(entry.size))

    async def _restart_web(self, release: Release) -> None:
        """Without preboot, as Heroku: the web dynos go from up to starting and leave the
        router, and while they are drained and stopped the release's start ("the dyno manager
        spins up new dynos as soon as it sends the shutdown signals to the old dynos");
        meanwhile the router's status is STARTING, so requests are held until a new one is up
        (H20 after the boot timeout). If one crashes or never binds, the release fails and the
        previous release's web dynos start again (ReleaseError; the app had no web dyno
        meanwhile)."""
        fleet = self.fleet
        entry = self.store.formation(fleet.app).get(WEB)
        old = [t for t in fleet.dynos.values() if t.is_web]
        serving = [t for t in old if t.container is not None]
        if WEB not in release.process_types or not entry or not entry.quantity or not serving:
            return  # nothing serves: the new dynos simply start
        for tracked in old:
            await fleet.cancel_timers(tracked)
            if tracked.container is not None:
                fleet.set_state(tracked, DynoState.STARTING)
            del fleet.dynos[tracked.name]
        new = [
            Tracked(WEB, i, command=release.process_types[WEB], size=entry.size)
            for i in range(1, entry.quantity + 1)
        ]
        for tracked in new:
            tracked.state = DynoState.STARTING  # already logged for the old dyno of its name
            fleet.dynos[tracked.name] = tracked
        fleet.routes.update()  # STARTING: requests are held from here on
        for tracked in serving:
            assert tracked.container is not None
            self.retiring.add(tracked.container.id)
        retiring = [
            asyncio.ensure_future(self._retire(t, then=DynoState.STARTING)) for t in serving
        ]
        try:
            await asyncio.gather(*(fleet.start(t, release=release) for t in new))
            failed = await self._until_settled(new)
            if failed:  # at once: no crash restart of a new dyno may begin while the old stop
                for tracked in new:
                    await fleet.cancel_timers(tracked)
        finally:
            await asyncio.gather(*retiring)
        if failed:
            await self._back_to_previous(release, new, failed)

    async def _back_to_previous(
        self, release: Release, new: list[Tracked], failed: Tracked
    ) -> None:
        """A new web dyno failed without preboot: the new ones stop, the previous release's web
        dynos start in their place, and the release fails (ReleaseError)."""
        fleet = self.fleet
        if failed.follower is not None:  # its last words belong in the error
            await asyncio.wait({failed.follower}, timeout=5)
        tail = self._tail(failed.name)
        running = [t for t in new if t.container is not None]
        await asyncio.gather(*(fleet.stop(t, then=DynoState.STARTING) for t in running))
        previous = fleet.release
        for tracked in new:
            tracked.crashes = 0
            if previous is None or WEB not in previous.process_types:
                fleet.forget(tracked)
            else:
                tracked.command = previous.process_types[WEB]
        await asyncio.gather(*(fleet.start(t) for t in new if fleet.dynos.get(t.name) is t))
        fleet.routes.update()
        raise ReleaseError(
            f"{failed.name} of {release.name} did not come up; the previous release is started"
            " again",
            tail,
        )

    async def _preboot_web(self, release: Release) -> None:
        """Boot the release's web dynos beside the serving ones; once all are up they take
        over and the old ones are drained and stopped. If one crashes or never binds, the
        new ones are stopped and the old ones keep serving (ReleaseError)."""
        fleet = self.fleet
        entry = self.store.formation(fleet.app).get(WEB)
        serving = [t for t in fleet.dynos.values() if t.is_web and t.container is not None]
        if WEB not in release.process_types or not entry or not entry.quantity or not serving:
            return  # nothing to keep serving: the new dynos simply start
        new = [
            Tracked(WEB, i, command=release.process_types[WEB], size=entry.size)
            for i in range(1, entry.quantity + 1)
        ]
        fleet.preboot = new
        try:
            await asyncio.gather(*(fleet.start(t, release=release) for t in new))
            failed = await self._until_settled(new)
        finally:
            fleet.preboot = []
        if failed:
            for tracked in new:
                await fleet.cancel_timers(tracked)
            await asyncio.gather(*(fleet.stop(t) for t in new))
            if failed.follower is not None:  # its last words belong in the error
                await asyncio.wait({failed.follower}, timeout=5)
            raise ReleaseError(
                f"{failed.name} of {release.name} did not come up; the previous release keeps"
                " serving",
                self._tail(failed.name),
            )
        for old in [t for t in fleet.dynos.values() if t.is_web]:
            await fleet.cancel_timers(old)
            del fleet.dynos[old.name]
            if old.container is not None:
                self.retiring.add(old.container.id)
                self._in_background(self._retire(old))
        for tracked in new:
            fleet.dynos[tracked.name] = tracked
        fleet.routes.update()

    async def _until_settled(self, new: list[Tracked]) -> Tracked | None:
        """Wait until every new dyno is up (None) or one of them failed (that one)."""
        clock = self.fleet.clock
        deadline = clock.now() + self.fleet.options.boot_timeout + 10
        while clock.now() < deadline:
            failed = [
                t for t in new if t.state in (DynoState.CRASHED, DynoState.DOWN) or t.crashes
            ]  # a crashed formation dyno may be restarting already
            if failed:
                return failed[0]
            if all(t.state == DynoState.UP for t in new):
                return None
            changed = self.fleet.state_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), 1.0)
        return next(t for t in new if t.state != DynoState.UP)

    async def _retire(self, old: Tracked, then: DynoState = DynoState.DOWN) -> None:
        """Drain a replaced web dyno in the router, then stop it (its state ends `then`)."""
        assert old.container is not None
        container_id = old.container.id
        try:
            router = self.fleet.routes.router
            if router:
                await router.drain(container_id, self.fleet.options.grace)
            await self.fleet.stop(old, then=then)
        finally:
            self.retiring.discard(container_id)

    def _in_background(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
