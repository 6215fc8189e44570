"""Every running dyno's usage every 5 s, into its load average and the metrics recorder
(`recorder`, the Metrics tab), and Heroku's runtime metrics (`labs:enable
log-runtime-metrics`): while the app has the feature on, every running dyno's load average and
memory as Heroku's two `heroku[web.1]:` lines, about every 20 s. The setting is read from the
store at each sample, so turning it on or off takes effect on running dynos at once, with no
message to `up`.

Samples run on the schedule clock (`--time-scale` speeds them up, down to REAL_FLOOR apart;
tests fast-forward them), the feature on or off: one every 5 s feeds each dyno's load average
(`loadavg`, the kernel's method); the lines go out at the first sample after the feature is
turned on and at every 4th after that, their load average counted from that first sample (as
on Heroku, where the feature takes effect with a restart)."""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import labs, loadavg
from ..container_engine import Container, Usage
from ..formation import size
from ..store import Store
from .fleet import Fleet, Tracked

SAMPLE = loadavg.SAMPLE_SECONDS
LINES_EVERY = 4  # samples: 20 s
#: However fast `--time-scale` runs the schedule, samples are at least this far apart in real
#: time (a quarter second: no engine call storm, no flood of lines).
REAL_FLOOR = 0.25
FEATURE = labs.feature(labs.LOG_RUNTIME_METRICS)
#: Dyno ids are made from container ids in a namespace of dynosim's own.
DYNO_NAMESPACE = uuid.UUID("5d1c4f0e-7f0a-4c8e-9a53-2b6f2f3f4d21")


#: Where each sample goes besides the lines: the dyno, its usage and its load average.
Sink = Callable[[Tracked, Usage, loadavg.LoadAverage], None]


@dataclass(eq=False)
class Sampled:
    """One dyno's container as the metrics see it: its Heroku dyno id, its load average since
    it was first sampled, and the one its lines show (since the feature was turned on)."""

    container: Container
    dyno_id: str
    load: loadavg.LoadAverage = field(default_factory=loadavg.LoadAverage)
    shown: loadavg.LoadAverage = field(default_factory=loadavg.LoadAverage)


class Metrics:
    """The sampler of one app's dynos; `ticks` and `samples` count its rounds (tests wait on
    them after fast-forwarding the schedule)."""

    def __init__(self, fleet: Fleet, store: Store, sink: Sink | None = None) -> None:
        self.fleet, self.store = fleet, store
        self.sink = sink or (lambda tracked, used, load: None)
        self.ticks = 0  # every 5 s, the feature on or off
        self.samples = 0  # taken since the feature was last turned on
        self.sampled: dict[Tracked, Sampled] = {}
        self._app_number = app_number(fleet.app)

    def start(self) -> asyncio.Future:
        return asyncio.ensure_future(self._run())

    def enabled(self) -> bool:
        return self.store.setting(self.fleet.app, FEATURE.setting, "") == labs.ON

    async def _run(self) -> None:
        fleet = self.fleet
        while not fleet.closing:
            await fleet.schedule.sleep_paced(SAMPLE, REAL_FLOOR)
            await self.sample(lines=self.enabled())
            self.ticks += 1

    async def sample(self, lines: bool = True) -> None:
        """Every running dyno's usage (one engine call each, in threads), into its load
        average and the sink; with `lines` (the feature on), its two lines every 4th sample."""
        fleet = self.fleet
        running = [
            (t, t.container)
            for t in dict.fromkeys((*fleet.dynos.values(), *fleet.preboot))
            if t.container is not None and not t.asleep
        ]
        usages = await asyncio.gather(
            *(asyncio.to_thread(fleet.engine.usage, c) for _, c in running),
            return_exceptions=True,
        )
        self.samples = self.samples + 1 if lines else 0
        logged = lines and (self.samples - 1) % LINES_EVERY == 0
        for (tracked, container), used in zip(running, usages, strict=True):
            if tracked.container is not container or not isinstance(used, Usage):
                continue
            sampled = self.sampled.get(tracked)
            if sampled is None or sampled.container is not container:  # a new container
                sampled = Sampled(container, self.dyno_id(container))
                self.sampled[tracked] = sampled
            sampled.load.sample(used.runnable)
            if lines:
                sampled.shown.sample(used.runnable)
            else:
                sampled.shown = loadavg.LoadAverage()
            self.sink(tracked, used, sampled.load)
            if logged:
                self._log(tracked, sampled, used)
        self.sampled = {t: s for t, s in self.sampled.items() if t.container is s.container}

    def dyno_id(self, container: Container) -> str:
        """Heroku's `heroku.<app number>.<uuid>`: the uuid is new with every container (a
        restart), the same for one container (adopted by a later `up`)."""
        return f"heroku.{self._app_number}.{uuid.uuid5(DYNO_NAMESPACE, container.id)}"

    def _log(self, tracked: Tracked, sampled: Sampled, used: Usage) -> None:
        quota = size(tracked.size).memory_mb * 1024 * 1024
        hub, name = self.fleet.hub, tracked.name
        hub.heroku(name, load_line(name, sampled.dyno_id, sampled.shown))
        hub.heroku(name, memory_line(name, sampled.dyno_id, used, quota))


def app_number(app: str) -> int:
    """The number Heroku's dyno ids start with (its internal app id): a stable one per app."""
    return zlib.crc32(app.encode())


def load_line(name: str, dyno_id: str, load: loadavg.LoadAverage) -> str:
    one, five, fifteen = load.shown()
    return (
        f"source={name} dyno={dyno_id} sample#load_avg_1m={one} sample#load_avg_5m={five}"
        f" sample#load_avg_15m={fifteen}"
    )


def memory_line(name: str, dyno_id: str, used: Usage, quota: int) -> str:
    """Heroku's memory line; cgroup v2 keeps no page-in and page-out counts, so those two
    fields are left out there rather than shown as 0."""
    fields = [
        f"sample#memory_total={mb(used.total)}",
        f"sample#memory_rss={mb(used.rss)}",
        f"sample#memory_cache={mb(used.cache)}",
        f"sample#memory_swap={mb(used.swap)}",
    ]
    if used.pgpgin is not None and used.pgpgout is not None:
        fields += [
            f"sample#memory_pgpgin={used.pgpgin}pages",
            f"sample#memory_pgpgout={used.pgpgout}pages",
        ]
    fields.append(f"sample#memory_quota={mb(quota)}")
    return f"source={name} dyno={dyno_id} " + " ".join(fields)


def mb(amount: int) -> str:
    return f"{amount / (1024 * 1024):.2f}MB"
