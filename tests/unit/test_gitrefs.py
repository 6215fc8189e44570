"""The pure rules of a push: pre-receive's input, which branch deploys, Heroku's words."""

import pytest

from dynosim import gitrefs
from dynosim.gitrefs import RefUpdate

OLD, NEW = "a" * 40, "b" * 40


def test_pre_receive_lines_are_parsed_in_order():
    text = f"{gitrefs.ZERO} {NEW} refs/heads/main\n{OLD} {NEW} refs/tags/v1\n\n"
    assert gitrefs.parse(text) == [
        RefUpdate(gitrefs.ZERO, NEW, "refs/heads/main"),
        RefUpdate(OLD, NEW, "refs/tags/v1"),
    ]


@pytest.mark.parametrize("line", ["main", f"{OLD} refs/heads/main", f"xyz {NEW} refs/heads/main"])
def test_a_line_git_would_not_send_is_an_error(line):
    with pytest.raises(ValueError, match="not a pre-receive line"):
        gitrefs.parse(line)


def test_branch_and_deletion():
    assert RefUpdate(OLD, NEW, "refs/heads/feature/x").branch == "feature/x"
    assert RefUpdate(OLD, NEW, "refs/tags/v1").branch is None
    assert RefUpdate(OLD, gitrefs.ZERO, "refs/heads/main").deletes
    assert not RefUpdate(gitrefs.ZERO, NEW, "refs/heads/main").deletes


@pytest.mark.parametrize("branch", ["main", "master"])
def test_main_or_master_deploys(branch):
    update = RefUpdate(OLD, NEW, f"refs/heads/{branch}")
    assert gitrefs.to_deploy([update]) == (update, [])


def test_another_branch_is_skipped_with_herokus_message():
    update = RefUpdate(OLD, NEW, "refs/heads/feature")
    assert gitrefs.to_deploy([update]) == (
        None,
        ["Pushed to branch other than [main, master], skipping build."],
    )


def test_the_last_of_main_and_master_deploys_and_tags_say_nothing():
    main = RefUpdate(OLD, NEW, "refs/heads/main")
    master = RefUpdate(OLD, OLD, "refs/heads/master")
    tag = RefUpdate(gitrefs.ZERO, NEW, "refs/tags/v1")
    assert gitrefs.to_deploy([main, tag, master]) == (master, [])


def test_deleting_main_is_rejected_as_heroku_does():
    with pytest.raises(gitrefs.PushRejected, match="^Push rejected, cannot delete main branch$"):
        gitrefs.to_deploy([RefUpdate(OLD, gitrefs.ZERO, "refs/heads/main")])


def test_a_deploy_is_described_by_its_commit():
    assert gitrefs.description("58b203e1" + "0" * 32) == "Deploy 58b203e"
