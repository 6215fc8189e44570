"""Client connections: the HTTP and HTTPS servers that accept them, their count against what
the file descriptors allow (H22 beyond it), and their end when the router closes."""

from __future__ import annotations

import asyncio
import errno
import resource
import socket
import ssl

from . import wire
from .engine import RouterError
from .proxy import Client, Routing
from .wire import SHUTDOWN_GRACE


def connection_limit() -> int:
    """Client connections that fit in this process's file descriptors: each request also holds
    one to its dyno, and the rest of dynosim needs a few."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(16, (soft - 128) // 2)


class Clients:
    """Where clients reach a router, its servers, and the connections they accepted."""

    def __init__(
        self,
        host: str,
        port: int,
        https_port: int | None,
        ssl_context: ssl.SSLContext | None,
        max_connections: int | None,
    ) -> None:
        """Serve HTTP on host:port, and HTTPS on https_port given an ``ssl_context``. Beyond
        ``max_connections`` open connections (default: what the file-descriptor limit allows,
        two per request) a new one is refused."""
        self.host = host
        self.host_header = host.encode()  # the Host a request without one is sent with
        self.set_ports(port, https_port)
        self.servers: list[asyncio.Server] = []
        self._ssl_context = ssl_context
        self._max = max_connections or connection_limit()
        self._open: set[Client] = set()
        self._stopped: list[asyncio.Server] = []  # servers closing, waited for by close()

    def set_ports(self, port: int, https_port: int | None) -> None:
        """The ports clients reach, and their X-Forwarded-Port by scheme."""
        self.port, self.https_port = port, https_port
        self.port_headers = {"http": b"%d" % port, "https": b"%d" % (https_port or 0)}

    @property
    def url(self) -> str:
        return wire.origin(self.host, self.port)

    @property
    def https_url(self) -> str | None:
        if self.https_port is None or self._ssl_context is None:
            return None
        return wire.origin(self.host, self.https_port, "https")

    async def listen(
        self, routing: Routing, sock: socket.socket | None, tls_sock: socket.socket | None
    ) -> tuple[int, int | None]:
        """Serve `sock` (and `tls_sock`), or bind the ports, with `routing` behind; the ports
        bound. RouterError if an address cannot be bound."""
        loop = asyncio.get_running_loop()
        # the socket (or None: bind the port), the port, TLS, the option choosing it, the scheme
        listeners: list[tuple[socket.socket | None, int, ssl.SSLContext | None, str, str]] = [
            (sock, self.port, None, "--port", "http")
        ]
        if self._ssl_context is not None:
            listeners.append(
                (tls_sock, self.https_port or 0, self._ssl_context, "--https-port", "https")
            )
        host = self.host
        for listener, port, context, option, scheme in listeners:

            def factory(scheme: str = scheme) -> Client:
                return Client(routing, scheme)

            try:
                if listener is not None:
                    server = await loop.create_server(factory, sock=listener, ssl=context)
                else:
                    server = await loop.create_server(
                        factory, host, port, ssl=context, backlog=1024, reuse_address=True
                    )
            except OSError as exc:
                await self._stop_servers()
                where = f"{host}:{port}"
                if exc.errno == errno.EADDRINUSE:
                    raise RouterError(
                        f"{where} is already in use; choose another port with {option}"
                    ) from None
                raise RouterError(f"cannot listen on {where}: {exc.strerror or exc}") from None
            self.servers.append(server)
        bound = [server.sockets[0].getsockname()[1] for server in self.servers]
        return bound[0], bound[1] if len(bound) > 1 else None

    async def _stop_servers(self) -> None:
        servers, self.servers = self.servers, []
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()

    def admit(self, client: Client) -> bool:
        """A client connected: count it, or False beyond ``max_connections`` (H22)."""
        if len(self._open) >= self._max:
            return False
        self._open.add(client)
        return True

    def closed(self, client: Client) -> None:
        """A client connection is gone."""
        self._open.discard(client)

    def stop_listening(self) -> None:
        """Accept no more connections."""
        self._stopped += self.servers
        for server in self.servers:
            server.close()
        self.servers = []

    async def close(self, quiet: asyncio.Event) -> None:
        """Close idle keep-alive connections, let the others finish until `quiet` is set
        (5 s at most), then close them all."""
        for client in list(self._open):
            if client.exchange is None and not client.queue and client.tunnel is None:
                client.abort()  # idle keep-alive connections
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE):
                await quiet.wait()
        except TimeoutError:
            pass
        for client in list(self._open):
            client.abort()
        servers, self._stopped = self._stopped, []
        for server in servers:
            await server.wait_closed()
