"""The dyno manager (Heroku's dyno life cycle, locally), on the container-engine protocol."""

from .core import DynoManager
from .fleet import Tracked
from .options import ManagerOptions

__all__ = ["DynoManager", "ManagerOptions", "Tracked"]
