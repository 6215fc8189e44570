"""Config vars: Heroku's key rules and size limit, `KEY=VALUE` arguments, and the three ways
`dynosim config` shows them. Pure: no store, no Docker.

Values are secrets: no message here ever contains one.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping

from .errors import ConfigError

KEY = re.compile(r"[A-Za-z0-9_]+")
#: Heroku: all keys and values of an app together at most 32 KB.
MAX_TOTAL_BYTES = 32 * 1024


def check_key(key: str, where: str = "config:set") -> None:
    if not KEY.fullmatch(key):
        raise ConfigError(
            f"{where}: invalid config var name {key!r}: use only letters, digits and _"
        )
    if key.startswith("__"):
        raise ConfigError(f"{where}: invalid config var name {key!r}: it may not start with __")


def check_size(config: Mapping[str, str]) -> None:
    total = sum(len(k.encode()) + len(v.encode()) for k, v in config.items())
    if total > MAX_TOTAL_BYTES:
        raise ConfigError(
            f"config vars would take {total} bytes; Heroku allows {MAX_TOTAL_BYTES} bytes"
            " (keys and values together) per app"
        )


def check_value(key: str, value: str) -> None:
    if "\0" in value:
        raise ConfigError(f"config var {key}: a value cannot contain a NUL character")


def parse_pairs(args: Iterable[str]) -> dict[str, str]:
    """`config:set` arguments: each split at its first `=` (Heroku's rule)."""
    pairs: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"config:set: {key!r} is not KEY=VALUE (the value may be empty)")
        check_key(key)
        check_value(key, value)
        pairs[key] = value
    return pairs


def describe_keys(keys: Iterable[str]) -> str:
    return ", ".join(keys)


def format_human(app: str, config: Mapping[str, str]) -> str:
    """Heroku's `config`: a header, then aligned `KEY: value` lines (continuations indented)."""
    lines = [f"=== ⬢ {app} Config Vars"]
    if not config:
        return lines[0]
    width = max(len(k) for k in config) + 2
    for key in sorted(config):
        first, *rest = config[key].split("\n")
        lines.append(f"{key + ':':<{width}}{first}")
        lines += [" " * width + line for line in rest]
    return "\n".join(lines)


def format_shell(config: Mapping[str, str]) -> str:
    """`config --shell`: one KEY=value per line, quoted so a POSIX shell reads it back exactly."""
    return "\n".join(f"{key}={shlex.quote(config[key])}" for key in sorted(config))


def format_json(config: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(config.items())), indent=2, ensure_ascii=False)
