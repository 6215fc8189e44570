"""`dynosim git:remote` and the pre-receive hook, with real git and no Docker (the deploy is
replaced where a build would start)."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from dynosim import deployment, gitpush
from dynosim.api import App
from dynosim.cli import main
from dynosim.errors import BuildError


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "home"))


def git(folder, *args):
    return subprocess.run(
        ["git", "-C", str(folder), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.fixture
def repo(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "Procfile").write_text("web: python app.py\n")
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", ".")
    git(folder, "commit", "-qm", "first")
    return folder


def run(folder, *args):
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        os.chdir(cwd)


def pushed_aside(repo):
    """The head commit in the app's bare repository (pushed to a branch that does not build)."""
    run(repo, "git:remote")
    git(repo, "push", "-q", "dynosim", "main:aside")
    return git(repo, "rev-parse", "HEAD").stdout.strip()


def test_git_remote_adds_an_owner_only_bare_repository_with_its_hook(repo):
    result = run(repo, "git:remote")
    bare = gitpush.repository("shop")
    assert result.exit_code == 0, result.output
    assert result.output == f"set git remote dynosim to {bare}\n"
    assert git(repo, "remote", "get-url", "dynosim").stdout.strip() == str(bare)
    assert bare.stat().st_mode & 0o777 == 0o700
    hook = (bare / "hooks" / "pre-receive").read_text()
    assert f"exec {sys.executable} -m dynosim git:receive shop" in hook
    assert os.access(bare / "hooks" / "pre-receive", os.X_OK)


def test_git_remote_takes_another_name_and_can_be_run_again(repo):
    assert run(repo, "git:remote", "-r", "local").exit_code == 0
    assert run(repo, "git:remote", "-r", "local").exit_code == 0
    assert git(repo, "remote").stdout.split() == ["local"]


def test_a_folder_that_is_not_a_git_repository_is_one_line(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "Procfile").write_text("web: x\n")
    result = run(folder, "git:remote")
    assert result.exit_code != 0
    assert result.output == f"error: {folder} is not a git repository; run git init there first\n"


def test_a_folder_below_the_top_of_its_repository_is_refused(repo):
    inner = repo / "inner"
    inner.mkdir()
    (inner / "Procfile").write_text("web: x\n")
    result = run(inner, "git:remote")
    assert result.exit_code != 0
    assert "is not the top of its git repository" in result.output


def test_a_push_to_another_branch_is_not_built(repo, monkeypatch):
    run(repo, "git:remote")
    pushed = git(repo, "push", "dynosim", "main:feature")
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: Pushed to branch other than [main, master], skipping build." in pushed.stderr
    assert App.named("shop").releases() == []


def test_a_failed_build_rejects_the_push(repo, monkeypatch):
    def failing(*args, **kwargs):
        raise BuildError("requirements.txt: no such package")

    monkeypatch.setattr(deployment, "deploy", failing)
    sha = pushed_aside(repo)
    lines = []
    app = App.named("shop")
    assert not app.git.receive(f"{gitpush.gitrefs.ZERO} {sha} refs/heads/main\n", lines.append)
    assert lines[-2:] == [
        " !     Push rejected, requirements.txt: no such package",
        " !     Push failed",
    ]


def test_the_build_gets_exactly_the_commit_described_by_it(repo, monkeypatch):
    seen = {}

    def recording(store, app, folder, **kwargs):
        seen.update(files=sorted(p.name for p in folder.iterdir()), **kwargs)
        seen["git_env"] = [k for k in os.environ if k.startswith("GIT_")]
        raise BuildError("stop here")

    (repo / "untracked.txt").write_text("not pushed\n")
    monkeypatch.setattr(deployment, "deploy", recording)
    sha = pushed_aside(repo)
    monkeypatch.chdir(repo)
    App.named("shop").git.receive(f"{gitpush.gitrefs.ZERO} {sha} refs/heads/main\n")
    assert seen["files"] == ["Procfile"]
    assert seen["description"] == f"Deploy {sha[:7]}"
    assert seen["home"] == repo
    assert seen["git_env"] == []


def test_deleting_main_is_rejected(repo):
    run(repo, "git:remote")
    lines = []
    update = f"{'a' * 40} {gitpush.gitrefs.ZERO} refs/heads/main\n"
    assert not App.named("shop").git.receive(update, lines.append)
    assert lines == [" !     Push rejected, cannot delete main branch"]


def test_two_pushes_of_an_app_are_serialised(repo, monkeypatch):
    import fcntl
    import threading

    sha = pushed_aside(repo)
    waiting, deployed = threading.Event(), threading.Event()

    def deploying(*args, **kwargs):
        deployed.set()
        raise BuildError("stop here")

    def progress(line):
        if line.startswith("Waiting for another push of shop"):
            waiting.set()

    monkeypatch.setattr(deployment, "deploy", deploying)
    app = App.named("shop")
    update = f"{gitpush.gitrefs.ZERO} {sha} refs/heads/main\n"
    with open(gitpush.repository("shop").parent / "shop.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a first push building
        second = threading.Thread(target=app.git.receive, args=(update, progress))
        second.start()
        assert waiting.wait(30)
        assert not deployed.is_set()
        fcntl.flock(lock, fcntl.LOCK_UN)
        second.join(30)
    assert deployed.is_set()
