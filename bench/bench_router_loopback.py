"""The router's own cost, without Docker: CPU per request of the Router in front of 3 stand-in
dynos on loopback, with and without keep-alive to them.

The stand-ins (one process each, uvloop) answer every request with a small JSON-sized reply and
either close the connection after it, as uWSGI's http-socket does, or keep it, as an evented
server does. The router runs on uvloop in this process, with `up`'s log path (LogHub and
Printer, to /dev/null), pinned to CPU 0; the stand-ins and wrk run on CPU 1. For each mode and
connection count: requests per second, p50 latency and the router's user and system CPU per
request (medians of --rounds runs of --seconds each).
Usage: python bench/bench_router_loopback.py [--rounds 3] [--seconds 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import statistics
import sys
import threading
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_router import wrk  # noqa: E402
from common import free_port, report  # noqa: E402

from dynosim.logs import LogHub, Printer  # noqa: E402
from dynosim.router import Router  # noqa: E402

BODY = b'{"app": "flask_app", "dyno": "web.1", "release": "v1"}\n'
REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


def stand_in(port: int, keep: bool) -> None:
    """A dyno stand-in on CPU 1: answers each request head; closes after it unless `keep`."""
    os.sched_setaffinity(0, {1})

    class Answer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:
                _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
                self.transport.write(REPLY)
                if not keep:
                    self.transport.close()
                    return

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(Answer, "127.0.0.1", port, backlog=1024)
        await asyncio.Event().wait()

    uvloop.run(serve())


def measure(keep: bool, rounds: int, seconds: int) -> dict[str, dict[str, float]]:
    """Start the stand-ins and the router, load it at 32 and at 1 connection."""
    ports = [free_port() for _ in range(3)]
    stand_ins = [
        multiprocessing.Process(target=stand_in, args=(port, keep), daemon=True) for port in ports
    ]
    for process in stand_ins:
        process.start()
    router_port = free_port()
    ready, stop = threading.Event(), threading.Event()

    async def serve() -> None:
        hub = LogHub()
        hub.subscribe(Printer(open(os.devnull, "w")))  # noqa: SIM115
        router = Router("bench", lambda m: hub.heroku("router", m), port=router_port)
        await router.start()
        for n, port in enumerate(ports, 1):
            router.add_backend(f"web.{n}", "127.0.0.1", port)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await router.close()

    thread = threading.Thread(target=uvloop.run, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(10)
    results: dict[str, dict[str, list[float]]] = {}
    try:
        url = f"http://127.0.0.1:{router_port}/"
        wrk(url, 1, 32, "1")  # warm up
        for _ in range(rounds):
            for connections in (32, 1):
                before = resource.getrusage(resource.RUSAGE_SELF)
                rate, p50 = wrk(url, seconds, connections, "1")
                after = resource.getrusage(resource.RUSAGE_SELF)
                requests = max(rate * seconds, 1)
                leg = results.setdefault(f"c{connections}", {})
                leg.setdefault("rps", []).append(rate)
                leg.setdefault("p50_ms", []).append(p50)
                for kind in ("utime", "stime"):
                    used = getattr(after, f"ru_{kind}") - getattr(before, f"ru_{kind}")
                    leg.setdefault(f"{kind}_us_per_request", []).append(used * 1e6 / requests)
    finally:
        stop.set()
        thread.join(10)
        for process in stand_ins:
            process.terminate()
    return {
        leg: {k: round(statistics.median(v), 3) for k, v in values.items()}
        for leg, values in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    result = {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "dynos_close_after_each_answer": measure(False, args.rounds, args.seconds),
        "dynos_keep_connections": measure(True, args.rounds, args.seconds),
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
