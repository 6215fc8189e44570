"""Today's user-visible CLI output, pinned exactly (stdout, stderr, exit code) before the running
parts are refactored: the commands that need no Docker engine and no running `dynosim up`.

Every test runs against the `demo` app of test_operations (v1: web, worker and a release phase;
formation web=1, worker=1) in its own DYNOSIM_HOME, with DOCKER_HOST pointing at no engine, so
a command that reaches for Docker fails loudly instead of using the shared one.
"""

import datetime as dt
import importlib.metadata
import json
import re
import textwrap

import pytest
from click.testing import CliRunner
from test_cli import isolated_state, run  # noqa: F401  (isolated_state: DYNOSIM_HOME, autouse)
from test_operations import deployed  # noqa: F401  (the demo app, used by every test)

from dynosim.api import App
from dynosim.cli import main
from dynosim.docker import client as docker_client
from dynosim.docker import dynos
from dynosim.store import FAILED, Addon, Store

pytestmark = pytest.mark.usefixtures("deployed")

NOT_RUNNING = "error: no dynosim up is running for app demo; start one with: dynosim up\n"
NO_APP = "error: Couldn't find that app (nope); deploy it with: dynosim up\n"
#: Release times vary per run: `releases` shows Heroku's time (just made: "~ Ns ago"), --json and
#: releases:info an ISO one. Only these tokens are normalized; everything else is exact.
HEROKU_TIME = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \+0000 \(~ \d+s ago\)")
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")


@pytest.fixture(autouse=True)
def no_docker_engine(tmp_path, monkeypatch):
    """No engine reachable (and none cached from an earlier test); a fixed user for releases."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("LOGNAME", "dev")  # getpass.getuser(): who made a release
    docker_client.connected.cache_clear()
    yield
    docker_client.connected.cache_clear()


@pytest.fixture
def store():
    store = Store()
    yield store
    store.close()


@pytest.fixture
def no_containers(monkeypatch):
    """Docker's view for `ps` without an engine: no dyno containers of the app."""
    monkeypatch.setattr(dynos, "containers", lambda app: [])


@pytest.fixture
def configured():
    """demo's v2: config vars set with config:set (pending: no up runs to roll it out)."""
    result = run("config:set", "-a", "demo", "GREETING=hello world", "MULTI=one\ntwo", "Q=it's")
    assert result.exit_code == 0, result.output


@pytest.fixture
def empty(store, tmp_path):
    """An app recorded (as `up` does before its first build) with no release yet."""
    store.ensure_app("empty", tmp_path / "empty")


@pytest.fixture
def with_addons(store):
    for name, service, plan, var, second in (
        ("postgresql-curly-12345", "heroku-postgresql", "essential-0", "DATABASE_URL", 52),
        ("redis-cubic-54321", "heroku-redis", "mini", "CACHE_URL", 58),
    ):
        created = dt.datetime(2026, 11, 23, 19, 44, second, tzinfo=dt.UTC)
        store.add_addon(Addon("demo", name, service, plan, var, {}, created))


def by_args(rows: list[tuple]) -> list:
    """Parametrize rows whose first item is the arguments: each case is named after them."""
    return [pytest.param(*row, id=" ".join(row[0]) or "no-arguments") for row in rows]


def outcome(result) -> tuple[int, str, str]:
    return result.exit_code, result.stdout, result.stderr


# -- the group -------------------------------------------------------------------------------

HELP = """\
Usage: dynosim [OPTIONS] COMMAND [ARGS]...

  Heroku on your own machine: Procfile apps as uWSGI images, dynos as
  containers.

Options:
  --debug     Show tracebacks.
  --version   Show the version and exit.
  -h, --help  Show this message and exit.

Commands:
  addons              List the app's add-ons.
  addons:create       Provision an add-on: heroku-postgresql or...
  addons:destroy      Remove an add-on, its config var and its data.
  addons:info         Show one add-on (name, or its config var such as...
  certs               Show the local CA that signs the router's HTTPS...
  ci                  Run PATH's tests as Heroku CI does (app.json's...
  ci:run              Run PATH's tests as Heroku CI does (app.json's...
  cluster             Show the local Swarm cluster's nodes, its registry...
  cluster:create      Start a Docker Swarm of N engines as containers here;...
  cluster:destroy     Remove the local Swarm cluster: its nodes, their...
  config              Show the app's config vars.
  config:get          Print one config var's value exactly (an empty line...
  config:set          Set config vars (KEY=VALUE ...): a new release, and...
  config:unset        Remove config vars: a new release, and the dynos...
  dashboard           Open the dashboard of the app's running dynosim up...
  deploy              Build PATH into a new release and roll it out to the...
  doctor              Say what will break on Heroku: PATH (default: here)...
  features            List the app's features (preboot), [+] when enabled.
  features:disable    Disable an app feature; the next deploy follows.
  features:enable     Enable an app feature (preboot); the next deploy...
  git:remote          Add a git remote to the app folder's repository: `git...
  labs                List the app's experimental features, [+] when enabled.
  labs:disable        Disable an experimental feature; running dynos follow.
  labs:enable         Enable an experimental feature; running dynos follow.
  logs                Show the app's recent log lines (kept by the running...
  metrics             Show per-minute metrics, as Heroku's Metrics tab.
  pg:backups          List the app's backups.
  pg:backups:capture  Back the database up with pg_dump into the app's...
  pg:backups:restore  Replace the database's contents with a backup...
  pg:psql             Open a psql session on the app's database, in a...
  pg:reset            Delete every table and row of the app's database.
  ps                  List the app's dynos, grouped by process type.
  ps:restart          Restart all dynos, a process type (web) or one dyno...
  ps:scale            Scale process types: web=3 worker+1 web=2:Standard-2X.
  ps:sleep            Put the app's free/eco dynos to sleep now, as 30 idle...
  ps:stop             Stop one dyno (web.2, run.4821); a formation dyno...
  ps:type             Change dyno sizes only: web=Standard-2X.
  ps:wake             Wake a sleeping app now, as a request would.
  redis:cli           Open a redis-cli session on the app's Redis, in a...
  releases            List the app's releases, newest first.
  releases:info       Show one release (default: the current one).
  releases:rollback   Roll back to a release (default: the one before the...
  run                 Run a command in a one-off dyno (run.N) of the...
  run:detached        Run a command in a one-off dyno whose output goes to...
  stack               Show the stacks and the app's: set with stack:set,...
  stack:build         Make the stack images offline from Debian (done...
  stack:set           Set the app's stack; its next build uses it (like...
  up                  Build PATH (default: here) into a release and run it...
"""


def as_dynosim(*args: str):
    """The group as the `dynosim` script names itself in usage lines (CliRunner says `main`)."""
    return CliRunner().invoke(main, list(args), prog_name="dynosim")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_top_level_help_lists_every_command(flag, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # click wraps help to the terminal: an 80-column one
    assert outcome(as_dynosim(flag)) == (0, HELP, "")


def test_version_is_the_installed_packages():
    version = importlib.metadata.version("dynosim")
    assert outcome(as_dynosim("--version")) == (0, f"dynosim, version {version}\n", "")


@pytest.mark.parametrize(
    ("args", "stderr"),
    by_args(
        [
            (["nope"], "Usage: dynosim [OPTIONS] COMMAND [ARGS]...\nTry 'dynosim --help' for help.\n\nError: No such command 'nope'.\n"),  # noqa: E501
            (["ps:scale", "--bogus"], "Usage: dynosim ps:scale [OPTIONS] [CHANGES]...\nTry 'dynosim ps:scale --help' for help.\n\nError: No such option '--bogus'.\n"),  # noqa: E501
            (["config:get"], "Usage: dynosim config:get [OPTIONS] KEY\nTry 'dynosim config:get --help' for help.\n\nError: Missing argument 'KEY'.\n"),  # noqa: E501
        ]
    ),
)  # fmt: skip
def test_click_usage_errors_are_usage_try_help_and_error_with_exit_2(args, stderr):
    assert outcome(as_dynosim(*args)) == (2, "", stderr)


# -- config vars -----------------------------------------------------------------------------


def test_config_of_a_release_without_vars_is_the_header_alone():
    assert outcome(run("config", "-a", "demo")) == (0, "=== ⬢ demo Config Vars\n", "")


def test_config_set_without_an_up_is_a_pending_release_for_the_next_one():
    assert outcome(run("config:set", "-a", "demo", "A=1", "B=two words")) == (
        0,
        "Setting A, B and restarting ⬢ demo... done, v2\n"
        "v2 will be rolled out by the next `dynosim up` of demo\n",
        "",
    )


def test_config_unset_without_an_up_is_a_pending_release_for_the_next_one(configured):
    assert outcome(run("config:unset", "-a", "demo", "Q", "MULTI")) == (
        0,
        "Unsetting Q, MULTI and restarting ⬢ demo... done, v3\n"
        "v3 will be rolled out by the next `dynosim up` of demo\n",
        "",
    )
    assert run("config", "-a", "demo").stdout == "=== ⬢ demo Config Vars\nGREETING: hello world\n"


@pytest.mark.parametrize(
    ("flags", "stdout"),
    by_args(
        [
            (
                [],
                "=== ⬢ demo Config Vars\n"
                "GREETING: hello world\n"
                "MULTI:    one\n"
                "          two\n"
                "Q:        it's\n",
            ),
            (["--shell"], "GREETING='hello world'\nMULTI='one\ntwo'\nQ='it'\"'\"'s'\n"),
            (["-s"], "GREETING='hello world'\nMULTI='one\ntwo'\nQ='it'\"'\"'s'\n"),
            (
                ["--json"],
                '{\n  "GREETING": "hello world",\n  "MULTI": "one\\ntwo",\n  "Q": "it\'s"\n}\n',
            ),
            (
                ["-j"],
                '{\n  "GREETING": "hello world",\n  "MULTI": "one\\ntwo",\n  "Q": "it\'s"\n}\n',
            ),
        ]
    ),
)
def test_config_human_shell_and_json_layouts(configured, flags, stdout):
    assert outcome(run("config", "-a", "demo", *flags)) == (0, stdout, "")


def test_config_shell_and_json_of_no_vars():
    assert outcome(run("config", "-a", "demo", "--shell")) == (0, "", "")
    assert outcome(run("config", "-a", "demo", "--json")) == (0, "{}\n", "")


@pytest.mark.parametrize(
    ("args", "stdout"),
    by_args(
        [
            (["GREETING"], "hello world\n"),
            (["MULTI"], "one\ntwo\n"),
            (["UNSET"], "\n"),
            (["-s", "GREETING"], "GREETING='hello world'\n"),
            (["--shell", "UNSET"], "UNSET=''\n"),
        ]
    ),
)
def test_config_get_prints_the_value_exactly_or_an_empty_line(configured, args, stdout):
    assert outcome(run("config:get", "-a", "demo", *args)) == (0, stdout, "")


@pytest.mark.parametrize(
    ("args", "error"),
    by_args(
        [
            (["config:set"], "Usage: dynosim config:set KEY=VALUE [KEY2=VALUE2 ...]"),
            (["config:set", "NOEQUALS"], "config:set: 'NOEQUALS' is not KEY=VALUE (the value may be empty)"),  # noqa: E501
            (["config:set", "BAD-KEY=1"], "config:set: invalid config var name 'BAD-KEY': use only letters, digits and _"),  # noqa: E501
            (["config:set", "__X=1"], "config:set: invalid config var name '__X': it may not start with __"),  # noqa: E501
            (["config:unset"], "Usage: dynosim config:unset KEY [KEY2 ...]"),
            (["config:unset", "__X"], "config:unset: invalid config var name '__X': it may not start with __"),  # noqa: E501
        ]
    ),
)  # fmt: skip
def test_bad_config_changes_are_one_line_and_exit_2(args, error):
    assert outcome(run(args[0], "-a", "demo", *args[1:])) == (2, "", f"error: {error}\n")


# -- releases --------------------------------------------------------------------------------


@pytest.fixture
def failed(configured, store):
    """demo's v3: a deploy whose release command failed."""
    store.create_release(
        "demo", image="sha256:0123456789abcdef0123", source_hash="9f8e7d6c",
        description="Deploy 9f8e7d6", process_types={"web": "uwsgi uwsgi.ini"},
    )  # fmt: skip
    store.finish_release("demo", 3, FAILED, "release command exited with status 1")


def test_releases_lists_newest_first_with_herokus_status_notes(failed):
    result = run("releases", "-a", "demo")
    assert (result.exit_code, result.stderr) == (0, "")
    assert HEROKU_TIME.sub("<when>", result.stdout) == (
        "=== ⬢ demo Releases - Current: v1\n"
        "v3   Deploy 9f8e7d6 release command failed                         dev  <when>\n"
        "v2   Set GREETING, MULTI, Q config vars release command executing  dev  <when>\n"
        "v1   Deploy x                                                      dev  <when>\n"
    )


def test_releases_num_limits_the_list(failed):
    result = run("releases", "-a", "demo", "-n", "1")
    assert (result.exit_code, result.stderr) == (0, "")
    assert HEROKU_TIME.sub("<when>", result.stdout) == (
        "=== ⬢ demo Releases - Current: v1\n"
        "v3   Deploy 9f8e7d6 release command failed  dev  <when>\n"
    )


V1_JSON = """{
  "version": 1,
  "description": "Deploy x",
  "status": "succeeded",
  "failure": null,
  "user": "dev",
  "created_at": "<iso>",
  "image": "sha256:x",
  "process_types": {
    "web": "uwsgi uwsgi.ini",
    "worker": "python w.py",
    "release": "migrate"
  },
  "config_vars": []
}"""
V2_JSON = """{
  "version": 2,
  "description": "Set GREETING, MULTI, Q config vars",
  "status": "pending",
  "failure": null,
  "user": "dev",
  "created_at": "<iso>",
  "image": "sha256:x",
  "process_types": {
    "web": "uwsgi uwsgi.ini",
    "worker": "python w.py",
    "release": "migrate"
  },
  "config_vars": [
    "GREETING",
    "MULTI",
    "Q"
  ]
}"""
V3_JSON = """{
  "version": 3,
  "description": "Deploy 9f8e7d6",
  "status": "failed",
  "failure": "release command exited with status 1",
  "user": "dev",
  "created_at": "<iso>",
  "image": "sha256:0123456789abcdef0123",
  "process_types": {
    "web": "uwsgi uwsgi.ini"
  },
  "config_vars": []
}"""


def test_releases_json_names_config_vars_never_values(failed):
    result = run("releases", "-a", "demo", "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    listed = textwrap.indent(f"{V3_JSON},\n{V2_JSON},\n{V1_JSON}", "  ")  # one level deeper
    assert ISO_TIME.sub("<iso>", result.stdout) == f"[\n{listed}\n]\n"
    assert "hello world" not in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    by_args(
        [
            ([], V1_JSON),  # the current release, not the newest pending or failed one
            (["v2"], V2_JSON),
            (["3"], V3_JSON),
        ]
    ),
)
def test_releases_info_json(failed, args, expected):
    result = run("releases:info", "-a", "demo", "--json", *args)
    assert (result.exit_code, result.stderr) == (0, "")
    assert ISO_TIME.sub("<iso>", result.stdout) == expected + "\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    by_args(
        [
            (
                [],
                "=== Release v1\nChange:  Deploy x\nBy:      dev\nWhen:    <iso>\n"
                "Status:  succeeded\nImage:   sha256:x\n\n=== v1 Config vars\n",
            ),
            (
                ["v2"],
                "=== Release v2\nChange:  Set GREETING, MULTI, Q config vars\nBy:      dev\n"
                "When:    <iso>\nStatus:  pending\nImage:   sha256:x\n\n=== v2 Config vars\n"
                "GREETING: hello world\nMULTI:    one\n          two\nQ:        it's\n",
            ),
            (
                ["v3"],
                "=== Release v3\nChange:  Deploy 9f8e7d6\nBy:      dev\nWhen:    <iso>\n"
                "Status:  failed (release command exited with status 1)\n"
                "Image:   sha256:0123456789ab\n\n=== v3 Config vars\n",  # cut at 19 characters
            ),
        ]
    ),
)
def test_releases_info_shows_the_release_then_its_config_vars(failed, args, expected):
    result = run("releases:info", "-a", "demo", *args)
    assert (result.exit_code, result.stderr) == (0, "")
    assert ISO_TIME.sub("<iso>", result.stdout) == expected


@pytest.mark.parametrize(
    ("args", "error"),
    by_args(
        [
            (["releases:info", "v9"], "Couldn't find release v9 of demo"),
            (["releases:info", "x"], "'x' is not a release; name one like v7"),
            (["releases:rollback"], "v1 is the app's first release; nothing to roll back to"),
            (["releases:rollback", "v9"], "Couldn't find release v9 of demo"),
            (["releases:rollback", "v3"], "v3 failed (release command exited with status 1); roll back to one that ran"),  # noqa: E501
            (["releases:rollback", "last"], "'last' is not a release; name one like v7"),
        ]
    ),
)  # fmt: skip
def test_unknown_or_unusable_releases_are_one_line_and_exit_2(failed, args, error):
    assert outcome(run(args[0], "-a", "demo", *args[1:])) == (2, "", f"error: {error}\n")


@pytest.mark.parametrize(
    ("args", "expected"),
    by_args(
        [
            (["releases"], (0, "=== ⬢ empty Releases\nNo releases yet\n", "")),
            (["releases", "--json"], (0, "[]\n", "")),
            (["releases:info"], (2, "", "error: empty has no release\n")),
            (["config"], (2, "", "error: app empty has no release yet; deploy it with: dynosim up\n")),  # noqa: E501
            (["ps:scale", "web=1"], (2, "", "error: app empty has no release yet; deploy it with: dynosim up\n")),  # noqa: E501
            (["releases:rollback"], (2, "", "error: app empty has no release to roll back from\n")),
        ]
    ),
)  # fmt: skip
def test_an_app_without_a_release(empty, args, expected):
    assert outcome(run(args[0], "-a", "empty", *args[1:])) == expected


# -- formation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "stdout"), by_args([([], "No dynos on ⬢ demo\n"), (["--json"], "[]\n")])
)
def test_ps_without_an_up_and_without_containers_shows_no_dynos(no_containers, flags, stdout):
    assert outcome(run("ps", "-a", "demo", *flags)) == (0, stdout, "")


def test_ps_without_an_up_and_without_a_docker_engine_is_one_line_and_exit_3():
    result = run("ps", "-a", "demo")
    # the reason in parentheses is docker-py's own words, which vary with its version
    assert (result.exit_code, result.stdout) == (3, "")
    assert re.sub(r"reachable \(.*\); run", "reachable (<reason>); run", result.stderr) == (
        "error: no Docker engine reachable (<reason>); run scripts/setup (see README.md)"
        " or start one and set DOCKER_HOST\n"
    )


def test_ps_scale_and_type_without_an_up_record_the_formation(no_containers):
    assert outcome(run("ps:scale", "-a", "demo", "web=2", "worker+1")) == (
        0,
        "Scaling dynos... done, now running web at 2:Standard-1X, worker at 2:Standard-1X\n",
        "",
    )
    assert outcome(run("ps:type", "-a", "demo", "web=standard-2x")) == (
        0,
        "Changing dyno types... done, now running web at 2:Standard-2X, worker at 2:Standard-1X\n",
        "",
    )
    assert outcome(run("ps:scale", "-a", "demo", "worker-5")) == (
        0,
        "Scaling dynos... done, now running web at 2:Standard-2X, worker at 0:Standard-1X\n",
        "",
    )
    assert outcome(run("ps", "-a", "demo")) == (0, "No dynos on ⬢ demo\n", "")  # recorded only


@pytest.mark.parametrize(
    ("args", "error"),
    by_args(
        [
            (["ps:scale"], "Usage: dynosim ps:scale web=2 worker+1 web=2:Standard-2X"),
            (["ps:scale", "nope=1"], "Couldn't find that process type (nope)."),
            (["ps:scale", "release=1"], "Couldn't find that process type (release)."),
            (["ps:scale", "web=x"], "Invalid argument 'web=x': expected TYPE=N, TYPE+N, TYPE-N or TYPE=N:SIZE"),  # noqa: E501
            (["ps:scale", "web=1:giant"], "Couldn't find that dyno size (giant). Sizes: Free, Eco, Basic, Standard-1X, Standard-2X, Performance-M, Performance-L."),  # noqa: E501
            (["ps:scale", "web=2:basic"], "Cannot update to more than 1 Basic size dynos per process type."),  # noqa: E501
            (["ps:scale", "web=101"], "Cannot update to more than 100 Standard-1X size dynos per process type."),  # noqa: E501
            (["ps:scale", "web=1:eco"], "Cannot use the following dyno types in the same app: Eco and Standard-1X"),  # noqa: E501
            (["ps:type"], "Usage: dynosim ps:type web=Standard-2X"),
            (["ps:type", "web"], "Invalid argument 'web': expected TYPE=SIZE"),
            (["ps:type", "nope=eco"], "Couldn't find that process type (nope)."),
            (["ps:type", "web=giant"], "Couldn't find that dyno size (giant). Sizes: Free, Eco, Basic, Standard-1X, Standard-2X, Performance-M, Performance-L."),  # noqa: E501
        ]
    ),
)  # fmt: skip
def test_bad_formation_changes_are_one_line_and_exit_2(args, error):
    assert outcome(run(args[0], "-a", "demo", *args[1:])) == (2, "", f"error: {error}\n")


@pytest.mark.parametrize(
    ("args", "stdout"),
    by_args(
        [
            # ps:restart and ps:stop announce before they find no up: the line is left unfinished
            (["ps:restart"], "Restarting all dynos on ⬢ demo... "),
            (["ps:restart", "web"], "Restarting web on ⬢ demo... "),
            (["ps:restart", "web.1"], "Restarting web.1 on ⬢ demo... "),
            (["ps:stop", "web.1"], "Stopping web.1 on ⬢ demo... "),
            (["logs"], ""),
            (["logs", "--tail", "--ps", "web", "--source", "app"], ""),
            (["ps:sleep"], ""),
            (["ps:wake"], ""),
            (["run:detached", "python", "w.py"], ""),
            (["dashboard"], ""),
        ]
    ),
)
def test_commands_needing_a_running_up_are_one_line_and_exit_1(args, stdout):
    assert outcome(run(args[0], "-a", "demo", *args[1:])) == (1, stdout, NOT_RUNNING)


DASHBOARD = "http://127.0.0.1:5080/?token=abc"


@pytest.mark.parametrize(
    ("args", "opens", "stdout"),
    [
        ([], True, f"Dashboard of ⬢ demo: {DASHBOARD}\n"),
        ([], False, f"Dashboard of ⬢ demo: {DASHBOARD}\n"
                    "No web browser found here; open the URL above in one.\n"),
        (["--no-browser"], None, f"Dashboard of ⬢ demo: {DASHBOARD}\n"),
    ],
)  # fmt: skip
def test_dashboard_prints_the_url_and_opens_a_browser_where_there_is_one(
    monkeypatch, args, opens, stdout
):
    import webbrowser

    opened = []
    monkeypatch.setattr(App, "dashboard_url", lambda self: DASHBOARD)
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or opens)
    assert outcome(run("dashboard", "-a", "demo", *args)) == (0, stdout, "")
    assert opened == ([] if opens is None else [DASHBOARD])


def test_dashboard_of_an_up_serving_none_is_one_line_and_exit_2(monkeypatch):
    monkeypatch.setattr(App, "dashboard_url", lambda self: None)
    assert outcome(run("dashboard", "-a", "demo")) == (
        2, "", "error: the dynosim up of demo serves no dashboard\n"
    )  # fmt: skip


# -- which app -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["ps"],
        ["ps:scale", "web=1"],
        ["ps:restart"],
        ["logs"],
        ["config"],
        ["config:set", "A=1"],
        ["releases"],
        ["releases:info"],
        ["stack"],
        ["stack:set", "trixie"],
        ["addons"],
    ],
    ids=" ".join,
)
def test_an_unknown_app_is_one_line_and_exit_2(args):
    assert outcome(run(args[0], "-a", "nope", *args[1:])) == (2, "", NO_APP)


def test_a_malformed_app_name_is_just_not_found():
    assert outcome(run("config", "-a", "Bad_Name..")) == (
        2,
        "",
        "error: Couldn't find that app (Bad_Name..); deploy it with: dynosim up\n",
    )


def test_without_app_the_app_deployed_from_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # demo's folder
    assert outcome(run("config")) == (0, "=== ⬢ demo Config Vars\n", "")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert outcome(run("config")) == (
        2,
        "",
        f"error: no app is deployed from {elsewhere.resolve()}; pass -a APP or run dynosim up"
        " here first\n",
    )


# -- stacks ----------------------------------------------------------------------------------

STACKS = [
    "bullseye (Python 3.9, end-of-life: Heroku refuses it)",
    "bookworm (Python 3.11)",
    "trixie (Python 3.13)",
    "forky (Python 3.14)",
]


def stack_listing(app: str, marked: str) -> str:
    lines = [f"=== ⬢ {app} Available Stacks"]
    lines += [("* " if s.startswith(marked + " ") else "  ") + s for s in STACKS]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("version_file", "marked"),
    [(None, "forky"), ("runtime.txt", "bookworm"), (".python-version", "trixie")],
)
def test_stack_without_a_setting_marks_the_one_the_apps_python_picks(
    tmp_path, version_file, marked
):
    if version_file:
        text = {"bookworm": "python-3.11\n", "trixie": "3.13\n"}[marked]
        (tmp_path / version_file).write_text(text)
    expected = (
        stack_listing("demo", marked) + f"(no stack set: {marked} carries the app's Python)\n"
    )
    assert outcome(run("stack", "-a", "demo")) == (0, expected, "")


REDEPLOY = (
    "You will need to redeploy ⬢ demo for the change to take effect.\n"
    "Run dynosim deploy to trigger a new build on ⬢ demo.\n"
)


def test_stack_set_on_a_deployed_app_says_to_redeploy_and_stack_shows_the_setting():
    assert outcome(run("stack:set", "trixie", "-a", "demo")) == (
        0,
        "Setting stack to trixie... done\n" + REDEPLOY,
        "",
    )
    assert outcome(run("stack", "-a", "demo")) == (0, stack_listing("demo", "trixie"), "")


def test_stack_set_to_an_end_of_life_stack_warns_on_stderr():
    assert outcome(run("stack:set", "bullseye", "-a", "demo")) == (
        0,
        "Setting stack to bullseye... done\n" + REDEPLOY,
        " !     Stack bullseye has Python 3.9, which has reached its upstream end-of-life: Heroku"
        " refuses to build it. dynosim builds it because the stack was set explicitly, to"
        " rehearse an old app.\n",
    )


def test_stack_set_before_the_first_release_says_nothing_about_redeploying(empty):
    assert outcome(run("stack:set", "bookworm", "-a", "empty")) == (
        0,
        "Setting stack to bookworm... done\n",
        "",
    )


def test_stack_set_to_an_unknown_stack_fails_the_line_and_exits_2():
    assert outcome(run("stack:set", "heroku-24", "-a", "demo")) == (
        2,
        "Setting stack to heroku-24... failed\n",
        "error: unknown stack 'heroku-24'; known stacks: bullseye, bookworm, trixie, forky\n",
    )


# -- add-ons ---------------------------------------------------------------------------------


def test_addons_of_an_app_without_any():
    assert outcome(run("addons", "-a", "demo")) == (0, "No add-ons for app demo.\n", "")


def test_addons_is_a_table_in_the_order_they_were_made(with_addons):
    assert outcome(run("addons", "-a", "demo")) == (
        0,
        "Add-on                  Plan                           Attached as\n"
        "postgresql-curly-12345  heroku-postgresql:essential-0  DATABASE_URL\n"
        "redis-cubic-54321       heroku-redis:mini              CACHE_URL\n",
        "",
    )


@pytest.mark.parametrize("name", ["postgresql-curly-12345", "DATABASE_URL", "DATABASE"])
def test_addons_info_by_name_config_var_or_attachment(with_addons, name):
    assert outcome(run("addons:info", "-a", "demo", name)) == (
        0,
        "=== postgresql-curly-12345\n"
        "Attachments:  demo::DATABASE\n"
        "Installed at: 2026-11-23T19:44:52+00:00\n"
        "Plan:         heroku-postgresql:essential-0\n"
        "Config var:   DATABASE_URL\n"
        "Container:    dynosim-demo-postgresql-curly-12345 (data: volume of that name)\n",
        "",
    )


def test_pg_backups_of_an_app_without_any():
    assert outcome(run("pg:backups", "-a", "demo")) == (
        0,
        "=== Backups of ⬢ demo\nNo backups. Capture one with: dynosim pg:backups:capture\n",
        "",
    )


@pytest.mark.parametrize(
    ("args", "stdout", "error"),
    by_args(
        [
            (["addons:info", "REDIS"], "", "Couldn't find that add-on (REDIS) on demo; see: dynosim addons"),  # noqa: E501
            (["addons:destroy", "DATABASE"], "", "destroying postgresql-curly-12345 and all its data is destructive; pass --confirm demo"),  # noqa: E501
            (["addons:destroy", "DATABASE", "--confirm", "nope"], "", "Confirmation did not match demo. Aborted."),  # noqa: E501
            (["addons:destroy", "nope", "--confirm", "demo"], "", "Couldn't find that add-on (nope) on demo; see: dynosim addons"),  # noqa: E501
            (["pg:reset"], "", "resetting postgresql-curly-12345 is destructive; pass --confirm demo"),  # noqa: E501
            (["pg:backups:restore"], "", "demo has no backups; capture one with: dynosim pg:backups:capture"),  # noqa: E501
            (["redis:cli", "nope"], "", "Couldn't find that add-on (nope) on demo; see: dynosim addons"),  # noqa: E501
            # addons:create announces before it checks the service and the attachment name
            (["addons:create", "heroku-mysql"], "Creating heroku-mysql on ⬢ demo... ", "Couldn't find either the add-on service or plan: heroku-mysql. Known: heroku-postgresql, heroku-redis"),  # noqa: E501
            (["addons:create", "heroku-redis", "--as", "my-cache"], "Creating heroku-redis on ⬢ demo... ", "--as 'my-cache': an attachment name must start with a letter and contain only letters, digits and underscores"),  # noqa: E501
        ]
    ),
)  # fmt: skip
def test_addon_commands_refused_before_any_docker_work(with_addons, args, stdout, error):
    assert outcome(run(args[0], "-a", "demo", *args[1:])) == (2, stdout, f"error: {error}\n")


def test_addons_create_as_a_config_var_already_set_is_refused():
    assert run("config:set", "-a", "demo", "CACHE_URL=redis://elsewhere").exit_code == 0
    assert outcome(run("addons:create", "heroku-redis", "-a", "demo", "--as", "cache")) == (
        2,
        "Creating heroku-redis on ⬢ demo... ",
        "error: CACHE_URL is already set on demo; choose another name with --as\n",
    )


@pytest.mark.parametrize(
    ("command", "service"), [("pg:psql", "heroku-postgresql"), ("redis:cli", "heroku-redis")]
)
def test_database_clients_of_an_app_without_the_add_on(command, service):
    assert outcome(run(command, "-a", "demo")) == (
        2,
        "",
        f"error: demo has no {service} add-on; create one with: dynosim addons:create\n",
    )


# -- certs -----------------------------------------------------------------------------------


def test_certs_names_the_ca_and_how_to_trust_it_the_same_each_time(tmp_path):
    ca = tmp_path / "home" / "certs" / "ca.pem"  # the only varying part: this test's home
    expected = f"""=== dynosim local CA: {ca}
The router serves HTTPS (dynosim up --https-port, default 5443) with a certificate for
localhost, 127.0.0.1 and <app>.localhost signed by this CA. Trust it:

  curl --cacert {ca} https://localhost:5443/
  export REQUESTS_CA_BUNDLE={ca}    # Python requests
  export SSL_CERT_FILE={ca}         # OpenSSL-based clients (Python ssl, Ruby, ...)
  sudo cp {ca} /usr/local/share/ca-certificates/dynosim.crt && sudo update-ca-certificates

Its key ({ca.parent}/ca-key.pem) is readable by you only; remove {ca.parent} to start
over with a new CA.
"""
    assert outcome(run("certs")) == (0, expected, "")
    assert outcome(run("certs")) == (0, expected, "")


# -- metrics ---------------------------------------------------------------------------------

NOW = dt.datetime(2026, 12, 4, 19, 30, 30, tzinfo=dt.UTC).timestamp()
MINUTE_1, MINUTE_2 = int(NOW) // 60 * 60 - 120, int(NOW) // 60 * 60 - 60


@pytest.fixture
def recorded(store, monkeypatch):
    """Two minutes of web (requests, memory of web.1, a deploy) and an older one of worker,
    read at a fixed time."""
    from dynosim import metrics, stored

    monkeypatch.setattr(stored, "time", type("Frozen", (), {"time": staticmethod(lambda: NOW)}))
    web, dyno, later = metrics.Bucket(), metrics.Bucket(), metrics.Bucket()
    for ms in (12, 15, 40, 250):
        web.request(200, ms)
    web.request(404, 3)
    web.request(503, None)
    web.event("H12")
    for bucket in (web, dyno):
        bucket.usage(120 * metrics.MB, 0, 512 * metrics.MB, 0.25)
        bucket.usage(140 * metrics.MB, 0, 512 * metrics.MB, 0.75)
    later.request(304, 2)
    worker = metrics.Bucket()
    worker.event("crash")
    store.add_metrics(
        "demo",
        [
            (MINUTE_1, "web", "", "standard", web.summary()),
            (MINUTE_1, "web", "web.1", "standard", dyno.summary()),
            (MINUTE_2, "web", "", "standard", later.summary()),
            (MINUTE_2, "", "", "standard", {"requests": {}, "events": {"deploy": 1}}),
            (MINUTE_1 - 7200, "worker", "", "standard", worker.summary()),
        ],
    )


METRICS_HEADER = (
    "TIME (UTC)          2XX   3XX   4XX   5XX     P50    P95    P99    MAX   RSS MB   MEM"
    "   LOAD  EVENTS\n"
)


@pytest.mark.usefixtures("recorded")
def test_metrics_is_a_row_per_minute_of_the_process_type_with_the_apps_events():
    assert outcome(run("metrics", "-a", "demo")) == (
        0,
        "=== web metrics ⬢ demo, last 1h, per minute\n"
        + METRICS_HEADER
        + "2026-12-04 19:28      4     0     1     1    15ms  250ms  250ms  250ms    130.0   27%"
        "   0.50  H12\n"
        "2026-12-04 19:29      0     1     0     0     2ms    2ms    2ms    2ms        -     -"
        "      -  deploy\n",
        "",
    )


@pytest.mark.usefixtures("recorded")
def test_metrics_of_another_type_further_back():
    assert outcome(run("metrics", "-a", "demo", "-p", "worker", "--since", "24h")) == (
        0,
        "=== worker metrics ⬢ demo, last 24h, per minute\n"
        + METRICS_HEADER
        + "2026-12-04 17:28      0     0     0     0       -      -      -      -        -     -"
        "      -  crash\n"
        "2026-12-04 19:29      0     0     0     0       -      -      -      -        -     -"
        "      -  deploy\n",
        "",
    )


@pytest.mark.usefixtures("recorded")
def test_metrics_as_json_has_the_dynos_beside_the_type():
    code, stdout, stderr = outcome(run("metrics", "-a", "demo", "--since", "30m", "--json"))
    assert (code, stderr) == (0, "")
    first, second = json.loads(stdout)
    memory = {"samples": 2, "rss_mb": 130.0, "rss_max_mb": 140.0, "swap_max_mb": 0.0,
              "quota_mb": 512.0}  # fmt: skip
    assert first == {
        "time": "2026-12-04T19:28:00+00:00",
        "process_type": "web",
        "requests": {"2xx": 4, "3xx": 0, "4xx": 1, "5xx": 1},
        "response_ms": {"count": 5, "p50": 15, "p95": 250, "p99": 250, "max": 250},
        "memory": memory,
        "load": {"mean": 0.5, "max": 0.75},
        "events": {"H12": 1},
        "dynos": {"web.1": {"memory": memory, "load": {"mean": 0.5, "max": 0.75}}},
    }
    assert second["time"] == "2026-12-04T19:29:00+00:00"
    assert second["events"] == {"deploy": 1} and second["memory"] is None


@pytest.mark.usefixtures("recorded")
@pytest.mark.parametrize(
    ("args", "stdout"),
    [
        (["-p", "clock"], "No metrics for clock of ⬢ demo in the last 1h (recorded while dynosim up serves the app).\n"),  # noqa: E501
        (["--json", "-p", "worker", "--since", "1m"], "[]\n"),
    ],
)  # fmt: skip
def test_metrics_without_data_say_so_in_one_line(args, stdout):
    assert outcome(run("metrics", "-a", "demo", *args)) == (0, stdout, "")


def test_metrics_before_anything_was_recorded_need_no_up():
    assert outcome(run("metrics", "-a", "demo", "--since", "2d")) == (
        0,
        "No metrics for web of ⬢ demo in the last 2d (recorded while dynosim up serves the app).\n",
        "",
    )


@pytest.mark.parametrize(("args", "stderr"), [
    (["-a", "demo", "--since", "1w"], "error: --since takes minutes, hours or days: 30m, 1h, 24h, 2d (not '1w')\n"),  # noqa: E501
    (["-a", "nope"], NO_APP),
])  # fmt: skip
def test_metrics_refusals(args, stderr):
    assert outcome(run("metrics", *args)) == (2, "", stderr)
