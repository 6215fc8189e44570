"""Docker's multiplexed log stream turned into lines (the engine's side is in the integration
tests: every dyno's output reaches the log through it)."""

import asyncio
import datetime as dt

from dynosim.docker import client as docker_client
from dynosim.docker import logs as docker_logs
from dynosim.docker.logs import _Stream, split_timestamp


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def chunked(body: bytes, size: int) -> bytes:
    """`body` as an HTTP/1.1 chunked response in chunks of `size` bytes."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


def read(response: bytes, tty: bool = False, cut: int = 7) -> list[tuple[dt.datetime | None, str]]:
    """The lines a stream hands over when `response` arrives `cut` bytes at a time."""

    async def scenario() -> list[tuple[dt.datetime | None, str]]:
        lines: list[tuple[dt.datetime | None, str]] = []
        stream = _Stream(tty, lambda time, message: lines.append((time, message)), lambda: None)
        for start in range(0, len(response), cut):
            stream.data_received(response[start : start + cut])
        assert stream.ended.done()
        return lines

    return asyncio.run(scenario())


STAMP = b"2026-12-01T10:00:00.123456789Z "
WHEN = dt.datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=dt.UTC)


def test_frames_split_anywhere_become_whole_lines_from_both_streams():
    body = (
        frame(1, STAMP + b"GET / => generated 52 bytes\n" + STAMP + b"second ")
        + frame(1, b"half of a line\n")
        + frame(2, STAMP + b"Traceback (most recent call last):\r\n")
    )
    for cut in (1, 5, 7, 64, len(body) * 2):
        assert read(chunked(body, 11), cut=cut) == [
            (WHEN, "GET / => generated 52 bytes"),
            (WHEN, "second half of a line"),
            (WHEN, "Traceback (most recent call last):"),
        ]


def test_last_words_without_a_newline_are_kept():
    assert read(chunked(frame(1, STAMP + b"bye"), 100)) == [(WHEN, "bye")]


def test_a_terminal_stream_has_no_frames():
    assert read(chunked(STAMP + b"$ ls\n" + STAMP + b"app.py\n", 4), tty=True) == [
        (WHEN, "$ ls"),
        (WHEN, "app.py"),
    ]


def test_a_line_without_a_timestamp_is_kept_whole():
    assert split_timestamp("no time here") == (None, "no time here")


def test_an_engine_error_ends_the_stream_without_lines():
    response = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}"
    assert read(response) == []


def test_engines_only_docker_py_reaches_are_read_in_a_thread(monkeypatch):
    class Container:  # docker-py's side: chunks of the demultiplexed output
        name = "web.1"

        def logs(self, **options: object):
            assert options == {"stream": True, "follow": True, "timestamps": True, "since": None}
            yield STAMP + b"one\n" + STAMP + b"tw"
            yield b"o\n" + STAMP + b"bye"

    monkeypatch.setattr(docker_client, "socket_address", lambda: None)  # a TLS or SSH engine
    lines: list[tuple[dt.datetime | None, str]] = []

    async def scenario() -> None:
        await docker_logs.follow(Container(), None, lambda *line: lines.append(line))

    asyncio.run(scenario())
    assert lines == [(WHEN, "one"), (WHEN, "two"), (WHEN, "bye")]


def test_the_engine_is_reached_on_its_unix_socket_or_plain_tcp_only(monkeypatch):
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    for host, address in [
        (None, "/var/run/docker.sock"),
        ("unix:///run/user/1000/docker.sock", "/run/user/1000/docker.sock"),
        ("tcp://127.0.0.1:2375", ("127.0.0.1", 2375)),
        ("ssh://me@build-box", None),
    ]:
        if host is None:
            monkeypatch.delenv("DOCKER_HOST", raising=False)
        else:
            monkeypatch.setenv("DOCKER_HOST", host)
        assert docker_client.socket_address() == address
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    assert docker_client.socket_address() is None  # tcp:// with TLS
