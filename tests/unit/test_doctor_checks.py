"""doctor's checks on recorded observations (values seen in real runs of the example app and
of the apps in tests/integration/apps/doctor_*), and its report's lines, JSON and exit code."""

import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dynosim.doctor import checks, procfs, servers, static
from dynosim.doctor import http as doctor_http
from dynosim.doctor import observations as seen
from dynosim.doctor.report import Check, Report, Status

UWSGI = seen.Server("uwsgi", {"die-on-term": "true"})
RECORDED = Path(__file__).parent / "recipes" / "doctor"


def test_boot_passes_with_the_time_it_took():
    found = checks.boot(seen.Boot("web", 5000, 0.8, 60.0, (seen.Listener("0.0.0.0", 5000),)), UWSGI)
    assert found.status is Status.PASS and "0.8 s" in found.observed and found.fact.code == "R10"


def test_boot_names_a_fixed_port_and_the_fix_for_the_server():
    found = checks.boot(
        seen.Boot("web", 5000, None, 60.0, (seen.Listener("0.0.0.0", 8000),)), UWSGI
    )
    assert found.status is Status.FAIL
    assert "fixed port 8000" in found.observed and "http-socket = :$(PORT)" in found.fix


def test_boot_on_loopback_only_fails():
    found = checks.boot(
        seen.Boot("web", 5000, None, 60.0, (seen.Listener("127.0.0.1", 5000),)),
        seen.Server("gunicorn"),
    )
    assert found.status is Status.FAIL and "127.0.0.1:5000 only" in found.observed


def test_boot_that_never_binds_or_exits():
    assert "within 60 s" in checks.boot(seen.Boot("web", 5000, None, 60.0), UWSGI).observed
    ended = checks.boot(seen.Boot("web", 5000, None, 60.0, exit_code=1), UWSGI)
    assert ended.status is Status.FAIL and "status 1" in ended.observed


def test_shutdown_r12_when_sigterm_is_ignored_or_too_slow():
    ignored = checks.shutdown(seen.Shutdown("worker", None, 137, 30.0, ("python worker.py",)))
    assert ignored.status is Status.FAIL and ignored.fact.code == "R12"
    assert "ignores SIGTERM (python worker.py)" in ignored.observed
    slow = checks.shutdown(seen.Shutdown("worker", None, 137, 30.0))
    assert slow.status is Status.FAIL and "still running 30 s" in slow.observed
    quick = checks.shutdown(seen.Shutdown("web", 1.2, 0, 30.0))
    assert quick.status is Status.PASS and "1.2 s" in quick.observed


@pytest.mark.parametrize(
    ("server", "setting"),
    [
        ("uwsgi", "gracefully_kill"),
        ("gunicorn", "--graceful-timeout"),
        ("uvicorn", "--timeout-graceful-shutdown"),
    ],
)
def test_a_dropped_request_in_flight_is_h13_with_the_servers_setting(server, setting):
    found = checks.in_flight(seen.InFlight(False, error="connection closed"), seen.Server(server))
    assert found.status is Status.WARN and found.fact.code == "H13" and setting in found.fix


def test_a_sigterm_lost_right_after_boot_is_a_warning_with_the_uwsgi_hook():
    lost = checks.sigterm_at_boot(seen.EarlyStop(0.15, None, 137, 30.0), UWSGI)
    assert lost.status is Status.WARN and lost.fact.code == "R12"
    assert "0.15 s after $PORT first accepted was lost" in lost.observed
    assert "hook-post-fork = unix_signal:15 gracefully_kill" in lost.fix
    kept = checks.sigterm_at_boot(seen.EarlyStop(0.15, 1.3, 0, 30.0), seen.Server("gunicorn"))
    assert kept.status is Status.PASS and "exited 1.3 s" in kept.observed


def test_an_answered_request_in_flight_passes():
    assert checks.in_flight(seen.InFlight(True, 200), UWSGI).status is Status.PASS
    early = checks.in_flight(seen.InFlight(True, 200, before_sigterm=True), seen.Server("gunicorn"))
    assert early.status is Status.PASS and "nothing was in flight" in early.observed


def test_probe_h12_and_errors():
    assert (
        checks.probe(seen.Probe("/slow", None, 30.0, 30.0, error="timed out")).status is Status.FAIL
    )
    assert checks.probe(seen.Probe("/", 200, 0.002, 30.0)).status is Status.PASS
    assert checks.probe(seen.Probe("/", 500, 0.01, 30.0)).status is Status.WARN


def test_a_redirect_to_itself_under_https_is_a_loop():
    looping = seen.Probe("/", 301, 0.01, 30.0, "https://127.0.0.1:5000/", "https")
    assert checks.probe(looping).status is Status.FAIL
    elsewhere = seen.Probe("/", 302, 0.01, 30.0, "/login", "https")
    assert checks.probe(elsewhere).status is Status.PASS


def test_keep_alive_shorter_than_router_2_is_a_race_named_by_its_setting():
    gthread = seen.Server("gunicorn", {"threads": "4"}, "gunicorn.conf.py")
    short = checks.keep_alive(seen.KeepAlive(True, 2.0, 2.0), gthread)
    assert short.status is Status.WARN and "after 2.0 s" in short.observed
    assert "keepalive = 2 s (gunicorn's default)" in short.observed
    assert "`keepalive = 95` in gunicorn.conf.py" in short.fix
    uvicorn = checks.keep_alive(seen.KeepAlive(True, 5.0, 5.0), seen.Server("uvicorn"))
    assert "--timeout-keep-alive = 5 s (uvicorn's default)" in uvicorn.observed
    assert "--timeout-keep-alive 95" in uvicorn.fix


def test_keep_alive_passes_only_when_held_past_90_s():
    closes = checks.keep_alive(seen.KeepAlive(True, 0.01, 0.01), UWSGI)  # uWSGI's http-socket
    assert closes.status is Status.PASS and "after each answer" in closes.observed
    assert "http-socket closes each connection" in closes.observed
    held = seen.Server("uvicorn", {"timeout-keep-alive": "100"})
    kept = checks.keep_alive(seen.KeepAlive(True, None, checks.IDLE_HOLD), held)
    assert kept.status is Status.PASS and "open after 91 s" in kept.observed
    assert "--timeout-keep-alive = 100 s (the Procfile)" in kept.observed
    cut_short = checks.keep_alive(seen.KeepAlive(True, None, 12.0), held)
    assert cut_short.status is Status.WARN and "not 90 s" in cut_short.observed


@pytest.mark.parametrize(
    ("server", "described"),
    [
        (seen.Server("gunicorn"), "gunicorn's sync worker closes each connection"),
        (seen.Server("gunicorn", {"k": "gevent"}), "keepalive = 2 s (gunicorn's default)"),
        (
            seen.Server("gunicorn", {"threads": "4", "keep-alive": "5"}),
            "--keep-alive = 5 s (the Procfile)",
        ),
        (
            seen.Server("gunicorn", {"worker_class": "gthread", "keepalive": "95"}, "g.py"),
            "keepalive = 95 s (g.py)",
        ),
        (seen.Server("uvicorn"), "--timeout-keep-alive = 5 s (uvicorn's default)"),
        (
            seen.Server("uwsgi", {"http-socket": ":5000"}),
            "uWSGI's http-socket closes each connection",
        ),
        (
            seen.Server("uwsgi", {"http11-socket": ":5000"}, "uwsgi.ini"),
            "http11-socket (uwsgi.ini)",
        ),
        (seen.Server("uwsgi", {"http-keepalive": "75"}, "u.ini"), "http-keepalive = 75 s (u.ini)"),
    ],
)
def test_the_idle_setting_each_server_reads(server, described):
    setting = servers.idle_setting(server)
    assert setting is not None and setting.describe() == described
    assert servers.idle_setting(seen.Server("python")) is None


def test_idle_watch_measures_when_the_server_closes_an_idle_connection():
    """A real local server that answers with keep-alive and closes idle connections at 0.3 s."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 0.3

        def do_GET(self):
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        watch = doctor_http.IdleWatch("127.0.0.1", server.server_address[1], "/")
        watch.hold(10.0)  # returns when the server closes it, not after 10 s
        seen_ = watch.result()
    finally:
        server.shutdown()
    assert seen_.keeps and seen_.closed_after is not None and 0.2 < seen_.closed_after < 5.0


def test_memory_against_the_quota_and_the_smallest_size():
    fits = checks.memory(seen.Memory("web", "Standard-1X", 512, 82 * 2**20, 85 * 2**20))
    assert fits.status is Status.PASS and "fits Eco" in fits.observed
    over = checks.memory(seen.Memory("worker", "Standard-1X", 512, 700 * 2**20))
    assert over.status is Status.FAIL and over.fact.code == "R14" and "Standard-2X" in over.fix
    assert checks.memory(seen.Memory("w", "Standard-1X", 512, 1100 * 2**20)).fact.code == "R15"


def test_files_outside_tmp_and_sqlite():
    diff = [("/app", "changed"), ("/app/data.db", "added"), ("/tmp", "changed"),
            ("/tmp/x", "added"), ("/app/__pycache__/a.pyc", "added"), ("/app/gone", "deleted"),
            ("/app/uploads", "added"), ("/app/uploads/a.png", "added")]  # fmt: skip
    written, sqlite = checks.outside_tmp(diff)
    assert written == ["/app/data.db", "/app/uploads/a.png"] and sqlite == ["/app/data.db"]
    assert checks.filesystem("web", written, sqlite).status is Status.WARN
    assert "uploads/a.png" in checks.filesystem("web", written[1:], []).observed
    assert checks.filesystem("web", [], []).status is Status.PASS


def test_release_phase_must_succeed_twice():
    assert checks.release(seen.ReleaseRun("x", (0, 0))).status is Status.PASS
    once = checks.release(seen.ReleaseRun("x", (0, 1), "already exists\n"))
    assert once.status is Status.FAIL and "second time: already exists" in once.observed
    assert checks.release(seen.ReleaseRun("x", (2,))).status is Status.FAIL
    assert checks.release(None).status is Status.PASS


def test_build_python_runtime_txt_collectstatic():
    found = checks.build(seen.Build("", seen.Python("3.10", "runtime.txt", deprecated=True), False))
    statuses = {f.subject: f.status for f in found}
    assert statuses == {
        "python": Status.WARN,
        "runtime.txt": Status.WARN,
        "collectstatic": Status.FAIL,
    }
    assert checks.build(seen.Build("pip failed"))[0].status is Status.FAIL
    unsupported = checks.build(seen.Build("", seen.Python("3.8", "runtime.txt", supported=False)))
    assert unsupported[0].status is Status.FAIL


def test_web_concurrency_honoured_or_not():
    assert checks.concurrency(seen.Concurrency(3, 3), UWSGI).status is Status.PASS
    ignored = checks.concurrency(seen.Concurrency(3, 2), UWSGI)
    assert ignored.status is Status.WARN and "$(WEB_CONCURRENCY)" in ignored.fix


def test_config_names_places_never_values():
    found = checks.config(
        seen.Config(("API_TOKEN",), (seen.Secret("settings.py", 3, "SECRET_KEY"),))
    )
    assert [f.status for f in found] == [Status.FAIL, Status.WARN]
    assert found[1].subject == "settings.py:3" and "SECRET_KEY" in found[1].observed
    assert checks.config(seen.Config())[0].status is Status.PASS


def test_report_exit_code_strict_lines_and_json_round_trip():
    found = [checks.release(None), checks.in_flight(seen.InFlight(False), UWSGI)]
    report = Report("demo", tuple(found))
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1
    assert [f.check for f in report.findings] == [Check.SHUTDOWN, Check.RELEASE]
    assert report.lines()[-1] == "=== demo: 1 pass, 1 warn, 0 fail"
    raw = json.loads(report.to_json())
    assert raw["schema"] == 1 and raw["ok"] is True and raw["findings"][0]["fact"]["code"] == "H13"
    assert Report.from_dict(raw) == report


def test_procfs_snapshot_of_a_uwsgi_dyno():
    """Recorded from web.2 of the example app (WEB_CONCURRENCY=3) with `docker.inside`."""
    snapshot = procfs.parse((RECORDED / "uwsgi_snapshot.txt").read_text())
    assert procfs.workers(snapshot) == 3
    assert seen.Listener("0.0.0.0", 5000) in snapshot.listeners
    assert all("@@doctor" not in p.command for p in snapshot.processes)


def test_procfs_sigterm_ignored():
    text = (
        "@@doctor pid 1\nbash /usr/local/bin/dyno-launch x\nPPid:\t0\nSigIgn:\t0000000000000000\n"
        "@@doctor pid 7\npython worker.py\nPPid:\t1\nSigIgn:\t0000000000004000\n"
        "@@doctor tcp\n  sl  local_address rem_address   st\n"
        "   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000\n"
    )  # fmt: skip
    snapshot = procfs.parse(text)
    assert snapshot.processes[1].ignores(signal.SIGTERM)
    assert procfs.ignoring_sigterm(snapshot) == ["python worker.py"]
    assert snapshot.listeners == (seen.Listener("127.0.0.1", 8000),)


def test_static_gunicorn_config_file_and_dockerfile_command(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text(
        "import os\nworkers = int(os.environ.get('WEB_CONCURRENCY', 2))\nthreads = 4\n"
    )
    found = static.server("gunicorn app:app", tmp_path)
    assert found.settings == {"threads": "4"} and found.config_file == "gunicorn.conf.py"
    assert servers.idle_setting(found).describe() == "keepalive = 2 s (gunicorn's default)"
    (tmp_path / "Dockerfile").write_text('FROM x\nCMD ["gunicorn", "app:app"]\n')
    assert static.dockerfile_command(tmp_path / "Dockerfile") == "gunicorn app:app"
    (tmp_path / "Dockerfile").write_text("FROM x\nCMD uvicorn app:app \\\n  --port $PORT\n")
    assert static.dockerfile_command(tmp_path / "Dockerfile") == "uvicorn app:app    --port $PORT"


def test_a_heroku_yml_build_is_judged_without_a_buildpack():
    built = checks.container_build("")
    assert [(f.subject, f.status) for f in built] == [("heroku.yml", Status.PASS)]
    assert checks.container_build("Dockerfile: exit 1")[0].status is Status.FAIL


def test_static_server_settings(tmp_path):
    (tmp_path / "uwsgi.ini").write_text("[uwsgi]\nhttp-socket = :$(PORT)\ndie-on-term = true ; x\n")
    server = static.server("uwsgi uwsgi.ini", tmp_path)
    assert server.name == "uwsgi" and server.settings["die-on-term"] == "true"
    gunicorn = static.server("python -m gunicorn app:app --keep-alive 5 -w 2", tmp_path)
    assert gunicorn.name == "gunicorn" and gunicorn.settings["keep-alive"] == "5"


def test_static_secrets_names_and_places(tmp_path):
    (tmp_path / "settings.py").write_text(
        'SECRET_KEY = "django-insecure-4f8a9b2c7d"\nDEBUG = True\n'
        'PASSWORD = os.environ["PASSWORD"]\napi_token = "changeme"\n'
        'AWS = "AKIAABCDEFGHIJKLMNOP"\n'
    )
    found = static.secrets(tmp_path)
    assert [(s.path, s.line, s.name) for s in found] == [
        ("settings.py", 1, "SECRET_KEY"), ("settings.py", 5, "AWS access key"),
    ]  # fmt: skip


def test_static_required_env_and_sqlite(tmp_path):
    (tmp_path / "app.json").write_text('{"env": {"API_TOKEN": {"required": true}, "A": "1"}}')
    (tmp_path / "data.db").write_bytes(static.SQLITE_MAGIC + b"\0" * 100)
    assert static.config(tmp_path, {}).required_unset == ("API_TOKEN",)
    assert static.config(tmp_path, {"API_TOKEN": "x"}).required_unset == ()
    assert static.sqlite_in_slug(tmp_path) == ["data.db"]


def test_static_python(tmp_path):
    (tmp_path / "runtime.txt").write_text("python-3.10\n")
    found = static.python(tmp_path)
    assert (found.version, found.source, found.deprecated) == ("3.10", "runtime.txt", True)
    (tmp_path / "runtime.txt").write_text("python-3.8\n")
    assert not static.python(tmp_path).supported


def test_a_type_that_is_not_web_must_keep_running():
    assert checks.running("worker", None).status is Status.PASS
    crashed = checks.running("worker", 1)
    assert crashed.status is Status.FAIL and "status 1" in crashed.observed


def test_static_sizes_from_app_json(tmp_path):
    (tmp_path / "app.json").write_text(
        '{"formation": {"worker": {"quantity": 1, "size": "standard-2x"}}}'
    )
    assert static.sizes(["web", "worker"], tmp_path) == {
        "web": "Standard-1X",
        "worker": "Standard-2X",
    }
