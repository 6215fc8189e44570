"""Pure: Heroku's rules for app names and add-on attachment names."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import UsageError

APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$")
ATTACHMENT = re.compile(r"^[A-Z][A-Z0-9_]*$")
MAX_APP_NAME = 30


def check_app_name(name: str, option: str = "--app") -> str:
    """`name` if Heroku would accept it as an app name, else a UsageError naming `option`."""
    if APP_NAME.match(name) and "--" not in name:
        return name
    raise UsageError(
        f"{option} {name!r}: an app name must start with a letter, end with a letter or digit,"
        f" and contain only lowercase letters, digits and single dashes (at most {MAX_APP_NAME})"
    )


def app_name_from_folder(folder: Path) -> str:
    """A Heroku-style app name from a folder name (`flask_app` -> `flask-app`)."""
    name = re.sub(r"[^a-z0-9]+", "-", folder.resolve().name.lower()).strip("-")
    if name and not name[0].isalpha():
        name = f"app-{name}"
    name = name[:MAX_APP_NAME].rstrip("-")
    if not APP_NAME.match(name):
        raise UsageError(
            f"{folder.resolve()}: cannot make an app name from the folder name; pass --app NAME"
        )
    return name


def check_attachment(name: str) -> str:
    """The config var of an attachment named with `--as` (`CACHE` or `CACHE_URL` ->
    `CACHE_URL`), checked as Heroku does before anything is provisioned."""
    base = name.upper().removesuffix("_URL")
    if not ATTACHMENT.match(base):
        raise UsageError(
            f"--as {name!r}: an attachment name must start with a letter and contain only"
            " letters, digits and underscores"
        )
    return f"{base}_URL"
