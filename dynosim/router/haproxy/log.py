"""HAProxy's log: the pipe it writes one line per request to, read in batches, and each line
turned into Heroku's ``heroku[router]`` line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ...logs import gather
from .. import wire
from ..wire import Fields

MARK = "dynosim"  # first field of HAProxy's log lines for requests
# Fields HAProxy logs per request, in order (see heroku_line).
LOG_FORMAT = "\\t".join(
    [
        MARK,
        "%ci",  # client address
        "%tsc",  # termination state: who ended the exchange, at which stage
        "%ST",  # status sent to the client
        "%B",  # bytes sent to the client
        "%TR",  # ms until the request head was complete
        "%Tw",  # ms waiting in the queue for a dyno
        "%Tc",  # ms connecting to the dyno
        "%Ta",  # ms from the request head to the end of the answer
        "%s",  # the server slot (dynoN) or <NOSRV>
        "%[ssl_fc]",  # 1 over HTTPS
        "%[var(txn.code)]",  # an H code decided by a rule (H11), maybe with the error
        "%[var(txn.rid)]",  # X-Request-Id as sent to the dyno
        "%[var(txn.fwd)]",  # the client's own X-Forwarded-For
        "%HM",
        "%[capture.req.hdr(0)]",  # Host
        "%HU",  # the request target, last: it is the field most likely to hold anything
    ]
)
# HAProxy's termination state (first two letters of %tsc) -> Heroku's code and, for a
# connection cut mid-answer, the side that caused it (Heroku's sock=).
CODES = {
    "sC": ("H19", ""),
    "SC": ("H21", ""),
    "sQ": ("H12", ""),
    "sH": ("H12", ""),
    "SH": ("H13", ""),
    "PH": ("H13", ""),
    "sD": ("H15", ""),
    "SD": ("H18", "backend"),
    "cD": ("H28", "client"),
    "cR": ("H28", "client"),  # Heroku (and the Python router) log every H28 as the client's
    "cH": ("H28", "client"),
    "CD": ("H27", "client"),
}


def heroku_line(line: str, labels: Callable[[str], str]) -> str | None:
    """Heroku's router line from one of HAProxy's (None for a line that is not a request's).

    `labels` names the dyno behind a server slot."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) != 17 or fields[0] != MARK:
        return None
    (_, client, state, status, nbytes, head_ms, queue_ms, connect_ms, active_ms,
     slot, tls, code, rid, fwd, method, host, path) = fields  # fmt: skip
    status_code = int(status) if status.lstrip("-").isdigit() else 0
    code, _, error = ("" if code == "-" else code).partition(" ")
    sock = ""
    if not code:
        code, sock = CODES.get(state[:2], ("", ""))
        if state[:2] == "SD" and status_code <= 0:  # the dyno went while the body streamed in
            code, sock = "H13", ""  # Heroku: closed before its answer began (not H18)
        if not code and state[:1] == "C":
            code = "H27"  # the client went away before its answer began
        elif not code and state[:1] == "P" and 400 <= status_code < 500:
            code = "H26"  # its parser refused the request: 400, or 422 for a coding it lacks
        elif not code and state[:1] in ("K", "D", "I", "R"):  # killed, server down, internal
            code = "H99"
    bad = method == "<BADREQ>"
    info = Fields(
        "" if bad else method,
        "" if bad else path.replace('"', "%22"),
        "" if host == "-" else host,
        rid if rid and rid != "-" else wire.request_id([]),
        ", ".join(part for part in (fwd if fwd != "-" else "", client) if part),
        "https" if tls == "1" else "http",
    )
    head, queued, connecting, active = (
        _seconds(value) for value in (head_ms, queue_ms, connect_ms, active_ms)
    )
    service = None
    if active is not None and connecting is not None:
        service = max(0.0, active - (head or 0.0) - (queued or 0.0) - connecting)
    elif active is not None and state[1:2] == "C":  # every attempt to connect failed
        connecting = max(0.0, active - (head or 0.0) - (queued or 0.0))
    dyno = labels(slot) if slot != "<NOSRV>" else ""
    if status_code == 405 and method == "CONNECT":
        return wire.log_line(info, "error", status=405, desc="Method not supported")
    if not code:
        return wire.log_line(info, "info", "", dyno, connecting, service, status_code, int(nbytes))
    at = "warning" if sock == "client" else "error"
    if code != "H26":  # Heroku logs H26 with the status it answered (400, 505)
        status_code = wire.ERROR_STATUS.get(code, 503)
    return wire.log_line(
        info, at, code, dyno, connecting, service, status_code, None,
        sock=sock, extra=f'error="{error}"' if error else "",
    )  # fmt: skip


def _seconds(ms: str) -> float | None:
    return int(ms) / 1000 if ms.isdigit() else None


class LogPipe(asyncio.Protocol):
    """HAProxy's log pipe, handed on a batch of whole lines at a time: under load it is read
    once per :data:`~dynosim.logs.BATCH` (one wake-up for the lines of many requests)."""

    def __init__(self, lines: Callable[[list[bytes]], None]) -> None:
        self.lines = lines
        self.rest = b""  # the start of a line whose newline has not arrived
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        *lines, self.rest = (self.rest + data).split(b"\n")
        if lines:
            self.lines(lines)
        gather(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
