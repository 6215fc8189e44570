"""Pure: the Heroku Labs features dynosim has (`dynosim labs`), each on or off per app in the
store's settings, under Heroku's names and descriptions."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError

LOG_RUNTIME_METRICS = "log-runtime-metrics"
#: The setting's value while a feature is on (off: no setting, or anything else).
ON = "on"


@dataclass(frozen=True)
class Feature:
    name: str
    description: str

    @property
    def setting(self) -> str:
        """Its key in the app's settings."""
        return f"labs:{self.name}"


FEATURES = (Feature(LOG_RUNTIME_METRICS, "Emit dyno resource usage information into app logs"),)


def feature(name: str) -> Feature:
    return find(name, FEATURES)


def find(name: str, catalog: tuple[Feature, ...]) -> Feature:
    """The feature of that name; UsageError (exit code 2) for one dynosim does not have."""
    for known in catalog:
        if known.name == name:
            return known
    known = ", ".join(f.name for f in catalog)
    raise UsageError(f"Couldn't find that feature ({name}); known features: {known}")
