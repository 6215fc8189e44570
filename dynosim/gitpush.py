"""`git push dynosim main`: an app's bare repository under the state folder, whose
`pre-receive` hook builds exactly the pushed commit through the same deploy as `dynosim
deploy`, and has a running `up` roll the release out (else the next `up` serves it).

The hook calls this Python and this dynosim by absolute path and fails closed: any error
exits non-zero, so git rejects the push and the current release keeps serving. Pushes of one
app are serialised by a lock file; git's client refuses a non-fast-forward push without
--force.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from . import gitrefs, releases, runtime
from .control_commands import Build
from .errors import DynosimError, UsageError
from .store import data_dir
from .stored import Progress, StoredApp, quiet

DEFAULT_REMOTE = "dynosim"
HOOK = """#!/bin/sh
# dynosim: a push deploys {app} (written by `dynosim git:remote`)
DYNOSIM_HOME={home}; export DYNOSIM_HOME
PYTHONPATH={package}${{PYTHONPATH:+:$PYTHONPATH}}; export PYTHONPATH
exec {python} -m dynosim git:receive {app}
"""


def repository(app: str) -> Path:
    """The app's bare repository: $DYNOSIM_HOME/git/<app>.git."""
    return data_dir() / "git" / f"{app}.git"


def _git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise UsageError(f"git {args[0]}: {done.stderr.strip() or done.returncode}")
    return done.stdout


class GitRemote:
    """One app's git remote (`App.git`): adding it to the folder's repository, and what its
    hook does with a push."""

    def __init__(self, app: StoredApp) -> None:
        self._app = app

    def add(self, remote: str = DEFAULT_REMOTE) -> Path:
        """`git:remote`: the bare repository (made once, owner-only, with its hook) as the
        remote `remote` of the app folder's repository; its path. UsageError when the folder
        is not a git repository's top."""
        folder = self._app.folder()
        top = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if top.returncode:
            raise UsageError(f"{folder} is not a git repository; run git init there first")
        if Path(top.stdout.strip()).resolve() != folder.resolve():
            raise UsageError(
                f"{folder} is not the top of its git repository ({top.stdout.strip()}); a push"
                " builds the repository's root, as on Heroku"
            )
        bare = self._ensure_repository()
        self._app.store.ensure_app(self._app.name, folder)
        remotes = _git("-C", str(folder), "remote").split()
        verb = "set-url" if remote in remotes else "add"
        _git("-C", str(folder), "remote", verb, remote, str(bare))
        return bare

    def _ensure_repository(self) -> Path:
        bare = repository(self._app.name)
        bare.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not (bare / "HEAD").exists():
            _git("init", "--bare", "--quiet", "--initial-branch=main", str(bare))
        os.chmod(bare, 0o700)
        # git's client refuses a non-fast-forward push unless forced; a forced one deploys
        _git("-C", str(bare), "config", "receive.denyNonFastForwards", "false")
        hook = bare / "hooks" / "pre-receive"
        hook.write_text(
            HOOK.format(
                app=shlex.quote(self._app.name),
                home=shlex.quote(str(data_dir().resolve())),
                python=shlex.quote(sys.executable),
                package=shlex.quote(str(Path(__file__).resolve().parents[1])),
            )
        )
        hook.chmod(0o700)
        return bare

    def receive(self, updates: str, progress: Progress = quiet) -> bool:
        """The pre-receive hook: build the commit pushed to main or master and roll it out;
        False (the push rejected, in Heroku's words) when that fails."""
        try:
            chosen, notes = gitrefs.to_deploy(gitrefs.parse(updates))
            for note in notes:
                progress(note)
            if chosen is None:
                return True
            with _locked(self._app.name, progress):
                self._deploy(chosen.new, progress)
        except gitrefs.PushRejected as error:
            progress(f" !     {error}")
            return False
        except DynosimError as error:
            progress(f" !     Push rejected, {error}")
            progress(" !     Push failed")
            return False
        return True

    def _deploy(self, sha: str, progress: Progress) -> None:
        progress("Building source:")
        progress("")
        with tempfile.TemporaryDirectory(prefix="dynosim-push-") as checkout:
            _extract(repository(self._app.name), sha, Path(checkout))
            stack = _stack_name(Path(checkout), self._app.stack())
            if stack:
                progress(f"-----> Building on the {stack} stack")
            description, home = gitrefs.description(sha), self._app.folder()
            request = Build(checkout, description=description, home=str(home))
            built = releases.build_in_up(self._app.name, request, progress)
            if built:  # the running up built it and rolled it out
                release, new, rolled_out = self._app.release(str(built[0])), built[1], built[1]
            else:
                from . import deployment  # builds import Docker: only when built here

                with _outside_git():
                    release, new = deployment.deploy(
                        self._app.store, self._app.name, Path(checkout), progress=progress,
                        stack_suite=self._app.stack(), description=description, home=home,
                    )  # fmt: skip
                rolled_out = new and releases.roll_out(self._app.name, release, progress)
        if not rolled_out:
            self._app.remove_unused_network()
        if new and not rolled_out:
            progress(
                f"       {release.name} will be rolled out by the next `dynosim up` of"
                f" {self._app.name}"
            )
        progress("")
        progress(gitrefs.VERIFIED)


def _stack_name(checkout: Path, setting: str | None) -> str | None:
    """The stack the build will pick (`container` for heroku.yml, as Heroku says); None when
    the app's files do not pick one (the build then says why)."""
    if (checkout / "heroku.yml").is_file():
        return "container"
    try:
        return runtime.select_stack(checkout, stack=setting).stack.suite
    except DynosimError:
        return None


def _extract(bare: Path, sha: str, folder: Path) -> None:
    """Exactly the commit's tree (nothing untracked), with the hook's environment: git keeps
    a push's objects in quarantine until the hook accepts it."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", sha], cwd=bare, capture_output=True, check=False
    )
    if archive.returncode:
        raise UsageError(f"git archive {sha[:7]}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")


@contextlib.contextmanager
def _outside_git() -> Iterator[None]:
    """Without the hook's GIT_* variables, so the build's own git calls see the checkout."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("GIT_")}
    for key in saved:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)


@contextlib.contextmanager
def _locked(app: str, progress: Progress) -> Iterator[None]:
    """One push of an app at a time: the next waits for the lock file."""
    path = data_dir() / "git" / f"{app}.lock"
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"Waiting for another push of {app} to finish...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
