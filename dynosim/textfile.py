"""Reading an app's own text files (app.json, heroku.yml, .env) with one kind of error."""

from __future__ import annotations

from pathlib import Path

from .errors import DynosimError


def read(path: Path, error: type[DynosimError]) -> str | None:
    """The file's UTF-8 text, None when it does not exist; `error` names file (and line)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not valid UTF-8 text") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
