import pytest

from dynosim import formation
from dynosim.errors import UsageError
from dynosim.formation import Entry

TYPES = ["web", "worker", "clock"]
CURRENT = {"web": Entry("web", 1, "Standard-1X"), "worker": Entry("worker", 1, "Standard-1X")}


def scale(*args, current=CURRENT):
    return formation.scale(current, TYPES, list(args))


def test_set_add_subtract_and_size_in_one_go():
    result = scale("web=3", "worker+2", "clock=1:standard-2x")
    assert result == {
        "web": Entry("web", 3, "Standard-1X"),
        "worker": Entry("worker", 3, "Standard-1X"),
        "clock": Entry("clock", 1, "Standard-2X"),
    }
    assert scale("worker-5")["worker"].quantity == 0  # never below zero
    assert formation.describe(scale("web=2")) == ("web at 2:Standard-1X, worker at 1:Standard-1X")


def test_ps_type_changes_only_sizes():
    result = formation.retype(CURRENT, TYPES, ["web=Performance-M"])
    assert result["web"] == Entry("web", 1, "Performance-M")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Usage: dynosim ps:scale"),
        (("web",), "Invalid argument 'web': expected TYPE=N"),
        (("web=x",), "Invalid argument 'web=x'"),
        (("web=1:",), "Invalid argument 'web=1:'"),
        (("api=1",), r"Couldn't find that process type \(api\)."),
        (("web=1:huge",), r"Couldn't find that dyno size \(huge\)."),
        (("web=2:basic",), "Cannot update to more than 1 Basic size dynos per process type."),
        (("web=2:eco",), "Cannot update to more than 1 Eco size dynos per process type."),
        (("web=11:performance-l",), "more than 10 Performance-L size dynos per process type"),
        (("web=60", "worker=41"), "Cannot update to more than 100 dynos per app"),
        (("web=1:eco", "worker=1:basic"), "same app: Basic and Eco"),
        (("web=1:basic",), "same app: Basic and Standard-1X"),
    ],
)
def test_bad_arguments_and_limits_use_herokus_wording(args, message):
    with pytest.raises(UsageError, match=message):
        scale(*args)


def test_one_bad_argument_rejects_the_whole_change():
    before = dict(CURRENT)
    with pytest.raises(UsageError):
        scale("web=5", "nope=1")
    assert before == CURRENT


def test_eco_alone_and_scaled_to_zero_types_are_fine():
    result = scale("web=1:eco", "worker=0")
    assert result["web"].size == "Eco"
