"""Pick the stack (Debian suite, and so the Python) and the package manager for an app folder.

Mirrors the Heroku Python buildpack (lib/package_manager.sh, lib/python_version.sh): exactly one
package manager file; runtime.txt (deprecated, with Heroku's warning) wins over .python-version,
which wins over Pipfile.lock; Heroku's default (3.14) when the app names none; end-of-life and
unknown versions refused in Heroku's words. The app's stack setting must carry that Python.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import RuntimeSelectionError

#: Bump when the packages of a stack image change, so old images are not reused.
STACK_VERSION = 3


@dataclass(frozen=True)
class Stack:
    suite: str
    python: tuple[int, int]

    @property
    def python_version(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"

    @property
    def build_image(self) -> str:
        return f"dynosim/stack-{self.suite}:build-{STACK_VERSION}"

    @property
    def run_image(self) -> str:
        return f"dynosim/stack-{self.suite}:run-{STACK_VERSION}"

    @property
    def end_of_life(self) -> bool:
        """Its Python is older than Heroku supports: only set explicitly, to rehearse an old app."""
        return self.python < OLDEST_SUPPORTED


#: Oldest first. Like Heroku's heroku-20/22/24, one stack per OS release, each with its Python.
STACKS = (
    Stack("bullseye", (3, 9)),
    Stack("bookworm", (3, 11)),
    Stack("trixie", (3, 13)),
    Stack("forky", (3, 14)),
)


@dataclass(frozen=True)
class Selection:
    stack: Stack
    requested: str | None  # the version the app asked for, as written
    source: str | None  # the file that asked for it
    warnings: tuple[str, ...] = ()  # each one paragraph or Heroku's multi-line warning

    @property
    def announcement(self) -> str:
        """Heroku's line about the Python version, e.g. `Using Python 3.11 specified in
        .python-version`."""
        if self.requested is None:
            return (
                "No Python version was specified."
                f" Using the buildpack default: Python {self.stack.python_version}"
            )
        return f"Using Python {self.requested} specified in {Path(self.source or '').name}"


VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")
#: Heroku's supported range (heroku-buildpack-python lib/python_version.sh): 3.9 and older have
#: reached end-of-life, newer than 3.14 is unknown; an app that names no version gets 3.14.
OLDEST_SUPPORTED = (3, 10)
NEWEST_SUPPORTED = (3, 14)
DEFAULT_PYTHON = (3, 14)
SUPPORTED_VERSIONS = (
    "https://devcenter.heroku.com/articles/python-support#supported-python-versions"
)


def stack_by_suite(suite: str) -> Stack:
    for stack in STACKS:
        if stack.suite == suite:
            return stack
    names = ", ".join(s.suite for s in STACKS)
    raise RuntimeSelectionError(f"unknown stack {suite!r}; known stacks: {names}")


def end_of_life_warning(stack: Stack) -> str:
    """What setting an end-of-life stack explicitly is told (the app builds, Heroku's would not)."""
    return (
        f"Stack {stack.suite} has Python {stack.python_version}, which has reached its upstream"
        " end-of-life: Heroku refuses to build it. dynosim builds it because the stack was set"
        " explicitly, to rehearse an old app."
    )


def requested_python(app_dir: Path, manager: str | None = None) -> tuple[str, str, int] | None:
    """The Python version the app asks for: (version, file, line), or None. Pipfile.lock is
    read for a pipenv app only, as Heroku does."""
    runtime_txt = app_dir / "runtime.txt"
    if runtime_txt.is_file():
        for number, line in enumerate(runtime_txt.read_text().splitlines(), 1):
            text = line.strip()
            if not text:
                continue
            if not text.startswith("python-") or not VERSION.match(text[7:]):
                raise RuntimeSelectionError(
                    f"{runtime_txt}:{number}: expected e.g. 'python-3.11' or 'python-3.11.9',"
                    f" got {text!r}"
                )
            return text[7:], str(runtime_txt), number
        raise RuntimeSelectionError(f"{runtime_txt}: empty; name a version like 'python-3.11'")
    dot_version = app_dir / ".python-version"
    if dot_version.is_file():
        found: list[tuple[str, int]] = []
        for number, line in enumerate(dot_version.read_text().splitlines(), 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if not VERSION.match(text):
                raise RuntimeSelectionError(
                    f"{dot_version}:{number}: expected e.g. '3.11' or '3.11.9', got {text!r}"
                )
            found.append((text, number))
        if len(found) > 1:
            raise RuntimeSelectionError(
                f"{dot_version}:{found[1][1]}: names more than one Python version; keep one"
            )
        if found:
            return found[0][0], str(dot_version), found[0][1]
        raise RuntimeSelectionError(
            f"{dot_version}: no Python version found; name one like '3.11' (lines starting"
            " with '#' are comments)"
        )
    if manager == "pipenv":
        return _pipfile_lock_python(app_dir / "Pipfile.lock")
    return None


def _pipfile_lock_python(path: Path) -> tuple[str, str, int] | None:
    """`_meta.requires.python_full_version`, else `python_version`, of a Pipfile.lock."""
    text = path.read_text()
    try:
        requires = json.loads(text).get("_meta", {}).get("requires", {})
    except (ValueError, AttributeError) as exc:
        raise RuntimeSelectionError(
            f"{path}: Can't parse Pipfile.lock ({exc}); run 'pipenv lock' to regenerate it"
        ) from None
    for key in ("python_full_version", "python_version"):
        version = requires.get(key) if isinstance(requires, dict) else None
        if version is None:
            continue
        line = next((n for n, t in enumerate(text.splitlines(), 1) if f'"{key}"' in t), 1)
        if not isinstance(version, str) or not VERSION.match(version):
            raise RuntimeSelectionError(
                f"{path}:{line}: Invalid Python version in Pipfile.lock: {version!r}; use e.g."
                " '3.11' in your Pipfile, then run 'pipenv lock'"
            )
        return version, str(path), line
    return None


def select_stack(
    app_dir: Path,
    *,
    strict: bool = False,
    manager: str | None = None,
    stack: str | None = None,
) -> Selection:
    """The stack with the Python the app asks for (Heroku's default, 3.14, when it names none),
    else the nearest newer one, with a warning.

    `stack` is the app's stack setting (`dynosim stack:set`): it must carry that Python (or be
    the nearest newer one), else the error names the stacks that do; an end-of-life stack set
    so builds an end-of-life Python, with a warning that Heroku would refuse it. `manager`
    defaults to the app's one package manager, when it has exactly one."""
    manager = manager or _single_manager(app_dir)
    request = requested_python(app_dir, manager)
    if manager == "uv":
        _check_uv_version_file(request)
    chosen = stack_by_suite(stack) if stack else None
    text, source = (request[0], request[1]) if request else (None, None)
    wanted, where = _wanted(request)
    warnings: list[str] = []
    if source and Path(source).name == "runtime.txt":
        warnings.append(runtime_txt_deprecation(wanted))
    if chosen is not None and chosen.end_of_life and chosen.python == wanted:
        return Selection(chosen, text, source, (*warnings, end_of_life_warning(chosen)))
    _check_supported(wanted, source or "")
    shown = text or f"{wanted[0]}.{wanted[1]}"
    exact, fits = _fitting(wanted, strict, where, shown)
    if chosen is not None and chosen not in fits:
        raise _stack_setting_error(chosen, fits, exact, where, shown, named=text is not None)
    picked = chosen or fits[0]
    if wanted in DEPRECATED and source:
        warnings.append(deprecated_version_warning(wanted, Path(source).name))
    if not exact:
        warnings.append(
            f"{source} asks for Python {text}; no stack carries it, using the nearest newer,"
            f" {picked.python_version} (stack {picked.suite})"
        )
    return Selection(picked, text, source, tuple(warnings))


def _wanted(request: tuple[str, str, int] | None) -> tuple[tuple[int, int], str]:
    """(major, minor) of the requested Python (Heroku's default without one), and where it was
    asked for as errors start: `file:line:`."""
    if request is None:
        return DEFAULT_PYTHON, "No Python version was specified, so"
    text, source, line = request
    match = VERSION.match(text)
    assert match
    return (int(match.group(1)), int(match.group(2))), f"{source}:{line}:"


def _fitting(
    wanted: tuple[int, int], strict: bool, where: str, shown: str
) -> tuple[list[Stack], list[Stack]]:
    """(the stacks carrying `wanted` exactly, the stacks that fit it: those, else the nearest
    newer one); an error when none fits, or none carries it exactly and `strict`."""
    exact = [s for s in STACKS if s.python == wanted]
    newer = [s for s in STACKS if s.python > wanted]
    offered = ", ".join(f"{s.python_version} ({s.suite})" for s in STACKS if not s.end_of_life)
    if not exact and not newer:
        raise RuntimeSelectionError(
            f"{where} no stack provides Python {shown}; available: {offered}"
        )
    if not exact and strict:
        raise RuntimeSelectionError(
            f"{where} no stack provides Python {shown} exactly (--strict-runtime);"
            f" available: {offered}"
        )
    return exact, exact or newer[:1]


def _stack_setting_error(
    chosen: Stack, fits: list[Stack], exact: list[Stack], where: str, shown: str, *, named: bool
) -> RuntimeSelectionError:
    """The app's stack setting does not fit its Python: which stack does, and how to set it.
    `named`: the app names its Python (else it gets Heroku's default)."""
    carries = "carries" if exact else "has the nearest newer Python for"
    names = " or ".join(f"{s.suite} (Python {s.python_version})" for s in fits)
    asked = f"Python {shown}" if named else f"Heroku's default, Python {shown}"
    pin = "" if named else " (or name the app's Python in .python-version)"
    return RuntimeSelectionError(
        f"{where} the app's stack {chosen.suite} has Python {chosen.python_version},"
        f" not {asked}; the stack that {carries} it: {names}."
        f" Set it with: dynosim stack:set {fits[0].suite} (or up --stack"
        f" {fits[0].suite}){pin}"
    )


#: Supported versions Heroku has announced the end of: (upstream end-of-life, removal date).
DEPRECATED = {(3, 10): ("October 2026", "6th January 2027")}


def deprecated_version_warning(version: tuple[int, int], origin: str) -> str:
    """Heroku's warning for a supported version it will soon refuse."""
    major = f"{version[0]}.{version[1]}"
    end, removal = DEPRECATED[version]
    return (
        f"Warning: Support for Python {major} is deprecated!\n\n"
        f"Python {major} will reach its upstream end-of-life in {end},\n"
        "at which point it will no longer receive security updates:\n"
        "https://devguide.python.org/versions/#supported-versions\n\n"
        f"As such, support for Python {major} will be removed from this\n"
        f"buildpack on {removal}.\n\n"
        "Upgrade to a newer Python version as soon as possible, by\n"
        f"changing the version in your {origin} file.\n\n"
        "For more information, see:\n"
        f"{SUPPORTED_VERSIONS}"
    )


def runtime_txt_deprecation(version: tuple[int, int]) -> str:
    """Heroku's warning for an app that names its Python in runtime.txt."""
    major = f"{version[0]}.{version[1]}"
    return (
        "Warning: The runtime.txt file is deprecated.\n\n"
        "The runtime.txt file is deprecated since it has been replaced\n"
        "by the more widely supported .python-version file:\n"
        "https://devcenter.heroku.com/changelog-items/3141\n\n"
        "Please switch to using a .python-version file instead.\n\n"
        "Delete your runtime.txt file and create a new file in the\n"
        "root directory of your app named:\n"
        ".python-version\n\n"
        "Make sure to include the '.' character at the start of the\n"
        "filename. Don't add a file extension such as '.txt'.\n\n"
        "In the new file, specify your app's major Python version number\n"
        "only. Don't include quotes or a 'python-' prefix.\n\n"
        f"For example, to request the latest version of Python {major},\n"
        "update your .python-version file so it contains exactly:\n"
        f"{major}\n\n"
        "We strongly recommend that you don't specify the Python patch\n"
        "version number, since it will pin your app to an exact Python\n"
        "version and so stop your app from receiving security updates\n"
        "each time it builds.\n\n"
        "In the future support for runtime.txt will be removed and\n"
        "this warning will be made an error."
    )


def _check_supported(wanted: tuple[int, int], source: str) -> None:
    """Heroku's errors for end-of-life and unknown Python versions (lib/python_version.sh)."""
    major, minor = wanted
    origin = Path(source).name
    oldest = f"{OLDEST_SUPPORTED[0]}.{OLDEST_SUPPORTED[1]}"
    newest = f"{NEWEST_SUPPORTED[0]}.{NEWEST_SUPPORTED[1]}"
    if wanted < OLDEST_SUPPORTED:
        rehearse = next((s for s in STACKS if s.python == wanted), None)
        hint = (
            f"\n\n(dynosim: to rehearse the app on Python {major}.{minor} anyway, which Heroku"
            f" would not build: dynosim up --stack {rehearse.suite}, or dynosim stack:set"
            f" {rehearse.suite})"
            if rehearse
            else ""
        )
        raise RuntimeSelectionError(
            f"{source}: The requested Python version has reached end-of-life.\n\n"
            f"Python {major}.{minor} has reached its upstream end-of-life, and is\n"
            "therefore no longer receiving security updates:\n"
            "https://devguide.python.org/versions/#supported-versions\n\n"
            "As such, it's no longer supported by Heroku's Python buildpack:\n"
            f"{SUPPORTED_VERSIONS}\n\n"
            f"Please upgrade to at least Python {oldest} by changing the\n"
            f"version in your {origin} file.\n\n"
            f"If possible, we recommend upgrading all the way to Python {newest},\n"
            f"since it contains many performance and usability improvements.{hint}"
        )
    if wanted > NEWEST_SUPPORTED:
        raise RuntimeSelectionError(
            f"{source}: The requested Python version isn't recognised.\n\n"
            f"The requested Python version {major}.{minor} isn't recognised.\n\n"
            "Check that this Python version has been officially released,\n"
            "and that the Python buildpack has added support for it:\n"
            "https://devguide.python.org/versions/#supported-versions\n"
            f"{SUPPORTED_VERSIONS}\n\n"
            f"Otherwise, switch to a supported version (such as Python {newest})\n"
            f"by changing the version in your {origin} file."
        )


def _check_uv_version_file(request: tuple[str, str, int] | None) -> None:
    """Heroku requires a .python-version file for uv apps (and refuses runtime.txt)."""
    if request is not None and Path(request[1]).name == ".python-version":
        return
    newest = f"{NEWEST_SUPPORTED[0]}.{NEWEST_SUPPORTED[1]}"
    if request is None:
        title, steps = "No Python version was specified.", ""
    else:
        title, steps = (
            "The runtime.txt file isn't supported when using uv.",
            "Delete your runtime.txt file, then ",
        )
    raise RuntimeSelectionError(
        f"{title}\n\n"
        "When using the package manager uv on Heroku, you must specify\n"
        "your app's Python version with a .python-version file.\n\n"
        f"{steps}run 'uv python pin {newest}' in the root directory of your app\n"
        "(adjust to match your app's major Python version), and commit it."
    )


#: Heroku's package manager files, and the manager each one means.
PACKAGE_MANAGERS = {
    "requirements.txt": "pip",
    "Pipfile.lock": "pipenv",
    "poetry.lock": "poetry",
    "uv.lock": "uv",
}


def _present(app_dir: Path) -> list[str]:
    return [name for name in PACKAGE_MANAGERS if (app_dir / name).is_file()]


def _single_manager(app_dir: Path) -> str | None:
    present = _present(app_dir)
    return PACKAGE_MANAGERS[present[0]] if len(present) == 1 else None


def package_manager(app_dir: Path) -> str:
    """The one package manager the app uses: 'pip', 'pipenv', 'poetry' or 'uv'."""
    present = _present(app_dir)
    if (app_dir / "Pipfile").is_file() and "Pipfile.lock" not in present:
        raise RuntimeSelectionError(
            f"{app_dir / 'Pipfile'}: found without Pipfile.lock; run 'pipenv lock' and commit it"
        )
    if len(present) > 1:
        raise RuntimeSelectionError(
            f"{app_dir}: several package manager files ({', '.join(present)}); keep exactly one"
        )
    if not present:
        contents = sorted(
            f"{p.name}/" if p.is_dir() else p.name for p in app_dir.iterdir() if p.name != ".git"
        )
        shown = "\n".join(contents[:20] + (["..."] if len(contents) > 20 else []))
        raise RuntimeSelectionError(
            f"{app_dir}: Couldn't find any supported Python package manager files.\n\n"
            "A Python app on Heroku must have either a 'requirements.txt',\n"
            "'Pipfile.lock', 'poetry.lock' or 'uv.lock' package manager file\n"
            "in the root directory of its source code.\n\n"
            f"Currently the root directory of your app contains:\n\n{shown}\n\n"
            "If your app already has a package manager file, check that it:\n\n"
            "1. Is in the top level directory (not a subdirectory).\n"
            "2. Has the correct spelling (the filenames are case-sensitive).\n"
            "3. Isn't listed in '.gitignore' or '.slugignore'.\n\n"
            "Otherwise, add a package manager file to your app. If your app has\n"
            "no dependencies, then create an empty 'requirements.txt' file."
        )
    manager = PACKAGE_MANAGERS[present[0]]
    needed = {"pipenv": "Pipfile", "poetry": "pyproject.toml", "uv": "pyproject.toml"}.get(manager)
    if needed and not (app_dir / needed).is_file():
        raise RuntimeSelectionError(
            f"{app_dir / present[0]}: found without {needed}; {manager} installs from both"
        )
    return manager
