"""Stack images, made offline from Debian: a build image and a slim run image per suite.

Like Heroku's heroku-24-build / heroku-24 pair. Built with mmdebstrap straight into
`docker import`, named and versioned (runtime.STACK_VERSION) so they are made once and reused.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading

from .docker import images
from .errors import BuildError
from .progress import Progress
from .runtime import STACK_VERSION, Stack

BUILD_PACKAGES = [
    "python3", "python3-venv", "python3-dev", "build-essential", "pkg-config",
    "libpq-dev", "libffi-dev", "libssl-dev", "git", "ca-certificates", "passwd",
]  # fmt: skip
#: Run images carry the shared libraries compiled dependencies link against (libpython for a
#: uWSGI built from source, libpq, libxml2/libxslt, libyaml), but no compilers or headers.
RUN_PACKAGES = [
    "python3", "libpython{python}", "libpq5", "libxml2", "libxslt1.1", "libyaml-0-2",
    "ca-certificates", "tzdata", "passwd",  # passwd: useradd, missing from trixie's minimal set
]  # fmt: skip
#: Suites that move (Debian testing) pin their Python by name: `python3` there becomes the next
#: Python one day. Their `python3` is made the pinned one (see PYTHON_HOOK), so the build's
#: `python3 -m venv` uses it. forky has no `libxml2`; its libxml2 is `libxml2-16`.
PINNED_PACKAGES = {
    "forky": (
        [
            "python{python}", "python{python}-venv", "python{python}-dev", "build-essential",
            "pkg-config", "libpq-dev", "libffi-dev", "libssl-dev", "git", "ca-certificates",
            "passwd",
        ],
        [
            "python{python}", "libpython{python}", "libpq5", "libxml2-16", "libxslt1.1",
            "libyaml-0-2", "ca-certificates", "tzdata", "passwd",
        ],
    ),
}  # fmt: skip
MIRROR = "http://deb.debian.org/debian"
NO_VALID_UNTIL = '--aptopt=Acquire::Check-Valid-Until "false"'
#: `python3` is the stack's Python (a no-op where Debian's python3 already is), checked after.
PYTHON_HOOK = 'ln -sf python{python} "$1"/usr/bin/python3'
CHECK_HOOK = (
    'chroot "$1" python3 -c "import sys; sys.exit(sys.version_info[:2] != ({major}, {minor}))"'
    ' || {{ echo "dynosim: python3 in {suite} is not Python {python}:'
    ' $(chroot "$1" python3 --version 2>&1)" >&2; exit 1; }}'
)
USER_HOOK = 'chroot "$1" useradd --create-home --uid 1000 --user-group --shell /bin/bash dyno'
CLEAN_HOOK = 'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin'


def image_exists(name: str) -> bool:
    return images.exists(name)


def missing(stack: Stack) -> list[str]:
    return [name for name in (stack.build_image, stack.run_image) if not image_exists(name)]


def ensure(stack: Stack, progress: Progress, *, force: bool = False) -> None:
    """Make the stack's two images if they are not there yet (both at once)."""
    wanted = [stack.build_image, stack.run_image] if force else missing(stack)
    if not wanted:
        return
    if shutil.which("mmdebstrap") is None:
        raise BuildError(
            "mmdebstrap is needed to make the stack images offline from Debian: run scripts/setup"
            " (or apt-get install mmdebstrap), or use --base-image IMAGE"
        )
    progress(f"Making stack {stack.suite} (Python {stack.python_version}) from Debian")
    errors: list[BaseException] = []

    def make(name: str) -> None:
        try:
            _make_image(stack, name, progress)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(name,)) for name in wanted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _make_image(stack: Stack, name: str, progress: Progress) -> None:
    is_build = name == stack.build_image
    build_packages, run_packages = PINNED_PACKAGES.get(stack.suite, (BUILD_PACKAGES, RUN_PACKAGES))
    packages = [
        package.format(python=stack.python_version)
        for package in (build_packages if is_build else run_packages)
    ]
    role = "build" if is_build else "run"
    major, minor = stack.python
    python = stack.python_version
    debootstrap(
        name,
        stack.suite,
        packages,
        progress,
        hooks=[
            USER_HOOK,
            PYTHON_HOOK.format(python=python),
            CHECK_HOOK.format(major=major, minor=minor, suite=stack.suite, python=python),
        ],
        what=f"stack {stack.suite} (Python {python})",
        # testing's Release files expire within days; mirrors and snapshots serve them later
        # (still signature-checked): an expired date would otherwise stop every build
        options=[NO_VALID_UNTIL] if stack.suite in PINNED_PACKAGES else [],
        changes=[
            'CMD ["/bin/bash"]',
            f"LABEL dynosim.stack={stack.suite} dynosim.stack-role={role}"
            f" dynosim.stack-version={STACK_VERSION}",
        ],
    )


def debootstrap(
    name: str,
    suite: str,
    packages: list[str],
    progress: Progress,
    *,
    hooks: list[str] = (),  # type: ignore[assignment]
    changes: list[str] = (),  # type: ignore[assignment]
    what: str | None = None,
    options: list[str] = (),  # type: ignore[assignment]
) -> None:
    """Make image `name` offline: mmdebstrap of `suite` with `packages`, customize `hooks`
    (shell, "$1" is the root), streamed into `docker import` with Dockerfile `changes`. A
    package the suite no longer has, or a hook's `dynosim: ...` line, is the error's message
    (`what` names the image for it)."""
    command = [
        "mmdebstrap", "--variant=apt", "--quiet", *options, f"--include={','.join(packages)}",
        *(f"--customize-hook={hook}" for hook in [*hooks, CLEAN_HOOK]),
        suite, "-", MIRROR,
    ]  # fmt: skip
    progress(f"  {name}: debootstrapping {suite} with {len(packages)} packages")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout and process.stderr
    try:
        images.import_root(process.stdout, name, ["ENV LANG=C.UTF-8", *changes])
    finally:
        stderr = process.stderr.read().decode(errors="replace").splitlines()
        status = process.wait()
    if status != 0:
        _remove_quietly(name)
        raise BuildError(
            _failure(name, suite, packages, stderr, what)
            or f"making image {name} failed (mmdebstrap exit {status})",
            step=" ".join(command),
            tail=stderr[-20:],
        )
    progress(f"  {name}: done")


def _remove_quietly(name: str) -> None:
    images.remove(name, force=True)


MISSING = re.compile(
    r"Unable to locate package (\S+)|Package '?([^' ]+)'? has no installation candidate"
    r"|Couldn't find any package by (?:glob|regex) '([^']+)'"
)


def _failure(
    name: str, suite: str, packages: list[str], stderr: list[str], what: str | None
) -> str | None:
    """One clear line for a suite that changed under dynosim: a package gone, or a hook's
    `dynosim: ...` complaint (such as a stack's python3 no longer being its Python)."""
    made = what or f"image {name}"
    for line in stderr:
        if line.startswith("dynosim: "):
            return f"cannot make {made}: {line.removeprefix('dynosim: ')}"
        match = MISSING.search(line)
        if match:
            package = next(group for group in match.groups() if group)
            return (
                f"cannot make {made}: Debian {suite} no longer has package {package!r}"
                f" (the suite changed since this dynosim was made); upgrade dynosim"
            )
    for line in stderr:
        if line.startswith("E: setup failed:") and " install " in line:
            return (
                f"cannot make {made}: apt could not install its packages from Debian {suite}"
                f" ({', '.join(packages)}); if the mirror is reachable, the suite changed since"
                " this dynosim was made (a package gone or renamed): upgrade dynosim"
            )
    return None
