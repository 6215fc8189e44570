"""`dynosim doctor` on real dynos: an app built to fail every check but boot
(apps/doctor_unfit), one on a fixed port (apps/doctor_fixed_port), gunicorn with its defaults
and a path slower than H12's 30 s (apps/doctor_gunicorn), a heroku.yml app, and the example
app, which passes without a warning. One doctor run per app; the tests read its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLE, container_app, copy_app, dynosim

from dynosim import App
from dynosim.doctor import Check, Report, Status

APPS = Path(__file__).parent / "apps"
UNFIT = APPS / "doctor_unfit"
GUNICORN = APPS / "doctor_gunicorn"


@pytest.fixture(scope="module")
def unfit() -> tuple[int, Report, str]:
    """doctor_unfit through the CLI, --json: exit status, the report, everything printed."""
    ran = dynosim("doctor", str(UNFIT), "--json", "--probe", "/")
    return ran.returncode, Report.from_dict(json.loads(ran.stdout)), ran.stdout + ran.stderr


def statuses(report: Report, check: Check) -> dict[str, Status]:
    return {f.subject: f.status for f in report.of(check)}


def test_unfit_app_fails_with_exit_1_and_never_prints_the_secret(unfit):
    code, report, printed = unfit
    assert code == 1 and report.failed()
    assert "d0ct0r-literal" not in printed  # names and places only


def test_unfit_boot_passes_and_shutdown_fails(unfit):
    _, report, _ = unfit
    assert statuses(report, Check.BOOT) == {"web": Status.PASS, "worker": Status.PASS}
    shutdown = {f.subject: f for f in report.of(Check.SHUTDOWN)}
    assert shutdown["worker"].status is Status.FAIL and shutdown["worker"].fact.code == "R12"
    assert "ignores SIGTERM (python worker.py" in shutdown["worker"].observed
    in_flight = shutdown["web (request in flight at SIGTERM)"]
    assert in_flight.status is Status.WARN and in_flight.fact.code == "H13"


def test_unfit_router_fit_redirect_loop_and_keep_alive(unfit):
    _, report, _ = unfit
    router = {f.subject: f for f in report.of(Check.ROUTER)}
    assert router["/"].status is Status.PASS  # a 301 answers in time
    assert router["/ (https)"].status is Status.FAIL and "a loop" in router["/ (https)"].observed
    kept = router["web (kept connection)"]
    assert kept.status is Status.WARN and "after 2." in kept.observed


def test_unfit_memory_filesystem_release(unfit):
    _, report, _ = unfit
    memory = {f.subject: f for f in report.of(Check.MEMORY)}
    assert memory["worker"].status is Status.FAIL and memory["worker"].fact.code == "R14"
    assert memory["web"].status is Status.PASS and "fits Eco" in memory["web"].observed
    files = {f.subject: f for f in report.of(Check.FILESYSTEM)}
    assert files["web"].status is Status.WARN and "data.sqlite3" in files["web"].observed
    assert statuses(report, Check.RELEASE) == {"release": Status.FAIL}


def test_unfit_build_and_config(unfit):
    _, report, _ = unfit
    assert statuses(report, Check.BUILD) == {
        "python": Status.WARN, "runtime.txt": Status.WARN, "WEB_CONCURRENCY": Status.WARN,
    }  # fmt: skip
    config = {f.subject: f for f in report.of(Check.CONFIG)}
    assert config["app.json"].status is Status.FAIL
    assert "PAYMENT_API_TOKEN" in config["app.json"].observed
    lines = (UNFIT / "web.py").read_text().splitlines()
    where = f"web.py:{next(n for n, line in enumerate(lines, 1) if 'SECRET_KEY =' in line)}"
    assert config[where].status is Status.WARN and "SECRET_KEY" in config[where].observed


def test_a_fixed_port_is_r10_named_without_waiting_for_the_boot_timeout():
    report = App.open(APPS / "doctor_fixed_port").doctor()
    boot = report.of(Check.BOOT)[0]
    assert boot.status is Status.FAIL and boot.fact.code == "R10"
    assert "fixed port 8000" in boot.observed and report.exit_code() == 1


def test_the_example_app_passes_without_warnings(dynosim_doctor):
    report = dynosim_doctor(EXAMPLE, probes=("/", "/stores"))
    assert not report.failed(strict=True), report.text()
    passed = {f.subject for f in report.of(Check.SHUTDOWN, Status.PASS)}
    assert "web (SIGTERM right after boot)" in passed  # its post-fork hook
    assert {f.check for f in report.findings} >= set(Check)


def test_gunicorn_defaults_race_the_router_and_a_slow_path_is_h12(dynosim_doctor):
    """Measured in full: the kept connection is held until gunicorn closes it (its default
    keepalive, 2 s); /report answers after 32 s, so the 30 s window is waited out once."""
    report = dynosim_doctor(GUNICORN, probes=("/", "/report"))
    router = {f.subject: f for f in report.of(Check.ROUTER)}
    kept = router["web (kept connection)"]
    assert kept.status is Status.WARN and "closed an idle kept connection after 2." in kept.observed
    assert "keepalive = 2 s (gunicorn's default)" in kept.observed
    assert "`keepalive = 95` in gunicorn.conf.py" in kept.fix
    for subject in ("/report", "/report (https)"):
        assert router[subject].status is Status.FAIL and router[subject].fact.code == "H12"
        assert "no answer within 30 s" in router[subject].observed
    assert router["/"].status is Status.PASS
    failed = {(f.check, f.subject) for f in report.with_status(Status.FAIL)}
    assert failed == {(Check.ROUTER, "/report"), (Check.ROUTER, "/report (https)")}, report.text()


def test_a_heroku_yml_app_is_examined_from_its_manifest(dynosim_doctor, tmp_path):
    """No Procfile: heroku.yml says what runs; its Dockerfile, not a buildpack, builds it."""
    app = container_app(
        tmp_path / "doctor_container",
        "WORKDIR /srv\nCOPY index.html .\n",
        "build:\n  docker:\n    web: Dockerfile\n"
        "release:\n  command:\n    - echo released\n"
        "run:\n  web: python3 -m http.server $PORT\n",
        **{"index.html": "served from my own image\n"},
    )
    report = dynosim_doctor(app)
    assert statuses(report, Check.BUILD) == {"heroku.yml": Status.PASS}, report.text()
    assert statuses(report, Check.BOOT) == {"web": Status.PASS}
    assert statuses(report, Check.RELEASE) == {"release": Status.PASS}
    assert "`echo released` succeeded 2 times" in report.of(Check.RELEASE)[0].observed
    assert statuses(report, Check.ROUTER)["/"] is Status.PASS
    # Heroku signals every process of the dyno: python3 (no handler) ends, no R12
    assert statuses(report, Check.SHUTDOWN)["web"] is Status.PASS, report.text()


def test_a_sigterm_uwsgi_loses_while_its_workers_load_the_app_is_a_warning(
    dynosim_doctor, tmp_path
):
    """The example app without its post-fork hook: a worker that gets SIGTERM while it loads
    the app loses it, so the dyno runs until SIGKILL (bench/bench_sigterm_at_boot.py). A lost
    signal stays lost: a 5 s grace instead of Heroku's 30 says the same, 25 s sooner."""
    app = copy_app(EXAMPLE, tmp_path / "flask_app")
    ini = app / "uwsgi.ini"
    kept = [line for line in ini.read_text().splitlines() if not line.startswith("hook-post-fork")]
    ini.write_text("\n".join(kept) + "\n")
    report = dynosim_doctor(app, grace=5.0)
    shutdown = {f.subject: f for f in report.of(Check.SHUTDOWN)}
    early = shutdown["web (SIGTERM right after boot)"]
    assert early.status is Status.WARN and "lost: still running 5 s later" in early.observed
    assert "hook-post-fork" in early.fix
    assert shutdown["web"].status is Status.PASS  # once it has served, SIGTERM works
