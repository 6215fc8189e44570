"""What long operations (builds, add-on starts, cluster creation) report as they go: one line
at a time to a `Progress`, which the CLI prints and the API drops (`quiet`)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def quiet(line: str) -> None:
    """Progress that goes nowhere (the API's default)."""
