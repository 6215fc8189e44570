"""Follow a container's output on the event loop.

One HTTP stream per container from the engine's socket, parsed with httptools and handed to a
callback line by line, in the loop's own thread. docker-py's blocking stream needs a thread per
dyno instead, and each line then costs a hand-over of the GIL and a wake-up of the loop: under
load (uWSGI logs every request) that is CPU the router and the dynos do not get. Engines only
docker-py can reach (TLS, SSH) keep that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import urllib.parse
from collections.abc import Callable, Iterable

import httptools
from docker.models.containers import Container

from ..logs import gather
from . import client

Line = Callable[[dt.datetime | None, str], None]
_FRAME_HEAD = 8  # Docker's multiplexed stream: stream (1 byte), 3 zero bytes, size (4, big-endian)


def split_timestamp(line: str) -> tuple[dt.datetime | None, str]:
    """Docker prefixes each line with an RFC 3339 nanosecond time; keep microseconds."""
    stamp, _, message = line.partition(" ")
    try:
        time = dt.datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return None, line
    return time, message.rstrip("\r")


async def follow(
    container: Container,
    since: dt.datetime | None,
    line: Line,
    printed: Callable[[], None] = lambda: None,
    socket: str | None = None,
) -> None:
    """Call `line(time, message)` for every line `container` prints (from `since`, else from
    its start) and `printed()` whenever output arrives, until the container's output ends.
    `socket`: the engine's unix socket when it is not DOCKER_HOST's (a Swarm node's)."""
    loop = asyncio.get_running_loop()
    address = socket or client.socket_address()
    if address is None:
        await follow_chunks(
            lambda: container.logs(stream=True, follow=True, timestamps=True, since=since),
            line,
            printed,
        )
        return
    query = {"follow": 1, "stdout": 1, "stderr": 1, "timestamps": 1}
    if since is not None:
        query["since"] = f"{since.timestamp():.6f}"
    request = (
        f"GET /containers/{container.id}/logs?{urllib.parse.urlencode(query)} HTTP/1.1\r\n"
        "Host: docker\r\n\r\n"
    )
    stream = _Stream(bool(container.attrs.get("Config", {}).get("Tty")), line, printed)
    if isinstance(address, str):
        transport, _ = await loop.create_unix_connection(lambda: stream, address)
    else:
        transport, _ = await loop.create_connection(lambda: stream, *address)
    try:
        transport.write(request.encode())
        await stream.ended
    finally:
        transport.close()


class _Lines:
    """Output bytes, as they arrive, to `line(time, message)` calls."""

    def __init__(self, line: Line, printed: Callable[[], None]) -> None:
        self.line = line
        self.printed = printed
        self.text = b""  # the start of a line whose newline has not arrived

    def feed(self, data: bytes) -> None:
        self.printed()
        *lines, self.text = (self.text + data).split(b"\n")
        for text in lines:
            self.line(*split_timestamp(text.decode(errors="replace")))

    def close(self) -> None:
        if self.text:  # last words without a newline
            self.line(*split_timestamp(self.text.decode(errors="replace")))
            self.text = b""


class _Stream(asyncio.Protocol):
    """The response to one logs request: frames to lines."""

    def __init__(self, tty: bool, line: Line, printed: Callable[[], None]) -> None:
        self.tty = tty
        self.lines = _Lines(line, printed)
        self.parser = httptools.HttpResponseParser(self)
        self.frames = b""  # the start of a frame whose payload has not all arrived
        self.ended = asyncio.get_running_loop().create_future()
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._end()
            return
        if self.transport is not None:
            gather(self.transport)  # uWSGI writes a line per request

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() != 200:  # the container is gone already
            self._end()

    def on_body(self, body: bytes) -> None:
        if self.ended.done():
            return
        if self.tty:
            self.lines.feed(body)
            return
        frames = self.frames + body if self.frames else body
        start = 0
        while len(frames) - start >= _FRAME_HEAD:
            end = start + _FRAME_HEAD + int.from_bytes(frames[start + 4 : start + 8], "big")
            if end > len(frames):
                break
            self.lines.feed(frames[start + _FRAME_HEAD : end])
            start = end
        self.frames = frames[start:]

    def on_message_complete(self) -> None:
        self._end()

    def _end(self) -> None:
        if self.ended.done():
            return
        self.lines.close()
        self.ended.set_result(None)
        if self.transport is not None:
            self.transport.close()


async def follow_chunks(
    chunks: Callable[[], Iterable[bytes]], line: Line, printed: Callable[[], None]
) -> None:
    """A blocking stream of output with timestamps (docker-py's, for engines only it can reach,
    or a Swarm service's logs), read in a thread, its lines handed to `line` on the loop."""
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    threading.Thread(
        target=_follow_in_thread,
        args=(chunks, _Lines(line, printed), loop, ended),
        name="logs",
        daemon=True,
    ).start()
    await ended


def _follow_in_thread(
    chunks: Callable[[], Iterable[bytes]],
    lines: _Lines,
    loop: asyncio.AbstractEventLoop,
    ended: asyncio.Future[None],
) -> None:
    """The stream's chunks (and its end) handed to the loop's thread, where `lines` splits
    them."""
    with contextlib.suppress(Exception):
        for chunk in chunks():
            loop.call_soon_threadsafe(lines.feed, chunk)
    with contextlib.suppress(RuntimeError):  # the loop closed first
        loop.call_soon_threadsafe(lines.close)
        loop.call_soon_threadsafe(ended.set_result, None)
