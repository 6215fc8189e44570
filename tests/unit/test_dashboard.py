"""The dashboard's server on a fake `App`: the token (403 without it, a cookie once shown,
never logged), the JSON endpoints, formation changes and restarts going to the API's methods,
the log tail as Server-Sent Events. The page in a real browser:
tests/integration/test_dashboard_browser.py."""

from __future__ import annotations

import datetime as dt
import json
import socket

import pytest
import requests

from dynosim import control
from dynosim import formation as formations
from dynosim.dashboard import Dashboard, access, server, views
from dynosim.errors import UsageError
from dynosim.logs import LogLine
from dynosim.metrics import Minute
from dynosim.store import Addon, Release

T0 = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
RELEASE = Release("demo", 3, "img", "h", "Set SECRET config vars", {"web": "gunicorn app"},
                  {"SECRET": "s3cr3t", "PLAIN": "x"}, T0)  # fmt: skip
MINUTES = [
    Minute(T0, "web", {"requests": {"2xx": 5, "4xx": 1},
                       "response_ms": {"count": 6, "p50": 3, "p95": 9, "p99": 9, "max": 12},
                       "events": {"deploy": 1}}),
    Minute(T0 + dt.timedelta(minutes=1), "web", {
        "requests": {"5xx": 2}, "events": {"H12": 2},
        "memory": {"samples": 12, "rss_mb": 40.5, "rss_max_mb": 42.0, "swap_max_mb": 0.0,
                   "quota_mb": 512.0},
        "load": {"mean": 0.2, "max": 0.5}}),
]  # fmt: skip


class FakeAddons:
    def attached(self):
        return [Addon("demo", "postgresql-curly-1", "heroku-postgresql", "essential-0",
                      "DATABASE_URL", {"password": "pw"}, T0)]  # fmt: skip


class FakeApp:
    """The `App` methods the dashboard calls, recording the changes asked for."""

    name, running = "demo", True
    calls: list[tuple] = []
    not_running = broken = False

    def __init__(self):
        self.addons = FakeAddons()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def current_release(self):
        return RELEASE

    def formation(self):
        return {"web": formations.Entry("web", 1, "Standard-1X")}

    def dynos(self):
        if FakeApp.not_running:
            raise control.NotRunning("no dynosim up is running for app demo")
        row = {"name": "web.1", "type": "web", "state": "up", "since": T0.isoformat()}
        return [
            {**row, "size": "Standard-1X", "command": "gunicorn app", "release": 3, "role": "x"}
        ]

    def releases(self, num):
        if FakeApp.broken:
            raise ConnectionRefusedError("engine gone")
        return [RELEASE]

    def config(self):
        return dict(RELEASE.config)

    def metrics(self, process_type, since, *, dynos=True):
        FakeApp.calls.append(("metrics", process_type, since, dynos))
        return MINUTES

    def scale(self, *changes):
        FakeApp.calls.append(("scale", *changes))
        if changes == ("web=-1",):
            raise UsageError("Invalid quantity -1")
        return {"web": formations.Entry("web", 2, "Standard-1X")}

    def resize(self, *changes):
        FakeApp.calls.append(("resize", *changes))
        return {"web": formations.Entry("web", 1, "Standard-2X")}

    def restart(self, target=None):
        FakeApp.calls.append(("restart", target))
        return ["web.1"]

    def log_stream(self, num, *, tail=False):
        FakeApp.calls.append(("logs", num, tail))
        yield LogLine("heroku", "router", 'at=info path="/" status=200', T0)
        yield LogLine("app", "web.1", "hello <b>", T0)


@pytest.fixture
def dashboard():
    FakeApp.calls, FakeApp.not_running, FakeApp.broken = [], False, False
    served = Dashboard(FakeApp, port=0)
    served.start()
    yield served
    served.close()


def base(served: Dashboard) -> str:
    return f"http://127.0.0.1:{served.port}"


@pytest.fixture
def session(dashboard):
    """A client that showed the token once: it has the cookie."""
    with requests.Session() as client:
        first = client.get(dashboard.url, allow_redirects=False, timeout=5)
        assert first.status_code == 303
        yield client


def test_without_the_token_everything_is_forbidden(dashboard):
    root = base(dashboard)
    for path in ("/", "/api/overview", "/static/dashboard.js", "/static/plotly.min.js"):
        assert requests.get(root + path, timeout=5).status_code == 403
    assert requests.get(root + "/?token=wrong", timeout=5).status_code == 403
    cookie = {access.cookie_name(dashboard.port): "wrong"}
    assert requests.get(root + "/api/overview", cookies=cookie, timeout=5).status_code == 403
    posted = requests.post(root + "/api/scale", json={"type": "web", "quantity": 5}, timeout=5)
    assert posted.status_code == 403
    assert ("scale", "web=5") not in FakeApp.calls


def test_another_host_name_is_forbidden_even_with_the_token(dashboard):
    """A DNS-rebinding page reaches 127.0.0.1 under its own host name."""
    answer = requests.get(dashboard.url, headers={"Host": "evil.example:80"}, timeout=5)
    assert answer.status_code == 403


def test_the_token_becomes_a_strict_cookie_and_leaves_the_address(dashboard):
    first = requests.get(dashboard.url + "&x=1", allow_redirects=False, timeout=5)
    assert first.status_code == 303 and first.headers["Location"] == "/?x=1"
    cookie = first.headers["Set-Cookie"]
    name = access.cookie_name(dashboard.port)
    assert cookie == f"{name}={dashboard.token}; Path=/; HttpOnly; SameSite=Strict"
    page = requests.get(base(dashboard) + "/", cookies=first.cookies, timeout=5)
    assert page.status_code == 200 and "plotly.min.js" in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_the_token_is_long_random_and_never_logged(dashboard, capfd):
    other = Dashboard(FakeApp, port=0)
    other.close()
    assert len(dashboard.token) >= 40 and dashboard.token != other.token
    requests.get(dashboard.url, timeout=5)
    requests.get(base(dashboard) + "/?token=wrong", timeout=5)
    out, err = capfd.readouterr()
    assert dashboard.token not in out + err and "wrong" not in out + err


def test_the_overview_has_config_var_names_and_no_values(session, dashboard):
    data = session.get(base(dashboard) + "/api/overview", timeout=5).json()
    assert data["app"] == "demo" and data["release"] == "v3" and data["running"]
    assert data["config_vars"] == ["PLAIN", "SECRET"]
    assert "s3cr3t" not in json.dumps(data) and "pw" not in json.dumps(data)
    (web,) = data["formation"]
    assert (web["type"], web["quantity"], web["size"], web["command"]) == (
        "web", 1, "Standard-1X", "gunicorn app"
    )  # fmt: skip
    assert [d["name"] for d in web["dynos"]] == ["web.1"] and "role" not in web["dynos"][0]
    assert data["addons"] == [{"name": "postgresql-curly-1", "service": "heroku-postgresql",
                               "plan": "essential-0", "config_var": "DATABASE_URL"}]  # fmt: skip
    assert data["releases"][0]["version"] == "v3"
    assert "Standard-2X" in data["sizes"]


def test_a_config_value_only_on_request(session, dashboard):
    found = session.get(base(dashboard) + "/api/config?key=SECRET", timeout=5)
    assert found.json() == {"key": "SECRET", "value": "s3cr3t"}
    missing = session.get(base(dashboard) + "/api/config?key=NOPE", timeout=5)
    assert missing.status_code == 400 and missing.json() == {"error": "no config var 'NOPE'"}


def test_metrics_come_as_columns_of_the_api_minutes(session, dashboard):
    data = session.get(base(dashboard) + "/api/metrics?type=web&since=1h", timeout=5).json()
    assert FakeApp.calls == [("metrics", "web", "1h", False)]
    assert data["time"] == [T0.isoformat(), (T0 + dt.timedelta(minutes=1)).isoformat()]
    assert data["requests"] == {"2xx": [5, None], "3xx": [None, None], "4xx": [1, None],
                                "5xx": [None, 2]}  # fmt: skip
    assert data["response_ms"]["p95"] == [9, None] and data["response_ms"]["max"] == [12, None]
    assert data["memory_mb"]["quota"] == [None, 512.0] and data["load"]["max"] == [None, 0.5]
    assert [(e["kind"], e["count"]) for e in data["events"]] == [("deploy", 1), ("H12", 2)]
    bad = session.get(base(dashboard) + "/api/metrics?since=3y", timeout=5)
    assert bad.status_code == 400 and "since must be one of" in bad.json()["error"]


@pytest.mark.parametrize(
    ("body", "call"),
    [
        ({"type": "web", "quantity": 2}, ("scale", "web=2")),
        ({"type": "web", "quantity": 2, "size": "Standard-2X"}, ("scale", "web=2:Standard-2X")),
        ({"type": "web", "size": "Standard-2X"}, ("resize", "web=Standard-2X")),
    ],
)
def test_formation_changes_go_through_the_api(session, dashboard, body, call):
    answer = session.post(base(dashboard) + "/api/scale", json=body, timeout=5)
    assert answer.status_code == 200, answer.text
    assert FakeApp.calls == [call]
    assert answer.json()["formation"].startswith("web at ")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"quantity": 2}, "a formation change needs a process type"),
        ({"type": "web"}, "a formation change needs a quantity or a size"),
        ({"type": "web", "quantity": "2"}, "quantity must be a whole number"),
        ({"type": "web", "quantity": -1}, "Invalid quantity -1"),
    ],
)
def test_a_bad_formation_change_is_a_400_with_the_reason(session, dashboard, body, error):
    answer = session.post(base(dashboard) + "/api/scale", json=body, timeout=5)
    assert answer.status_code == 400 and answer.json() == {"error": error}


def test_restarts_go_through_the_api(session, dashboard):
    root = base(dashboard)
    assert session.post(root + "/api/restart", json={"target": "web"}, timeout=5).ok
    assert session.post(root + "/api/restart", json={}, timeout=5).ok
    assert FakeApp.calls == [("restart", "web"), ("restart", None)]


def test_actions_take_json_only(session, dashboard):
    """A form another page posts is no JSON (and a JSON post from it needs CORS we never give)."""
    answer = session.post(base(dashboard) + "/api/restart", data="target=web", timeout=5)
    assert answer.status_code == 415 and FakeApp.calls == []


def test_no_running_up_is_a_503(session, dashboard):
    FakeApp.not_running = True
    answer = session.get(base(dashboard) + "/api/overview", timeout=5)
    assert answer.status_code == 503 and "no dynosim up is running" in answer.json()["error"]


def test_any_other_failure_is_a_500_with_one_line(session, dashboard, capfd):
    FakeApp.broken = True
    answer = session.get(base(dashboard) + "/api/overview", timeout=5)
    assert answer.status_code == 500 and "engine gone" in answer.json()["error"]
    assert "Traceback" not in capfd.readouterr().err


def test_the_log_tail_is_a_stream_of_events(session, dashboard):
    with session.get(base(dashboard) + "/api/logs", stream=True, timeout=5) as answer:
        assert answer.headers["Content-Type"] == "text/event-stream"
        events = [line for line in answer.iter_lines() if line.startswith(b"data: ")]
    lines = [json.loads(event[6:])["line"] for event in events]
    assert lines == [line.format() for line in FakeApp().log_stream(0)]
    assert ("logs", server.LOG_LINES, True) in FakeApp.calls


def test_plotly_is_the_basic_bundle_when_setup_installed_it(session, dashboard, monkeypatch):
    if not server.PLOTLY_BASIC.is_file():
        pytest.fail("scripts/setup installs plotly.js-basic-dist-min; run it")
    answer = session.get(base(dashboard) + "/static/plotly.min.js", timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Encoding"] == "gzip"
    assert answer.content == server.PLOTLY_BASIC.read_bytes()


def test_else_plotly_comes_from_the_plotly_package(session, dashboard, monkeypatch, tmp_path):
    from plotly.offline import get_plotlyjs

    monkeypatch.setattr(server, "PLOTLY_BASIC", tmp_path / "none.js")
    answer = session.get(base(dashboard) + "/static/plotly.min.js", timeout=30)
    assert answer.text == get_plotlyjs()


def test_a_taken_port_is_an_error_unless_it_is_the_default(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            UsageError, match=f"127.0.0.1:{port} is already in use.*--dashboard-port"
        ):
            Dashboard(FakeApp, port=port)
        monkeypatch.setattr(server, "DASHBOARD_PORT", port)
        moved = Dashboard(FakeApp, port=port)
        try:
            assert moved.port > port
        finally:
            moved.close()


def test_columns_of_no_minutes_are_empty():
    assert views.columns([])["time"] == [] and views.columns([])["events"] == []


@pytest.mark.parametrize(
    ("header", "port", "found"),
    [
        (None, 5080, None),
        ("dynosim-dashboard-5080=abc", 5080, "abc"),
        ("other=1; dynosim-dashboard-5080=abc", 5080, "abc"),
        ("dynosim-dashboard-5081=abc", 5080, None),
        ('bad"cookie', 5080, None),
    ],
)
def test_the_cookie_of_this_dashboard_only(header, port, found):
    assert access.cookie_token(header, port) == found


def test_token_checks():
    assert access.allowed("token=abc", None, 1, "abc")
    assert access.allowed("", "dynosim-dashboard-1=abc", 1, "abc")
    assert not access.allowed("token=ab", "dynosim-dashboard-1=abcd", 1, "abc")
    assert not access.same(None, "abc")
    assert access.local_host("localhost:1", 1) and not access.local_host("127.0.0.1:2", 1)
