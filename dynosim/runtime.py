"""Pick the stack (Debian suite, and so the Python) and the package manager for an app folder.

Mirrors the Heroku Python buildpack: runtime.txt wins over .python-version; exactly one package
manager file; the newest Python when the app names none.
"""

from __future__ import annotations

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


#: Oldest first. Like Heroku's heroku-20/22/24, one stack per OS release, each with its Python.
STACKS = (Stack("bullseye", (3, 9)), Stack("bookworm", (3, 11)), Stack("trixie", (3, 13)))


@dataclass(frozen=True)
class Selection:
    stack: Stack
    requested: str | None  # the version the app asked for, as written
    source: str | None  # the file that asked for it
    warning: str | None = None


VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")


def stack_by_suite(suite: str) -> Stack:
    for stack in STACKS:
        if stack.suite == suite:
            return stack
    names = ", ".join(s.suite for s in STACKS)
    raise RuntimeSelectionError(f"unknown stack {suite!r}; known stacks: {names}")


def requested_python(app_dir: Path) -> tuple[str, str, int] | None:
    """The Python version the app asks for: (version, file, line), or None."""
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
    return None


def select_stack(app_dir: Path, *, strict: bool = False) -> Selection:
    """The stack whose Python matches the app's request, else the nearest newer one."""
    request = requested_python(app_dir)
    if request is None:
        return Selection(STACKS[-1], None, None)
    text, source, line = request
    match = VERSION.match(text)
    assert match
    wanted = (int(match.group(1)), int(match.group(2)))
    for stack in STACKS:
        if stack.python == wanted:
            return Selection(stack, text, source)
    newer = [s for s in STACKS if s.python > wanted]
    offered = ", ".join(f"{s.python_version} ({s.suite})" for s in STACKS)
    if not newer:
        raise RuntimeSelectionError(
            f"{source}:{line}: no stack provides Python {text}; available: {offered}"
        )
    if strict:
        raise RuntimeSelectionError(
            f"{source}:{line}: no stack provides Python {text} exactly (--strict-runtime);"
            f" available: {offered}"
        )
    stack = newer[0]
    return Selection(
        stack,
        text,
        source,
        warning=f"{source} asks for Python {text}; using the nearest newer,"
        f" {stack.python_version} (stack {stack.suite})",
    )


#: Heroku's package manager files, and the manager each one means.
PACKAGE_MANAGERS = {
    "requirements.txt": "pip",
    "Pipfile.lock": "pipenv",
    "poetry.lock": "poetry",
    "uv.lock": "uv",
}
#: How to get a requirements.txt out of the managers dynosim does not install from yet.
EXPORT_HINTS = {
    "pipenv": "pipenv requirements > requirements.txt",
    "poetry": "poetry export -o requirements.txt",
    "uv": "uv export --format requirements-txt -o requirements.txt",
}


def package_manager(app_dir: Path) -> str | None:
    """The one package manager the app uses ('pip'), None for an app without dependencies."""
    present = [name for name in PACKAGE_MANAGERS if (app_dir / name).is_file()]
    if (app_dir / "Pipfile").is_file() and "Pipfile.lock" not in present:
        raise RuntimeSelectionError(
            f"{app_dir / 'Pipfile'}: found without Pipfile.lock; run 'pipenv lock' and commit it"
        )
    if len(present) > 1:
        raise RuntimeSelectionError(
            f"{app_dir}: several package manager files ({', '.join(present)}); keep exactly one"
        )
    if not present:
        return None
    manager = PACKAGE_MANAGERS[present[0]]
    if manager != "pip":
        raise RuntimeSelectionError(
            f"{app_dir / present[0]}: {manager} is detected but not supported by dynosim yet;"
            f" export a requirements.txt instead: {EXPORT_HINTS[manager]}"
        )
    return manager
