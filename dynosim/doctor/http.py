"""Doctor's requests to a web dyno, straight to its address on the app network with the
headers Heroku's router adds: a probe of a path, a kept connection watched while idle, a
request held in flight across SIGTERM, and a short load."""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from .observations import InFlight, KeepAlive, Probe

HOST_HEADER = "127.0.0.1:5000"


def headers(proto: str = "http") -> dict[str, str]:
    """What Heroku's router adds to a request (docs/usage.md: the router's headers)."""
    return {
        "Host": HOST_HEADER,
        "X-Forwarded-For": "127.0.0.1",
        "X-Forwarded-Proto": proto,
        "X-Forwarded-Port": "443" if proto == "https" else "80",
        "X-Request-Id": str(uuid.uuid4()),
        "X-Request-Start": str(int(time.time() * 1000)),
        "Via": "1.1 vegur",
    }


def accepts(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def probe(address: str, port: int, path: str, proto: str = "http", timeout: float = 30.0) -> Probe:
    """GET `path`: the status and seconds to the answer's head (H12 counts to the first byte)."""
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request("GET", path, headers={**headers(proto), "Connection": "close"})
        response = connection.getresponse()
        seconds = time.monotonic() - started
        response.read()
        location = response.getheader("Location", "")
        return Probe(path, response.status, seconds, timeout, location, proto)
    except (OSError, http.client.HTTPException) as exc:
        return Probe(path, None, time.monotonic() - started, timeout, proto=proto, error=str(exc))
    finally:
        connection.close()


class IdleWatch:
    """One answer on a kept connection, then the connection left idle and watched on a
    thread of its own: whether the server keeps it, and when (if) it closes it."""

    def __init__(self, address: str, port: int, path: str) -> None:
        self._connection = http.client.HTTPConnection(address, port, timeout=30)
        self._closed_after: float | None = None
        self._ended = threading.Event()  # the server closed it, or doctor let go of it
        self._since = time.monotonic()
        self.keeps = False
        try:
            self._connection.request("GET", path, headers=headers())
            response = self._connection.getresponse()
            response.read()
            self.keeps = not response.will_close
        except (OSError, http.client.HTTPException):
            pass
        self._since = time.monotonic()
        if self.keeps:
            threading.Thread(target=self._watch, daemon=True).start()
        else:
            self._ended.set()

    def _watch(self) -> None:
        sock = self._connection.sock
        while sock is not None and not self._ended.is_set():
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                try:
                    gone = sock.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    gone = True
                if gone:
                    self._closed_after = time.monotonic() - self._since
                break
        self._ended.set()

    def hold(self, seconds: float) -> None:
        """Until the server closes the connection or it has been idle `seconds`."""
        self._ended.wait(max(0.0, self._since + seconds - time.monotonic()))

    def result(self) -> KeepAlive:
        """What was seen; the connection is let go."""
        waited = time.monotonic() - self._since if self.keeps else 0.0
        self._ended.set()
        self._connection.close()
        return KeepAlive(self.keeps, self._closed_after, waited)


def in_flight(
    address: str, port: int, path: str, sigterm: Callable[[], None], timeout: float = 30.0
) -> InFlight:
    """A request whose body is still coming when the dyno gets SIGTERM (`sigterm` sends it):
    its head first, SIGTERM, a second for the signal to land, then the body's last byte."""
    try:
        sock = socket.create_connection((address, port), timeout=5)
    except OSError as exc:
        return InFlight(False, error=f"no connection: {exc}")
    with sock:
        head = {**headers(), "Content-Length": "1", "Content-Type": "text/plain"}
        lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
        sock.sendall(("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode())
        early = select.select([sock], [], [], 0.5)[0]
        sigterm()
        if early:
            return _answer(sock, before_sigterm=True)
        time.sleep(1.0)
        try:
            sock.sendall(b"x")
        except OSError as exc:
            return InFlight(False, error=f"connection closed at SIGTERM ({exc.strerror})")
        sock.settimeout(timeout)
        return _answer(sock, before_sigterm=False)


def _answer(sock: socket.socket, before_sigterm: bool) -> InFlight:
    try:
        first = sock.recv(4096)
    except OSError as exc:
        return InFlight(False, error=f"connection reset ({exc.strerror or exc})")
    if not first.startswith(b"HTTP/"):
        return InFlight(False, error="connection closed without an answer")
    status = int(first.split(b" ", 2)[1])
    return InFlight(True, status, before_sigterm)


def load(address: str, port: int, paths: Sequence[str], seconds: float, clients: int = 4) -> int:
    """Requests to `paths` from `clients` threads for `seconds`; how many were answered."""
    deadline = time.monotonic() + seconds
    answered = [0] * clients

    def client(index: int) -> None:
        while time.monotonic() < deadline:
            for path in paths:
                if probe(address, port, path, timeout=10).status is not None:
                    answered[index] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    return sum(answered)
