"""A build context's .dockerignore, read as the docker CLI reads it (docker-py's
PatternMatcher: Go's filepath.Match patterns and `**`, `!` exceptions, the last matching line
wins, a folder's pattern excludes what is in it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def excluded(folder: Path) -> Callable[[str], bool]:
    """Whether the .dockerignore in `folder` (none: nothing) excludes a path relative to it."""
    path = folder / ".dockerignore"
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    patterns = [s for s in (line.strip() for line in lines) if s and s[0] != "#"]
    from docker.utils.build import PatternMatcher  # the SDK, only for heroku.yml builds

    return PatternMatcher(patterns).matches
