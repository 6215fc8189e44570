"""`git push dynosim main` against real git and Docker: the pushed commit becomes a release,
a running `up` rolls it out, a failed build rejects the push and the old release serves on."""

from __future__ import annotations

import subprocess

from conftest import dynosim, tiny_app

from dynosim import App

UP = r"heroku\[web\.1\]: State changed from starting to up"
WEB = "web: uwsgi --http-socket :$PORT --master --die-on-term --wsgi-file app.py --callable app\n"
APP = (
    "def app(environ, start_response):\n"
    '    start_response("200 OK", [("Content-Type", "text/plain")])\n'
    "    return [{code!r}]\n"
)


def git(folder, *args: str) -> subprocess.CompletedProcess[str]:
    identity = ["-c", "user.email=test@example.com", "-c", "user.name=test"]
    return subprocess.run(
        ["git", "-C", str(folder), *identity, *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def commit(folder, message: str, **files: str) -> str:
    for name, text in files.items():
        (folder / name).write_text(text)
    git(folder, "add", "-A")
    assert git(folder, "commit", "-qm", message).returncode == 0
    return git(folder, "rev-parse", "HEAD").stdout.strip()


def test_a_push_deploys_its_commit_and_a_running_up_rolls_the_next_out(up, tmp_path):
    folder = tiny_app(tmp_path / "pushed", WEB, **{"app.py": APP.format(code=b"one")})
    git(folder, "init", "-q", "-b", "main")
    first = commit(folder, "first")
    (folder / "scratch.txt").write_text("untracked: never deployed\n")
    added = dynosim("git:remote", cwd=folder)
    assert added.returncode == 0, added.stderr

    pushed = git(folder, "push", "dynosim", "main")
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: -----> Released v1" in pushed.stderr
    assert "v1 will be rolled out by the next `dynosim up` of pushed" in pushed.stderr
    assert "remote: Verifying deploy... done." in pushed.stderr
    listed = dynosim("releases", "-a", "pushed").stdout
    assert f"v1   Deploy {first[:7]}" in listed
    # the push built exactly what a deploy of the same commit's files builds: the same image
    same = dynosim("deploy", str(folder))
    assert same.returncode == 0, same.stderr
    assert "Source unchanged" in same.stdout
    assert "Current release v1 already runs this build" in same.stdout

    process = up(folder)  # the working tree builds the same image: up serves pending v1
    process.wait_for(UP)
    assert process.get().text == "one"

    second = commit(folder, "second", **{"app.py": APP.format(code=b"two")})
    pushed = git(folder, "push", "dynosim", "main")
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: -----> Released v2" in pushed.stderr
    assert process.get().text == "two"
    assert f"v2   Deploy {second[:7]}" in dynosim("releases", "-a", "pushed").stdout

    commit(folder, "broken", Procfile="web uwsgi without a colon\n")
    rejected = git(folder, "push", "dynosim", "main")
    assert rejected.returncode != 0
    assert "remote:  !     Push rejected, " in rejected.stderr
    assert "! [remote rejected] main -> main (pre-receive hook declined)" in rejected.stderr
    assert process.get().text == "two"
    assert "v3" not in dynosim("releases", "-a", "pushed").stdout

    commit(folder, "failing release phase", Procfile=WEB + "release: exit 3\n")
    failed = git(folder, "push", "dynosim", "main")
    assert failed.returncode != 0
    assert "remote:  !     Push rejected, " in failed.stderr
    assert process.get().text == "two"
    assert "release command failed" in dynosim("releases", "-a", "pushed").stdout

    elsewhere = git(folder, "push", "dynosim", "main:feature")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "remote: Pushed to branch other than [main, master], skipping build." in (
        elsewhere.stderr
    )
    assert process.get().text == "two"

    git(folder, "reset", "-q", "--hard", first)
    assert git(folder, "push", "dynosim", "main").returncode != 0  # not a fast-forward
    forced = git(folder, "push", "--force", "dynosim", "main")
    assert forced.returncode == 0, forced.stderr
    assert process.get().text == "one"
    # the running up built that push: the very image the hook built itself for v1, with no up
    newest, first_release = App.named("pushed").releases(1)[0], App.named("pushed").release("v1")
    assert (newest.description, newest.image) == (f"Deploy {first[:7]}", first_release.image)
