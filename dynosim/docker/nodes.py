"""Node access: the engines of a Swarm's nodes, by hostname, for what the manager's API does
not give (a container's output stream, memory and usage, the OOM flag, a kill).

One implementation now: the local cluster's owner-only node sockets
(`$DYNOSIM_HOME/cluster/nodeN/docker.sock`). A cluster dynosim did not make has none (an
agent per node is the plan, docs/architecture.md "Swarm engine"): the Swarm adapter then
falls back to `service logs` and reports no memory or usage."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container


class NodeAccess:
    """Clients of the nodes' engines at the given sockets, made once each (thread-safe)."""

    def __init__(self, sockets: dict[str, Path] | None = None) -> None:
        self._sockets = dict(sockets or {})
        self._clients: dict[str, docker.DockerClient] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._sockets)

    def hostnames(self) -> list[str]:
        return sorted(self._sockets)

    def socket(self, hostname: str) -> Path | None:
        return self._sockets.get(hostname)

    def client(self, hostname: str) -> docker.DockerClient | None:
        socket = self._sockets.get(hostname)
        if socket is None:
            return None
        with self._lock:
            if hostname not in self._clients:
                self._clients[hostname] = docker.DockerClient(
                    base_url=f"unix://{socket}", timeout=60, max_pool_size=32
                )
            return self._clients[hostname]

    def container(self, hostname: str, container_id: str) -> Container | None:
        """The task's container on its node; None without access to that node, or gone."""
        engine = self.client(hostname)
        if engine is None:
            return None
        try:
            return engine.containers.get(container_id)
        except docker.errors.NotFound:
            return None

    def close(self) -> None:
        with self._lock:
            for engine in self._clients.values():
                with contextlib.suppress(Exception):
                    engine.close()
            self._clients.clear()
