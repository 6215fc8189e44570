"""pytest plugin (registered as `dynosim` through the pytest11 entry point): test your app
against simulated dynos.

    def test_my_app_survives_a_dyno_crash(dyno_app):
        app = dyno_app("examples/flask_app", formation={"web": 2})
        app.kill("web.1")
        assert requests.get(app.url).status_code == 200

`dyno_app(path, formation=..., config=...)` builds the folder (no build when an image of the
same source and runtime exists, so a session builds each app once), serves it on a free
loopback port in a background thread, and returns once its web dynos are up: a
`dynosim.App`. Each test gets its own DYNOSIM_HOME (a temporary folder), so the user's own
apps are never touched; teardown stops the dynos, removes their containers, network and the
folder, and fails the test when anything of its apps is left behind.

`heroku_ci(path)` runs the folder's tests as Heroku CI does (`dynosim ci:run`): a
`dynosim.ci.CiResult` (status, exit status, output).
`dynosim_doctor(path, probes=...)` runs `dynosim doctor` on an app and returns its report
(`doctor.Report`: `failed(strict=...)`, `of(check, status)`, `text()`) to assert on.

Options: --dynosim-keep, --dynosim-stack, --dynosim-reuse-images (see `pytest --help`).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .api import App
from .doctor import Report
from .errors import EngineError

if TYPE_CHECKING:
    from .ci import CiResult

IN_CI = os.environ.get("CI", "").lower() == "true"
FAILED = pytest.StashKey[bool]()
STARTED = pytest.StashKey[set[str]]()  # names of the apps a test started
_serving: set[App] = set()  # stopped at exit, should a test run end without its teardown
_kept: list[tuple[App, str]] = []  # (app, its DYNOSIM_HOME) kept for --dynosim-keep
_used_images: set[str] = set()  # image names (the apps' own names) this session used
#: In every app name this process starts: pytest-xdist workers, and test runs of other
#: checkouts sharing the Docker engine, never meet on a container, network or app name.
RUN = secrets.token_hex(2)
#: One key for the digests of build secrets (config vars the build reads) in every test's
#: DYNOSIM_HOME, so the tests of a session share such an app's image, as they share the others.
_BUILD_KEY = secrets.token_hex(32)
#: The engines this session built on (DOCKER_HOST URLs) -> the app images each had before.
_images_before: dict[str, set[str]] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dynosim", "simulated Heroku dynos (dyno_app fixture)")
    group.addoption(
        "--dynosim-keep",
        action="store_true",
        help="Keep the apps of a failed test running for inspection until Ctrl-C at the end.",
    )
    group.addoption(
        "--dynosim-stack",
        choices=("bullseye", "bookworm", "trixie", "forky"),
        help="Build and run every app on this stack, as `dynosim stack:set` would.",
    )
    group.addoption(
        "--dynosim-reuse-images",
        action="store_true",
        help="Keep the app images this session built for the next one (default: remove them).",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Remember whether the test failed, for --dynosim-keep and the logs shown on failure."""
    outcome = yield
    if outcome.get_result().failed:
        item.stash[FAILED] = True


@pytest.fixture(scope="session")
def dynosim_engine():
    """The Docker engine, or a failure in CI (CI=true) / a skip elsewhere without one."""
    from .docker import client as docker_client

    try:
        return docker_client.client()
    except EngineError as exc:
        message = f"dynosim needs a Docker engine: {exc.format_message()}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message + " (outside CI, so skipped; CI=true makes this fail)")


@pytest.fixture
def dyno_app(
    request: pytest.FixtureRequest, dynosim_engine, dynosim_leak_check
) -> Iterator[Callable[..., App]]:
    """A factory: dyno_app(path, formation={"web": 2}, config={...}) -> a started App.

    Keywords: `name` (default: from the folder), `grace` (seconds from SIGTERM to SIGKILL,
    default 3); the others go to `App.start` (boot_timeout, time_scale, cycling,
    idle_timeout, sleep_mode, env_file, engine: "swarm" for the Swarm DOCKER_HOST names).
    Types not in `formation` keep their default quantity.
    The folder's .env is not read unless `env_file=True`, as Heroku never reads it.
    """
    options = request.config.option
    home, patch = _private_home()
    started: list[App] = []

    def start(
        path: str | Path,
        formation: Mapping[str, int | str] | None = None,
        config: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        grace: float = 3.0,
        **start_options: Any,
    ) -> App:
        app = App.open(path, name=name)
        image_name = app.name  # images are shared by tag: built once, reused next session
        app.name = f"{app.name[:25].rstrip('-')}-{RUN}"
        _used_images.add(image_name)
        _note_images(start_options.get("engine", "docker"))
        request.node.stash.setdefault(STARTED, set()).add(app.name)
        started.append(app)
        _serving.add(app)
        app.start(
            formation=formation, config=config, stack=options.dynosim_stack, grace=grace,
            prune=False, image_name=image_name,  # the session removes what it built
            **start_options,
        )  # fmt: skip
        return app

    try:
        yield start
    finally:
        failed = request.node.stash.get(FAILED, False)
        keep = failed and options.dynosim_keep
        try:
            for app in reversed(started):  # as started, for what one app put in place
                if failed and app.started:
                    sys.stderr.write(f"--- dynosim logs of {app.name} ---\n")
                    sys.stderr.writelines(f"{line.format()}\n" for line in app.logs()[-200:])
                if keep and app.started:
                    _kept.append((app, home))
                    continue
                _serving.discard(app)
                app.close()
        finally:
            patch.undo()
            if not keep:
                shutil.rmtree(home, ignore_errors=True)


def _private_home() -> tuple[str, pytest.MonkeyPatch]:
    """A fresh DYNOSIM_HOME (with the session's build key), set until the patch is undone."""
    home = tempfile.mkdtemp(prefix="dynosim-")  # short: unix socket paths are short
    descriptor = os.open(Path(home, "build.key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as key:
        key.write(_BUILD_KEY + "\n")
    patch = pytest.MonkeyPatch()
    patch.setenv("DYNOSIM_HOME", home)
    return home, patch


@pytest.fixture
def heroku_ci(dynosim_engine) -> Iterator[Callable[..., CiResult]]:
    """A function: heroku_ci(path, timeout=None, output=None) -> CiResult, the folder's tests
    run as Heroku CI runs them (app.json's environments.test: add-ons, env, test-setup, test)
    in a throwaway app removed afterwards, however the run ends. `timeout` in seconds
    (default: Heroku CI's); `output` gets each line of the test dyno as it comes. The state
    (the run number) lives in a DYNOSIM_HOME of the test's own."""
    from .ci import CiOptions
    from .testrun import TIMEOUT

    home, patch = _private_home()

    def run(
        path: str | Path, timeout: float | None = None, output: Callable[[str], None] | None = None
    ) -> CiResult:
        app = App.open(path)
        _used_images.add(app.name)  # the test build's image is the session's to remove
        _note_images()
        options = CiOptions(timeout=TIMEOUT if timeout is None else timeout)
        return app.ci(options, output=output or (lambda line: None))

    try:
        yield run
    finally:
        patch.undo()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def dynosim_doctor(dynosim_engine, dynosim_leak_check) -> Iterator[Callable[..., Report]]:
    """A factory: dynosim_doctor(path, probes=("/",), **options) -> the `doctor.Report` of
    `dynosim doctor` on the app at `path` (`App.doctor`), in a DYNOSIM_HOME of its own:

        report = dynosim_doctor("myapp", probes=("/", "/health"))
        assert not report.failed(strict=True), report.text()
    """
    home, patch = _private_home()

    def examine(path: str | Path, probes: tuple[str, ...] = ("/",), **options: Any) -> Report:
        return App.open(path).doctor(probes, **options)

    try:
        yield examine
    finally:
        patch.undo()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def dynosim_leak_check(request: pytest.FixtureRequest, dynosim_engine) -> Iterator[None]:
    """Fail the test that leaves dynosim containers, networks or add-on volumes of its apps
    behind (and remove them). Objects of other test runs sharing the engine are left alone:
    only the apps of the current DYNOSIM_HOME and those the test started with dyno_app count."""
    from .docker import inventory

    before = inventory.owned()
    yield
    started = request.node.stash.get(STARTED, set())
    apps = (_apps_in_home() | started) - {app.name for app, _ in _kept}
    leaked = inventory.owned(apps) - before
    inventory.remove(leaked)
    assert not leaked, (
        f"test left {len(leaked.containers)} containers, {len(leaked.networks)} networks and"
        f" {len(leaked.volumes)} volumes behind"
    )


def _apps_in_home() -> set[str]:
    from .store import Store

    store = Store()
    try:
        return set(store.apps())
    finally:
        store.close()


def _note_images(engine: str = "docker") -> None:
    """The app images on the engine the next build runs on (on Swarm, the one beside the
    cluster), before the session first builds there: those made later are its to remove."""
    from . import cluster
    from .docker import images
    from .docker.cluster import local_engine

    builds_on = cluster.swarm_target().builds_on if engine == "swarm" else local_engine()
    if builds_on not in _images_before:
        with cluster.docker_host(builds_on):
            _images_before[builds_on] = set(images.labelled("dynosim.image.app"))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Hold kept apps until Ctrl-C; remove the images this session built (unless reused)."""
    if _kept:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        say = reporter.write_line if reporter else lambda line: print(line, file=sys.stderr)
        say("dynosim: apps of failed tests kept running (--dynosim-keep):")
        for app, home in _kept:
            say(f"  {app.name}: {app.url}  (DYNOSIM_HOME={home})")
        say("press Ctrl-C to stop them")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        for app, home in _kept:
            os.environ["DYNOSIM_HOME"] = home
            app.close()
            shutil.rmtree(home, ignore_errors=True)
    if not session.config.option.dynosim_reuse_images:
        _remove_new_images()


def _remove_new_images() -> None:
    from . import cluster
    from .docker import images

    for engine, before in _images_before.items():
        with cluster.docker_host(engine):
            for image, name in images.labelled("dynosim.image.app").items():
                if image not in before and name in _used_images:
                    images.remove(image)  # in use: left to its user


@atexit.register
def _stop_serving() -> None:
    """A run that ends without teardown (an internal error) still stops its dynos."""
    for app in list(_serving):
        app.close()
