from dynosim.container_engine import Dyno
from dynosim.reconcile import decide


def dyno(name, release=1, status="running", role="formation"):
    process_type, index = name.split(".")
    return Dyno("demo", process_type, int(index), release, role, status, f"id-{name}")


def names(items):
    return [d.name if isinstance(d, Dyno) else f"{d[0]}.{d[1]}" for d in items]


def test_nothing_running_starts_the_whole_formation():
    actions = decide({"web": 2, "worker": 1}, 1, [])
    assert names(actions.start) == ["web.1", "web.2", "worker.1"]
    assert actions.adopt == actions.stop == actions.remove == []


def test_running_dynos_of_the_current_release_are_adopted_not_duplicated():
    actual = [dyno("web.1"), dyno("worker.1")]
    actions = decide({"web": 2, "worker": 1}, 1, actual)
    assert names(actions.adopt) == ["web.1", "worker.1"]
    assert names(actions.start) == ["web.2"]


def test_scaling_down_stops_the_highest_numbers_first():
    actual = [dyno("web.1"), dyno("web.3"), dyno("web.2"), dyno("web.4")]
    actions = decide({"web": 2}, 1, actual)
    assert names(actions.stop) == ["web.4", "web.3"]
    assert names(actions.adopt) == ["web.1", "web.2"]


def test_dynos_of_an_older_release_are_replaced():
    actions = decide({"web": 1}, 2, [dyno("web.1", release=1)])
    assert names(actions.stop) == ["web.1"]
    assert names(actions.start) == ["web.1"]


def test_exited_leftovers_are_removed_and_started_again():
    actions = decide({"web": 1}, 1, [dyno("web.1", status="exited")])
    assert names(actions.remove) == ["web.1"]
    assert names(actions.start) == ["web.1"]


def test_types_scaled_to_zero_or_gone_from_the_procfile_are_stopped():
    actions = decide({"web": 1, "worker": 0}, 1, [dyno("web.1"), dyno("worker.1"), dyno("clock.1")])
    assert sorted(names(actions.stop)) == ["clock.1", "worker.1"]


def test_tracked_dynos_are_left_to_the_supervisor_and_one_offs_ignored():
    actual = [dyno("web.1"), dyno("run.4821", role="one-off"), dyno("web.2", status="exited")]
    actions = decide({"web": 2}, 1, actual, tracked={"web.1", "web.2"})
    assert actions.adopt == actions.start == actions.stop == actions.remove == []


def test_a_new_release_starts_dynos_cooling_off_after_a_crash_on_an_older_one():
    # worker.1 crashed on v1 and waits out a cool-off (no container); web.1 runs v1
    actions = decide(
        {"web": 1, "worker": 1}, 2, [dyno("web.1")], tracked={"web.1", "worker.1"},
        cooling={"worker.1": 1},
    )  # fmt: skip
    assert names(actions.stop) == ["web.1"]
    assert names(actions.start) == ["web.1", "worker.1"]


def test_a_dyno_cooling_off_on_the_current_release_waits_its_cool_off_out():
    # a scale or another reconcile is no new release: the cool-off goes on
    actions = decide({"worker": 2}, 2, [], tracked={"worker.1"}, cooling={"worker.1": 2})
    assert names(actions.start) == ["worker.2"]


def test_a_dyno_cooling_off_but_scaled_away_is_not_started():
    actions = decide({"worker": 0}, 2, [], tracked={"worker.1"}, cooling={"worker.1": 1})
    assert actions.start == []
