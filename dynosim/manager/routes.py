"""What the manager tells the router: the web dynos that are up, and the web status that
decides what a request finding none gets (held, H10, H14, H20, H82)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..dynostate import DynoState

if TYPE_CHECKING:
    from ..router import RouterEngine
    from .fleet import Fleet, Tracked


class Routes:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.router: RouterEngine | None = None

    def add(self, tracked: Tracked) -> None:
        if self.router and tracked.container is not None and tracked.address:
            host, port = tracked.address
            self.router.add_backend(tracked.container.id, host, port, tracked.name)

    def remove(self, tracked: Tracked) -> None:
        if self.router and tracked.container is not None:
            self.router.remove_backend(tracked.container.id)

    def update(self) -> None:
        if self.router is None:
            return
        from ..router import WebStatus  # loaded with the router itself

        fleet = self.fleet
        web = [t for t in fleet.dynos.values() if t.is_web]
        states = {t.state for t in web}
        if fleet.asleep:
            status = WebStatus.EXHAUSTED if fleet.exhausted else WebStatus.SLEEPING
        elif DynoState.UP in states:
            status = WebStatus.UP
        elif DynoState.STARTING in states or any(t.restart and t.crashes <= 1 for t in web):
            status = WebStatus.STARTING
        elif DynoState.CRASHED in states:
            status = WebStatus.CRASHED
        else:
            status = WebStatus.NONE
        self.router.set_status(status)
