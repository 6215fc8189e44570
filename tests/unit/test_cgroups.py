"""A dyno's usage from cgroup files: v1's recorded on this machine (a container's python
holding 50 MB, one thread spinning), v2's written in the format of the kernel's cgroup-v2
documentation; the adapter's reading of them, and the stats API's reply for a remote
engine."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from dynosim import cgroups
from dynosim.container_engine import Usage
from dynosim.docker import usage as docker_usage

FIXTURES = Path(__file__).parent / "cgroups"
MiB = 1024 * 1024


def place(version: int) -> cgroups.Place:
    directory = FIXTURES / f"v{version}"
    threads = "tasks" if version == 1 else "cgroup.threads"
    return cgroups.Place(version, str(directory), str(directory / threads))


def test_docker_puts_a_containers_cgroup_in_one_of_four_places_v1_first():
    assert [(p.version, p.directory, p.threads) for p in cgroups.places("abc", "/cg")] == [
        (1, "/cg/memory/docker/abc", "/cg/memory/docker/abc/tasks"),
        (
            1,
            "/cg/memory/system.slice/docker-abc.scope",
            "/cg/memory/system.slice/docker-abc.scope/tasks",
        ),
        (
            2,
            "/cg/system.slice/docker-abc.scope",
            "/cg/system.slice/docker-abc.scope/cgroup.threads",
        ),
        (2, "/cg/docker/abc", "/cg/docker/abc/cgroup.threads"),
    ]
    assert (
        cgroups.places("abc", "/cg")[2].swap
        == "/cg/system.slice/docker-abc.scope/memory.swap.current"
    )
    assert cgroups.places("abc", "/cg")[0].swap is None  # v1: in memory.stat


def test_a_task_state_is_the_field_after_the_command_whatever_the_command_holds():
    assert cgroups.task_state("4102 (python) R 4101 4101") == "R"
    assert cgroups.task_state("4177 (python (worker) x) D 4101 4101") == "D"
    assert cgroups.loaded(["R", "S", "D", "Z", "R", "I", "T"]) == 3


def test_v1_memory_stat_recorded_here_gives_the_hierarchical_counters_and_one_busy_thread():
    found = docker_usage.read(place(1), proc=str(FIXTURES / "proc"))
    # total_rss, total_cache, total_swap, total_pgpgin, total_pgpgout; of the 2 threads, the
    # spinning one is R, the main one sleeps (S)
    assert found == Usage(55914496, 4939776, 0, 15705, 848, 1)
    assert (found.rss / MiB, found.total) == (53.32421875, 55914496 + 4939776)


def test_v1_without_total_counters_takes_the_groups_own():
    assert cgroups.memory_v1({"rss": 5, "cache": 4, "pgpgin": 3, "pgpgout": 2}) == (5, 4, 0, 3, 2)


def test_v2_memory_stat_anon_is_rss_file_is_cache_and_swap_has_its_own_file():
    found = docker_usage.read(place(2), proc=str(FIXTURES / "proc"))
    assert found == Usage(52592640, 3493888, MiB, None, None, 2)  # R and D of 3 threads
    assert found.total == 52592640 + 3493888 + MiB


def test_v2_without_swap_accounting_counts_no_swap():
    stat = (FIXTURES / "v2" / "memory.stat").read_text()
    assert cgroups.usage(place(2), stat, None, []) == Usage(52592640, 3493888, 0, None, None, 0)


def test_an_unreadable_line_in_memory_stat_is_skipped():
    assert cgroups.parse_stat("rss 10\nbroken\nhierarchical_x -1\ncache 2\n") == {
        "rss": 10,
        "cache": 2,
    }


def test_the_stats_api_reply_v1_and_v2_and_cpu_as_the_runnable_estimate():
    v1 = {
        "memory_stats": {
            "stats": {
                "total_rss": 50 * MiB,
                "total_cache": MiB,
                "total_swap": 0,
                "total_pgpgin": 100,
                "total_pgpgout": 7,
                "rss": 1,
            }
        },
        "cpu_stats": {
            "cpu_usage": {"total_usage": 3_000_000_000},
            "system_cpu_usage": 20_000_000_000,
            "online_cpus": 4,
        },
        "precpu_stats": {
            "cpu_usage": {"total_usage": 2_000_000_000},
            "system_cpu_usage": 16_000_000_000,
        },
    }
    assert cgroups.from_stats(v1) == Usage(50 * MiB, MiB, 0, 100, 7, 1.0)  # 1 of 4 CPUs busy
    v2 = {
        "memory_stats": {"stats": {"anon": 50 * MiB, "file": 2 * MiB, "pgfault": 9}},
        "cpu_stats": {},
    }
    assert cgroups.from_stats(v2) == Usage(50 * MiB, 2 * MiB, 0, None, None, 0.0)
    assert cgroups.from_stats({"memory_stats": {}}) is None  # not running


def test_the_adapter_reads_the_files_when_they_are_here_else_asks_the_stats_api(tmp_path):
    asked = []
    reply = {"memory_stats": {"stats": {"anon": MiB, "file": 0}}}
    remote = SimpleNamespace(id="far", stats=lambda **kw: asked.append(kw) or reply)
    assert docker_usage.read_usage(remote, root=str(tmp_path)) == Usage(MiB, 0, 0, None, None, 0.0)
    assert asked == [{"stream": False}]

    here = tmp_path / "system.slice" / "docker-near.scope"
    here.mkdir(parents=True)
    for name in ("memory.stat", "memory.swap.current"):
        (here / name).write_text((FIXTURES / "v2" / name).read_text())
    (here / "cgroup.threads").write_text("")
    local = SimpleNamespace(id="near", stats=lambda **kw: pytest.fail("no API call needed"))
    assert docker_usage.read_usage(local, root=str(tmp_path)) == Usage(
        52592640, 3493888, MiB, None, None, 0
    )
