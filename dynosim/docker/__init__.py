"""The Docker adapter: the only code that speaks the docker SDK (issue 19 moves the rest here)."""

from .engine import DockerEngine

__all__ = ["DockerEngine"]
