"""How the dyno manager runs an app: one typed object, each default defined here once."""

from __future__ import annotations

from dataclasses import dataclass

from .. import dynohours

#: Heroku's SIGTERM-to-SIGKILL grace and web boot timeout (R10), in seconds.
GRACE, BOOT_TIMEOUT = 30.0, 60.0
#: Heroku kills a release phase after an hour.
RELEASE_TIMEOUT = 3600.0
#: Free and eco apps sleep after 30 minutes without a request to their web dynos.
IDLE_TIMEOUT = 30 * 60.0
SLEEP_MODES = ("stop", "pause")


@dataclass(frozen=True)
class ManagerOptions:
    grace: float = GRACE
    boot_timeout: float = BOOT_TIMEOUT
    cycling: bool = False  # Heroku's daily restart of every dyno
    release_timeout: float = RELEASE_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    sleep_mode: str = "stop"  # or "pause": frozen instead of stopped while asleep
    quota_hours: float = dynohours.BASE_HOURS  # the free dyno-hours pool per month
