"""Heroku CI on this machine (`dynosim ci:run`, `App.ci`): a test run of an app folder, as
Heroku CI runs one from app.json's environments.test. A throwaway app (`scratch`) gets the
test run's add-ons and config vars and is built as Heroku CI builds (test dependencies, no
collectstatic); a test dyno runs test-setup then test, its output streamed; everything is
removed afterwards, however the run ends."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import appjson, names, testrun
from .formation import size
from .progress import Progress, quiet
from .store import Store
from .stored import StoredApp
from .testrun import Metadata, Status

#: The setting that counts an app's test runs (HEROKU_TEST_RUN_NUMBER).
RUN_NUMBER = "ci_run_number"


@dataclass(frozen=True)
class CiOptions:
    """A test run's options: its `timeout` in seconds (Heroku CI's by default), the stack."""

    timeout: float = testrun.TIMEOUT
    stack: str | None = None


@dataclass(frozen=True)
class CiResult:
    """How a test run ended (`status`), the status `ci:run` exits with (the test's own, or
    124 when it timed out), what the test dyno printed, and the run's metadata."""

    status: Status
    exit_status: int
    output: str
    meta: Metadata
    app: str  # the throwaway app it ran in (gone now)

    @property
    def passed(self) -> bool:
        return self.status is Status.SUCCEEDED


def git_commit(folder: Path) -> tuple[str | None, str | None]:
    """(branch, commit SHA) of the git repository the folder is in; None for each that is
    missing (no repository, no commit yet, a detached HEAD has no branch)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), *args], capture_output=True, text=True, check=False
            )
        except OSError:  # no git
            return None
        return done.stdout.strip() or None if done.returncode == 0 else None

    commit = git("rev-parse", "--verify", "--quiet", "HEAD")
    branch = git("symbolic-ref", "--quiet", "--short", "HEAD") if commit else None
    return branch, commit


def next_number(folder: Path) -> int:
    """The run's number for the folder's app: 1, 2, ... (Heroku numbers a pipeline's runs)."""
    app = names.app_name_from_folder(folder)
    store = Store()
    try:
        number = int(store.setting(app, RUN_NUMBER, "0")) + 1
        store.set_setting(app, RUN_NUMBER, str(number))
        return number
    finally:
        store.close()


def run(
    folder: Path,
    options: CiOptions | None = None,
    *,
    progress: Progress = quiet,
    output: Progress = quiet,
) -> CiResult:
    """Run the folder's test run. `progress` gets the build's lines, `output` the test
    dyno's; app.json without environments.test (or its test command) is a ManifestError."""
    from .addons import SERVICES
    from .scratch import ScratchOptions, scratch_app  # Docker: imported when used

    options = options or CiOptions()
    folder = Path(folder).resolve()
    timeout = testrun.check_timeout(options.timeout)
    spec = appjson.load(folder)
    environment = testrun.test_environment(spec, folder)
    assert spec is not None
    base_config = appjson.test_config(spec)  # a missing value fails before anything is made
    dyno_size = size(testrun.size(environment)).name  # so does an unknown size
    meta = Metadata(str(uuid.uuid4()), next_number(folder), *git_commit(folder))
    wanted, skipped = testrun.simulated(testrun.addons(spec), set(SERVICES))
    for plan in skipped:
        progress(f" !     {plan}: dynosim has no such add-on; the test run goes without it")
    for warning in [*spec.warnings, *testrun.warnings(environment)]:
        progress(warning if warning.startswith(" !") else f" !     {warning}")
    scratch = ScratchOptions(
        purpose="ci",
        addons=wanted,
        config=testrun.config(base_config, meta),
        test=True,
        stack=options.stack,
    )
    progress(f"-----> Test run #{meta.number} ({meta.run_id})")
    with scratch_app(folder, scratch, progress=progress) as app:
        done = app.run(
            testrun.script(environment),
            process_type=testrun.PROCESS_TYPE,
            size=dyno_size,
            timeout=timeout,
            output=output,
        )
    status, exit_status = testrun.outcome(done.status, done.output, environment)
    if status is Status.TIMED_OUT:
        output(testrun.timed_out_message(timeout))
    return CiResult(status, exit_status, done.output, meta, app.name)


class HerokuCI:
    """`App.ci`: the app folder's test runs; `app.ci()` runs one (:func:`run`)."""

    def __init__(self, app: StoredApp) -> None:
        self._app = app

    def __call__(
        self, options: CiOptions | None = None, *, progress: Progress = quiet,
        output: Progress = quiet,
    ) -> CiResult:  # fmt: skip
        """Run the folder's tests as Heroku CI does (app.json's environments.test) in a
        throwaway app, removed afterwards: the result (status, exit status, output).
        `progress` gets the build's lines, `output` the test dyno's as they come."""
        return run(self._app.folder(), options, progress=progress, output=output)
