"""The app's network keeper on a Swarm: a global service whose one idle task per node holds
the app's overlay network joined on every node (and the release's image pulled there).

Why: a node joins an overlay network when the first task on it arrives, and joining syncs
the network's state with every node that was on it, one after the other; a peer that just
died costs a TCP dial timeout (libnetwork's networkdb "bulk sync ... i/o timeout"). The node
a lost dyno moves to is often the one without a dyno of the app (a node that has just
rejoined, which the scheduler's spread prefers), so without a keeper the lost dyno waited
out that timeout in `preparing` there (figures: docs/architecture.md, "Swarm engine")."""

from __future__ import annotations

import contextlib
from typing import Any

import docker.errors

from . import client
from .dynos import CONTAINER_USER, network_name
from .services import NO_NEW_PRIVS

#: The keeper's kind (the dynosim label): neither a dyno nor an add-on server.
KIND = "network-keeper"
MEMORY = 16 * 1024 * 1024
PIDS = 8


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


def keep(api: Any, app: str, image_ref: str) -> None:
    """Run the keeper from `image_ref`, or move it there; nothing when it runs it already."""
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
        return
    if current["Spec"]["TaskTemplate"]["ContainerSpec"].get("Image") == image_ref:
        return
    api.update_service(
        current["ID"], current["Version"]["Index"], task_template=body["TaskTemplate"],
        mode=body["Mode"], update_config=body["UpdateConfig"], fetch_current_spec=True,
    )  # fmt: skip


def remove(api: Any, app: str) -> None:
    """Remove the keeper (its tasks are killed at once); gone already is fine."""
    with contextlib.suppress(docker.errors.NotFound):
        api.remove_service(service_name(app))
