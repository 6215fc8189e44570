"""Heroku's app and attachment name rules, checked before anything is written."""

from pathlib import Path

import pytest

from dynosim import names
from dynosim.errors import UsageError


@pytest.mark.parametrize("name", ["a1", "flask-app", "x" * 30, "my-app-2"])
def test_heroku_app_names_pass(name):
    assert names.check_app_name(name) == name


@pytest.mark.parametrize(
    "name", ["Bad_Name..", "a", "1app", "app-", "-app", "x" * 31, "my--app", "../etc", "a b"]
)
def test_other_app_names_are_refused_naming_the_option(name):
    with pytest.raises(UsageError, match=rf"^--app {name!r}: an app name must start"):
        names.check_app_name(name)


@pytest.mark.parametrize(
    ("folder", "name"),
    [("flask_app", "flask-app"), ("My App!", "my-app"), ("2048", "app-2048"), ("x" * 40, "x" * 30)],
)
def test_folder_names_are_converted(tmp_path, folder, name):
    (tmp_path / folder).mkdir()
    assert names.app_name_from_folder(tmp_path / folder) == name


def test_a_folder_name_that_cannot_be_converted_is_refused(tmp_path):
    (tmp_path / "___").mkdir()
    with pytest.raises(UsageError, match="cannot make an app name from the folder name"):
        names.app_name_from_folder(Path(tmp_path / "___"))


@pytest.mark.parametrize(("given", "var"), [("cache", "CACHE_URL"), ("QUEUE_URL", "QUEUE_URL")])
def test_attachment_names(given, var):
    assert names.check_attachment(given) == var


@pytest.mark.parametrize("given", ["9LIVES", "my-cache", "a b", "", "_X"])
def test_bad_attachment_names_are_refused(given):
    with pytest.raises(UsageError, match="an attachment name must start with a letter"):
        names.check_attachment(given)
