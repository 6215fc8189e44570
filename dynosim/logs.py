"""Logplex-style log lines: format them, colour them per dyno, fan them out to subscribers."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

import click

if TYPE_CHECKING:
    import asyncio

#: Logplex keeps the last 1500 lines; longer dyno lines are split into 10,000-byte chunks.
KEEP = 1500
MAX_LINE_BYTES = 10_000
COLOURS = ("cyan", "yellow", "green", "magenta", "blue", "bright_cyan", "bright_yellow")
BATCH = 0.02  # s output gathers between reads under load (a line per request would wake us each)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class LogLine:
    source: str  # "app" (dyno output) or "heroku" (platform)
    dyno: str  # "web.1", "router", "api"
    message: str
    time: dt.datetime = field(default_factory=now)

    def format(self) -> str:
        time = self.time if self.time.tzinfo is dt.UTC else self.time.astimezone(dt.UTC)
        stamp = time.isoformat(timespec="microseconds")
        return f"{stamp} {self.source}[{self.dyno}]: {self.message}"

    def to_json(self) -> dict[str, str]:
        return {
            "source": self.source,
            "dyno": self.dyno,
            "message": self.message,
            "time": self.time.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> LogLine:
        time = dt.datetime.fromisoformat(data["time"])
        return cls(data["source"], data["dyno"], data["message"], time)


@dataclass(frozen=True)
class Filter:
    """`logs --ps web` (a type) or `--ps web.1` (a dyno), and `--source app|heroku`."""

    ps: str | None = None
    source: str | None = None

    def __call__(self, line: LogLine) -> bool:
        if self.source and line.source != self.source:
            return False
        if self.ps is None:
            return True
        return line.dyno == self.ps or line.dyno.split(".")[0] == self.ps


def split_long(message: str) -> list[str]:
    """Split a dyno line the way Logplex does: chunks of at most 10,000 bytes."""
    data = message.encode()
    if len(data) <= MAX_LINE_BYTES:
        return [message]
    return [
        data[i : i + MAX_LINE_BYTES].decode(errors="replace")
        for i in range(0, len(data), MAX_LINE_BYTES)
    ]


class Printer:
    """Writes lines to a stream, coloured per dyno when the stream is a terminal."""

    def __init__(self, stream: TextIO | None = None, colour: bool | None = None) -> None:
        self.stream: TextIO | None = stream or sys.stdout
        self.colour = self.stream.isatty() if colour is None else colour
        self._colours: dict[str, str] = {}
        self._cycle = itertools.cycle(COLOURS)
        self._pending: list[str] = []

    def __call__(self, line: LogLine) -> None:
        text = line.format()
        if self.colour:
            key = line.dyno.split(".")[0] if line.source == "app" else line.dyno
            if key not in self._colours:
                self._colours[key] = "white" if line.source == "heroku" else next(self._cycle)
            text = click.style(text, fg=self._colours[key])
        if self.stream is None:
            return
        self._pending.append(text + "\n")
        if len(self._pending) > 1:
            return  # a flush is due
        try:
            import asyncio  # only `up` batches lines: CLI commands need no asyncio

            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # outside an event loop: at once
            self.flush()

    def flush(self) -> None:
        """Write what has been printed. In an event loop this runs once the loop has handed
        over what is ready: one write for the lines of many requests under load."""
        text, self._pending = "".join(self._pending), []
        if self.stream is None or not text:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # `dynosim up | head`: the reader left
            self.stream = None


def gather(transport: asyncio.BaseTransport, seconds: float = BATCH) -> None:
    """Stop reading from `transport` (asyncio's or uvloop's, which is no ReadTransport) for
    `seconds`, letting output gather: under load one wake-up then brings the lines of many
    requests instead of one."""
    if transport.is_closing():
        return
    transport.pause_reading()  # type: ignore[attr-defined]

    def resume() -> None:
        if not transport.is_closing():
            transport.resume_reading()  # type: ignore[attr-defined]

    import asyncio

    asyncio.get_running_loop().call_later(seconds, resume)


class LogHub:
    """Keeps the last lines and hands every new one to its subscribers (printer, `logs --tail`).

    Not thread-safe: Docker reader threads hand lines over with loop.call_soon_threadsafe.
    """

    def __init__(self, keep: int = KEEP) -> None:
        self.recent: collections.deque[LogLine] = collections.deque(maxlen=keep)
        self.subscribers: list[Callable[[LogLine], None]] = []

    def subscribe(self, callback: Callable[[LogLine], None]) -> Callable[[], None]:
        self.subscribers.append(callback)
        return lambda: self.subscribers.remove(callback)

    def emit(self, line: LogLine) -> None:
        self.recent.append(line)
        for callback in list(self.subscribers):
            callback(line)

    def heroku(self, dyno: str, message: str) -> None:
        self.emit(LogLine("heroku", dyno, message))

    def app(self, dyno: str, message: str, time: dt.datetime | None = None) -> None:
        for part in split_long(message):
            self.emit(LogLine("app", dyno, part, time or now()))
