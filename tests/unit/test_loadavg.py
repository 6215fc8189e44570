"""A dyno's load average decays as the kernel's does: fixed point, a sample every 5 s, and
the step response every /proc/loadavg shows (63% of a constant load after one time constant,
that load exactly in the end)."""

import math

from dynosim.loadavg import EXP_1, EXP_5, EXP_15, FIXED_1, LoadAverage, shown


def fed(tasks: float, samples: int, start: LoadAverage | None = None) -> LoadAverage:
    load = start or LoadAverage()
    for _ in range(samples):
        load.sample(tasks)
    return load


def test_the_factors_are_the_kernels_exp_of_minus_5_seconds_over_each_window():
    for exp, window in ((EXP_1, 60), (EXP_5, 300), (EXP_15, 900)):
        assert exp == round(FIXED_1 * math.exp(-5 / window))


def test_a_dyno_starts_at_zero_and_one_sample_of_one_task_shows_as_the_kernel_would():
    assert LoadAverage().shown() == ("0.00", "0.00", "0.00")
    assert fed(1, 1).shown() == ("0.08", "0.02", "0.01")


def test_one_constant_task_reaches_63_percent_after_each_window_then_exactly_one():
    assert fed(1, 12).shown()[0] == "0.63"  # 1 minute
    assert fed(1, 60).shown()[1] == "0.64"  # 5 minutes
    assert fed(1, 180).shown()[2] == "0.65"  # 15 minutes
    settled = fed(1, 600)
    assert settled.loads == [FIXED_1] * 3 and settled.shown() == ("1.00", "1.00", "1.00")


def test_a_busy_dyno_settles_at_its_task_count_and_idle_it_decays_to_37_percent_a_window():
    busy = fed(3, 1000)
    assert busy.shown() == ("3.00", "3.00", "3.00")
    assert fed(0, 12, fed(1, 600)).shown()[0] == "0.37"


def test_the_fixed_point_follows_the_float_formula_within_rounding():
    load, expected = LoadAverage(), 0.0
    for tasks in [2, 0, 1, 4, 4, 3, 0, 0, 1, 2] * 5:
        load.sample(tasks)
        expected = expected * math.exp(-5 / 60) + tasks * (1 - math.exp(-5 / 60))
        assert abs(load.values()[0] - expected) < 0.01


def test_a_fraction_of_a_task_is_sampled_as_a_fraction_in_fixed_point():
    assert fed(0.5, 600).shown() == ("0.50", "0.50", "0.50")


def test_shown_rounds_as_proc_loadavg():
    assert shown(FIXED_1) == "1.00"
    assert shown(FIXED_1 // 2) == "0.50"
    assert shown(FIXED_1 * 3 - 8) == "3.00"  # 2.9961: rounded up by FIXED_1 / 200
    assert shown(FIXED_1 * 3 - 12) == "2.99"  # 2.9941
