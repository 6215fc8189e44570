"""Zero downtime with requests that must not be repeated: POSTs that create rows, sent through
either router engine while the app is deployed, reconfigured, rolled back and given an add-on.
Not one may fail, and none may create its row twice (a router may retry a GET unseen, never a
POST that reached a dyno)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from conftest import dynosim, tiny_app

UP = r"heroku\[{}\]: State changed from starting to up"
WEB = (
    "web: exec uwsgi --http-socket :$PORT --master --die-on-term --wsgi-file app.py"
    " --callable app\n"
)
#: A dependency-free app keeping its rows in the Redis add-on (RESP over TLS with the standard
#: library, as Heroku's Key-Value Store requires TLS; plain when the URL says redis://).
APP = """import json, os, socket, ssl, urllib.parse

CODE = {code!r}


def redis(*args):
    url = urllib.parse.urlsplit(os.environ["REDIS_URL"])
    sock = socket.create_connection((url.hostname, url.port or 6379), timeout=10)
    if url.scheme == "rediss":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        sock = context.wrap_socket(sock)
    with sock, sock.makefile("rwb") as stream:
        commands = ([["AUTH", url.password]] if url.password else []) + [list(args)]
        for command in commands:
            stream.write(b"*%d\\r\\n" % len(command))
            for word in command:
                stream.write(b"$%d\\r\\n%s\\r\\n" % (len(word.encode()), word.encode()))
        stream.flush()
        return [read(stream) for _ in commands][-1]


def read(stream):
    line = stream.readline().rstrip(b"\\r\\n")
    kind, rest = line[:1], line[1:]
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if rest == b"-1" else stream.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return [read(stream) for _ in range(int(rest))]
    return rest.decode()


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        row = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
        redis("RPUSH", "rows", row)
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [row.encode()]
    body = {{"code": CODE, "dyno": os.environ["DYNO"]}}
    if environ["PATH_INFO"] == "/rows":
        body["rows"] = redis("LRANGE", "rows", "0", "-1")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
"""
LEAST = 5000  # requests in all, per engine


class Load:
    """GETs and POSTs (each with a new row id) from 4 threads until stopped (at most 5 min)."""

    def __init__(self, url: str) -> None:
        self.url, self.sent, self.failures, self.created = url, 0, [], []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(n % 2 == 0,), daemon=True) for n in range(4)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, posting: bool) -> None:
        deadline = time.monotonic() + 300
        with requests.Session() as session:
            while not self._stop.is_set() and time.monotonic() < deadline:
                row = uuid.uuid4().hex
                try:
                    if posting:
                        response = session.post(self.url, data=row, timeout=30)
                        ok = response.status_code == 201 and response.text == row
                    else:
                        response = session.get(self.url, timeout=30)
                        ok = response.status_code == 200
                    failure = None if ok else f"{response.status_code} {response.text[:200]!r}"
                except requests.RequestException as exc:
                    failure = repr(exc)
                with self._lock:
                    self.sent += 1
                    if failure is not None:
                        self.failures.append(failure)
                    elif posting:
                        self.created.append(row)

    def stop(self, at_least: int = 0) -> None:
        deadline = time.monotonic() + 120
        while self.sent < at_least and time.monotonic() < deadline:
            time.sleep(0.1)
        self._stop.set()
        for thread in self._threads:
            thread.join()


def ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("router", ["haproxy", "python"])
def test_no_request_fails_and_no_post_runs_twice_through_every_kind_of_release(
    up, tmp_path: Path, router: str
):
    app = f"rows-{router}"
    app_dir = tiny_app(tmp_path / app, WEB, **{"app.py": APP.format(code="A")})
    process = up(app_dir, "--grace", "5", "--router", router)
    process.wait_for(UP.format(r"web\.1"))
    ok(dynosim("addons:create", "heroku-redis", "-a", app))  # v2: REDIS_URL
    ok(dynosim("ps:scale", "-a", app, "web=2"))
    process.wait_for(UP.format(r"web\.2"))
    load = Load(process.url)
    try:
        ok(dynosim("config:set", "-a", app, "T_GREETING=hello"))  # v3
        (app_dir / "app.py").write_text(APP.format(code="B"))
        ok(dynosim("deploy", str(app_dir), "-a", app))  # v4
        assert process.get().json()["code"] == "B"
        ok(dynosim("releases:rollback", "-a", app, "v2"))  # v5: code A, REDIS_URL kept
        assert process.get().json()["code"] == "A"
        ok(dynosim("addons:create", "heroku-redis", "-a", app, "--as", "CACHE"))  # v6
    finally:
        load.stop(at_least=LEAST)
    assert load.failures == [], f"{len(load.failures)} of {load.sent}: {load.failures[:5]}"
    assert load.sent >= LEAST
    rows = process.get("/rows").json()["rows"]
    assert len(rows) == len(set(rows)), "a POST created its row twice"
    assert sorted(rows) == sorted(load.created)
    assert json.loads(ok(dynosim("releases", "-a", app, "--json")))[0]["version"] == 6
    process.stop()
    for name in ("REDIS", "CACHE"):
        ok(dynosim("addons:destroy", "-a", app, name, "--confirm", app))
