"""The Docker adapter's edges without an engine: SDK errors out as EngineError in the CLI's
words, a missing image as None, and .dockerignore matched as the docker CLI matches it."""

from types import SimpleNamespace

import docker.errors
import pytest

from dynosim import addons
from dynosim.docker import client, dockerignore, images
from dynosim.errors import EngineError, UsageError


def test_an_sdk_error_leaves_the_adapter_as_engine_error_in_the_words_the_cli_shows():
    refused = docker.errors.APIError("500 Server Error", explanation="mkdir /x: read-only\n")

    @client.engine_errors
    def refuse() -> None:
        raise refused

    with pytest.raises(EngineError) as raised:
        refuse()
    assert str(raised.value) == "Docker engine: mkdir /x: read-only"
    assert raised.value.exit_code == 3 and raised.value.__cause__ is refused


def test_other_errors_pass_the_adapter_unchanged():
    @client.engine_errors
    def broken() -> None:
        raise KeyError("dyno")

    with pytest.raises(KeyError):
        broken()


def engine_with_images(get):
    return lambda: SimpleNamespace(images=SimpleNamespace(get=get))


def test_image_id_is_none_for_a_missing_image_and_engine_error_for_a_refusal(monkeypatch):
    def get(name):
        if name == "gone":
            raise docker.errors.ImageNotFound("No such image: gone")
        if name == "refused":
            raise docker.errors.APIError("500", explanation="engine busy")
        return SimpleNamespace(id=f"sha256:{name}")

    monkeypatch.setattr(client, "client", engine_with_images(get))
    assert images.image_id("here") == "sha256:here" and images.exists("here")
    assert images.image_id("gone") is None and not images.exists("gone")
    with pytest.raises(EngineError, match="^Docker engine: engine busy$"):
        images.exists("refused")


def test_dockerignore_comments_folders_and_exceptions(tmp_path):
    (tmp_path / ".dockerignore").write_text("# notes\n*.log\nbuild\n!keep.log\n  \n")
    excluded = dockerignore.excluded(tmp_path)
    assert [excluded(p) for p in ("app.log", "keep.log", "build/out.o", "src/a.py")] == [
        True,
        False,
        True,
        False,
    ]
    assert not excluded("# notes")


def test_without_a_dockerignore_nothing_is_excluded(tmp_path):
    excluded = dockerignore.excluded(tmp_path)
    assert not excluded("app.log") and not excluded(".dockerignore")


@pytest.mark.parametrize(
    ("printed", "message"),
    [("connecting\npg_dump: error: no route\n", "pg_dump failed: pg_dump: error: no route"),
     ("", "pg_dump failed: exit status 1")],
)  # fmt: skip
def test_a_failing_one_off_client_is_its_command_and_last_line(monkeypatch, printed, message):
    monkeypatch.setattr(addons.oneoffs, "run", lambda container: 1)
    monkeypatch.setattr(addons.oneoffs, "output", lambda container: printed)
    with pytest.raises(UsageError) as raised:
        addons._finish(object(), ["pg_dump", "-Fc", "-f", "/tmp/backup.dump"])
    assert str(raised.value) == message
