r"""Parse ``.env`` files the way ``heroku local`` does, but report junk instead of dropping it.

One ``KEY=value`` per line; where each rule comes from:

- blank lines and lines whose first non-blank character is ``#`` are ignored (node-foreman, which
  the Heroku CLI uses); CRLF and CR line endings are accepted;
- a line is split at its first ``=`` and both sides are trimmed (node-foreman), so values may
  contain ``=``; an optional ``export `` prefix is dropped (python-dotenv);
- an unquoted value ends at an inline comment, a ``#`` after a blank (node-foreman; like
  python-dotenv, ``a#b`` keeps its ``#`` so URL fragments survive);
- a value starting with ``"`` or ``'`` runs to the matching quote (node-foreman), across lines if
  need be, as private keys are stored (python-dotenv); only a ``#`` comment may follow it;
- double quotes unescape ``\n`` (Ruby foreman), ``\t``, ``\"`` and ``\\``; other backslashes are
  kept; single quotes are literal. There is no ``$VAR`` interpolation;
- keys follow Heroku's config var rule, ``[A-Za-z0-9_]+`` not starting with ``__``;
- the last of duplicated keys wins (foreman).

Any other line is a ConfigError naming file and line. Messages never quote a value or an invalid
key (an unquoted private key's base64 line can look like ``KEY=``): values are secrets.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import textfile
from .errors import ConfigError

KEY = re.compile(r"[A-Za-z0-9_]+")
EXPORT = re.compile(r"^export\s+")
INLINE_COMMENT = re.compile(r"\s+#.*")
ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
QUOTES = {'"': "double", "'": "single"}


def _error(path: str, line: int, message: str) -> ConfigError:
    return ConfigError(f"{path}:{line}: {message}")


def _unquote(text: str) -> tuple[str, str] | None:
    """Split ``text`` (starting with its quote) into the unquoted value and what follows the
    closing quote; None when the quote is not closed."""
    quote, out, i = text[0], [], 1
    while i < len(text):
        char = text[i]
        if char == quote:
            return "".join(out), text[i + 1 :]
        if char == "\\" and quote == '"' and text[i + 1 : i + 2] in ESCAPES:
            out.append(ESCAPES[text[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    return None


def parse(text: str, path: str = ".env") -> dict[str, str]:
    """Return the config vars of a ``.env`` file's text."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    env: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line, number = lines[index], index + 1
        index += 1
        if not line.strip() or line.strip().startswith("#"):
            continue
        name, equals, rest = line.partition("=")
        if not equals:
            raise _error(path, number, 'expected KEY=value (no "=" on this line)')
        key = EXPORT.sub("", name.strip())
        if not KEY.fullmatch(key):
            raise _error(path, number, "invalid config var name (use letters, digits and _)")
        if key.startswith("__"):
            raise _error(path, number, f"config var {key}: names starting with __ are reserved")
        value = rest.lstrip()
        if value[:1] not in QUOTES:
            env[key] = INLINE_COMMENT.sub("", rest, count=1).strip()
            continue
        while (unquoted := _unquote(value)) is None:
            if index == len(lines):
                quote = QUOTES[value[0]]
                raise _error(path, number, f"the {quote} quote of {key}'s value is never closed")
            value += "\n" + lines[index]
            index += 1
        env[key], after = unquoted
        if after.strip() and not after.strip().startswith("#"):
            raise _error(path, number, f"unexpected text after the closing quote of {key}'s value")
    return env


def load(path: Path) -> dict[str, str]:
    """Read and parse a ``.env`` file; ``{}`` when there is none."""
    path = Path(path)
    text = textfile.read(path, ConfigError)
    if text is None:
        return {}
    return parse(text, str(path))
