"""What doctor reads from the app's folder without running it: the web server and its
settings (Procfile command, uwsgi.ini), the Python the build will choose, app.json's required
env vars, literal secrets and SQLite databases in the files a push sends."""

from __future__ import annotations

import ast
import configparser
import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from .. import appjson, formation, runtime, source
from ..errors import DynosimError
from .observations import Config, Python, Secret, Server

SERVERS = ("uwsgi", "gunicorn", "uvicorn")
GUNICORN_CONFIG = "gunicorn.conf.py"
#: Names that say "secret" on the left of a literal assignment (Python, YAML, .env, JSON).
_SECRET_NAME = (
    r"[A-Za-z_]*(?:SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY)[A-Za-z_]*"
)
_ASSIGNED = re.compile(
    rf"""^\s*["']?({_SECRET_NAME})["']?\s*[:=]\s*[rbu]?(["'])([^"'\s]{{8,}})\2""", re.IGNORECASE
)
_SHAPES = {  # well-known key formats, whatever they are called
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "Stripe live key": re.compile(r"\bsk_live_[0-9A-Za-z]{16,}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[0-9A-Za-z]{30,}"),
}
_PLACEHOLDER = re.compile(
    r"^(?:x+|changeme|change-me|dummy|example|placeholder|secret|test)$", re.I
)
_TEXT_SUFFIXES = {".py", ".env", ".cfg", ".ini", ".toml", ".yml", ".yaml", ".json", ".txt", ".sh"}
SQLITE_MAGIC = b"SQLite format 3\x00"


def server(command: str, app_dir: Path) -> Server:
    """The server a web command runs (`python -m` and `exec` seen through) and its settings."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    while words and (words[0] in ("exec", "env") or "=" in words[0]):
        words = words[1:]
    if len(words) > 2 and Path(words[0]).name.startswith("python") and words[1] == "-m":
        words = words[2:]
    name = Path(words[0]).name if words else ""
    settings = _flags(words[1:])
    if name == "uwsgi":
        for word in words[1:]:
            if word.endswith(".ini") and (app_dir / word).is_file():
                return Server(name, {**_uwsgi_ini(app_dir / word), **settings}, word)
    if name == "gunicorn":  # -c / --config, else ./gunicorn.conf.py (the dyno runs in /app)
        config = settings.get("c") or settings.get("config") or GUNICORN_CONFIG
        if (app_dir / config).is_file():
            return Server(name, {**_python_settings(app_dir / config), **settings}, config)
    return Server(name, settings)


def dockerfile_command(dockerfile: Path) -> str:
    """The command a Dockerfile's last CMD names (exec or shell form), as one line."""
    try:
        lines = dockerfile.read_text(errors="replace").replace("\\\n", " ").splitlines()
    except OSError:
        return ""
    commands = [
        line.strip()[3:].strip() for line in lines if line.strip().upper().startswith("CMD ")
    ]
    if not commands:
        return ""
    try:
        words = json.loads(commands[-1])
    except ValueError:
        return commands[-1]
    return shlex.join(str(w) for w in words) if isinstance(words, list) else commands[-1]


def _python_settings(path: Path) -> dict[str, str]:
    """The literal top-level assignments of a Python config file (gunicorn.conf.py)."""
    try:
        tree = ast.parse(path.read_text(errors="replace"))
    except (SyntaxError, ValueError):
        return {}
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = str(node.value.value)
    return found


def _flags(words: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for index, word in enumerate(words):
        if not word.startswith("-"):
            continue
        key, _, value = word.lstrip("-").partition("=")
        if not value and index + 1 < len(words) and not words[index + 1].startswith("-"):
            value = words[index + 1]
        found[key] = value or "true"
    return found


def _uwsgi_ini(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, inline_comment_prefixes=(";",)
    )
    try:
        parser.read_string(path.read_text(errors="replace"))
    except configparser.Error:
        return {}
    return dict(parser["uwsgi"]) if parser.has_section("uwsgi") else {}


def sizes(process_types: list[str], app_dir: Path) -> dict[str, str]:
    """Each type's dyno size: app.json's formation where it names one, else Heroku's default."""
    spec = appjson.load(app_dir)
    named = {t: size for t, (_, size) in spec.formation.items() if size} if spec else {}
    return {t: formation.size(named.get(t, formation.DEFAULT_SIZE)).name for t in process_types}


def python(app_dir: Path) -> Python:
    """The Python the build picks, where it is named, whether Heroku deprecates or refuses it."""
    try:
        chosen = runtime.select_stack(app_dir)
    except DynosimError as exc:
        detail = exc.format_message().splitlines()
        return Python("?", detail[0].split(":", 1)[0], supported=False, detail=detail[-1])
    version = chosen.requested or chosen.stack.python_version
    parts = tuple(int(p) for p in version.split(".")[:2])
    origin = Path(chosen.source).name if chosen.source else ""
    return Python(".".join(map(str, parts)), origin, deprecated=parts in runtime.DEPRECATED)


def config(app_dir: Path, provided: Mapping[str, str]) -> Config:
    """app.json's required env vars without a value (given none in `provided`), and literal
    secrets in the files a push sends."""
    unset: tuple[str, ...] = ()
    spec = appjson.load(app_dir)
    if spec is not None:
        unset = tuple(
            key for key, var in spec.env.items()
            if var.required and var.value is None and var.generator is None and key not in provided
        )  # fmt: skip
    return Config(unset, tuple(secrets(app_dir)))


def secrets(app_dir: Path) -> list[Secret]:
    """Where a literal secret sits in the tracked files: file, line and the name it goes by,
    never its value."""
    found: list[Secret] = []
    for relative in source.tracked(app_dir):
        path = app_dir / relative
        if path.suffix not in _TEXT_SUFFIXES and not path.name.startswith(".env"):
            continue
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines, 1):
            found.extend(Secret(relative, number, name) for name in _secret_names(line))
    return found


def _secret_names(line: str) -> list[str]:
    names = [name for name, shape in _SHAPES.items() if shape.search(line)]
    match = _ASSIGNED.match(line)
    if match and not _PLACEHOLDER.match(match.group(3)) and "{" not in match.group(3):
        names.insert(0, match.group(1))
    return names[:1]


def sqlite_in_slug(app_dir: Path) -> list[str]:
    """Files of the slug that are SQLite databases (by their header)."""
    found = []
    for relative in source.select(app_dir):
        try:
            with (app_dir / relative).open("rb") as handle:
                if handle.read(16) == SQLITE_MAGIC:
                    found.append(relative)
        except OSError:
            continue
    return found
