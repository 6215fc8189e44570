"""Pure: the app features dynosim has (`dynosim features`, Heroku's generally available app
features, as opposed to labs), each on or off per app in the store's settings, under Heroku's
names and descriptions, and who may use them."""

from __future__ import annotations

from . import labs
from .formation import size

PREBOOT = "preboot"
ON = labs.ON  # off, Heroku's default: no setting
#: Preboot is for professional dynos only (Dev Center, "Preboot").
PREBOOT_TIERS = ("standard", "performance")
NO_PREBOOT = "Applications using eco or basic dynos do not have access to preboot."


class Feature(labs.Feature):
    """A name and Heroku's description, as a labs feature has, kept under another key."""

    @property
    def setting(self) -> str:
        """Its key in the app's settings."""
        return f"features:{self.name}"


FEATURES = (Feature(PREBOOT, "Provide seamless web dyno deploys"),)


def feature(name: str) -> labs.Feature:
    return labs.find(name, FEATURES)


def prebootable(size_name: str) -> bool:
    """Whether web dynos of that size preboot (standard and performance; not free, eco or
    basic, which Heroku gives no preboot)."""
    return size(size_name).tier in PREBOOT_TIERS
