"""The dyno manager (Heroku's dyno life cycle, locally), on the container-engine protocol."""

from .core import DynoManager
from .fleet import Tracked

__all__ = ["DynoManager", "Tracked"]
