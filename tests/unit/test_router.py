"""The router against real sockets: aiohttp dynos on 127.0.0.1, the router on port 0.

Every test runs against both routers, the Python one and HAProxy with the Python one behind it
(`--router haproxy`), unless marked ``python_router``: what only the Python router does."""

import asyncio
import contextlib
import io
import os
import re
import socket
import struct
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

import dynosim.router
from dynosim.router import Router, RouterError, WebStatus
from dynosim.router.haproxy import HAProxyRouter

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

INFO_LINE = re.compile(
    r'at=info method=(?P<method>\S+) path="(?P<path>[^"]*)" host=(?P<host>\S*) '
    r'request_id=(?P<request_id>\S+) fwd="(?P<fwd>[^"]*)" dyno=(?P<dyno>\S+) '
    r"connect=\d+ms service=\d+ms status=(?P<status>\d{3}) bytes=(?P<bytes>\d+) protocol=http"
)
ERROR_LINE = re.compile(
    r'(sock=\w+ )?at=(?P<at>error|warning) code=(?P<code>H\d\d) desc="(?P<desc>[^"]+)" '
    r'(error="(?P<error>[^"]+)" )?'
    r'method=(?P<method>\S*) path="(?P<path>[^"]*)" host=(?P<host>\S*) '
    r'request_id=(?P<request_id>\S+) fwd="(?P<fwd>[^"]*)" dyno=(?P<dyno>\S*) '
    r"connect=(?P<connect>\d*m?s?) service=(?P<service>\d*m?s?) status=(?P<status>\d{3}) "
    r"bytes=(?P<bytes>\d*) protocol=http"
)


ROUTERS = {"python": Router, "haproxy": HAProxyRouter}
python_router = pytest.mark.python_router
kind = "python"  # the router the running test uses


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    only_python = metafunc.definition.get_closest_marker("python_router")
    metafunc.parametrize("router_kind", ["python"] if only_python else list(ROUTERS), indirect=True)


@pytest.fixture(autouse=True)
def router_kind(request: pytest.FixtureRequest) -> str:
    global kind
    kind = request.param
    return kind


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


async def ok(request: web.BaseRequest) -> web.StreamResponse:
    return web.Response(text="ok")


class Dyno:
    """A web dyno stand-in: records what arrives, answers with `handler`."""

    def __init__(self, handler: Handler = ok) -> None:
        self.handler = handler
        self.seen: list[web.BaseRequest] = []
        self.port = 0

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.seen.append(request)
        return await self.handler(request)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["Dyno"]:
        server = web.Server(self._handle, max_headers=2000)  # above the router's limit
        runner = web.ServerRunner(server, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.port = runner.addresses[0][1]
        try:
            yield self
        finally:
            await runner.cleanup()


@contextlib.asynccontextmanager
async def router_for(
    *dynos: Dyno, using: str = "", **options: float
) -> AsyncIterator[tuple[Router, list[str]]]:
    """A started router (`using` one of ROUTERS, default: the running test's) with `dynos` as web.1,
    web.2, ...; the log lines it wrote so far.

    Lines are complete once the block exits (close() waits for requests in flight)."""
    lines: list[str] = []
    router = ROUTERS[using or kind]("demo", lines.append, port=0, **options)
    await router.start()
    for n, dyno in enumerate(dynos, 1):
        router.add_backend(f"web.{n}", "127.0.0.1", dyno.port)
    try:
        yield router, lines
    finally:
        await router.close()


@contextlib.asynccontextmanager
async def refusing_port() -> AsyncIterator[int]:
    """A port with a socket bound but not listening: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def fetch(
    url: str, method: str = "GET", **kwargs: object
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with (
        aiohttp.ClientSession() as client,
        client.request(method, url, **kwargs) as response,
    ):
        return response.status, response.headers, await response.read()


def test_dyno_receives_heroku_forwarding_headers():
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno) as (router, _):
            headers = {
                "Host": "myapp.example:5000",
                "X-Forwarded-For": "203.0.113.9",
                "Via": "1.0 corporate-proxy",
                "X-Request-Id": "client-chosen-id-0123456789",
            }
            status, _, _ = await fetch(router.url + "/hello", headers=headers)
        assert status == 200
        seen = dyno.seen[0].headers
        assert seen["Host"] == "myapp.example:5000"
        assert seen["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
        assert seen["X-Forwarded-Proto"] == "http"
        assert seen["X-Forwarded-Port"] == router.url.rsplit(":", 1)[1]
        assert abs(int(seen["X-Request-Start"]) - time.time() * 1000) < 60_000  # ms, not s or µs
        assert seen["X-Request-Id"] == "client-chosen-id-0123456789"
        assert seen["Via"] == "1.0 corporate-proxy, 1.1 vegur"

    run(scenario)


def test_request_without_forwarding_headers_gets_fresh_ones():
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno) as (router, _):
            await fetch(router.url + "/")
        seen = dyno.seen[0].headers
        assert seen["X-Forwarded-For"] == "127.0.0.1"
        assert seen["Via"] == "1.1 vegur"
        assert seen["Host"] == router.url.removeprefix("http://")

    run(scenario)


@pytest.mark.parametrize(
    "client_id",
    ["too-short", "x" * 201, "spaces are not allowed in an id", "semi;colons;are;not;either"],
)
def test_invalid_request_id_is_replaced_by_a_uuid4(client_id):
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno) as (router, lines):
            await fetch(router.url + "/", headers={"X-Request-Id": client_id})
        sent = dyno.seen[0].headers["X-Request-Id"]
        assert sent != client_id
        assert uuid.UUID(sent).version == 4 and len(sent) == 36
        assert INFO_LINE.fullmatch(lines[0])["request_id"] == sent

    run(scenario)


def test_hop_by_hop_headers_are_dropped_both_ways():
    async def respond(request: web.BaseRequest) -> web.StreamResponse:
        response = web.Response(text="ok")
        response.headers["Connection"] = "X-Backend-Private"
        response.headers["X-Backend-Private"] = "1"
        response.headers["Keep-Alive"] = "timeout=5"
        response.headers["Proxy-Authenticate"] = "Basic"
        response.headers["X-End-To-End"] = "kept"
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    async def scenario():
        dyno = Dyno(respond)
        async with dyno.running(), router_for(dyno) as (router, _):
            headers = {
                "Connection": "keep-alive, X-Client-Private",
                "X-Client-Private": "secret",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Trailers": "X-Checksum",
                "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                "X-End-To-End": "kept",
            }
            status, received, _ = await fetch(router.url + "/", headers=headers)
        assert status == 200
        seen = dyno.seen[0].headers
        for name in ("Keep-Alive", "TE", "Trailers", "Proxy-Authorization"):
            assert name not in seen
        if kind == "python":  # HAProxy cannot drop the headers a Connection header names
            assert "X-Client-Private" not in seen and "X-Backend-Private" not in received
        assert seen.get("Connection", "").lower() in ("", "close")  # the router's own hop
        assert seen["X-End-To-End"] == "kept"
        for name in ("Keep-Alive", "Proxy-Authenticate"):
            assert name not in received
        assert received["X-End-To-End"] == "kept"
        assert received.getall("Set-Cookie") == ["a=1", "b=2"]

    run(scenario)


async def echo(request: web.BaseRequest) -> web.StreamResponse:
    response = web.StreamResponse()
    if request.content_length is not None:
        response.content_length = request.content_length
    await response.prepare(request)
    async for chunk in request.content.iter_any():
        await response.write(chunk)
    await response.write_eof()
    return response


def test_two_megabyte_post_is_streamed_to_the_dyno_and_back():
    async def scenario():
        body = os.urandom(2 * 1024 * 1024)
        dyno = Dyno(echo)
        async with dyno.running(), router_for(dyno) as (router, lines):
            upload = io.BytesIO(body)
            status, headers, echoed = await fetch(router.url + "/upload", "POST", data=upload)
        assert status == 200
        assert echoed == body
        assert dyno.seen[0].headers["Content-Length"] == str(len(body))
        assert headers["Content-Length"] == str(len(body))
        assert int(INFO_LINE.fullmatch(lines[0])["bytes"]) > len(body)

    run(scenario)


def test_body_of_unknown_length_arrives_chunked_and_intact():
    async def pieces() -> AsyncIterator[bytes]:
        for n in range(50):
            yield bytes([n]) * 10_000

    async def scenario():
        dyno = Dyno(echo)
        async with dyno.running(), router_for(dyno) as (router, _):
            status, _, echoed = await fetch(router.url + "/", "PUT", data=pieces())
        assert status == 200
        assert echoed == b"".join(bytes([n]) * 10_000 for n in range(50))
        assert dyno.seen[0].headers["Transfer-Encoding"] == "chunked"

    run(scenario)


def test_streamed_response_reaches_the_client_piece_by_piece():
    headers_arrived, first_arrived = asyncio.Event(), asyncio.Event()

    async def stream(request: web.BaseRequest) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await headers_arrived.wait()  # no body yet: the headers alone must reach the client
        await response.write(b"first piece")
        await first_arrived.wait()
        await response.write(b"second piece")
        await response.write_eof()
        return response

    async def scenario():
        dyno = Dyno(stream)
        async with (
            dyno.running(),
            router_for(dyno) as (router, _),
            aiohttp.ClientSession() as client,
        ):
            response = await asyncio.wait_for(client.get(router.url + "/events"), 5)
            headers_arrived.set()
            assert response.headers["Transfer-Encoding"] == "chunked"
            assert await response.content.readany() == b"first piece"
            first_arrived.set()
            assert await response.read() == b"second piece"

    run(scenario)


def test_client_keeps_one_connection_for_two_requests():
    created, reused = [], []

    async def on_create(*_: object) -> None:
        created.append(True)

    async def on_reuse(*_: object) -> None:
        reused.append(True)

    async def scenario():
        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(on_create)
        trace.on_connection_reuseconn.append(on_reuse)
        dyno = Dyno()
        async with (
            dyno.running(),
            router_for(dyno) as (router, _),
            aiohttp.ClientSession(trace_configs=[trace]) as client,
        ):
            for _ in range(2):
                async with client.get(router.url + "/") as response:
                    assert await response.text() == "ok"
        assert (len(created), len(reused)) == (1, 1)

    run(scenario)


def test_requests_are_spread_at_random_over_all_dynos():
    async def scenario():
        dynos = [Dyno(), Dyno(), Dyno()]
        async with contextlib.AsyncExitStack() as stack:
            for dyno in dynos:
                await stack.enter_async_context(dyno.running())
            router, lines = await stack.enter_async_context(router_for(*dynos))
            for _ in range(60):
                status, _, _ = await fetch(router.url + "/")
                assert status == 200
        assert all(dyno.seen for dyno in dynos)
        assert sum(len(dyno.seen) for dyno in dynos) == 60
        assert {INFO_LINE.fullmatch(line)["dyno"] for line in lines} == {"web.1", "web.2", "web.3"}

    run(scenario)


@pytest.mark.parametrize(
    ("status", "code", "desc"),
    [
        (WebStatus.NONE, "H14", "No web processes running"),
        (WebStatus.CRASHED, "H10", "App crashed"),
    ],
)
def test_no_dyno_to_route_to(status, code, desc):
    async def scenario():
        async with router_for() as (router, lines):
            router.set_status(status)
            answer, headers, page = await fetch(router.url + "/")
        assert answer == 503
        assert headers["Content-Type"].startswith("text/html")
        assert b"Application Error" in page
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["desc"]) == (code, desc)
        assert (line["dyno"], line["connect"], line["service"], line["bytes"]) == ("", "", "", "")

    run(scenario)


def test_request_is_held_while_dynos_start_and_served_once_one_is_up():
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for() as (router, lines):
            router.set_status(WebStatus.STARTING)
            asyncio.get_running_loop().call_later(
                0.3, router.add_backend, "web.1", "127.0.0.1", dyno.port
            )
            status, _, body = await fetch(router.url + "/")
        assert (status, body) == (200, b"ok")
        assert INFO_LINE.fullmatch(lines[0])["dyno"] == "web.1"

    run(scenario)


def test_request_held_while_dynos_start_gets_the_full_request_timeout_once_routed():
    """Heroku's 30 s (H12) count from when the request goes to a dyno: a request held longer
    than that while the dynos booted (H20 at 75 s) is not an instant H12 with service=0ms."""

    async def scenario():
        dyno = Dyno()  # answers at once: the hold alone outlasts the request timeout
        timeouts = {"request_timeout": 1.0, "hold_timeout": 10.0}
        async with dyno.running(), router_for(**timeouts) as (router, lines):
            router.set_status(WebStatus.STARTING)
            asyncio.get_running_loop().call_later(
                1.5, router.add_backend, "web.1", "127.0.0.1", dyno.port
            )
            status, _, body = await fetch(router.url + "/")
        assert (status, body) == (200, b"ok"), lines
        assert INFO_LINE.fullmatch(lines[0])["dyno"] == "web.1"

    run(scenario)


def test_held_request_gives_up_after_hold_timeout_with_h20():
    async def scenario():
        async with router_for(hold_timeout=0.2) as (router, lines):
            router.set_status(WebStatus.STARTING)
            status, _, _ = await fetch(router.url + "/")
        assert status == 503
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["desc"], line["dyno"]) == ("H20", "App boot timeout", "")

    run(scenario)


def test_held_request_learns_the_dynos_crashed():
    async def scenario():
        async with router_for() as (router, lines):
            router.set_status(WebStatus.STARTING)
            asyncio.get_running_loop().call_later(0.1, router.set_status, WebStatus.CRASHED)
            status, _, _ = await fetch(router.url + "/")
        assert status == 503
        assert ERROR_LINE.fullmatch(lines[0])["code"] == "H10"

    run(scenario)


def test_refusing_dyno_is_skipped_for_a_good_one():
    async def scenario():
        good = Dyno()
        async with good.running(), refusing_port() as dead, router_for() as (router, lines):
            router.add_backend("web.1", "127.0.0.1", dead)
            router.add_backend("web.2", "127.0.0.1", good.port)
            for _ in range(10):
                status, _, _ = await fetch(router.url + "/")
                assert status == 200
        assert len(good.seen) == 10
        assert {INFO_LINE.fullmatch(line)["dyno"] for line in lines} == {"web.2"}

    run(scenario)


def test_only_refusing_dynos_give_h21():
    async def scenario():
        async with refusing_port() as dead, router_for() as (router, lines):
            router.add_backend("web.1", "127.0.0.1", dead)
            status, _, _ = await fetch(router.url + "/")
        assert status == 503
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["desc"]) == ("H21", "Backend connection refused")
        assert line["dyno"] == "web.1" and line["connect"].endswith("ms")

    run(scenario)


@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux dropping SYNs to a full queue")
def test_dyno_not_accepting_connections_gives_h19():
    async def scenario():
        with contextlib.ExitStack() as stack:
            full = stack.enter_context(socket.socket())
            full.bind(("127.0.0.1", 0))
            full.listen(0)  # never accepted: once its queue is full, connecting hangs
            for _ in range(3):
                filler = stack.enter_context(socket.socket())
                filler.setblocking(False)
                filler.connect_ex(full.getsockname())
            async with router_for(connect_timeout=0.2) as (router, lines):
                router.add_backend("web.1", *full.getsockname())
                status, _, _ = await fetch(router.url + "/")
        assert status == 503
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["desc"], line["dyno"]) == (
            "H19",
            "Backend connection timeout",
            "web.1",
        )
        assert line["connect"].endswith("ms") and line["service"] == ""

    run(scenario)


def test_dyno_too_slow_to_answer_gives_h12():
    done = asyncio.Event()

    async def slow(request: web.BaseRequest) -> web.StreamResponse:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), 5)
        return web.Response(text="too late")

    async def scenario():
        dyno = Dyno(slow)
        async with dyno.running(), router_for(dyno, request_timeout=0.3) as (router, lines):
            status, _, page = await fetch(router.url + "/slow")
            done.set()
        assert status == 503 and b"Application Error" in page
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["desc"], line["dyno"]) == ("H12", "Request timeout", "web.1")

    run(scenario)


@contextlib.asynccontextmanager
async def serving(serve) -> AsyncIterator[int]:
    """A stand-in dyno on a free loopback port, running `serve` per connection."""
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def raw_dyno(reply: bytes) -> AsyncIterator[int]:
    """A dyno that reads the request head, writes `reply` verbatim and hangs up."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    async with serving(serve) as port:
        yield port


@contextlib.asynccontextmanager
async def resetting_dyno() -> AsyncIterator[int]:
    """A dyno that reads the request head, then resets the connection, as one restarted
    mid-request does."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    async with serving(serve) as port:
        yield port


@contextlib.asynccontextmanager
async def one_answer_dyno(*, hang_up_at_once: bool) -> AsyncIterator[tuple[int, list[list[bytes]]]]:
    """A dyno that answers one request per connection, then hangs up: at once
    (`hang_up_at_once`, as uWSGI's http-socket does), else when the next request arrives (an
    idle connection closed just as the router reuses it). Yields its port and, per connection,
    the request heads that arrived."""
    heads: list[list[bytes]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen: list[bytes] = []
        heads.append(seen)
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        if not hang_up_at_once:
            with contextlib.suppress(asyncio.IncompleteReadError):
                seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], heads
    finally:
        server.close()
        await server.wait_closed()


def test_every_request_of_a_client_reaches_a_dyno_hanging_up_after_each_answer():
    async def scenario():
        async with (
            one_answer_dyno(hang_up_at_once=True) as (port, heads),
            router_for() as (router, lines),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as client,
        ):
            router.add_backend("web.1", "127.0.0.1", port)
            statuses = []
            for n in range(20):  # one client connection; POSTs must not meet a closed one
                method = "POST" if n % 2 else "GET"
                async with client.request(method, router.url + f"/{n}", data=b"x") as response:
                    statuses.append(response.status)
        assert statuses == [200] * 20
        assert len(heads) == 20 and not [line for line in lines if "code=" in line]

    run(scenario)


async def peer_port(request: web.BaseRequest) -> web.StreamResponse:
    return web.Response(text=str(request.transport.get_extra_info("peername")[1]))


@python_router
def test_connection_to_a_dyno_is_kept_for_the_next_request():
    async def scenario():
        dyno = Dyno(peer_port)
        async with dyno.running(), router_for(dyno) as (router, _):
            ports = {(await fetch(router.url + "/"))[2] for _ in range(3)}
            assert len(ports) == 1
            assert "Connection" not in dyno.seen[0].headers
            assert router.idle_connections == 1
            router.remove_backend("web.1")
            assert router.idle_connections == 0

    run(scenario)


@python_router
def test_kept_connection_is_closed_after_the_idle_time(monkeypatch):
    monkeypatch.setattr(dynosim.router, "DYNO_IDLE_TIMEOUT", 0.2)  # Heroku's is 90 s

    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno) as (router, _):
            await fetch(router.url + "/")
            assert router.idle_connections == 1
            await asyncio.sleep(0.5)
            assert router.idle_connections == 0
            assert (await fetch(router.url + "/"))[0] == 200

    run(scenario)


def test_without_keepalive_every_request_gets_its_own_connection():
    async def scenario():
        dyno = Dyno(peer_port)
        async with dyno.running(), router_for(dyno, keepalive=False) as (router, _):
            ports = {(await fetch(router.url + "/"))[2] for _ in range(3)}
        assert len(ports) == 3
        assert dyno.seen[0].headers["Connection"] == "close"

    run(scenario)


@python_router
def test_dyno_closing_after_every_answer_gets_a_new_connection_per_request():
    async def scenario():
        async with (
            one_answer_dyno(hang_up_at_once=True) as (port, heads),
            router_for() as (router, lines),
        ):
            router.add_backend("web.1", "127.0.0.1", port)
            answers = [await fetch(router.url + "/") for _ in range(3)]
            answers += await asyncio.gather(*(fetch(router.url + "/") for _ in range(30)))
            assert router.idle_connections == 0
        assert [status for status, _, _ in answers] == [200] * 33
        assert not [line for line in lines if "code=" in line]
        assert b"Connection: close" in heads[-1][0]  # the router learnt it after the first

    run(scenario)


@python_router
def test_kept_connection_closed_by_the_dyno_meanwhile_is_retried_on_a_new_one():
    async def scenario():
        async with (
            one_answer_dyno(hang_up_at_once=False) as (port, heads),
            router_for() as (router, lines),
        ):
            router.add_backend("web.1", "127.0.0.1", port)
            first = await fetch(router.url + "/first")
            second = await fetch(router.url + "/second")
            posted = await fetch(router.url + "/form", "POST", data=b"a=1")
        assert [first[0], second[0], posted[0]] == [200, 200, 200]
        assert not [line for line in lines if "code=" in line]
        requested = [[head.split(b" ")[1] for head in seen] for seen in heads]
        # /second went out on the kept connection, found it closed, and was sent again; the
        # POST is not idempotent, so it never goes on a kept connection that may be stale
        assert requested == [[b"/first", b"/second"], [b"/second"], [b"/form"]]

    run(scenario)


def test_dyno_hanging_up_without_response_gives_h13():
    async def scenario():
        async with raw_dyno(b"") as port, router_for() as (router, lines):
            router.add_backend("web.1", "127.0.0.1", port)
            status, _, _ = await fetch(router.url + "/")
        assert status == 503
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["desc"]) == ("H13", "Connection closed without response")

    run(scenario)


def test_dyno_dying_before_the_body_arrives_gives_the_client_503_h13():
    async def scenario():
        async with resetting_dyno() as port, router_for() as (router, lines):
            router.add_backend("web.1", "127.0.0.1", port)
            reader, writer = await connect(router)
            writer.write(b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)  # the body follows the head, as clients send them
            writer.write(b"a" * 5000)
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.close()
        assert answer.startswith(b"HTTP/1.1 503 ")
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["status"], line["method"]) == ("H13", "503", "POST")

    run(scenario)


def test_dyno_dying_while_a_large_body_streams_in_is_logged_h13():
    async def scenario():
        size = 3_000_000  # beyond HAProxy's buffer: it streams the body to the dyno
        async with resetting_dyno() as port, router_for() as (router, lines):
            router.add_backend("web.1", "127.0.0.1", port)
            reader, writer = await connect(router)
            head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
            with contextlib.suppress(ConnectionError):
                writer.write(head + b"a" * size)
                await writer.drain()
            with contextlib.suppress(ConnectionError):  # python: 503; haproxy: cut (usage.md)
                await asyncio.wait_for(reader.read(), 5)
            writer.close()
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["status"], line["method"]) == ("H13", "503", "POST")

    run(scenario)


def test_dyno_breaking_off_a_response_gives_h18_and_a_cut_connection():
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"

    async def scenario():
        async with raw_dyno(reply) as port, router_for() as (router, lines):
            router.add_backend("web.1", "127.0.0.1", port)
            with pytest.raises(aiohttp.ClientPayloadError):
                await fetch(router.url + "/")
        assert lines[0].startswith("sock=backend ")
        assert ERROR_LINE.fullmatch(lines[0])["code"] == "H18"

    run(scenario)


def test_client_leaving_mid_response_is_logged_as_h27():
    left = asyncio.Event()

    async def stream(request: web.BaseRequest) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first piece")
        await left.wait()
        for _ in range(20):
            await response.write(b"x" * 65536)
        await response.write_eof()
        return response

    async def scenario():
        dyno = Dyno(stream)
        async with dyno.running(), router_for(dyno) as (router, lines):
            async with aiohttp.ClientSession() as client:
                response = await client.get(router.url + "/")
                assert await response.content.readany() == b"first piece"
                response.close()  # drops the connection
            left.set()
        assert lines[0].startswith("sock=client ")
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["at"], line["code"], line["status"]) == ("warning", "H27", "499")

    run(scenario)


def test_expect_100_continue_is_answered_by_the_router():
    async def scenario():
        dyno = Dyno(echo)
        async with dyno.running(), router_for(dyno) as (router, _):
            status, _, body = await fetch(router.url + "/", "POST", data=b"payload", expect100=True)
        assert (status, body) == (200, b"payload")
        assert "Expect" not in dyno.seen[0].headers

    run(scenario)


def test_connect_method_is_refused():
    async def scenario():
        async with router_for() as (router, lines):
            reader, writer = await connect(router)
            writer.write(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            status_line = await reader.readline()
            writer.close()
        assert status_line.startswith(b"HTTP/1.1 405")
        assert lines[0].startswith('at=error desc="Method not supported" method=CONNECT ')

    run(scenario)


def test_port_already_in_use_is_a_router_error():
    async def scenario():
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            router = Router("demo", [].append, port=port)
            with pytest.raises(RouterError) as error:
                await router.start()
            await router.close()
        assert str(error.value) == (
            f"127.0.0.1:{port} is already in use; choose another port with --port"
        )
        assert error.value.exit_code == 3

    run(scenario)


def test_success_log_line_has_herokus_fields():
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno) as (router, lines):
            await fetch(router.url + "/a?b=1", headers={"Host": "myapp.test"})
        assert len(lines) == 1
        line = INFO_LINE.fullmatch(lines[0])
        assert line is not None, lines[0]
        assert (line["method"], line["path"], line["host"]) == ("GET", "/a?b=1", "myapp.test")
        assert (line["fwd"], line["dyno"], line["status"]) == ("127.0.0.1", "web.1", "200")
        assert line["request_id"] == dyno.seen[0].headers["X-Request-Id"]

    run(scenario)


def test_error_log_line_has_herokus_fields():
    async def scenario():
        async with router_for() as (router, lines):
            router.set_status(WebStatus.NONE)  # the supervisor: no web dynos in the formation
            await fetch(router.url + "/x?y=2", "POST", headers={"X-Forwarded-For": "10.0.0.1"})
        host = router.url.removeprefix("http://")
        assert re.fullmatch(
            r'at=error code=H14 desc="No web processes running" method=POST path="/x\?y=2" '
            rf"host={re.escape(host)} request_id=[0-9a-f-]{{36}} "
            r'fwd="10\.0\.0\.1, 127\.0\.0\.1" dyno= connect= service= status=503 bytes= '
            r"protocol=http",
            lines[0],
        )

    run(scenario)


def test_drained_dyno_finishes_its_request_and_gets_no_new_ones():
    release = asyncio.Event()

    async def scenario():
        busy, other = Dyno(answer_when(release)), Dyno()
        async with busy.running(), other.running(), router_for(busy) as (router, _):
            slow = asyncio.ensure_future(fetch(router.url + "/slow"))
            while not busy.seen:
                await asyncio.sleep(0.01)
            router.add_backend("web.2", "127.0.0.1", other.port)
            draining = asyncio.ensure_future(router.drain("web.1", 5))
            await asyncio.sleep(0.2)
            assert not draining.done()  # web.1 still serves /slow
            statuses = [(await fetch(router.url + "/new"))[0] for _ in range(5)]
            release.set()
            await asyncio.wait_for(draining, 5)
            assert (await slow)[0] == 200
            await asyncio.wait_for(router.quiet(), 5)
        assert statuses == [200] * 5
        assert [r.path for r in busy.seen] == ["/slow"] and len(other.seen) == 5

    run(scenario)


def test_backends_and_url_reflect_what_the_supervisor_said():
    async def scenario():
        async with router_for() as (router, _):
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", router.url)
            assert not router.url.endswith(":0")
            router.add_backend("web.1", "127.0.0.1", 8001)
            router.add_backend("web.2", "127.0.0.1", 8002)
            router.remove_backend("web.1")
            assert router.backends == {"web.2": ("127.0.0.1", 8002)}

    run(scenario)


async def connect(router: Router) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection to the router's HTTP port."""
    host, port = router.url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def exchange(url: str, raw: bytes) -> bytes:
    """Send `raw` bytes to the router and read until it closes the connection (5 s at most)."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def answer_when(release: asyncio.Event) -> Handler:
    """A dyno handler that keeps each request until `release` is set."""

    async def busy(request: web.BaseRequest) -> web.StreamResponse:
        await release.wait()
        return web.Response(text="done")

    return busy


def test_backlog_beyond_fifty_per_dyno_is_refused_at_once_with_h11():
    release = asyncio.Event()
    busy = answer_when(release)

    async def scenario():
        dyno = Dyno(busy)
        async with (
            dyno.running(),
            router_for(dyno) as (router, lines),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client,
        ):

            async def get() -> int:
                async with client.get(router.url + "/") as response:
                    return response.status

            waiting = [asyncio.ensure_future(get()) for _ in range(100)]  # 50 in flight + 50
            while len(dyno.seen) < 50:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # the other 50 reach the backlog
            assert await asyncio.wait_for(get(), 2) == 503  # the 101st
            release.set()
            statuses = await asyncio.gather(*waiting)
        assert statuses == [200] * 100
        assert len(dyno.seen) == 100  # each queued request went to the dyno once a slot freed
        h11 = [ERROR_LINE.fullmatch(line) for line in lines if "code=H11" in line]
        assert [(m["desc"], m["status"], m["dyno"]) for m in h11] == [
            ("Backlog too deep", "503", "")
        ]

    run(scenario)


def test_queued_request_times_out_with_h12():
    release = asyncio.Event()
    busy = answer_when(release)

    async def scenario():
        dyno = Dyno(busy)
        async with (
            dyno.running(),
            router_for(dyno, request_timeout=0.5) as (router, lines),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client,
        ):
            gets = [client.get(router.url + f"/{n}") for n in range(51)]
            responses = await asyncio.gather(*gets)
            release.set()
            statuses = [r.status for r in responses]
        assert statuses == [503] * 51  # 50 waited too long for the dyno, 1 for a slot
        codes = [ERROR_LINE.fullmatch(line)["code"] for line in lines]
        assert codes == ["H12"] * 51

    run(scenario)


# HAProxy passes these on, so that nothing is smuggled: a head within its 64 KB buffer is
# taken whatever its lines' lengths, and a body with both lengths is read by its chunks and the
# connection closed after it (RFC 9112 6.3): HAProxy 2.6's parser deletes the Content-Length
# before any http-request rule, log format or Lua sees the request, so none can refuse it.
HAPROXY_PASSES_ON = {"header line over 8 KB", "Content-Length with Transfer-Encoding"}


@pytest.mark.parametrize(
    ("what", "raw"),
    [
        ("request line over 8 KB", b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        (
            "header line over 8 KB",
            # (a router passing it on closes after the dyno's answer)
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
            + b"a" * 8200
            + b"\r\n\r\n",
        ),
        (
            "1001 headers",
            b"GET / HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: 1\r\n" % n for n in range(1000))
            + b"\r\n",
        ),
        (
            "Content-Length with Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        ),
        (
            "two different Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello",
        ),
        (
            "obfuscated Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "bad chunk size",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ),
        ("method over 127 chars", b"M" * 200 + b" / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
    ],
)
def test_malformed_request_gets_400_h26_and_a_closed_connection(what, raw):
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno) as (router, lines):
            answer = await exchange(router.url, raw)
        assert answer.count(b"HTTP/1.") == 1  # nothing smuggled behind it
        if kind == "haproxy" and what in HAPROXY_PASSES_ON:
            assert [request.path for request in dyno.seen] in ([], ["/"])
            return
        assert re.match(rb"HTTP/1\.[01] 400 ", answer), what
        if kind == "python":  # HAProxy 2.6 answers parse errors with its own page (#3032)
            assert b"Application Error" in answer
        assert not dyno.seen
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["desc"], line["status"]) == ("H26", "Request Error", "400")

    run(scenario)


def test_long_lines_and_many_headers_within_the_limits_pass():
    async def scenario():
        dyno = Dyno()
        headers = {f"X-Header-{n}": "v" for n in range(990)}
        headers.update({f"X-Long-{n}": "a" * 7000 for n in range(3)})  # 21 KB in all
        async with dyno.running(), router_for(dyno) as (router, _):
            status, _, _ = await fetch(router.url + "/" + "p" * 7000, headers=headers)
        assert status == 200
        assert dyno.seen[0].headers["X-Long-2"] == "a" * 7000
        assert len(dyno.seen[0].path) == 7001

    run(scenario)


def test_client_that_half_closes_after_its_request_still_gets_the_answer():
    async def scenario():
        dyno = Dyno(echo)
        async with dyno.running(), router_for(dyno) as (router, lines):
            reader, writer = await connect(router)
            writer.write(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            writer.write_eof()  # like `nc -N`: done sending, still reading
            answer = await asyncio.wait_for(reader.read(), 5)  # the router closes after it
            writer.close()
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello")
        assert INFO_LINE.fullmatch(lines[0])["status"] == "200"

    run(scenario)


def test_client_that_half_closes_mid_body_is_not_waited_for():
    async def scenario():
        dyno = Dyno(echo)
        async with dyno.running(), router_for(dyno) as (router, lines):
            raw = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nonly part"
            reader, writer = await connect(router)
            writer.write(raw)
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 5)  # closed well before any idle timeout
            writer.close()
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["status"]) == ("H27", "499")

    run(scenario)


@pytest.mark.parametrize("version", [b"HTTP/0.9", b"HTTP/2.0"])
def test_http_versions_other_than_1_x_get_505(version):
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno) as (router, lines):
            answer = await exchange(router.url, b"GET / " + version + b"\r\nHost: x\r\n\r\n")
        assert b" 505 " in answer.split(b"\r\n", 1)[0]
        assert not dyno.seen
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["error"], line["status"]) == (
            "H26",
            "Unsupported HTTP version",
            "505",
        )

    run(scenario)


async def websocket_echo(request: web.BaseRequest) -> web.StreamResponse:
    socket_ = web.WebSocketResponse()
    await socket_.prepare(request)
    async for message in socket_:
        await socket_.send_str(f"echo: {message.data}")
    return socket_


def test_websocket_is_proxied_and_its_upgrade_logged_as_101():
    async def scenario():
        dyno = Dyno(websocket_echo)
        async with (
            dyno.running(),
            router_for(dyno) as (router, lines),
            aiohttp.ClientSession() as client,
            client.ws_connect(router.url + "/cable") as socket_,
        ):
            for word in ("one", "two"):
                await socket_.send_str(word)
                assert (await socket_.receive(timeout=5)).data == f"echo: {word}"
        assert dyno.seen[0].headers["Upgrade"].lower() == "websocket"
        assert dyno.seen[0].headers["X-Forwarded-For"] == "127.0.0.1"
        line = INFO_LINE.fullmatch(lines[0])
        assert (line["path"], line["status"]) == ("/cable", "101")

    run(scenario)


def test_websocket_idle_in_both_directions_is_closed_after_the_idle_timeout():
    async def scenario():
        dyno = Dyno(websocket_echo)
        async with (
            dyno.running(),
            router_for(dyno, idle_timeout=0.4) as (router, _),
            aiohttp.ClientSession() as client,
            client.ws_connect(router.url + "/", autoping=False, heartbeat=None) as socket_,
        ):
            began = time.monotonic()
            message = await socket_.receive(timeout=5)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert time.monotonic() - began >= 0.3

    run(scenario)


def test_client_stalling_mid_body_of_a_request_gets_h28():
    async def whole_body(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(body=await request.read())

    async def scenario():
        dyno = Dyno(whole_body)
        async with dyno.running(), router_for(dyno, idle_timeout=0.4) as (router, lines):
            head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
            answer = await exchange(router.url, head + b"ten bytes.")  # then nothing
        assert b" 200 " not in answer  # cut off (python) or 408 (haproxy), never the dyno's
        line = ERROR_LINE.fullmatch(lines[0])
        assert lines[0].startswith("sock=client ")
        assert (line["at"], line["code"], line["method"], line["status"]) == (
            "warning",
            "H28",
            "POST",
            "499",
        )

    run(scenario)


# HAProxy: a body up to 64 KB is buffered before a dyno sees it, so no dyno answers early (408,
# H28 after the idle timeout); a larger one: the dyno's side times out first (30 s, H15)
@python_router
def test_client_stalling_mid_body_is_cut_off_with_h28():
    async def scenario():
        dyno = Dyno(echo)
        async with dyno.running(), router_for(dyno, idle_timeout=0.4) as (router, lines):
            head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
            answer = await exchange(router.url, head + b"ten bytes.")  # then nothing
        assert answer.endswith(b"\r\n\r\nten bytes.")  # the echo cut off at 10 of 100 bytes
        line = ERROR_LINE.fullmatch(lines[0])
        assert lines[0].startswith("sock=client ")
        assert (line["at"], line["code"], line["desc"], line["status"]) == (
            "warning",
            "H28",
            "Client Connection Idle",
            "499",
        )

    run(scenario)


def test_response_stalling_after_it_started_is_cut_off_with_h15():
    done = asyncio.Event()

    async def stall(request: web.BaseRequest) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first piece")
        await done.wait()
        return response

    async def scenario():
        dyno = Dyno(stall)
        async with dyno.running(), router_for(dyno, idle_timeout=0.4) as (router, lines):
            with pytest.raises(aiohttp.ClientPayloadError):
                await fetch(router.url + "/")
            done.set()
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["desc"], line["dyno"]) == ("H15", "Idle connection", "web.1")

    run(scenario)


def test_idle_keep_alive_connection_is_closed_after_the_idle_timeout():
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno, idle_timeout=0.4) as (router, lines):
            reader, writer = await connect(router)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            began = time.monotonic()
            rest = await asyncio.wait_for(reader.read(), 5)  # until the router closes
            writer.close()
        assert head.startswith(b"HTTP/1.1 200 ") and rest.endswith(b"ok")
        assert time.monotonic() - began >= 0.3
        assert len(lines) == 1  # closing an idle connection is not a request

    run(scenario)


def test_pipelined_requests_are_answered_in_order_on_one_connection():
    async def path_back(request: web.BaseRequest) -> web.StreamResponse:
        await asyncio.sleep(0.05 if request.path == "/first" else 0)
        return web.Response(text=request.path)

    async def scenario():
        dyno = Dyno(path_back)
        async with dyno.running(), router_for(dyno) as (router, lines):
            raw = b"".join(
                b"GET /%s HTTP/1.1\r\nHost: x\r\n%s\r\n"
                % (name, b"Connection: close\r\n" if name == b"third" else b"")
                for name in (b"first", b"second", b"third")
            )
            answer = await exchange(router.url, raw)
        assert re.findall(rb"\r\n\r\n(/[a-z]+)", answer) == [b"/first", b"/second", b"/third"]
        assert [INFO_LINE.fullmatch(line)["path"] for line in lines] == [
            "/first",
            "/second",
            "/third",
        ]

    run(scenario)


def test_head_response_has_headers_only_and_the_connection_stays_usable():
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno) as (router, _):
            raw = b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
            raw += b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            answer = await exchange(router.url, raw)
        head, second = answer.split(b"HTTP/1.1 200 OK", 2)[1:]
        assert b"content-length: 2" in head.lower() and head.endswith(b"\r\n\r\n")
        assert second.endswith(b"\r\n\r\nok")

    run(scenario)


def test_http_1_0_client_gets_a_streamed_body_delimited_by_the_close():
    async def stream(request: web.BaseRequest) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)  # chunked from the dyno
        for piece in (b"one ", b"two"):
            await response.write(piece)
        return response

    async def scenario():
        dyno = Dyno(stream)
        async with dyno.running(), router_for(dyno) as (router, _):
            answer = await exchange(router.url, b"GET / HTTP/1.0\r\n\r\n")
        head, body = answer.split(b"\r\n\r\n", 1)
        assert re.match(rb"HTTP/1\.[01] 200 ", head) and b"chunked" not in head.lower()
        assert body == b"one two"
        # the close delimits it: said (python), or an HTTP/1.0 answer (haproxy: no setting
        # rewrites a response's version)
        assert b"connection: close" in head.lower() or head.startswith(b"HTTP/1.0 ")

    run(scenario)


def test_endless_request_head_is_refused_before_it_is_complete():
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno) as (router, lines):
            reader, writer = await connect(router)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                for n in range(500):  # 500 x 4 KB of headers, each line within the limit
                    writer.write(b"X-%d: %s\r\n" % (n, b"v" * 4096))
                    await writer.drain()
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):  # a reset may
                await asyncio.wait_for(reader.read(), 5)  # overtake the 400
            writer.close()
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["status"]) == ("H26", "400")
        if kind == "python":  # HAProxy logs no reason
            assert line["error"] == "Request head too large"

    run(scenario)


def test_request_head_dribbling_in_for_longer_than_the_idle_timeout_is_cut_off():
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno, idle_timeout=0.4) as (router, _):
            reader, writer = await connect(router)
            began = time.monotonic()
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 150:  # 3 s at 20 ms a byte
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.02)
            answer = b""
            with contextlib.suppress(ConnectionError):  # the write that found it closed
                answer = await asyncio.wait_for(reader.read(), 5)
            cut_after = time.monotonic() - began
            writer.close()
        assert answer == b""  # closed without an answer
        assert cut_after < 1.5  # at the idle timeout, not when the client gave up
        assert not dyno.seen

    run(scenario)


@python_router
def test_connections_beyond_the_limit_get_h22():
    async def scenario():
        dyno = Dyno()
        async with dyno.running(), router_for(dyno, max_connections=2) as (router, lines):
            kept = [await connect(router) for _ in range(2)]
            answer = await exchange(router.url, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            for _, writer in kept:
                writer.close()
                await writer.wait_closed()
            await asyncio.sleep(0.1)  # the router sees them go
            status, _, _ = await fetch(router.url + "/")  # room again
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Application Error" in answer
        line = ERROR_LINE.fullmatch(lines[0])
        assert (line["code"], line["desc"], line["status"]) == (
            "H22",
            "Connection limit reached",
            "503",
        )
        assert status == 200

    run(scenario)


def test_response_says_via_vegur_after_the_dynos_own_via():
    async def respond(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(text="ok", headers={"Via": "1.1 app-cache"})

    async def scenario():
        plain, cached = Dyno(), Dyno(respond)
        async with plain.running(), cached.running(), router_for(plain) as (router, _):
            _, first, _ = await fetch(router.url + "/")
            router.remove_backend("web.1")
            router.add_backend("web.2", "127.0.0.1", cached.port)
            _, second, _ = await fetch(router.url + "/")
        assert first["Via"] == "1.1 vegur"
        assert second["Via"] == "1.1 app-cache, 1.1 vegur"

    run(scenario)


@python_router  # HAProxy 2.6's parser answers them 422 (logged H26)
def test_transfer_codings_besides_chunked_reach_the_dyno_with_the_body():
    async def scenario():
        dyno = Dyno(echo)
        async with dyno.running(), router_for(dyno) as (router, _):
            raw = (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
                b"Connection: close\r\n\r\n4\r\nGZIP\r\n0\r\n\r\n"
            )
            await exchange(router.url, raw)
        assert dyno.seen[0].headers["Transfer-Encoding"] == "gzip, chunked"

    run(scenario)
