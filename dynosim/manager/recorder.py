"""The Metrics tab's recorder: what the app's log lines and the runtime samples say, per minute
and process type (and per dyno for memory and load), flushed to the store once a minute is
over, whether or not log-runtime-metrics is on.

Requests come from the ``heroku[router]`` lines both router engines put into the log hub (the
routers' hot paths are untouched; they are the `web` type's), events from the platform's and
the API's lines and from formation changes (scaling), memory and load from `metrics`' 5-s
samples. Minutes are the schedule clock's (`--time-scale` makes them short; tests fast-forward
them), and so is the flush, every minute; shutdown flushes the minute under way too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .. import loadavg
from .. import metrics as tab
from ..container_engine import FORMATION, Usage
from ..formation import DEFAULT_SIZE, Entry, size
from ..logs import LogLine
from ..procfile import WEB
from ..store import Store
from .fleet import Fleet, Tracked

FLUSH_EVERY = tab.MINUTE
REAL_FLOOR = 0.25  # however fast the schedule runs, flushes are at least this far apart
APP = ("", "")  # the (process type, dyno) of the app's own events: deploys, config changes


class Recorder:
    """One app's minutes under way, by (minute, process type, dyno); `flushes` counts the
    flush rounds (tests wait on it after fast-forwarding the schedule). With the manager's
    `record_metrics` off (bench_router measures the recorder's cost so) it records nothing."""

    def __init__(self, fleet: Fleet, store: Store) -> None:
        self.fleet, self.store = fleet, store
        self.buckets: dict[tuple[int, str, str], tab.Bucket] = {}
        self.flushes = 0
        self.recording = fleet.options.record_metrics
        self._minute, self._minute_ends = 0, float("-inf")  # the schedule's, from `now()`
        self._formation: dict[str, tuple[int, str]] | None = None
        self._unsubscribe: Callable[[], None] | None = (
            fleet.hub.subscribe(self.line) if self.recording else None
        )

    def start(self) -> asyncio.Future:
        return asyncio.ensure_future(self._run())

    def close(self) -> None:
        """Stop listening and store everything, the minute under way included."""
        if self._unsubscribe is not None:
            self._unsubscribe, unsubscribe = None, self._unsubscribe
            unsubscribe()
            self.flush(everything=True)

    def minute(self) -> int:
        """The schedule's minute now; worked out again only once the schedule passed the end
        of the last one (every request's line asks, and `wall` makes a datetime)."""
        schedule = self.fleet.schedule
        now = schedule.now()
        if now >= self._minute_ends:
            wall = schedule.wall().timestamp()
            self._minute = tab.minute_of(wall)
            self._minute_ends = now + (self._minute + tab.MINUTE - wall)
        return self._minute

    def bucket(self, process_type: str, dyno: str = "") -> tab.Bucket:
        key = (self.minute(), process_type, dyno)
        found = self.buckets.get(key)
        if found is None:
            found = self.buckets[key] = tab.Bucket()
        return found

    # what is recorded
    def line(self, line: LogLine) -> None:
        """A log line: a router line's request (and H code), or a platform event."""
        if line.source == "heroku" and line.dyno == "router":
            request = tab.router_request(line.message)
            if request is not None:
                bucket = self.bucket(WEB)
                bucket.request(request.status, request.service_ms)
                if request.code:
                    bucket.event(request.code)
            return
        kind = tab.event(line.source, line.dyno, line.message)
        if kind is not None:
            where = APP if line.dyno == "api" else (line.dyno.split(".")[0], "")
            self.bucket(*where).event(kind)

    def usage(self, tracked: Tracked, used: Usage, load: loadavg.LoadAverage) -> None:
        """A formation dyno's 5-s sample: into its type's minute and its own."""
        if tracked.role != FORMATION or not self.recording:
            return
        quota = size(tracked.size).memory_mb * tab.MB
        one = load.values()[0]
        for bucket in (self.bucket(tracked.type), self.bucket(tracked.type, tracked.name)):
            bucket.usage(used.rss, used.swap, quota, one)

    def formation(self, entries: dict[str, Entry]) -> None:
        """The formation reconcile applies: a scaling event for each type that changed since
        the last one (the first one, at start, is none)."""
        now = {name: (e.quantity, e.size) for name, e in entries.items()}
        if self._formation is not None and self.recording:
            for name in sorted(now.keys() | self._formation.keys()):
                if now.get(name) != self._formation.get(name):
                    self.bucket(name).event("scale")
        self._formation = now

    # the store
    async def _run(self) -> None:
        fleet = self.fleet
        while not fleet.closing and self.recording:
            await fleet.schedule.sleep_paced(FLUSH_EVERY, REAL_FLOOR)
            self.flush()
            self.flushes += 1

    def flush(self, everything: bool = False) -> None:
        """Store the minutes that are over (all with `everything`), then prune the store."""
        current = self.minute()
        done = sorted(k for k in self.buckets if everything or k[0] < current)
        if not done:
            return
        tiers = self._tiers()
        rows = [
            (m, kind, dyno, tiers.get(kind, tiers[""]), self.buckets.pop((m, kind, dyno)).summary())
            for m, kind, dyno in done
        ]
        self.store.add_metrics(self.fleet.app, rows)
        self.store.prune_metrics(self.fleet.app, current)

    def _tiers(self) -> dict[str, str]:
        """The tier each process type's minutes are kept for (its dyno size's); the app's
        own rows are kept as long as its longest-kept type's."""
        formation = self.store.formation(self.fleet.app)
        tiers = {name: size(entry.size).tier for name, entry in formation.items()}
        default = size(DEFAULT_SIZE).tier
        longest = max(tiers.values(), key=lambda t: tab.RETENTION[t], default=default)
        return {"": longest, **tiers}
