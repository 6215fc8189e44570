"""Heroku CI against real Docker (`dynosim ci:run`, the `heroku_ci` fixture): a Flask app's
pytest suite against in-dyno Postgres and Redis, Heroku CI's variables, a failing test's exit
status, a timeout, Ctrl-C; each time nothing of the throwaway app is left: no container,
network, volume or store record."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import ROOT, copy_app, dynosim, tiny_app

from dynosim.docker import images, inventory
from dynosim.store import Store
from dynosim.testrun import Status

APPS = ROOT / "tests" / "integration" / "apps"
THROWAWAY = re.compile(r"⬢ (ci-[a-z0-9-]+), a throwaway app")
#: The tiny apps' test command prints what Heroku CI set.
PRINT_ENV = (
    "env | grep -E '^(CI|HEROKU_TEST_RUN_[A-Z_]+|CI_NODE_[A-Z]+|DYNO|DYNO_RAM|FLAVOR)=' | sort"
)


def ci_app(folder: Path, test: dict, **app_json) -> Path:
    """A dependency-free app whose app.json has this environments.test."""
    import json

    data = {"environments": {"test": test}, **app_json}
    return tiny_app(folder, "web: python -m http.server $PORT\n", **{"app.json": json.dumps(data)})


@pytest.fixture(scope="module", autouse=True)
def remove_test_images():
    """The test builds' images (tagged by folder name) go when the module is done."""
    before = set(images.labelled("dynosim.image.app"))
    yield
    for image, name in images.labelled("dynosim.image.app").items():
        if image not in before and name.startswith("ci-"):
            images.remove(image, force=True)


@pytest.fixture
def engine_state():
    """What dynosim owns on the engine before the test; `gone(output)` asserts that the
    throwaway app named in the output left nothing: no container, network, volume, record."""
    before = inventory.owned()

    def gone(output: str) -> str:
        match = THROWAWAY.search(output)
        assert match, output
        name = match.group(1)
        assert not inventory.owned({name}), f"{name} left objects behind"
        assert not inventory.owned() - before
        store = Store()
        try:
            assert name not in store.apps()
            assert not store.addons(name) and not store.releases(name)
            rows = store.db.execute("SELECT COUNT(*) FROM settings WHERE app = ?", (name,))
            assert rows.fetchone()[0] == 0
        finally:
            store.close()
        return name

    return gone


def test_a_flask_apps_pytest_suite_passes_against_in_dyno_postgres_and_redis(
    heroku_ci, tmp_path, engine_state
):
    folder = copy_app(APPS / "ci_app", tmp_path / "ci-flask")
    lines: list[str] = []
    result = heroku_ci(folder, output=lines.append)
    assert result.status is Status.SUCCEEDED, result.output
    assert result.exit_status == 0 and result.passed
    assert lines == result.output.splitlines()
    assert result.output.splitlines()[:3] == [
        "-----> Running test-setup command `flask --app app init-db`...",
        "tables created",
        "-----> test-setup command `flask --app app init-db` completed successfully",
    ]
    assert re.search(r"^3 passed in ", result.output, re.M)
    assert result.output.endswith("test command `pytest -q -p no:cacheprovider` completed"
                                  " successfully")  # fmt: skip
    assert engine_state(f"⬢ {result.app}, a throwaway app") == result.app


def test_ci_run_sets_heroku_cis_variables_from_the_apps_git_repository(tmp_path, engine_state):
    folder = ci_app(
        tmp_path / "ci-vars",
        {
            "scripts": {"test": PRINT_ENV},
            "env": {"FLAVOR": "test", "CI": "false"},
            "formation": {"test": {"quantity": 2, "size": "standard-2x"}},
        },
        env={"FLAVOR": "production"},
    )
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    done = dynosim("ci:run", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    found = dict(re.findall(r"^([A-Z_]+)=(.*)$", done.stdout, re.M))
    run_id = found.pop("HEROKU_TEST_RUN_ID")
    assert str(uuid.UUID(run_id)) == run_id
    assert found == {
        "CI": "true",
        "CI_NODE_INDEX": "0",
        "CI_NODE_TOTAL": "1",
        "DYNO": "test.1",
        "DYNO_RAM": "1024",  # formation.test.size: Standard-2X
        "FLAVOR": "test",
        "HEROKU_TEST_RUN_BRANCH": "main",
        "HEROKU_TEST_RUN_COMMIT_VERSION": sha.strip(),
        "HEROKU_TEST_RUN_NUMBER": "1",
    }
    assert "-----> No test-setup command provided. Skipping." in done.stdout
    assert "formation.test.quantity is 2: dynosim runs one test dyno" in done.stdout
    assert done.stdout.rstrip().endswith("-----> Test run #1 succeeded")
    engine_state(done.stdout)


def test_ci_run_exits_with_the_failing_tests_status(tmp_path, engine_state):
    folder = ci_app(
        tmp_path / "ci-fails",
        {"scripts": {"test-setup": "echo set up", "test": "echo 1 failed; exit 3"}},
    )
    done = dynosim("ci", str(folder))  # the alias
    assert done.returncode == 3, done.stdout + done.stderr
    assert "-----> test command `echo 1 failed; exit 3` failed with exit status 3" in done.stdout
    assert done.stdout.rstrip().endswith("-----> Test run #1 failed")
    engine_state(done.stdout)


def test_ci_run_stops_a_hung_test_at_its_timeout(tmp_path, engine_state):
    folder = ci_app(tmp_path / "ci-hangs", {"scripts": {"test": "echo started; sleep 600"}})
    started = time.monotonic()
    done = dynosim("ci:run", str(folder), "--timeout", "3")
    assert done.returncode == 124, done.stdout + done.stderr
    assert " !     Test run timed out after 3s and was stopped" in done.stdout
    assert "-----> Test run #1 timed out" in done.stdout
    assert time.monotonic() - started < 120
    engine_state(done.stdout)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_the_test_run_and_removes_everything(
    tmp_path, engine_state, number
):
    folder = ci_app(
        tmp_path / f"ci-interrupted-{number.name.lower()}",
        {"scripts": {"test": "echo waiting; sleep 600"}, "addons": ["heroku-redis:in-dyno"]},
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "dynosim", "ci:run", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith("waiting"):
            process.send_signal(number)
            break
    rest, _ = process.communicate(timeout=120)
    text = "".join(output) + rest
    assert process.returncode == 128 + number, text
    assert "error: test run interrupted; its app and add-ons were removed" in text
    assert "Traceback" not in text
    engine_state(text)


def test_a_failed_build_removes_the_add_ons_it_made(tmp_path, engine_state):
    folder = ci_app(
        tmp_path / "ci-broken",
        {"scripts": {"test": "true"}, "addons": ["heroku-postgresql:in-dyno", "papertrail"]},
    )
    (folder / "bin").mkdir()
    (folder / "bin" / "post_compile").write_text("echo broken build; exit 1\n")
    (folder / "bin" / "post_compile").chmod(0o755)
    done = dynosim("ci:run", str(folder))
    assert done.returncode != 0, done.stdout
    assert " !     papertrail: dynosim has no such add-on; the test run goes without it" in (
        done.stdout
    )
    assert "Creating heroku-postgresql:in-dyno as DATABASE" in done.stdout
    assert "build of ci-broken failed" in done.stderr
    assert "Running test command" not in done.stdout
    engine_state(done.stdout)


def test_without_a_test_environment_ci_run_says_what_to_add(tmp_path):
    folder = tiny_app(tmp_path / "no-test-env", "web: python -m http.server $PORT\n")
    (folder / "app.json").write_text('{"name": "x"}')
    done = dynosim("ci:run", str(folder))
    assert done.returncode != 0
    assert done.stderr == (
        f"error: {folder}/app.json: no environments.test; add"
        ' "environments": {"test": {"scripts": {"test": "pytest"}}}\n'
    )
