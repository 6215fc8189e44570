"""The Python API's edge: bad input is one of dynosim's errors, raised before any Docker work."""

import socket

import pytest

from dynosim import App
from dynosim.errors import ConfigError, UsageError
from dynosim.store import Store


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "home"))


def test_an_app_is_named_after_its_folder(tmp_path):
    folder = tmp_path / "My_Shop"
    folder.mkdir()
    assert App.open(folder).name == "my-shop"
    assert App.open(folder, name="shop").name == "shop"


def test_opening_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "Procfile").write_text("web: x\n")
    with pytest.raises(UsageError, match="is not a folder"):
        App.open(tmp_path / "Procfile")


def test_an_unknown_app_name_says_how_to_deploy_it():
    with pytest.raises(UsageError, match=r"Couldn't find that app \(nope\); deploy it with"):
        App.named("nope")


def test_a_deployed_app_is_found_by_name_or_folder(tmp_path, monkeypatch):
    store = Store()
    store.ensure_app("shop", tmp_path)
    store.close()
    assert App.named("shop").path == tmp_path
    monkeypatch.chdir(tmp_path)
    assert App.named().name == "shop"


def test_starting_on_a_taken_port_fails_before_building(tmp_path):
    (tmp_path / "Procfile").write_text("web: x\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UsageError, match="already in use"):
            App.open(tmp_path, name="busy").start(port=taken.getsockname()[1])
    assert Store().apps() == {}  # nothing recorded


def test_config_of_an_app_without_a_release_is_a_usage_error():
    with pytest.raises(UsageError, match="has no release yet"):
        App("ghost").config_set(KEY="value")


def test_a_bad_config_var_name_writes_nothing(tmp_path):
    store = Store()
    store.ensure_app("shop", tmp_path)
    store.create_release(
        "shop", image="sha256:1", images={}, source_hash="abc", description="Deploy abc",
        process_types={"web": "x"}, config={},
    )  # fmt: skip
    store.close()
    app = App.named("shop")
    with pytest.raises(ConfigError):
        app.config_set({"BAD-NAME": "1"}, roll_out=False)
    assert [r.version for r in app.releases()] == [1]
