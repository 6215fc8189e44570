"""dynosim: Heroku on your own machine.

The Python API (`App`) is what the CLI is built on; see docs/testing.md for the pytest plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import DynosimError

if TYPE_CHECKING:
    from .api import App, Deployed, RunResult

__version__ = "0.1.0"
__all__ = ["App", "Deployed", "DynosimError", "RunResult", "__version__"]


def __getattr__(name: str) -> Any:
    """`App` and its results on first use: `import dynosim.x` stays quick for the CLI."""
    if name in ("App", "Deployed", "RunResult"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
