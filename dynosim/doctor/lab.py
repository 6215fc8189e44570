"""Doctor's dynos: one container per process type of a release on the container-engine
protocol (plus a second web dyno with its own WEB_CONCURRENCY), and what is measured on them:
boot, memory, the processes inside, the filesystem changes, the stop after SIGTERM. The
engine's own calls are the protocol's; what only Docker shows goes through `docker.inside`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..container_engine import ONE_OFF, PORT, ContainerEngine, DynoSpec
from ..docker import inside
from ..store import Release
from . import http, procfs
from .observations import Boot, Concurrency, EarlyStop, Listener, ReleaseRun, Shutdown

#: How long a dyno may listen elsewhere than $PORT on all interfaces before doctor calls it
#: R10 without waiting for the whole boot timeout.
WRONG_PORT_WAIT = 3.0


@dataclass
class LabDyno:
    process_type: str
    index: int
    size: str
    container: Any
    started: float
    address: str | None = None

    @property
    def name(self) -> str:
        return f"{self.process_type}.{self.index}"


class Lab:
    """Dynos of one release on `engine`, removed by :meth:`close`."""

    def __init__(self, engine: ContainerEngine, release: Release) -> None:
        self.engine, self.release = engine, release
        self.dynos: list[LabDyno] = []
        engine.ensure_network(release.app)

    def start(
        self, process_type: str, index: int, size: str, env: dict[str, str] | None = None
    ) -> LabDyno:
        command = self.release.process_types[process_type]
        spec = DynoSpec(self.release, process_type, index, command=command, size=size, env=env)
        container = self.engine.create(spec)
        dyno = LabDyno(process_type, index, size, container, time.monotonic())
        self.dynos.append(dyno)
        self.engine.start(container)
        found = self.engine.address(container, self.release.app)
        dyno.address = found.host if found else None
        return dyno

    def boot(self, dyno: LabDyno, timeout: float) -> Boot:
        """Until the web dyno accepts on $PORT, ends, or has listened elsewhere for a while."""
        wrong_since: float | None = None
        listeners: tuple[Listener, ...] = ()
        while (elapsed := time.monotonic() - dyno.started) < timeout:
            if dyno.address and http.accepts(dyno.address, PORT):
                listeners = self.snapshot(dyno).listeners
                if any(x.port == PORT and x.all_interfaces for x in listeners) or not listeners:
                    return Boot(dyno.process_type, PORT, elapsed, timeout, listeners)
            ended = self.engine.exited(dyno.container)
            if ended is not None:
                return Boot(dyno.process_type, PORT, None, timeout, listeners, ended.exit_code)
            listeners = self.snapshot(dyno).listeners
            if listeners and not any(x.port == PORT and x.all_interfaces for x in listeners):
                wrong_since = wrong_since or time.monotonic()
                if time.monotonic() - wrong_since >= WRONG_PORT_WAIT:
                    break
            else:
                wrong_since = None
            time.sleep(0.1)
        return Boot(dyno.process_type, PORT, None, timeout, listeners)

    def early_stop(
        self, dyno: LabDyno, delay: float, grace: float, timeout: float
    ) -> EarlyStop | None:
        """SIGTERM `delay` s after the dyno's $PORT first accepts (polled every 10 ms), then
        SIGKILL after `grace`; None when it did not accept within `timeout`."""
        alive_checked = 0.0
        while not (dyno.address and http.accepts(dyno.address, PORT, 0.05)):
            if time.monotonic() - dyno.started > timeout:
                return None
            if time.monotonic() - alive_checked > 0.5:
                if self.engine.exited(dyno.container) is not None:
                    return None
                alive_checked = time.monotonic()
            time.sleep(0.01)
        time.sleep(delay)
        started = time.monotonic()
        code = self.engine.stop(dyno.container, grace)
        seconds = time.monotonic() - started
        return EarlyStop(delay, None if seconds >= grace - 0.05 else seconds, code, grace)

    def snapshot(self, dyno: LabDyno) -> procfs.Snapshot:
        return procfs.parse(inside.snapshot(dyno.container))

    def memory(self, dyno: LabDyno) -> int:
        used = self.engine.usage(dyno.container)
        return used.total if used else 0

    def peak_memory(self, dyno: LabDyno, busy: Callable[[], object]) -> int:
        """The most memory `dyno` used (sampled every 0.2 s) while `busy` ran."""
        peak, done = [self.memory(dyno)], threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak.append(self.memory(dyno))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            busy()
        finally:
            done.set()
            sampler.join(5)
        return max(peak)

    def concurrency(self, dyno: LabDyno, asked: int) -> Concurrency:
        return Concurrency(asked, procfs.workers(self.snapshot(dyno)))

    def written(self, dyno: LabDyno) -> list[tuple[str, str]]:
        return inside.changes(dyno.container)

    def stop(self, dyno: LabDyno, grace: float) -> Shutdown:
        """SIGTERM, then SIGKILL after `grace`; a dyno whose main process ignores SIGTERM
        would be killed at the end of the grace period, so it is killed at once (R12 known)."""
        ignoring = tuple(
            p.command for p in self.snapshot(dyno).processes if p.ppid == 1 and p.ignores()
        )
        started = time.monotonic()
        code = self.engine.stop(dyno.container, 1.0 if ignoring else grace)
        seconds = time.monotonic() - started
        late = ignoring or seconds >= grace - 0.05
        return Shutdown(dyno.process_type, None if late else seconds, code, grace, ignoring)

    def release_phase(self, command: str, runs: int = 2, timeout: float = 600.0) -> ReleaseRun:
        """The release command in a one-off dyno, `runs` times (stopping at the first failure)."""
        codes: list[int] = []
        output = ""
        for attempt in range(runs):
            spec = DynoSpec(self.release, "release", 9000 + attempt, role=ONE_OFF, command=command)
            container = self.engine.create(spec)
            try:
                self.engine.start(container)
                codes.append(self.engine.wait(container, timeout))
                if codes[-1] != 0:
                    output = inside.output(container)
                    break
            finally:
                self.engine.remove(container)
        return ReleaseRun(command, tuple(codes), output[-2000:])

    def close(self) -> None:
        """Remove the dynos (the app's network and add-ons are the throwaway app's)."""
        for dyno in self.dynos:
            self.engine.remove(dyno.container)
