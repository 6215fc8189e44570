"""The router's head rewrites, byte for byte, without sockets (router.wire is pure)."""

from dynosim.router import wire
from dynosim.router.proxy import Request


def request(method: bytes = b"GET", url: bytes = b"/", *headers: tuple[bytes, bytes]) -> Request:
    parsed = Request()
    parsed.method, parsed.url, parsed.headers = method, url, list(headers)
    parsed.start_ms = 1700000000000
    return parsed


def fields(host: str = "example.com", protocol: str = "http") -> wire.Fields:
    return wire.Fields("GET", "/", host, "a" * 20, "203.0.113.9, 127.0.0.1", protocol)


def test_request_head_keeps_end_to_end_headers_and_adds_herokus():
    head = wire.request_head(
        request(
            b"GET",
            b"http://example.com/a?b=1",
            (b"Host", b"example.com"),
            (b"Connection", b"keep-alive, X-Secret"),
            (b"X-Secret", b"hop"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Via", b"1.0 corporate-proxy"),
            (b"X-Forwarded-For", b"203.0.113.9"),
            (b"Accept", b"*/*"),
        ),
        fields(),
        b"127.0.0.1",
        b"5000",
        close=False,
    )
    assert head == (
        b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n"
        b"X-Forwarded-For: 203.0.113.9, 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Port: 5000\r\nX-Request-Start: 1700000000000\r\n"
        b"X-Request-Id: aaaaaaaaaaaaaaaaaaaa\r\nVia: 1.0 corporate-proxy, 1.1 vegur\r\n\r\n"
    )


def test_request_head_names_the_router_when_host_is_missing_and_frames_the_body():
    parsed = request(b"POST", b"/", (b"Content-Length", b"3"))
    parsed.content_length = 3
    head = wire.request_head(parsed, fields(host=""), b"127.0.0.1", b"5000", close=True)
    assert head.startswith(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n")
    assert head.endswith(b"Via: 1.1 vegur\r\nConnection: close\r\nContent-Length: 3\r\n\r\n")


def test_request_head_passes_an_upgrade_on():
    parsed = request(
        b"GET", b"/ws", (b"Host", b"x"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")
    )
    parsed.upgrade = True
    head = wire.request_head(parsed, fields(), b"127.0.0.1", b"5000", close=True)
    assert head.endswith(b"Via: 1.1 vegur\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")


def test_response_head_without_a_length_is_rechunked_for_an_http11_client():
    head = wire.response_head(
        request(), 200, b"OK", [(b"Connection", b"keep-alive"), (b"Via", b"1.1 cache")], True
    )
    assert head == (
        b"HTTP/1.1 200 OK\r\nVia: 1.1 cache, 1.1 vegur\r\nTransfer-Encoding: chunked\r\n\r\n",
        True,  # re-chunked
        True,  # the dyno's body ends with its connection
        True,  # the client connection stays open
    )


def test_response_head_without_a_length_ends_an_http10_clients_connection():
    parsed = request()
    parsed.version = "1.0"
    head = wire.response_head(parsed, 200, b"OK", [], True)
    assert head == (
        b"HTTP/1.1 200 OK\r\nVia: 1.1 vegur\r\nConnection: close\r\n\r\n",
        False,
        True,
        False,
    )


def test_response_head_keeps_the_length_and_drops_it_where_there_is_no_body():
    with_length = wire.response_head(request(), 200, b"OK", [(b"Content-Length", b"2")], True)
    assert with_length == (
        b"HTTP/1.1 200 OK\r\nVia: 1.1 vegur\r\nContent-Length: 2\r\n\r\n",
        False,
        False,
        True,
    )
    no_content = wire.response_head(request(), 204, b"", [(b"Content-Length", b"0")], True)
    assert no_content == (b"HTTP/1.1 204 \r\nVia: 1.1 vegur\r\n\r\n", False, False, True)


def test_response_head_of_a_switch_keeps_connection_and_upgrade():
    head, *_ = wire.response_head(
        request(),
        101,
        b"Switching Protocols",
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")],
        False,
    )
    assert head == (
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Via: 1.1 vegur\r\n\r\n"
    )


def test_describe_takes_the_client_from_the_front_only_when_fronted():
    parsed = request(
        b"GET",
        b'/"q"',
        (b"Host", b"example.com"),
        (b"X-Dynosim-Client", b"198.51.100.7"),
        (b"X-Dynosim-Proto", b"https"),
    )
    fronted = wire.describe(parsed, "", "http", fronted=True)
    assert (fronted.path, fronted.host, fronted.fwd, fronted.protocol) == (
        "/%22q%22",
        "example.com",
        "198.51.100.7",
        "https",
    )
    direct = wire.describe(parsed, "127.0.0.1", "http", fronted=False)
    assert (direct.fwd, direct.protocol) == ("127.0.0.1", "http")


def test_target_is_origin_form():
    assert wire.target(b"http://example.com/a?b=1") == b"/a?b=1"
    assert wire.target(b"http://example.com") == b"/"
    assert wire.target(b"*") == b"*"
    assert wire.target(b"/x") == b"/x"
