"""Choose the files of an app folder that go into its image, the way a git push would.

In a git work tree: the files git tracks (with their working-tree contents). Elsewhere: every
file not excluded by the folder's .gitignore files. Either way .slugignore patterns are removed
afterwards, as Heroku's slug compiler does before the build.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pathspec

ALWAYS_EXCLUDED = {".git", ".hg", ".svn"}


def _git_files(app_dir: Path, *which: str) -> list[str] | None:
    """Files git lists under app_dir (relative to it); None when it is not in a git work tree."""
    try:
        result = subprocess.run(
            ["git", "-C", str(app_dir), "ls-files", "-z", "--full-name", *which, "."],
            capture_output=True,
            check=True,
        )
        top = subprocess.run(
            ["git", "-C", str(app_dir), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    prefix = app_dir.resolve().relative_to(Path(top).resolve())
    files = []
    for name in result.stdout.decode().split("\0"):
        if not name:
            continue
        relative = Path(name).relative_to(prefix) if str(prefix) != "." else Path(name)
        if (app_dir / relative).is_file() or (app_dir / relative).is_symlink():
            files.append(relative.as_posix())
    return files


def _spec(lines: list[str]) -> pathspec.PathSpec:
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _not_ignored(app_dir: Path) -> list[str]:
    """Files under app_dir not excluded by any .gitignore (nested ones apply to their folder)."""
    specs: list[tuple[str, pathspec.PathSpec]] = []  # (folder relative to app_dir, spec)
    files: list[str] = []
    for folder, dirs, names in os.walk(app_dir):
        relative_folder = Path(folder).relative_to(app_dir).as_posix()
        relative_folder = "" if relative_folder == "." else relative_folder
        if ".gitignore" in names:
            lines = (Path(folder) / ".gitignore").read_text(errors="replace").splitlines()
            specs.append((relative_folder, _spec(lines)))

        def ignored(name: str, is_dir: bool, base: str = relative_folder) -> bool:
            path = f"{base}/{name}" if base else name
            for spec_folder, spec in specs:
                if spec_folder and not path.startswith(spec_folder + "/"):
                    continue
                local = path[len(spec_folder) + 1 :] if spec_folder else path
                if spec.match_file(local + ("/" if is_dir else "")):
                    return True
            return False

        dirs[:] = sorted(d for d in dirs if d not in ALWAYS_EXCLUDED and not ignored(d, True))
        for name in sorted(names):
            if not ignored(name, False):
                files.append(f"{relative_folder}/{name}" if relative_folder else name)
    return files


def untracked(app_dir: Path) -> list[str]:
    """Files a git push would leave out because git does not track them (and does not ignore)."""
    return _git_files(Path(app_dir), "--others", "--exclude-standard") or []


def tracked(app_dir: Path) -> list[str]:
    """The files git tracks (committed or staged; .slugignore'd ones too), or outside git those
    .gitignore does not exclude: what a push publishes to the repository."""
    app_dir = Path(app_dir)
    files = _git_files(app_dir, "--cached")
    return sorted(files if files is not None else _not_ignored(app_dir))


def select(app_dir: Path) -> list[str]:
    """The sorted relative paths of the files that make up the app's slug."""
    app_dir = Path(app_dir)
    files = _git_files(app_dir, "--cached")
    if files is None:
        files = _not_ignored(app_dir)
    slugignore = app_dir / ".slugignore"
    if slugignore.is_file():
        lines = [
            line
            for line in slugignore.read_text(errors="replace").splitlines()
            if not line.strip().startswith("!")  # Heroku: no negation in .slugignore
        ]
        spec = _spec(lines)
        files = [f for f in files if not spec.match_file(f)]
    return sorted(f for f in files if f.split("/", 1)[0] not in ALWAYS_EXCLUDED)
