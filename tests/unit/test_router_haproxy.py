"""`--router haproxy`: its configuration as HAProxy reads it, and HAProxy's log lines turned into
Heroku's. (Its behaviour end to end: every test in test_router.py runs against it too.)"""

import asyncio
import socket
import subprocess

import pytest
from test_router import INFO_LINE, Dyno, fetch, router_for

from dynosim.router import RouterError, haproxy

LABELS = {"dyno1": "web.1", "dyno7": "web.2"}.get


def haproxy_line(
    state: str = "----",
    status: str = "200",
    *,
    slot: str = "dyno1",
    code: str = "-",
    timings: str = "0\t0\t1\t5",
    tls: str = "0",
    method: str = "GET",
    path: str = "/items?page=2",
) -> str:
    """A line as HAProxy writes it with haproxy.LOG_FORMAT."""
    fields = [
        "dynosim", "127.0.0.1", state, status, "1234", *timings.split("\t"), slot, tls, code,
        "f3c8a7e4-7a0f-4b7e-9d7e-0c2c6a8a9f11", "203.0.113.9", method, "myapp.localhost",
        path,
    ]  # fmt: skip
    return "\t".join(fields) + "\n"


def heroku(line: str) -> str | None:
    return haproxy.heroku_line(line, lambda slot: LABELS(slot, slot))


def test_a_served_request_becomes_herokus_info_line():
    assert heroku(haproxy_line()) == (
        'at=info method=GET path="/items?page=2" host=myapp.localhost '
        'request_id=f3c8a7e4-7a0f-4b7e-9d7e-0c2c6a8a9f11 fwd="203.0.113.9, 127.0.0.1" '
        "dyno=web.1 connect=1ms service=4ms status=200 bytes=1234 protocol=http"
    )


@pytest.mark.parametrize(
    ("state", "status", "expected"),
    [
        ("sC--", "503", 'at=error code=H19 desc="Backend connection timeout"'),
        ("SC--", "503", 'at=error code=H21 desc="Backend connection refused"'),
        ("sH--", "504", 'at=error code=H12 desc="Request timeout"'),
        ("sQ--", "503", 'at=error code=H12 desc="Request timeout"'),
        ("SH--", "502", 'at=error code=H13 desc="Connection closed without response"'),
        ("SD--", "200", 'sock=backend at=error code=H18 desc="Server Request Interrupted"'),
        ("SD--", "-1", 'at=error code=H13 desc="Connection closed without response"'),
        ("sD--", "200", 'at=error code=H15 desc="Idle connection"'),
        ("cD--", "200", 'sock=client at=warning code=H28 desc="Client Connection Idle"'),
        ("cR--", "408", 'sock=client at=warning code=H28 desc="Client Connection Idle"'),
        ("CD--", "200", 'sock=client at=warning code=H27 desc="Client Request Interrupted"'),
        ("CH--", "-1", 'at=error code=H27 desc="Client Request Interrupted"'),
        ("PR--", "400", 'at=error code=H26 desc="Request Error"'),
        ("KD--", "200", 'at=error code=H99 desc="Platform error"'),
    ],
)
def test_termination_states_become_herokus_error_codes(state, status, expected):
    line = heroku(haproxy_line(state, status))
    assert line.startswith(expected + " method=GET ")
    heroku_status = {"H26": "400", "H27": "499", "H28": "499"}.get(expected.split("code=")[1][:3])
    assert f" status={heroku_status or '503'} bytes= " in line


def test_all_connection_attempts_failing_count_as_connect_time():
    line = heroku(haproxy_line("SC--", "503", timings="0\t0\t-1\t30"))
    assert " connect=30ms service= " in line


def test_a_code_a_rule_decided_is_logged_with_its_reason():
    too_deep = heroku(haproxy_line("PR--", "503", code="H11", slot="<NOSRV>"))
    assert too_deep.startswith('at=error code=H11 desc="Backlog too deep" method=GET ')
    assert " dyno= " in too_deep
    version = heroku(haproxy_line("PR--", "505", code="H26 Unsupported HTTP version"))
    assert version.startswith(
        'at=error code=H26 desc="Request Error" error="Unsupported HTTP version" '
    )
    assert " status=505 " in version


def test_a_transfer_coding_haproxy_refuses_is_logged_as_h26_with_its_422():
    # HAProxy 2.6's parser answers 422 to `Transfer-Encoding: gzip, chunked` (haproxy#1301)
    line = heroku(haproxy_line("PR--", "422", slot="<NOSRV>"))
    assert line.startswith('at=error code=H26 desc="Request Error" method=GET ')
    assert " status=422 " in line


def test_unparsable_request_is_logged_without_method_or_path():
    line = heroku(haproxy_line("PR--", "400", slot="<NOSRV>", method="<BADREQ>", path="<BADREQ>"))
    assert line.startswith('at=error code=H26 desc="Request Error" method= path="" ')


def test_https_connect_method_and_quotes_in_paths():
    assert heroku(haproxy_line(tls="1")).endswith(" protocol=https")
    connect = heroku(haproxy_line("PR--", "405", method="CONNECT", slot="<NOSRV>"))
    assert connect.startswith('at=error desc="Method not supported" method=CONNECT ')
    assert 'path="/a%22b"' in heroku(haproxy_line(path='/a"b'))


def test_lines_that_are_not_a_requests_are_ignored():
    assert heroku("Proxy router started.\n") is None
    assert heroku("dynosim\tonly a few fields\n") is None


def test_configuration_is_valid_for_haproxy(tmp_path):
    with (
        socket.create_server(("127.0.0.1", 0)) as plain,
        socket.create_server(("127.0.0.1", 0)) as tls,
    ):
        text = haproxy.config(
            tmp_path, http_fd=plain.fileno(), https_fd=tls.fileno(),
            connect_timeout=5, request_timeout=30, idle_timeout=55, hold_timeout=75,
        )  # fmt: skip
        (tmp_path / "haproxy.cfg").write_text(text)
        for name in ("400.http", "408.http", "503.http", "page.html"):
            (tmp_path / name).write_bytes(b"HTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n")
        pem = tmp_path / "site.pem"
        from dynosim import certs

        issued = certs.issue("demo", tmp_path / "home")
        pem.write_bytes(issued.cert.read_bytes() + issued.key.read_bytes())
        checked = subprocess.run(
            [haproxy.executable(), "-c", "-f", str(tmp_path / "haproxy.cfg")],
            pass_fds=(plain.fileno(), tls.fileno()), capture_output=True, text=True,
        )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_missing_haproxy_is_a_router_error_saying_what_to_do(monkeypatch):
    monkeypatch.setattr(haproxy, "executable", lambda: None)

    async def scenario():
        router = haproxy.HAProxyRouter("demo", [].append, port=0)
        with pytest.raises(RouterError) as error:
            await router.start()
        return str(error.value)

    message = asyncio.run(scenario())
    assert "apt-get install haproxy" in message and "--router python" in message


def test_haproxy_dying_is_started_again_with_its_dynos():
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno, using="haproxy") as (router, lines):
            dead = router._process
            dead.kill()
            await dead.wait()
            # the request waits in the listen backlog until the new HAProxy takes it
            status, _, _ = await fetch(router.url + "/again")
        assert status == 200
        assert INFO_LINE.fullmatch(lines[-1])["dyno"] == "web.1"

    asyncio.run(scenario())
