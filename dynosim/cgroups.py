"""Pure: a dyno's memory and runnable tasks from its container's cgroup files (read by the
Docker adapter on the engine's host), or from the engine's stats API when those are out of
reach. cgroup v1 (a controller per hierarchy: /sys/fs/cgroup/memory/…) and v2 (one unified
hierarchy: /sys/fs/cgroup/…) name and count things differently; both become a `Usage`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .container_engine import Usage

ROOT = "/sys/fs/cgroup"
#: Task states the kernel's load average counts: running or runnable, uninterruptible sleep.
LOADED_STATES = frozenset("RD")


@dataclass(frozen=True)
class Place:
    """Where a container's cgroup may be: its version, the directory with memory.stat and
    the file listing its threads (every thread is a task to the scheduler)."""

    version: int
    directory: str
    threads: str

    @property
    def memory_stat(self) -> str:
        return f"{self.directory}/memory.stat"

    @property
    def swap(self) -> str | None:
        """v2 keeps swap in a file of its own; v1 has it in memory.stat."""
        return f"{self.directory}/memory.swap.current" if self.version == 2 else None


def places(container_id: str, root: str = ROOT) -> list[Place]:
    """The directories Docker uses for a container, with the cgroupfs driver (docker/<id>)
    or systemd's (system.slice/docker-<id>.scope), under v1's memory hierarchy first."""
    v1, scope = f"{root}/memory", f"system.slice/docker-{container_id}.scope"
    return [
        Place(1, f"{v1}/docker/{container_id}", f"{v1}/docker/{container_id}/tasks"),
        Place(1, f"{v1}/{scope}", f"{v1}/{scope}/tasks"),
        Place(2, f"{root}/{scope}", f"{root}/{scope}/cgroup.threads"),
        Place(2, f"{root}/docker/{container_id}", f"{root}/docker/{container_id}/cgroup.threads"),
    ]


def parse_stat(text: str) -> dict[str, int]:
    """memory.stat's `key value` lines (both versions)."""
    stat = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            stat[key] = int(value)
    return stat


def memory_v1(stat: Mapping[str, int]) -> tuple[int, int, int, int, int]:
    """(rss, cache, swap, pgpgin, pgpgout) from v1's memory.stat: the hierarchical `total_`
    counters (a dyno's processes may sit in child groups), else the group's own."""

    def value(key: str) -> int:
        return int(stat.get(f"total_{key}", stat.get(key, 0)))

    return value("rss"), value("cache"), value("swap"), value("pgpgin"), value("pgpgout")


def memory_v2(stat: Mapping[str, int], swap: int) -> tuple[int, int, int]:
    """(rss, cache, swap) from v2's memory.stat: anonymous memory is the resident set,
    file-backed pages (tmpfs included, as v1's cache) the cache; v2 counts no page-ins."""
    return int(stat.get("anon", 0)), int(stat.get("file", 0)), swap


def task_state(proc_stat: str) -> str:
    """A task's state letter from /proc/<tid>/stat: the field after the command in
    parentheses (which may itself hold spaces and parentheses)."""
    return proc_stat[proc_stat.rindex(")") + 1 :].split()[0]


def loaded(states: Iterable[str]) -> int:
    """How many of these tasks the load average counts (R and D)."""
    return sum(state in LOADED_STATES for state in states)


def usage(place: Place, memory_stat: str, swap: str | None, states: Iterable[str]) -> Usage:
    """A cgroup's usage from its files' text and its tasks' states."""
    stat = parse_stat(memory_stat)
    runnable = loaded(states)
    if place.version == 1:
        rss, cache, swapped, pgpgin, pgpgout = memory_v1(stat)
        return Usage(rss, cache, swapped, pgpgin, pgpgout, runnable)
    rss, cache, swapped = memory_v2(stat, int(swap) if swap and swap.strip().isdigit() else 0)
    return Usage(rss, cache, swapped, None, None, runnable)


def from_stats(sample: Mapping[str, Any]) -> Usage | None:
    """Usage from one reply of the engine's stats API (a remote engine): its memory_stats
    carry memory.stat's keys; the runnable count, which it lacks, is estimated as the CPUs
    the container kept busy since the previous reading (precpu_stats). None without memory
    stats (the container is not running)."""
    memory = sample.get("memory_stats") or {}
    stat = memory.get("stats")
    if not stat:
        return None
    busy = cpus_busy(sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {})
    if "anon" in stat:  # v2
        rss, cache, swap = memory_v2(stat, 0)
        return Usage(rss, cache, swap, None, None, busy)
    rss, cache, swap, pgpgin, pgpgout = memory_v1(stat)
    return Usage(rss, cache, swap, pgpgin, pgpgout, busy)


def cpus_busy(cpu: Mapping[str, Any], previous: Mapping[str, Any]) -> float:
    """CPUs in use between two stats readings: container CPU time over system CPU time,
    times the CPUs online (what `docker stats` shows as a percentage, divided by 100)."""
    used = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        (previous.get("cpu_usage") or {}).get("total_usage", 0)
    )
    system = cpu.get("system_cpu_usage", 0) - previous.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [1])
    if used <= 0 or system <= 0:
        return 0.0
    return used / system * online
