import asyncio
import datetime as dt
import io
import socket

import pytest
import uvloop

from dynosim.logs import LogHub, LogLine, Printer, gather, split_long

WHEN = dt.datetime(2026, 11, 23, 19, 44, 53, 123456, tzinfo=dt.UTC)


def test_heroku_line_format():
    assert LogLine("app", "web.1", "hello", WHEN).format() == (
        "2026-11-23T19:44:53.123456+00:00 app[web.1]: hello"
    )
    line = LogLine("heroku", "web.1", "State changed from starting to up", WHEN)
    assert line.format().endswith(" heroku[web.1]: State changed from starting to up")


def test_lines_over_10000_bytes_are_split_like_logplex():
    parts = split_long("x" * 25_000)
    assert [len(p) for p in parts] == [10_000, 10_000, 5_000]
    assert split_long("short") == ["short"]


def test_hub_keeps_the_last_lines_and_fans_out():
    hub, seen = LogHub(keep=3), []
    unsubscribe = hub.subscribe(seen.append)
    for n in range(5):
        hub.app("web.1", f"line {n}")
    unsubscribe()
    hub.heroku("router", "after")
    assert [line.message for line in hub.recent] == ["line 3", "line 4", "after"]
    assert [line.message for line in seen] == [f"line {n}" for n in range(5)]


def test_printer_is_plain_when_piped_and_coloured_on_request():
    plain, coloured = io.StringIO(), io.StringIO()
    Printer(plain)(LogLine("app", "web.1", "hi", WHEN))
    Printer(coloured, colour=True)(LogLine("app", "web.1", "hi", WHEN))
    assert plain.getvalue() == "2026-11-23T19:44:53.123456+00:00 app[web.1]: hi\n"
    assert "\x1b[" in coloured.getvalue() and "app[web.1]: hi" in coloured.getvalue()


class CountingWrites(io.StringIO):
    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_printer_in_an_event_loop_writes_the_lines_of_one_loop_turn_at_once():
    stream = CountingWrites()
    printer = Printer(stream)

    async def print_lines() -> str:
        for n in range(50):
            printer(LogLine("app", "web.1", f"line {n}", WHEN))
        before = stream.getvalue()
        await asyncio.sleep(0)
        return before

    assert asyncio.run(print_lines()) == ""
    assert stream.getvalue().splitlines()[-1].endswith("app[web.1]: line 49")
    assert len(stream.getvalue().splitlines()) == 50 and stream.writes == 1


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_gathered_output_arrives_in_few_reads_however_often_it_is_written(run):
    """A line per request must not wake the loop per request, on uvloop's transports too."""
    reads: list[bytes] = []

    class Reader(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            reads.append(data)
            gather(self.transport)

    async def write_lines() -> None:
        ours, theirs = socket.socketpair()
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(Reader, ours)
        for n in range(100):
            theirs.send(b"line %d\n" % n)
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.1)
        transport.close()
        theirs.close()

    run(write_lines())
    assert b"".join(reads) == b"".join(b"line %d\n" % n for n in range(100))
    assert len(reads) < 30  # 100 without gathering (at least 0.2 s of writes, 20 ms batches)


def test_logs_request_gives_the_last_n_matching_lines():
    from dynosim.control_commands import Logs
    from dynosim.control_handler import ControlHandler

    hub = LogHub()
    for n in range(4):
        hub.app("web.1", f"web {n}")
        hub.app("worker.1", f"worker {n}")
    hub.heroku("web.2", "State changed from starting to up")

    async def collect(**request):
        return [r.line.message async for r in ControlHandler(None, hub)(Logs(**request))]

    assert asyncio.run(collect(num=2, ps="web", source="app")) == ["web 2", "web 3"]
    assert asyncio.run(collect(num=0)) == []
    assert asyncio.run(collect(num=100, ps="web.2")) == ["State changed from starting to up"]
