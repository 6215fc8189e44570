"""`dynosim doctor`'s run: read the folder, build it into a throwaway app, run one dyno per
process type (and a second web dyno), observe them (`doctor.lab`, `doctor.http`), stop and
remove everything, and judge the observations (`doctor.checks`) into a `Report`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import appjson, formation, procfile, source
from ..container_engine import PORT
from ..errors import DynosimError
from ..options import BOOT_TIMEOUT, GRACE
from ..progress import Progress
from ..store import Release
from ..stored import StoredApp, quiet
from . import checks, http, static
from .observations import Build, EarlyStop, Memory, Server, Shutdown
from .report import Finding, Report

if TYPE_CHECKING:  # the build, the engine, heroku.yml's YAML, the throwaway app: when it runs
    from ..herokuyml import HerokuYml
    from .lab import Lab, LabDyno


@dataclass(frozen=True)
class DoctorOptions:
    """What `dynosim doctor` takes: the probed paths, Heroku's timings, the load's length."""

    probes: tuple[str, ...] = ("/",)
    boot_timeout: float = BOOT_TIMEOUT
    grace: float = GRACE
    load_seconds: float = 3.0
    config: dict[str, str] = field(default_factory=dict)  # config vars for the throwaway app


class Doctor:
    """`App.doctor`: `app.doctor(("/", "/health"))` runs every check on the app's folder."""

    def __init__(self, app: StoredApp) -> None:
        self._app = app

    def __call__(
        self, probes: tuple[str, ...] = ("/",), *, progress: Progress = quiet, **options: Any
    ) -> Report:
        """The report (`options`: :class:`DoctorOptions`' boot_timeout, grace, load_seconds,
        config); nothing of the run is left behind."""
        chosen = DoctorOptions(tuple(probes), **options)
        return examine(self._app.folder(), chosen, progress)


def examine(folder: Path, options: DoctorOptions, progress: Progress) -> Report:
    """Every check on the app in `folder`; the report (nothing of the run is left behind)."""
    from .. import build as builds
    from .. import herokuyml
    from ..docker import DockerEngine
    from .lab import Lab

    folder = folder.resolve()
    manifest = herokuyml.load(folder)
    types = herokuyml.process_types(folder, manifest)
    server = static.server(_web_command(folder, manifest, types), folder)
    config = static.config(folder, options.config)
    findings = [*checks.config(config)]
    placeholders = {key: "doctor-placeholder" for key in config.required_unset}
    with _throwaway(folder, {**placeholders, **options.config}, progress) as (release, error):
        if manifest is not None:  # the Dockerfiles choose Python; no buildpack runs
            findings += checks.container_build(error)
        else:
            django = builds.compile_steps(source.select(folder))[1]
            collectstatic = None  # not a Django app, or its build failed before collectstatic
            if django and (not error or "collectstatic" in error):
                collectstatic = not error
            findings += checks.build(Build(error, static.python(folder), collectstatic))
        if error:
            return Report(folder.name, tuple(findings), ("the app did not build: nothing ran",))
        assert release is not None
        lab = Lab(DockerEngine(), release)
        try:
            session = _Session(lab, server, options, progress, container=manifest is not None)
            findings += _run(session, folder, types)
        finally:
            lab.close()
    return Report(folder.name, tuple(findings))


def _web_command(folder: Path, manifest: HerokuYml | None, types: dict[str, str]) -> str:
    """The web process's command: the Procfile's or heroku.yml's, else its image's CMD."""
    command = types.get(procfile.WEB, "")
    if command or manifest is None or procfile.WEB not in manifest.processes:
        return command
    image = manifest.processes[procfile.WEB].image
    return static.dockerfile_command(folder / manifest.dockerfiles[image])


@contextlib.contextmanager
def _throwaway(
    folder: Path, config: dict[str, str], progress: Progress
) -> Iterator[tuple[Release | None, str]]:
    """The throwaway app (`scratch`) of `folder` with the add-ons its app.json names, built;
    (its release, or None and the build's error). Everything of it is gone afterwards."""
    from ..scratch import Scratch, ScratchOptions

    spec = appjson.load(folder)
    options = ScratchOptions(purpose="doctor", addons=spec.addons if spec else (), config=config)
    app = Scratch(folder, options)
    try:
        try:
            app.provision(progress)
            release = app.build(progress)
        except DynosimError as exc:
            yield None, exc.format_message().splitlines()[0]
            return
        yield release, ""
    finally:
        app.close()


@dataclass
class _Session:
    """One run's parts: its dynos, the web server read from the folder, the options."""

    lab: Lab
    server: Server
    options: DoctorOptions
    progress: Progress
    container: bool  # a heroku.yml app: no buildpack, so no WEB_CONCURRENCY
    idle: http.IdleWatch | None = None  # the kept connection to web.1, once probing starts
    early: list[EarlyStop] = field(default_factory=list)  # web.3's SIGTERM at boot, when done
    early_thread: threading.Thread | None = None


def _run(session: _Session, folder: Path, types: dict[str, str]) -> list[Finding]:
    lab, options = session.lab, session.options
    findings: list[Finding] = []
    if procfile.RELEASE in types:
        command = types[procfile.RELEASE] or "the image's command"
        session.progress(f"Running the release phase twice: {command}")
        findings.append(checks.release(lab.release_phase(types[procfile.RELEASE])))
    else:
        findings.append(checks.release(None))
    sizes = static.sizes([t for t in types if t != procfile.RELEASE], folder)
    dynos = {t: lab.start(t, 1, size) for t, size in sizes.items()}
    web_size = formation.size(sizes.get(procfile.WEB, formation.DEFAULT_SIZE))
    asked = formation.web_concurrency(web_size) + 1  # not the default: is it read at all?
    second = None
    if procfile.WEB in dynos:
        env = None if session.container else {"WEB_CONCURRENCY": str(asked)}
        second = lab.start(procfile.WEB, 2, sizes[procfile.WEB], env)
        session.progress("Booting web.1 and web.2 (R10: $PORT within the boot timeout)")
        boot = lab.boot(dynos[procfile.WEB], options.boot_timeout)
        findings.append(checks.boot(boot, session.server))
        up = boot.seconds is not None and lab.boot(second, options.boot_timeout).seconds is not None
        if not up:
            second = None
        else:
            findings += _web(session, dynos[procfile.WEB], second, asked)
    findings += _resident(lab, dynos, static.sqlite_in_slug(folder))
    findings += _stop(session, dynos, second)
    return findings


def _web(session: _Session, web: LabDyno, second: LabDyno, asked: int) -> list[Finding]:
    """The kept connection (held while the rest runs), the probes (plain and https, at once),
    memory under load of the paths that answered, WEB_CONCURRENCY."""
    assert web.address is not None
    lab, options, progress = session.lab, session.options, session.progress
    address, port = web.address, PORT
    _stop_early(session, web.size)
    hold = f"{checks.IDLE_HOLD:g} s"
    progress(f"Holding an idle kept connection to web.1 up to {hold} (Router 2.0 keeps 90 s)")
    session.idle = http.IdleWatch(address, port, options.probes[0])
    progress(f"Probing {', '.join(options.probes)} (H12: 30 s; X-Forwarded-Proto: https)")
    asked_for = [(path, proto) for path in options.probes for proto in ("http", "https")]
    with ThreadPoolExecutor(max_workers=len(asked_for)) as pool:
        probes = list(pool.map(lambda p: http.probe(address, port, *p), asked_for))
    found = [checks.probe(p) for p in probes]
    if not session.container:
        found.append(checks.concurrency(lab.concurrency(second, asked), session.server))
    answered = [p.path for p in probes if p.proto == "http" and p.status is not None]
    boot_bytes = lab.memory(web)
    progress(f"Loading web.1 for {options.load_seconds:g} s (R14: memory under load)")
    peak = lab.peak_memory(
        web, lambda: http.load(address, port, answered, options.load_seconds) if answered else 0
    )
    quota = formation.size(web.size).memory_mb
    found.append(checks.memory(Memory(web.process_type, web.size, quota, boot_bytes, peak)))
    return found


def _stop_early(session: _Session, size: str) -> None:
    """web.3, on a thread: SIGTERM just after it boots (collected by `_stop`)."""
    lab, options = session.lab, session.options
    third = lab.start(procfile.WEB, 3, size)

    def run() -> None:
        stopped = lab.early_stop(third, checks.EARLY_SIGTERM, options.grace, options.boot_timeout)
        session.early.extend([stopped] if stopped else [])

    session.progress(f"Booting web.3 for a SIGTERM {checks.EARLY_SIGTERM:g} s after it binds $PORT")
    session.early_thread = threading.Thread(target=run, daemon=True)
    session.early_thread.start()


def _resident(lab: Lab, dynos: dict[str, LabDyno], slug_sqlite: list[str]) -> list[Finding]:
    """Memory of the other process types; every type's writes outside /tmp."""
    found: list[Finding] = []
    for process_type, dyno in dynos.items():
        if process_type != procfile.WEB:
            ended = lab.engine.exited(dyno.container)
            found.append(checks.running(process_type, ended.exit_code if ended else None))
            quota = formation.size(dyno.size).memory_mb
            used = Memory(process_type, dyno.size, quota, lab.memory(dyno))
            found.append(checks.memory(used))
        written, sqlite = checks.outside_tmp(lab.written(dyno))
        if process_type == procfile.WEB:
            sqlite = sorted({*sqlite, *slug_sqlite})
        found.append(checks.filesystem(process_type, written, sqlite))
    return found


def _stop(session: _Session, dynos: dict[str, LabDyno], second: LabDyno | None) -> list[Finding]:
    """Every dyno stopped at once (R12), web.2 with a request in flight (H13); web.1 once its
    idle kept connection has been closed or held past the router's 90 s."""
    lab, options, idle = session.lab, session.options, session.idle
    session.progress("Stopping every dyno with SIGTERM (R12: 30 s; H13: requests in flight)")
    stopped: dict[str, Shutdown] = {}

    def stop(dyno: LabDyno) -> None:
        if idle is not None and dyno.process_type == procfile.WEB and dyno.index == 1:
            idle.hold(checks.IDLE_HOLD)
        stopped[dyno.name] = lab.stop(dyno, options.grace)

    threads = [threading.Thread(target=stop, args=(d,), daemon=True) for d in dynos.values()]
    for thread in threads:
        thread.start()
    found: list[Finding] = []
    if second is not None and second.address and lab.engine.exited(second.container) is None:
        late = threading.Thread(target=stop, args=(second,), daemon=True)
        flight = http.in_flight(second.address, PORT, options.probes[0], late.start)
        if late.ident is None:  # no connection was made: stopped all the same
            late.start()
        threads.append(late)
        found.append(checks.in_flight(flight, session.server))
    for thread in threads:
        thread.join(checks.IDLE_HOLD + options.grace + 30)
    if idle is not None:
        found.append(checks.keep_alive(idle.result(), session.server))
    if session.early_thread is not None:
        session.early_thread.join(options.boot_timeout + options.grace + 30)
        found += [checks.sigterm_at_boot(early, session.server) for early in session.early]
    found += [checks.shutdown(stopped[d.name]) for d in dynos.values() if d.name in stopped]
    return found
