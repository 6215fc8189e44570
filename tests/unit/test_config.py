"""Config vars and releases without Docker: Heroku's rules, the CLI's words, nothing written on
bad input, and what a rollback chooses."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest
from click.testing import CliRunner

from dynosim import config, releases
from dynosim.cli import main
from dynosim.errors import ConfigError, UsageError
from dynosim.store import FAILED, SUCCEEDED, Store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "home"))
    store = Store()
    store.ensure_app("demo", tmp_path)
    store.create_release(
        "demo",
        image="sha256:one",
        source_hash="1a2b3c4d",
        description="Deploy 1a2b3c4",
        process_types={"web": "uwsgi uwsgi.ini"},
        status=SUCCEEDED,
    )
    return store


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_pairs_split_at_the_first_equals_sign():
    assert config.parse_pairs(["A=b=c", "EMPTY=", "X_1=  spaced "]) == {
        "A": "b=c",
        "EMPTY": "",
        "X_1": "  spaced ",
    }


@pytest.mark.parametrize(
    ("arg", "complaint"),
    [
        ("NOEQUALS", "'NOEQUALS' is not KEY=VALUE"),
        ("BAD-KEY=1", "invalid config var name 'BAD-KEY'"),
        ("=value", "invalid config var name ''"),
        ("__PRIVATE=1", "may not start with __"),
        ("NUL=a\0b", "cannot contain a NUL"),
    ],
)
def test_bad_pairs_are_refused_without_showing_the_value(arg, complaint):
    with pytest.raises(ConfigError, match=complaint) as caught:
        config.parse_pairs([arg])
    value = arg.partition("=")[2]
    assert not value or value not in str(caught.value)


def test_config_vars_are_limited_to_32_kb_in_all():
    config.check_size({"K": "x" * (32 * 1024 - 1)})
    with pytest.raises(ConfigError, match="32768 bytes"):
        config.check_size({"K": "x" * (32 * 1024)})


def test_the_three_formats_of_config():
    values = {"B": "two\nlines", "A_LONGER": "it's", "EMPTY": ""}
    assert config.format_human("demo", values) == (
        "=== ⬢ demo Config Vars\nA_LONGER: it's\nB:        two\n          lines\nEMPTY:    "
    )
    assert json.loads(config.format_json(values)) == values
    shell = config.format_shell(values)
    script = f'{shell}\nprintf \'%s|\' "$A_LONGER" "$B" "$EMPTY"'
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout == (
        "it's|two\nlines||"
    )
    assert shlex.split(shell.splitlines()[0]) == ["A_LONGER=it's"]


def test_config_set_without_a_running_up_records_a_release_for_the_next_one(store):
    result = run("config:set", "-a", "demo", "GREETING=hello world", "EMPTY=")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Setting GREETING, EMPTY and restarting ⬢ demo... done, v2\n"
        "v2 will be rolled out by the next `dynosim up` of demo\n"
    )
    assert run("config:get", "-a", "demo", "GREETING").output == "hello world\n"
    assert run("config:get", "-a", "demo", "MISSING").output == "\n"
    pending = store.latest_release("demo")
    assert (pending.status, pending.description) == ("pending", "Set GREETING, EMPTY config vars")
    assert pending.image == "sha256:one"
    assert store.current_release("demo").version == 1


def test_bad_config_set_writes_nothing(store):
    for args in (["BAD-KEY=1"], ["OK=1", "NOEQUALS"], ["BIG=" + "x" * 40000]):
        result = run("config:set", "-a", "demo", *args)
        assert result.exit_code == 2
        assert result.output.startswith("error: ")
        assert "x" * 100 not in result.output  # the value is not echoed
    assert [r.version for r in store.releases("demo")] == [1]


def test_config_set_imports_a_dotenv_file_and_arguments_win(store, tmp_path):
    env_file = tmp_path / "prod.env"
    env_file.write_text("# comment\nexport A='from file'\nB=\"line\\nbreak\"\n")
    assert (
        run("config:set", "-a", "demo", "--from-file", str(env_file), "A=argument").exit_code == 0
    )
    assert store.latest_release("demo").config == {"A": "argument", "B": "line\nbreak"}


def test_config_unset_and_the_release_list(store):
    run("config:set", "-a", "demo", "A=1", "B=2")
    result = run("config:unset", "-a", "demo", "A")
    assert result.output.startswith("Unsetting A and restarting ⬢ demo... done, v3\n")
    assert store.latest_release("demo").config == {"B": "2"}
    listing = run("releases", "-a", "demo").output.splitlines()
    assert listing[0] == "=== ⬢ demo Releases - Current: v1"
    assert listing[1].startswith("v3   Remove A config vars release command executing  root  ")
    assert listing[3].startswith("v1   Deploy 1a2b3c4")
    info = json.loads(run("releases:info", "-a", "demo", "v3", "--json").output)
    assert info["config_vars"] == ["B"] and "2" not in json.dumps(info["config_vars"])


def test_failed_releases_are_skipped_by_the_next_change_and_by_rollbacks(store):
    releases.set_config(store, "demo", {"A": "1"})  # v2
    store.finish_release("demo", 2, SUCCEEDED)
    releases.set_config(store, "demo", {"B": "broken"})  # v3
    store.finish_release("demo", 3, FAILED, "release command exited with status 1")
    assert releases.set_config(store, "demo", {"C": "3"}).config == {"A": "1", "C": "3"}
    assert releases.rollback_target(store, "demo", None).version == 1  # before current v2
    with pytest.raises(UsageError, match="v3 failed"):
        releases.rollback_target(store, "demo", 3)
    with pytest.raises(UsageError, match="Couldn't find release v9"):
        releases.rollback_target(store, "demo", 9)
    rolled = releases.rollback(store, "demo", store.release("demo", 1))
    assert (rolled.description, rolled.config, rolled.image) == ("Rollback to v1", {}, "sha256:one")


def test_release_names_are_v_and_a_number():
    assert releases.parse_version("v12") == releases.parse_version("12") == 12
    with pytest.raises(UsageError, match="'twelve' is not a release"):
        releases.parse_version("twelve")


def test_a_required_app_json_var_without_a_value_stops_up_before_the_build(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "home"))
    app_dir = tmp_path / "needy"
    app_dir.mkdir()
    (app_dir / "Procfile").write_text("web: uwsgi uwsgi.ini\n")
    (app_dir / "app.json").write_text('{"env": {"API_TOKEN": {"required": true}}}')
    result = run("up", str(app_dir), "--port", "0")
    assert result.exit_code == 2
    assert "env.API_TOKEN is required and has no value" in result.output
    assert Store().apps() == {}
