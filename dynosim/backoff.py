"""Heroku's crash restart policy for formation dynos (Common Runtime).

The first crash restarts at once; each further consecutive crash waits a cool-off of
20, 40, 60, 180, then 320 minutes, and every 320 minutes after that. A dyno that stays up
for STABLE seconds, a new release, a restart, or a scale to 0 and back resets the count.
"""

from __future__ import annotations

COOL_OFF_MINUTES = (0, 20, 40, 60, 180, 320)
#: dynosim's reading of "starts correctly": up this long without crashing (a documented choice).
STABLE = 10 * 60.0


def delay(crashes: int) -> float:
    """Seconds to wait before restarting after the `crashes`-th consecutive crash (1-based)."""
    if crashes < 1:
        raise ValueError("crashes counts from 1")
    return COOL_OFF_MINUTES[min(crashes, len(COOL_OFF_MINUTES)) - 1] * 60.0
