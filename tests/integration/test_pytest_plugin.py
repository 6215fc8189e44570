"""The pytest plugin from a user's side: a test session of its own (pytester), real dynos."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import WEB, tiny_app

from dynosim.docker import client as docker_client

pytest_plugins = ["pytester"]


def run_session(pytester: pytest.Pytester, test_code: str) -> pytest.RunResult:
    pytester.makepyfile(test_code)
    # keep the outer session's images: the inner session would otherwise remove what it built
    return pytester.runpytest("--dynosim-reuse-images", "-p", "no:cacheprovider")


def app_objects(app: str) -> tuple[list, list]:
    client, labelled = docker_client.client(), {"label": f"dynosim.app={app}"}
    return client.containers.list(
        ignore_removed=True, all=True, filters=labelled
    ), client.networks.list(filters=labelled)


def test_a_failing_test_still_gets_its_dynos_network_and_state_removed(pytester, tmp_path):
    app_dir = tiny_app(tmp_path / "doomed", WEB)
    seen = tmp_path / "seen.txt"
    result = run_session(
        pytester,
        f"""
import os, pathlib

def test_fails_midway(dyno_app):
    app = dyno_app({str(app_dir)!r}, formation={{"web": 2}})
    pathlib.Path({str(seen)!r}).write_text(app.name + "\\n" + os.environ["DYNOSIM_HOME"])
    assert False, "on purpose"
""",
    )
    result.assert_outcomes(failed=1)
    name, home = seen.read_text().splitlines()
    assert app_objects(name) == ([], [])
    assert not Path(home).exists()
    report = result.stdout.str()  # the failure shows the app's log
    assert f"--- dynosim logs of {name} ---" in report
    assert "heroku[web.2]: State changed from starting to up" in report


def test_the_leak_check_fails_the_test_that_left_something_behind(pytester, tmp_path):
    app_dir = tiny_app(tmp_path / "leaky", WEB)
    result = run_session(
        pytester,
        f"""
from dynosim.docker import client as docker_client

def test_leaves_a_network_behind(dyno_app):
    app = dyno_app({str(app_dir)!r})
    labels = {{"dynosim": "network", "dynosim.app": app.name}}
    docker_client.client().networks.create("dynosim-leaky-extra", labels=labels)
""",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*test left 0 containers, 1 networks and 0 volumes behind*"])
    assert docker_client.client().networks.list(names=["dynosim-leaky-extra"]) == []


def test_keep_leaves_a_failed_tests_app_serving_until_ctrl_c(tmp_path):
    app_dir = tiny_app(tmp_path / "kept", WEB)
    (tmp_path / "test_kept.py").write_text(
        f"def test_fails(dyno_app):\n    dyno_app({str(app_dir)!r})\n    assert False\n"
    )
    pytest_command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    session = subprocess.Popen(
        [*pytest_command, "test_kept.py", "--dynosim-keep", "--dynosim-reuse-images"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert session.stdout
        lines = iter(session.stdout.readline, "")
        kept = next(line for line in lines if line.startswith("  kept-"))
        assert next(lines).strip() == "press Ctrl-C to stop them"
        name, url = kept.split()[0].rstrip(":"), kept.split()[1]
        assert requests.get(url, timeout=10).text == "web.1"  # still serving after the test
        session.send_signal(signal.SIGINT)
        assert session.wait(60) == 1  # the failed test's status
    finally:
        session.kill()
    assert app_objects(name) == ([], [])
