"""The router's listening sockets on the host, opened before the router itself is loaded."""

from __future__ import annotations

import socket

from .errors import UsageError


def check_port_free(host: str, port: int, option: str = "--port") -> None:
    """Fail before a long build, not after it, when a router port is taken."""
    listen(host, port, option).close()


def listen(host: str, port: int, option: str = "--port") -> socket.socket:
    """A router listening socket, opened before the router itself is loaded."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(1024)
    except OSError:
        listener.close()
        raise UsageError(
            f"{host}:{port} is already in use; choose another port with {option}"
        ) from None
    return listener
