"""Where the CPU goes during a benchmark leg: CPU seconds per process, read from /proc."""

from __future__ import annotations

import collections
import os
import resource
from dataclasses import dataclass, field

TICK = os.sysconf("SC_CLK_TCK")
GROUPS = {  # process name -> the part it plays
    "uwsgi": "dynos (uWSGI)",
    "dockerd": "Docker (dockerd, shims)",
    "containerd": "Docker (dockerd, shims)",
    "containerd-shim": "Docker (dockerd, shims)",
    "nginx": "nginx",
    "haproxy": "HAProxy (up --router haproxy)",
}


def _processes() -> dict[int, tuple[str, float]]:
    """pid -> (name, user + system CPU seconds so far) for every process."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                data = stat.read()
        except OSError:
            continue
        name = data[data.index("(") + 1 : data.rindex(")")]
        fields = data[data.rindex(")") + 2 :].split()
        found[int(pid)] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return found


def _children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has been waited for
    return usage.ru_utime + usage.ru_stime


@dataclass
class Meter:
    """CPU used between construction and :meth:`per_request`, by part (``router`` is the
    process with pid `router`: dynosim's `up`, its log readers included)."""

    router: int
    start: dict[int, tuple[str, float]] = field(default_factory=_processes)
    children: float = field(default_factory=_children)

    def per_request(self, requests: float) -> dict[str, float]:
        """CPU milliseconds per request of each part since the meter started."""
        used: collections.Counter[str] = collections.Counter()
        for pid, (name, seconds) in _processes().items():
            part = "dynosim up" if pid == self.router else GROUPS.get(name)
            if part:
                used[part] += seconds - self.start.get(pid, (name, 0.0))[1]
        used["wrk"] = _children() - self.children
        return {part: round(seconds * 1000 / max(requests, 1), 3) for part, seconds in used.items()}
