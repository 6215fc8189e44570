"""Heroku CI's pure parts: app.json's environments.test, the test run's variables and config,
the test dyno's script (run here by bash), outcomes, timeouts, the test build's recipe, the
throwaway app's name and records."""

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from dynosim import appjson, build, ci, scratch, testrun
from dynosim.appjson import AddonSpec, EnvVar, TestEnvironment
from dynosim.errors import ConfigError, ManifestError, UsageError
from dynosim.store import Store
from dynosim.testrun import Metadata, Status


def parse(data: dict) -> appjson.AppJson:
    return appjson.parse(json.dumps(data, indent=2))


def environment(**test) -> TestEnvironment:
    return parse({"environments": {"test": test}}).test


META = Metadata("6f1c1a4e-0000-4000-8000-000000000001", 7, "main", "a" * 40)


# -- app.json's environments.test ------------------------------------------------------------


def test_the_test_environment_is_read_whole():
    spec = parse(
        {
            "addons": ["heroku-postgresql"],
            "environments": {
                "test": {
                    "scripts": {"test-setup": "python manage.py migrate", "test": "pytest -q"},
                    "env": {"DJANGO_SETTINGS": "test", "SECRET": {"generator": "secret"}},
                    "addons": ["heroku-postgresql:in-dyno", {"plan": "heroku-redis", "as": "C"}],
                    "formation": {"test": {"quantity": 1, "size": "performance-l"}},
                    "buildpacks": [{"url": "heroku/python"}],
                }
            },
        }
    )
    assert spec.addons == (AddonSpec("heroku-postgresql"),)
    assert spec.test == TestEnvironment(
        "python manage.py migrate",
        "pytest -q",
        {
            "DJANGO_SETTINGS": EnvVar("DJANGO_SETTINGS", "test", False, None, None),
            "SECRET": EnvVar("SECRET", None, False, "secret", None),
        },
        (AddonSpec("heroku-postgresql:in-dyno"), AddonSpec("heroku-redis", "C")),
        {"test": (1, "performance-l")},
    )
    assert spec.warnings == []


def test_no_environments_or_no_test_environment_is_none():
    assert parse({}).test is None
    assert parse({"environments": {"review": {}}}).test is None


def test_addons_not_given_in_the_test_environment_are_the_apps():
    spec = parse({"addons": ["heroku-redis"], "environments": {"test": {"scripts": {"test": "t"}}}})
    assert spec.test.addons is None
    assert testrun.addons(spec) == (AddonSpec("heroku-redis"),)
    spec = parse({"addons": ["heroku-redis"], "environments": {"test": {"addons": []}}})
    assert testrun.addons(spec) == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"environments": []}, "app.json: environments: expected an object"),
        ({"environments": {"test": "pytest"}}, "app.json: environments.test: expected an object"),
        ({"environments": {"test": {"scripts": {"test": ""}}}},
         "app.json: environments.test.scripts.test: expected a command (a string)"),
        ({"environments": {"test": {"scripts": {"test-setup": ["a"]}}}},
         "app.json: environments.test.scripts.test-setup: expected a command (a string)"),
        ({"environments": {"test": {"env": {"BAD-NAME": "1"}}}},
         "app.json: environments.test.env.BAD-NAME: not a config var name"),
        ({"environments": {"test": {"env": {"X": {"required": "yes"}}}}},
         "app.json: environments.test.env.X.required: expected true or false"),
        ({"environments": {"test": {"addons": "heroku-redis"}}},
         "app.json: environments.test.addons: expected a list of plans"),
        ({"environments": {"test": {"addons": [7]}}},
         'app.json: environments.test.addons[0]: expected a plan or {"plan": ...}'),
        ({"environments": {"test": {"addons": [{"as": "DB"}]}}},
         "app.json: environments.test.addons[0].plan: no plan"),
        ({"environments": {"test": {"formation": {"test": {"quantity": -1}}}}},
         "app.json: environments.test.formation.test.quantity: expected a whole number >= 0"),
        ({"addons": [{"plan": 5}]}, "app.json: addons[0].plan: expected a string"),
    ],
)  # fmt: skip
def test_schema_errors_name_the_key_path(data, message):
    with pytest.raises(ManifestError) as error:
        parse(data)
    assert str(error.value).startswith(message)


def test_unknown_keys_of_the_test_environment_are_warnings():
    spec = parse({"environments": {"test": {"scripts": {"test": "t"}, "stack": "x"}}})
    assert spec.warnings == ["app.json: environments.test.stack: unknown key (ignored)"]


# -- what a test run needs, and says when it is missing --------------------------------------


def test_without_app_json_or_test_environment_the_error_says_what_to_add(tmp_path):
    with pytest.raises(UsageError, match=r"has no app\.json; add one with .*environments"):
        testrun.test_environment(None, tmp_path)
    with pytest.raises(ManifestError) as error:
        testrun.test_environment(parse({}), tmp_path)
    assert str(error.value) == (
        f"{tmp_path}/app.json: no environments.test; add"
        ' "environments": {"test": {"scripts": {"test": "pytest"}}}'
    )
    assert "\n" not in str(error.value)
    with pytest.raises(ManifestError, match=r"environments\.test\.scripts\.test: no test command"):
        testrun.test_environment(parse({"environments": {"test": {}}}), tmp_path)


def test_the_test_config_puts_the_test_env_over_the_apps_and_generates_secrets():
    spec = parse(
        {
            "env": {"MODE": "production", "KEEP": "1", "TOKEN": {"generator": "secret"}},
            "environments": {"test": {"env": {"MODE": "test"}}},
        }
    )
    config = appjson.test_config(spec)
    assert {k: v for k, v in config.items() if k != "TOKEN"} == {"MODE": "test", "KEEP": "1"}
    assert len(config["TOKEN"]) == 64


def test_a_required_var_without_value_fails_naming_where_to_give_it():
    spec = parse({"env": {"API_KEY": {"description": "key"}}, "environments": {"test": {}}})
    with pytest.raises(ConfigError) as error:
        appjson.test_config(spec)
    assert str(error.value) == (
        "app.json: env.API_KEY is required and has no value;"
        ' give it a "value" in app.json\'s environments.test.env'
    )


def test_heroku_ci_variables_win_over_the_apps_config():
    config = testrun.config({"CI": "false", "APP": "1"}, META)
    assert config == {
        "APP": "1",
        "CI": "true",
        "HEROKU_TEST_RUN_ID": META.run_id,
        "HEROKU_TEST_RUN_NUMBER": "7",
        "HEROKU_TEST_RUN_BRANCH": "main",
        "HEROKU_TEST_RUN_COMMIT_VERSION": "a" * 40,
        "CI_NODE_TOTAL": "1",
        "CI_NODE_INDEX": "0",
    }


def test_outside_git_there_is_no_branch_or_commit_variable():
    env = testrun.environment(Metadata("id", 1, None, None))
    assert "HEROKU_TEST_RUN_BRANCH" not in env
    assert "HEROKU_TEST_RUN_COMMIT_VERSION" not in env


def test_the_test_dyno_is_a_performance_m_unless_the_formation_says():
    assert testrun.size(environment(scripts={"test": "t"})) == "Performance-M"
    sized = environment(formation={"test": {"quantity": 1, "size": "standard-2x"}})
    assert testrun.size(sized) == "standard-2x"


# -- the test dyno's script, run by bash here ---------------------------------------------------


def run_script(spec: TestEnvironment, home: Path) -> tuple[int, str]:
    done = subprocess.run(
        ["bash", "-c", testrun.script(spec)],
        capture_output=True,
        text=True,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        cwd="/",
    )
    return done.returncode, done.stdout


def test_setup_then_test_in_home_with_heroku_cis_lines(tmp_path):
    spec = environment(scripts={"test-setup": "echo ready > state", "test": "cat state; pwd"})
    assert run_script(spec, tmp_path) == (
        0,
        "-----> Running test-setup command `echo ready > state`...\n"
        "-----> test-setup command `echo ready > state` completed successfully\n"
        "-----> Running test command `cat state; pwd`...\n"
        f"ready\n{tmp_path}\n"
        "-----> test command `cat state; pwd` completed successfully\n",
    )


def test_without_setup_it_says_so_and_a_failed_test_gives_its_status(tmp_path):
    spec = environment(scripts={"test": "echo 'it''s' \"$HOME\"; exit 3"})
    status, output = run_script(spec, tmp_path)
    assert status == 3
    assert output.splitlines() == [
        "-----> No test-setup command provided. Skipping.",
        "-----> Running test command `echo 'it''s' \"$HOME\"; exit 3`...",
        f"its {tmp_path}",
        "-----> test command `echo 'it''s' \"$HOME\"; exit 3` failed with exit status 3",
    ]
    assert testrun.outcome(status, output, spec) == (Status.FAILED, 3)


def test_a_failed_setup_stops_the_run_errored(tmp_path):
    spec = environment(scripts={"test-setup": "exit 5", "test": "echo never"})
    status, output = run_script(spec, tmp_path)
    assert status == 5
    assert "never" not in output
    assert testrun.outcome(status, output, spec) == (Status.ERRORED, 5)


def test_outcomes_of_a_passed_and_a_timed_out_run():
    spec = environment(scripts={"test": "t"})
    assert testrun.outcome(0, "", spec) == (Status.SUCCEEDED, 0)
    assert testrun.outcome(None, "", spec) == (Status.TIMED_OUT, 124)


# -- the timeout -------------------------------------------------------------------------------


def test_heroku_cis_timeout_and_its_message():
    assert testrun.TIMEOUT == 7200
    assert testrun.timed_out_message(2.4) == (
        " !     Test run timed out after 2s and was stopped"
        " (--timeout SECONDS; Heroku CI's limit is 2h 0m 0s)"
    )
    assert testrun.duration(65) == "1m 5s"


@pytest.mark.parametrize("seconds", [0, -1, float("nan")])
def test_a_timeout_must_be_above_zero(seconds):
    with pytest.raises(UsageError, match="--timeout .*: expected a number of seconds above 0"):
        testrun.check_timeout(seconds)


def test_a_run_with_a_bad_timeout_makes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "home"))
    with pytest.raises(UsageError):
        ci.run(tmp_path, ci.CiOptions(timeout=0))
    assert not (tmp_path / "home").exists()


# -- git metadata, run numbers -----------------------------------------------------------------


def test_branch_and_commit_come_from_the_apps_git_repository(tmp_path):
    assert ci.git_commit(tmp_path) == (None, None)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "feature/x"], check=True)
    assert ci.git_commit(tmp_path) == (None, None)  # no commit yet
    (tmp_path / "f").write_text("1")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert ci.git_commit(tmp_path) == ("feature/x", head.strip())
    subprocess.run([*git, "checkout", "-q", "--detach"], check=True)
    assert ci.git_commit(tmp_path) == (None, head.strip())


def test_runs_are_numbered_per_app(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "home"))
    app = tmp_path / "my_app"
    app.mkdir()
    assert [ci.next_number(app), ci.next_number(app)] == [1, 2]


# -- the throwaway app -------------------------------------------------------------------------


def test_throwaway_names_are_unique_heroku_app_names(tmp_path):
    folder = tmp_path / "A_very_long_folder_name_for_an_app"
    folder.mkdir()
    made = {scratch.unique_name(folder, "ci") for _ in range(50)}
    assert len(made) == 50
    for name in made:
        assert name.startswith("ci-a-very-long-folder-")
        assert len(name) <= 30


def test_forgetting_an_app_removes_every_record_of_it(tmp_path):
    store = Store(tmp_path / "state.db")
    for name in ("ci-demo-abc123", "other"):
        store.ensure_app(name, tmp_path)
        store.create_release(
            name, image="i", images={}, source_hash="h", description="d",
            process_types={"web": "x"}, config={}, postdeploy="",
        )  # fmt: skip
        store.ensure_formation(name, ["web"])
        store.set_setting(name, "stack", "bookworm")
    store.remove_app("ci-demo-abc123")
    assert set(store.apps()) == {"other"}
    tables = ("releases", "formation", "settings", "addons", "metrics")
    for table in tables:
        rows = store.db.execute(f"SELECT COUNT(*) FROM {table} WHERE app = ?", ("ci-demo-abc123",))
        assert rows.fetchone()[0] == 0
    assert store.releases("other")
    store.close()


# -- Heroku CI's build: the test dependencies, as the buildpack's bin/test-compile ------------


def ci_plan(folder: Path, test: bool) -> build.Plan:
    return build.plan(
        "demo", folder, build_image="b:1", run_image="r:1", settings=build.HostSettings(),
        test=test,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("files", "line"),
    [
        ({"requirements.txt": "flask\n", "requirements-test.txt": "-r more.txt\npytest\n",
          "more.txt": "coverage\n"},
         "Installing dependencies using 'pip install -r requirements.txt -r requirements-test.txt'"),  # noqa: E501
        ({"requirements.txt": "flask\n"},
         "Installing dependencies using 'pip install -r requirements.txt'"),
        ({"Pipfile": "[packages]\n", "Pipfile.lock": '{"default": {}}'},
         "Installing dependencies using 'pipenv install --deploy --dev'"),
        ({"pyproject.toml": "[project]\n", "poetry.lock": ""},
         "Installing dependencies using 'poetry export' and 'pip install'"),
        ({"pyproject.toml": "[project]\n", "uv.lock": ""},
         "Installing dependencies using 'uv sync --locked'"),
    ],
)  # fmt: skip
def test_the_test_build_installs_the_test_dependencies_as_heroku_ci_does(tmp_path, files, line):
    (tmp_path / "Procfile").write_text("web: x\n")
    (tmp_path / ".python-version").write_text("3.11\n")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    made = ci_plan(tmp_path, test=True)
    assert line in made.headlines.values()
    normal = ci_plan(tmp_path, test=False)
    assert line not in normal.headlines.values() or "requirements-test" not in str(files)
    if "requirements-test.txt" in files:
        assert build.dependency_files(tmp_path, "pip", test=True) == [
            "more.txt", "requirements-test.txt", "requirements.txt",
        ]  # fmt: skip
        assert build.dependency_files(tmp_path, "pip") == ["requirements.txt"]


def test_the_test_build_of_a_django_app_skips_collectstatic(tmp_path):
    (tmp_path / "Procfile").write_text("web: x\n")
    (tmp_path / "requirements.txt").write_text("django\n")
    (tmp_path / "manage.py").write_text("")

    def dockerfile(test: bool) -> str:
        with tarfile.open(fileobj=io.BytesIO(ci_plan(tmp_path, test).context)) as context:
            return context.extractfile("Dockerfile").read().decode()

    assert "/opt/dynosim/build-step collectstatic" in dockerfile(test=False)
    assert "build-step collectstatic" not in dockerfile(test=True)
