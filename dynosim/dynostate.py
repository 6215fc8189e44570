"""Pure: the states a dyno goes through, as Heroku names them."""

from __future__ import annotations

from enum import StrEnum


class DynoState(StrEnum):
    """Heroku's dyno states (`heroku ps`), and `idle` for a free dyno asleep."""

    STARTING = "starting"
    UP = "up"
    CRASHED = "crashed"
    DOWN = "down"
    COMPLETE = "complete"  # a one-off whose command ended
    IDLE = "idle"
