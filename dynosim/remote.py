"""Remote control of the `dynosim up` serving an app (another process's, or this one's
`App.start`), over its control socket: what only the running dyno manager can do. Each call
raises `control.NotRunning` when no `up` runs, except where one is optional (roll_out, dynos)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from . import control, control_commands, releases
from . import formation as formations
from .logs import LogLine
from .store import Release
from .stored import Progress, StoredApp, quiet

#: What a deploy may send a running `up` with its folder.
SENT_OPTIONS = {"base_image", "strict_runtime", "cache"}


class RemoteControl:
    """The running `up` of one app, by the app's current name (read on every call)."""

    def __init__(self, app: StoredApp) -> None:
        self.app = app

    def _client(self) -> control.ControlClient:
        return control.ControlClient(self.app.name)

    @property
    def running(self) -> bool:
        """Whether a `dynosim up` (or an `App.start`) serves the app now."""
        return control.is_running(self.app.name)

    def roll_out(self, release: Release, progress: Progress = quiet) -> bool:
        """Have the running app take `release`; False when none runs (the next start will)."""
        return releases.roll_out(self.app.name, release, progress)

    def build(self, progress: Progress = quiet, **options: Any) -> tuple[Release, bool] | None:
        """Have the running app build its folder and roll the release out; (the release,
        whether it is new), None when none runs or `options` are not all a Build's (then
        the caller builds)."""
        if not set(options) <= SENT_OPTIONS:
            return None
        request = control_commands.Build(str(self.app.folder()), **options)
        built = releases.build_in_up(self.app.name, request, progress)
        return (self.app.release(str(built[0])), built[1]) if built else None

    def dynos(self) -> list[dict[str, Any]]:
        """Every dyno (formation and one-offs): the running `up`'s, else as Docker sees them."""
        from . import operations

        return operations.dynos(self.app.store, self.app.name)

    def restart(self, target: str | None = None) -> list[str]:
        """`ps:restart` all dynos, a type (web) or a dyno (web.2); the restarted names."""
        return self._client().restart(target)

    def stop_dyno(self, dyno: str) -> None:
        """`ps:stop`: a formation dyno stops and comes back, a one-off just stops."""
        self._client().stop(dyno)

    def run_detached(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        size: str = formations.DEFAULT_SIZE,
    ) -> str:
        """A one-off dyno whose output goes to the log stream; its name (run.N)."""
        return self._client().run_detached(command, env, formations.size(size).name)

    def sleep(self) -> bool:
        """`ps:sleep`: free/eco dynos sleep now; False when the app has none to sleep."""
        return self._client().sleep()

    def wake(self) -> None:
        """`ps:wake`: start the sleeping dynos; returns once they are up."""
        self._client().wake()

    def dashboard_url(self) -> str | None:
        """The running `up`'s dashboard URL with its token (None when it serves none)."""
        return self._client().dashboard_url()

    def log_stream(
        self,
        num: int = 100,
        *,
        tail: bool = False,
        ps: str | None = None,
        source: str | None = None,
    ) -> Iterator[LogLine]:
        """The running app's recent lines (its last 1500), then with `tail` new ones as they
        come; `ps` a dyno (web.1) or type (web), `source` app or heroku."""
        yield from self._client().logs(num, tail=tail, ps=ps, source=source)
