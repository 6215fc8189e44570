"""A throwaway app: a uniquely named app of a folder with add-ons of its own, built and run,
then removed whole on any exit (an error, Ctrl-C, SIGTERM turned into SystemExit): its dyno and
add-on containers, the add-ons' data volumes, its network and every record of it in the store.
Heroku CI's test runs are made of one (`ci`), as Heroku makes a disposable app for each run.

    options = ScratchOptions(purpose="ci", addons=("heroku-postgresql:in-dyno",), test=True)
    with scratch_app(Path("myapp"), options, progress=print) as app:
        outcome = app.run("pytest", timeout=600, output=print)

Nothing here is shared with the folder's own app (`dynosim up`): another name, another
network, other add-ons. The image is kept (the next run's build cache), tagged under
`options.image_name` (default: the folder's app name).
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import addons, deployment, names
from .appjson import AddonSpec
from .container_engine import ONE_OFF
from .docker import dynos as docker_dynos
from .docker import inventory
from .progress import Progress, quiet
from .store import SUCCEEDED, Addon, Release, Store

#: Seconds between SIGTERM and SIGKILL when a run is stopped (its timeout, Ctrl-C).
STOP_GRACE = 3.0


@dataclass(frozen=True)
class ScratchOptions:
    """What the throwaway app is made of. `purpose` starts its name (ci-myapp-3f2a1c);
    `addons`: plans as app.json lists them (heroku-postgresql:in-dyno, heroku-redis, ...; an
    AddonSpec names its attachment), attached as Heroku attaches them (DATABASE_URL, then
    HEROKU_POSTGRESQL_<COLOR>_URL);
    `config`: config vars of its release (the add-ons' URLs are added); `test`: Heroku CI's
    build (test dependencies, no collectstatic); `image_name`: tag the image under this
    name (default: the folder's app name); `stack`: a stack suite, as `stack:set`."""

    purpose: str = "scratch"
    addons: tuple[str | AddonSpec, ...] = ()
    config: Mapping[str, str] = field(default_factory=dict)
    test: bool = False
    image_name: str | None = None
    stack: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How a command in the throwaway app ended: its exit status (None when it was stopped at
    its timeout), everything it printed, whether it timed out."""

    status: int | None
    output: str
    timed_out: bool


def unique_name(folder: Path, purpose: str) -> str:
    """`<purpose>-<folder's app name>-<6 hex>`, within Heroku's 30 characters."""
    suffix = secrets.token_hex(3)
    room = names.MAX_APP_NAME - len(purpose) - len(suffix) - 2
    base = names.app_name_from_folder(folder)[:room].rstrip("-")
    return names.check_app_name(f"{purpose}-{base}-{suffix}" if base else f"{purpose}-{suffix}")


class Scratch:
    """One throwaway app: :meth:`provision` its add-ons, :meth:`build` it, :meth:`run`
    commands in dynos of it, and :meth:`close` (idempotent) removes all of it."""

    def __init__(self, folder: Path, options: ScratchOptions | None = None) -> None:
        self.path = Path(folder).resolve()
        self.options = options or ScratchOptions()
        self.name = unique_name(self.path, self.options.purpose)
        self.addons: list[Addon] = []
        self.release: Release | None = None
        self._store: Store | None = None
        self._closed = False

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store()
        return self._store

    def provision(self, progress: Progress = quiet) -> dict[str, str]:
        """Create the add-ons, each serving until :meth:`close`: their config vars."""
        wanted = [AddonSpec(a) if isinstance(a, str) else a for a in self.options.addons]
        for spec in wanted:
            addons.service(spec.plan)  # an unknown service fails before anything is made
        self.store.ensure_app(self.name, self.path)
        progress(f"-----> Creating ⬢ {self.name}, a throwaway app of {self.path}")
        attached: dict[str, str] = {}
        for spec in wanted:
            chosen = addons.service(spec.plan)
            var = addons.config_var(chosen, set(attached), spec.attach_as, self.name)
            created = addons.new_addon(self.name, spec.plan, var)
            self.addons.append(created)
            progress(f"-----> Creating {spec.plan} as {var.removesuffix('_URL')} ({created.name})")
            addons.provision(self.store, created, progress, keep=True)
            attached[var] = chosen.url(created)
        return attached

    def build(self, progress: Progress = quiet, config: Mapping[str, str] | None = None) -> Release:
        """Build the folder into the app's release (its config: the options', the add-ons',
        then `config`), current at once: a throwaway app runs no release phase."""
        attached = {a.config_var: addons.SERVICES[a.service].url(a) for a in self.addons}
        release, _ = deployment.deploy(
            self.store, self.name, self.path, progress=progress,
            config={**self.options.config, **attached, **(config or {})},
            stack_suite=self.options.stack, prune=False,
            image_name=self.options.image_name or names.app_name_from_folder(self.path),
            test=self.options.test,
        )  # fmt: skip
        self.store.finish_release(self.name, release.version, SUCCEEDED)
        self.release = self.store.release(self.name, release.version)
        return self.release

    def run(
        self,
        command: str,
        *,
        process_type: str = "run",
        size: str = "Standard-1X",
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        output: Callable[[str], None] | None = None,
    ) -> RunOutcome:
        """Run `command` in a dyno (`<process_type>.1`, locked down like any) of the release
        to its end, or until `timeout` seconds, when it is stopped (SIGTERM, then SIGKILL);
        each line it prints goes to `output` as it comes. Ctrl-C stops it too."""
        if self.release is None:
            raise RuntimeError("Scratch.run before Scratch.build")
        lines: list[str] = []

        def line(text: str) -> None:
            lines.append(text)
            if output:
                output(text)

        container = docker_dynos.create(
            self.release, process_type, 1, role=ONE_OFF, command=command, size_name=size,
            env=dict(env or {}),
        )  # fmt: skip
        try:
            container.start()
            reader = threading.Thread(
                target=docker_dynos.follow, args=(container, line), daemon=True
            )
            reader.start()
            status = _wait(container, timeout)
            if status is None:
                docker_dynos.stop(container, STOP_GRACE)
            reader.join(10)
            return RunOutcome(status, "\n".join(lines), status is None)
        finally:
            docker_dynos.remove(container)

    def close(self) -> None:
        """Remove everything of the app: containers (dynos, add-on servers), add-on volumes,
        its network, its records. Ctrl-C waits until this is done (in the main thread)."""
        if self._closed:
            return
        with _no_interrupts():
            leftovers = inventory.owned({self.name})
            inventory.remove(leftovers)
            docker_dynos.remove_network(self.name, wait=10)
            self.store.remove_app(self.name)
            self.store.close()
            self._store = None
        self._closed = True


def _wait(container: Any, timeout: float | None) -> int | None:
    """Its exit status, or None when it still runs at `timeout` (in short waits, so Ctrl-C
    is seen at once)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
        if step <= 0:
            return None
        status = docker_dynos.wait(container, step)
        if status is not None:
            return status


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM are held off meanwhile (main thread only: signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def scratch_app(
    folder: Path, options: ScratchOptions | None = None, *, progress: Progress = quiet
) -> Iterator[Scratch]:
    """A throwaway app of `folder`, its add-ons serving and its release built; everything of
    it is removed when the block ends, however it ends."""
    app = Scratch(folder, options)
    try:
        app.provision(progress)
        app.build(progress)
        yield app
    finally:
        app.close()
