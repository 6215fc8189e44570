"""The Docker adapter: the only code that speaks the docker SDK (issue 19 moves the rest here).
DockerEngine is imported on first use: the SDK under it takes 0.1 s, which a deploy (that needs
only images and networks before its build) should not wait for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import DockerEngine

__all__ = ["DockerEngine"]


def __getattr__(name: str) -> Any:
    if name == "DockerEngine":
        from .engine import DockerEngine

        return DockerEngine
    raise AttributeError(name)
