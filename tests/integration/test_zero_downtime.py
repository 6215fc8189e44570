"""Zero downtime with requests that must not be repeated: POSTs that create rows, sent through
either router engine while the app (with preboot, as Heroku's zero-downtime deploys need) is
deployed, reconfigured, rolled back and given an add-on. Not one may fail, and none may create
its row twice (a router may retry a GET unseen, never a POST that reached a dyno)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Load, dynosim, tiny_app

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
    ok(dynosim("features:enable", "preboot", "-a", app))  # zero downtime, as on Heroku
    ok(dynosim("addons:create", "heroku-redis", "-a", app))  # v2: REDIS_URL
    ok(dynosim("ps:scale", "-a", app, "web=2"))
    process.wait_for(UP.format(r"web\.2"))
    load = Load(process.url, post=True)
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
