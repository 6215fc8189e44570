"""Parse a Procfile the way Heroku, foreman and honcho do, but report junk instead of dropping it.

Grammar: one ``type: command`` per line; blank lines and lines whose first non-blank character
is ``#`` are ignored; CRLF and CR line endings are accepted. Every other line must be a valid
entry, and every problem names the file and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ProcfileError

ENTRY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*:(.*)$")
#: Types that Heroku treats specially: only ``web`` gets traffic, ``release`` is not a dyno.
WEB, RELEASE = "web", "release"
#: One-off dynos are named run.N, so no formation type may be called ``run``.
RESERVED = {"run"}


@dataclass(frozen=True)
class ProcessType:
    name: str
    command: str
    line: int

    @property
    def is_web(self) -> bool:
        return self.name == WEB

    @property
    def is_dyno(self) -> bool:
        """Whether this type runs as long-lived formation dynos (``release`` does not)."""
        return self.name != RELEASE


def parse(text: str, path: str = "Procfile") -> dict[str, ProcessType]:
    """Return the process types of a Procfile's text, in file order."""
    types: dict[str, ProcessType] = {}
    for number, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = ENTRY.match(raw)
        if not match:
            raise ProcfileError(
                f'expected "<process type>: <command>", got {stripped[:60]!r}', path, number
            )
        name, command = match.group(1), match.group(2).strip()
        if not command:
            raise ProcfileError(f'process type "{name}" has an empty command', path, number)
        if name in RESERVED:
            message = f'process type "{name}" is reserved for one-off dynos'
            raise ProcfileError(message, path, number)
        if name in types:
            first = types[name].line
            raise ProcfileError(
                f'duplicate process type "{name}" (first defined on line {first})', path, number
            )
        types[name] = ProcessType(name, command, number)
    if not types:
        raise ProcfileError("no process types defined (the Procfile is empty)", path)
    return types


def load(app_dir: Path) -> dict[str, ProcessType]:
    """Read and parse ``<app_dir>/Procfile``."""
    path = Path(app_dir) / "Procfile"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        message = "no Procfile found; dynosim needs one to know what to run"
        raise ProcfileError(message, str(path)) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ProcfileError("not valid UTF-8 text", str(path), line) from None
    except OSError as exc:
        raise ProcfileError(f"cannot read: {exc.strerror}", str(path)) from None
    return parse(text, str(path))


def dyno_types(types: dict[str, ProcessType]) -> list[ProcessType]:
    """The types started as dynos by ``up``: all but ``release``."""
    return [t for t in types.values() if t.is_dyno]
