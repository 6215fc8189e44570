"""Measure how soon a new task reaches servers on other nodes over a fresh overlay network.

Why: in 2 of 19 runs of test_swarm_addons_app, new dynos could not reach the add-on servers on
other nodes for their first 25-30 s (docs/architecture.md, "The add-on app flake"). This
probes the shape without dynosim's manager, on a fresh 3-node local cluster: each round makes
an attachable overlay, two servers (`python3 -m http.server`, dnsrr, pinned to node2 and
node3, as add-on servers are), waits --settle seconds, then starts a client task pinned to
each node which connects to both servers by name every 0.1 s from its start. With
--release, a one-off on node1 first reaches a server and exits, as `up`'s release phase
does, and the clients start the moment its service is removed (its task was node1's only
one on the network). With --keeper, dynosim's network keeper (`docker.swarm_keeper`) is started
and waited for before that, as `up` does. Prints the median and slowest seconds to a first
connection, and the rounds slower than 2 s.
Usage: python bench/bench_overlay_join.py [--rounds 12] [--settle 8] [--release] [--keeper]
                                          [--json results.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import report  # noqa: E402
from dynosim import cluster, runtime, stack  # noqa: E402
from dynosim.docker import cluster_images, swarm_keeper  # noqa: E402
from dynosim.docker.nodes import NodeAccess  # noqa: E402
from dynosim.docker.swarm_tasks import Tasks  # noqa: E402

#: Connects to each host named in argv on port 8000; prints "HOST SECONDS" (or "never").
CLIENT = """
import socket, sys, time
began = time.monotonic()
for host in sys.argv[1:]:
    while time.monotonic() - began < 60:
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect((host, 8000))
            print(host, round(time.monotonic() - began, 2), flush=True)
            break
        except OSError:
            time.sleep(0.1)
        finally:
            probe.close()
    else:
        print(host, "never", flush=True)
"""
NEVER = 60.0


def service(api: docker.APIClient, name: str, image: str, command: list[str], node: str,
            network: str, **options) -> str:  # fmt: skip
    template = docker.types.TaskTemplate(
        docker.types.ContainerSpec(image, command, hostname=name),
        placement=docker.types.Placement(constraints=[f"node.hostname=={node}"]),
        networks=[network],
        restart_policy=docker.types.RestartPolicy(condition="none"),
    )
    return api.create_service(template, name=name, **options)["ID"]


def one_round(api: docker.APIClient, image: str, number: int, args: argparse.Namespace,
              views: Callable[[str], Any | None]) -> list[float]:  # fmt: skip
    """Seconds to each client's first connection to each server, this round."""
    app = f"bench{number}"
    network = f"dynosim-{app}"  # the keeper's network name for `app`
    api.create_network(network, driver="overlay", attachable=True)
    servers = [f"srv{node}-{number}" for node in ("node2", "node3")]
    made = [
        service(api, name, image, ["python3", "-m", "http.server", "8000"], name.split("-")[0][3:],
                network, endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"))
        for name in servers
    ]  # fmt: skip
    time.sleep(args.settle)
    if args.keeper:
        swarm_keeper.keep(api, app, image)
        swarm_keeper.until_joined(api, app, views)
    if args.release:
        phase = service(api, f"release-{number}", image, ["python3", "-c", CLIENT, servers[0]],
                        "node1", network)  # fmt: skip
        finished([phase], api)
        api.remove_service(phase)
    clients = [
        service(api, f"client-{node}-{number}", image, ["python3", "-c", CLIENT, *servers],
                node, network)
        for node in ("node1", "node2", "node3")
    ]  # fmt: skip
    finished(clients, api)
    seconds = []
    for client in clients:
        for line in b"".join(api.service_logs(client, stdout=True)).decode().splitlines():
            took = line.split()[-1]
            seconds.append(NEVER if took == "never" else float(took))
    for made_service in clients + made:
        api.remove_service(made_service)
    swarm_keeper.remove(api, app)
    for _ in range(30):  # the tasks leave the network a moment after their services go
        try:
            api.remove_network(network)
            break
        except docker.errors.APIError:
            time.sleep(1)
    return seconds


def finished(services: list[str], api: docker.APIClient) -> None:
    """Until each service's task has ended (or three times the clients' limit)."""
    deadline = time.monotonic() + NEVER * 3
    while time.monotonic() < deadline:
        states = [t["Status"]["State"] for s in services for t in api.tasks(filters={"service": s})]
        if len(states) == len(services) and all(s in ("complete", "failed") for s in states):
            return
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--settle", type=float, default=8.0)
    parser.add_argument("--release", action="store_true")
    parser.add_argument("--keeper", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ["DYNOSIM_HOME"] = tempfile.mkdtemp(prefix="dynosim-bench-")
    made = cluster.create(3, lambda line: None)
    try:
        base = runtime.stack_by_suite("bookworm")
        stack.ensure(base, lambda line: None)
        manager = made.nodes[0].socket
        image = cluster_images.publish(base.run_image, manager)
        api = docker.APIClient(base_url=f"unix://{manager}", timeout=120)
        access = NodeAccess({node.hostname: node.socket for node in made.nodes})
        views = Tasks(api, access).network_view  # as `up` reads each node's network state
        rounds = [one_round(api, image, number, args, views) for number in range(args.rounds)]
        access.close()
        api.close()
    finally:
        cluster.destroy(lambda line: None)
    seconds = [s for found in rounds for s in found]
    report(
        {
            "rounds": args.rounds,
            "settle_seconds": args.settle,
            "release_phase": args.release,
            "keeper": args.keeper,
            "connections": len(seconds),
            "median_seconds": round(statistics.median(seconds), 2),
            "slowest_seconds": max(seconds),
            "slow_rounds": [n for n, found in enumerate(rounds) if max(found) > 2],
        },
        args.json,
    )


if __name__ == "__main__":
    main()
