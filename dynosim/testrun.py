"""Pure: a Heroku CI test run: what app.json must say for one, the variables Heroku sets in
the test dyno, the script the dyno runs (test-setup, then test, with Heroku CI's lines), how
the run ended, and the timeout. The figures and their sources: docs/usage.md, "Heroku CI"."""

from __future__ import annotations

import enum
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .appjson import AddonSpec, AppJson, TestEnvironment
from .errors import ManifestError, UsageError

#: Heroku CI cancels a run after two hours (no shorter limit is documented).
TIMEOUT = 2 * 60 * 60
#: The dyno Heroku CI runs tests on, unless environments.test.formation.test.size says.
SIZE = "Performance-M"
PROCESS_TYPE = "test"
#: What `ci:run` exits with when the run was stopped at its timeout (as timeout(1) does).
TIMED_OUT_STATUS = 124
EXAMPLE = '"environments": {"test": {"scripts": {"test": "pytest"}}}'


class Status(enum.Enum):
    """How a test run ended, in Heroku CI's words."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the test command exited non-zero
    ERRORED = "errored"  # the test-setup command did
    TIMED_OUT = "timed out"


@dataclass(frozen=True)
class Metadata:
    """What identifies a run: a UUID, its number for the app, and the commit it tests (branch
    and SHA from the app's git repository; None outside one)."""

    run_id: str
    number: int
    branch: str | None
    commit: str | None


def test_environment(spec: AppJson | None, folder: Path) -> TestEnvironment:
    """app.json's environments.test with a test command; else one line saying what to add."""
    if spec is None:
        raise UsageError(f"{folder} has no app.json; add one with {{{EXAMPLE}}}")
    if spec.test is None:
        raise ManifestError(f"{folder / 'app.json'}: no environments.test; add {EXAMPLE}")
    if not spec.test.test:
        raise ManifestError(
            f"{folder / 'app.json'}: environments.test.scripts.test: no test command;"
            ' add one, e.g. "scripts": {"test": "pytest"}'
        )
    return spec.test


def addons(spec: AppJson) -> tuple[AddonSpec, ...]:
    """The run's add-ons: the test environment's list when it has one, else the app's."""
    assert spec.test is not None
    return spec.test.addons if spec.test.addons is not None else spec.addons


def size(spec: TestEnvironment) -> str:
    """The test dyno's size: formation.test.size, else Heroku CI's Performance-M."""
    return spec.formation.get(PROCESS_TYPE, (1, None))[1] or SIZE


def environment(meta: Metadata) -> dict[str, str]:
    """The variables Heroku CI sets in a test dyno, over the app's config vars: CI, the run's
    id, number, branch and commit, and one node of one (parallel runs are not simulated)."""
    env = {
        "CI": "true",
        "HEROKU_TEST_RUN_ID": meta.run_id,
        "HEROKU_TEST_RUN_NUMBER": str(meta.number),
        "CI_NODE_TOTAL": "1",
        "CI_NODE_INDEX": "0",
    }
    if meta.branch:
        env["HEROKU_TEST_RUN_BRANCH"] = meta.branch
    if meta.commit:
        env["HEROKU_TEST_RUN_COMMIT_VERSION"] = meta.commit
    return env


def config(base: Mapping[str, str], meta: Metadata) -> dict[str, str]:
    """The test run's config vars: app.json's (`base`), then Heroku CI's own, which win."""
    return {**base, **environment(meta)}


def _step(name: str, command: str) -> list[str]:
    """Run one script command in $HOME, Heroku CI's lines around it; stop on its failure."""
    shown = f"{name} command `{command}`"
    say = shlex.quote
    return [
        f"echo {say(f'-----> Running {shown}...')}",
        f'(cd "$HOME" && exec bash -c {say(command)})',
        "status=$?",
        f'if [ "$status" -ne 0 ]; then echo {say(f"-----> {shown} failed")}'
        ' "with exit status $status"; exit "$status"; fi',
        f"echo {say(f'-----> {shown} completed successfully')}",
    ]


def script(spec: TestEnvironment) -> str:
    """What the test dyno runs: test-setup (when there is one), then test, each in $HOME,
    the run's exit status being the first failure's, else 0."""
    assert spec.test is not None
    if spec.test_setup:
        setup = _step("test-setup", spec.test_setup)
    else:
        setup = ["echo '-----> No test-setup command provided. Skipping.'"]
    return "\n".join([*setup, *_step("test", spec.test)])


def setup_failed(output: str, spec: TestEnvironment) -> bool:
    """Whether the run stopped at its test-setup command (Heroku CI: errored)."""
    return f"-----> test-setup command `{spec.test_setup}` failed with exit status" in output


def outcome(exit_status: int | None, output: str, spec: TestEnvironment) -> tuple[Status, int]:
    """(how the run ended, the status `ci:run` exits with) from the dyno's exit status (None:
    stopped at the timeout) and what it printed."""
    if exit_status is None:
        return Status.TIMED_OUT, TIMED_OUT_STATUS
    if exit_status == 0:
        return Status.SUCCEEDED, 0
    return (Status.ERRORED if setup_failed(output, spec) else Status.FAILED), exit_status


def check_timeout(seconds: float) -> float:
    """A timeout in seconds, > 0; UsageError otherwise."""
    if not seconds > 0:
        raise UsageError(f"--timeout {seconds:g}: expected a number of seconds above 0")
    return float(seconds)


def duration(seconds: float) -> str:
    """`2h 0m 0s`, `1m 5s`, `3s`: a timeout as Heroku's CLI shows durations."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def timed_out_message(seconds: float) -> str:
    return (
        f" !     Test run timed out after {duration(seconds)} and was stopped"
        f" (--timeout SECONDS; Heroku CI's limit is {duration(TIMEOUT)})"
    )
