"""The app's network keeper on a Swarm: a global service whose one idle task per node holds
the app's overlay network joined on every node (and the release's image pulled there).

Why: a node joins an overlay network when the first task on it arrives, and joining syncs
the network's state with every node that was on it, one after the other; a peer that just
died costs a TCP dial timeout (libnetwork's networkdb "bulk sync ... i/o timeout"). The node
a lost dyno moves to is often the one without a dyno of the app (a node that has just
rejoined, which the scheduler's spread prefers), so without a keeper the lost dyno waited
out that timeout in `preparing` there (figures: docs/architecture.md, "Swarm engine").

A new keeper also goes first: a node drops a table event (a new task's address) from a node it
does not yet know is on the network, and learns it only at the next bulk sync, 30 s later. A
dyno that was the first of its app on its node raced its own node's join that way, and the
add-on servers could not answer it until then. So the first dynos (and the release phase) wait
until every node runs the keeper and each sees all of them on the network."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import docker.errors

from . import client, services
from .dynos import CONTAINER_USER, network_name
from .services import NO_NEW_PRIVS

#: The keeper's kind (the dynosim label): neither a dyno nor an add-on server.
KIND = "network-keeper"
MEMORY = 16 * 1024 * 1024
PIDS = 8
#: How long the first dynos wait for a new keeper to run on every node (its image pulled
#: there) and be seen on the network by each; past it they start anyway.
JOIN_TIMEOUT = 60.0
#: A keeper task in one of these states will not run: its node is not waited for.
GIVEN_UP = frozenset({"failed", "rejected", "complete", "shutdown", "orphaned", "remove"})


def service_name(app: str) -> str:
    return f"dynosim-{app}-network"


def spec(app: str, image_ref: str) -> dict[str, Any]:
    """The keeper's service: `sleep infinity` from the app's image (on every node already for
    its dynos) as a dyno is locked down, killed at once on removal; updated start-first."""
    labels = {client.LABEL: KIND, client.LABEL_APP: app}
    container = {
        "Image": image_ref,
        "Command": [*NO_NEW_PRIVS, "sleep", "infinity"],
        "User": CONTAINER_USER,
        "Labels": labels,
        "CapabilityDrop": ["ALL"],
        "ReadOnly": True,
        "StopSignal": "SIGKILL",
        "StopGracePeriod": 0,
    }
    return {
        "Name": service_name(app),
        "Labels": labels,
        "TaskTemplate": {
            "ContainerSpec": container,
            "Resources": {"Limits": {"MemoryBytes": MEMORY, "Pids": PIDS}},
            # an image without sleep or setpriv (heroku.yml) fails a few times, harmlessly
            "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 3, "Delay": 5 * 10**9},
            "Networks": [{"Target": network_name(app)}],
        },
        "Mode": {"Global": {}},
        "UpdateConfig": {"Parallelism": 0, "Order": "start-first"},
    }


def keep(api: Any, app: str, image_ref: str) -> bool:
    """Run the keeper from `image_ref`, or move it there; nothing when it runs it already.
    Whether it made the keeper (a new one is waited for: `until_joined`)."""
    body = spec(app, image_ref)
    try:
        current = api.inspect_service(body["Name"])
    except docker.errors.NotFound:
        try:
            api.create_service(
                body["TaskTemplate"], name=body["Name"], labels=body["Labels"],
                mode=body["Mode"], update_config=body["UpdateConfig"],
            )  # fmt: skip
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # made meanwhile by another run
                raise
            return False
        return True
    if current["Spec"]["TaskTemplate"]["ContainerSpec"].get("Image") == image_ref:
        return False
    api.update_service(
        current["ID"], current["Version"]["Index"], task_template=body["TaskTemplate"],
        mode=body["Mode"], update_config=body["UpdateConfig"], fetch_current_spec=True,
    )  # fmt: skip
    return False


def unsettled(
    eligible: dict[str, str], tasks: list[dict[str, Any]], seen: dict[str, set[str] | None]
) -> set[str]:
    """The nodes still waited for: of the `eligible` ones (node id -> address), those whose
    newest keeper task is not running yet (nor given up on), and those running it whose view
    in `seen` (node id -> the addresses its engine lists on the network; None: not there yet)
    misses a node that runs it. A node whose view cannot be read is not in `seen`."""
    newest: dict[str, dict[str, Any]] = {}
    for task in sorted(tasks, key=lambda t: t["Version"]["Index"]):
        newest[task.get("NodeID", "")] = task
    states = {node: newest[node]["Status"]["State"] if node in newest else "" for node in eligible}
    running = {node for node, state in states.items() if state == "running"}
    members = {eligible[node] for node in running}
    waited = {node for node, state in states.items() if state not in GIVEN_UP | {"running"}}
    for node in running & seen.keys():
        view = seen[node]
        if view is None or not members <= view:
            waited.add(node)
    return waited


def until_joined(
    api: Any,
    app: str,
    view: Callable[[str], Any | None],
    stopped: Callable[[], bool] = lambda: False,
    timeout: float = JOIN_TIMEOUT,
) -> None:
    """Wait until `unsettled` is empty, `stopped()` (the app is going away) or `timeout`
    seconds. `view(node_id)`: an API client that reads that node's network state (None: no
    access to that node)."""
    deadline = time.monotonic() + timeout
    network = network_name(app)
    while not stopped():
        eligible = {
            n["ID"]: services.node_address(n)
            for n in api.nodes()
            if n["Status"]["State"] == "ready" and n["Spec"].get("Availability") == "active"
        }
        tasks = api.tasks(filters={"service": service_name(app)})
        waited = unsettled(eligible, tasks, {})  # the tasks first: no views read meanwhile
        if not waited:
            engines = {node: view(node) for node in eligible}
            seen = {n: peers(e, network) for n, e in engines.items() if e is not None}
            waited = unsettled(eligible, tasks, seen)
        if not waited or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def peers(engine: Any, network: str) -> set[str] | None:
    """The addresses of the nodes `engine`'s network database lists on `network`; None when
    the network is not on that node yet."""
    try:
        found = engine.inspect_network(network, verbose=True, scope="swarm")
    except docker.errors.NotFound:
        return None
    return {peer["IP"] for peer in found.get("Peers") or []}


def remove(api: Any, app: str) -> None:
    """Remove the keeper (its tasks are killed at once); gone already is fine."""
    with contextlib.suppress(docker.errors.NotFound):
        api.remove_service(service_name(app))
