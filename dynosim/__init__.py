"""dynosim: Heroku on your own machine.

The Python API (`App`) is what the CLI is built on; see docs/testing.md for the pytest plugin.
"""

from .api import App, Deployed, RunResult
from .errors import DynosimError

__version__ = "0.1.0"
__all__ = ["App", "Deployed", "DynosimError", "RunResult", "__version__"]
