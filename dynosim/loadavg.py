"""Pure: a dyno's 1, 5 and 15 minute load averages, computed as the Linux kernel computes the
machine's. A container has no load average of its own (/proc/loadavg is the host's), so the
dyno manager counts the tasks of the dyno's cgroup that run, wait to run or wait for I/O
(states R and D) every 5 seconds and decays that count exactly as the kernel's `calc_load`
(kernel/sched/loadavg.c) does: fixed point with 11 bits of fraction, factors exp(-5/60),
exp(-5/300) and exp(-5/900)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The kernel samples every 5 seconds (LOAD_FREQ); the factors below assume it.
SAMPLE_SECONDS = 5.0
FSHIFT = 11
FIXED_1 = 1 << FSHIFT
#: 1 / exp(5 s / 1 min), 1 / exp(5 s / 5 min), 1 / exp(5 s / 15 min) in fixed point.
EXP_1, EXP_5, EXP_15 = 1884, 2014, 2037


def calc_load(load: int, exp: int, active: int) -> int:
    """One step of the kernel's decay: `load` and `active` in fixed point; rounds up while
    rising, so a constant count is reached exactly."""
    new = load * exp + active * (FIXED_1 - exp)
    if active >= load:
        new += FIXED_1 - 1
    return new // FIXED_1


def shown(load: int) -> str:
    """Two decimals as /proc/loadavg shows them (rounded by FIXED_1/200, as `get_avenrun`)."""
    load += FIXED_1 // 200
    whole, fraction = load >> FSHIFT, ((load & (FIXED_1 - 1)) * 100) >> FSHIFT
    return f"{whole}.{fraction:02d}"


@dataclass
class LoadAverage:
    """The three averages of one dyno, in the kernel's fixed point; 0 at its start."""

    loads: list[int] = field(default_factory=lambda: [0, 0, 0])

    def sample(self, tasks: float) -> None:
        """Add a 5-second sample: the tasks running or waiting now (a fraction when only an
        estimate from CPU time is known)."""
        active = round(tasks * FIXED_1)
        self.loads = [
            calc_load(load, exp, active)
            for load, exp in zip(self.loads, (EXP_1, EXP_5, EXP_15), strict=True)
        ]

    def shown(self) -> tuple[str, str, str]:
        """The 1, 5 and 15 minute averages with two decimals ("0.63")."""
        one, five, fifteen = (shown(load) for load in self.loads)
        return one, five, fifteen

    def values(self) -> tuple[float, float, float]:
        one, five, fifteen = (load / FIXED_1 for load in self.loads)
        return one, five, fifteen
