"""The CLI edge: bad input becomes one clear line and a non-zero exit, before any Docker work."""

import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from dynosim.cli import main


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "home"))


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_bad_procfile_is_one_line_with_file_and_line(tmp_path):
    (tmp_path / "Procfile").write_text("web: uwsgi uwsgi.ini\nworker python worker.py\n")
    result = run("up", str(tmp_path), "--port", "0", "--https-port", "0")
    assert result.exit_code == 2
    assert result.output == (
        f'error: {tmp_path}/Procfile:2: expected "<process type>: <command>",'
        " got 'worker python worker.py'\n"
    )


def test_missing_procfile(tmp_path):
    result = run("up", str(tmp_path), "--port", "0", "--https-port", "0")
    assert result.exit_code == 2
    assert "Procfile: no Procfile found" in result.output


def test_router_port_in_use_is_reported_before_building(tmp_path):
    (tmp_path / "Procfile").write_text("web: x\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("up", str(tmp_path), "--port", str(port), "--https-port", "0")
    assert result.exit_code == 2
    assert result.output == (
        f"error: 127.0.0.1:{port} is already in use; choose another port with --port\n"
    )


def test_router_engine_that_cannot_run_is_reported_before_building(tmp_path, monkeypatch):
    from dynosim.router import haproxy

    monkeypatch.setattr(haproxy, "executable", lambda: None)
    (tmp_path / "Procfile").write_text("web: x\n")
    result = run("up", str(tmp_path), "--port", "0", "--https-port", "0", "--router", "haproxy")
    assert result.exit_code == 2
    assert result.output == (
        "error: --router haproxy: haproxy is not installed (apt-get install haproxy); "
        "--router python needs nothing more\n"
    )


def test_unreachable_docker_engine_is_a_clear_error(tmp_path, monkeypatch):
    from dynosim.docker import client as docker_client

    docker_client.connected.cache_clear()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    (tmp_path / "Procfile").write_text("web: x\n")
    (tmp_path / "runtime.txt").write_text("python-3.11\n")
    try:
        result = run("up", str(tmp_path), "--port", "0", "--https-port", "0")
    finally:
        docker_client.connected.cache_clear()
    assert result.exit_code == 3
    assert result.output.startswith("error: no Docker engine reachable")
    assert result.output.count("\n") == 1


def test_state_files_are_owner_only(tmp_path):
    from dynosim.store import Store

    store = Store(tmp_path / "state" / "state.db")
    store.ensure_app("demo", tmp_path)
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    for path in (tmp_path / "state").iterdir():
        assert path.stat().st_mode & 0o077 == 0, path


def test_https_port_in_use_is_reported_before_building(tmp_path):
    (tmp_path / "Procfile").write_text("web: x\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("up", str(tmp_path), "--port", "0", "--https-port", str(port))
    assert result.exit_code == 2
    assert result.output == (
        f"error: 127.0.0.1:{port} is already in use; choose another port with --https-port\n"
    )


def test_certs_makes_the_ca_once_and_says_how_to_trust_it(tmp_path):
    first = run("certs")
    ca = tmp_path / "home" / "certs" / "ca.pem"
    assert first.exit_code == 0
    assert first.output.startswith(f"=== dynosim local CA: {ca}\n")
    for hint in (f"curl --cacert {ca}", f"REQUESTS_CA_BUNDLE={ca}", "update-ca-certificates"):
        assert hint in first.output
    made = ca.read_bytes()
    assert run("certs").exit_code == 0 and ca.read_bytes() == made
    assert (tmp_path / "home" / "certs" / "ca-key.pem").stat().st_mode & 0o077 == 0


def test_a_docker_error_is_one_line_with_the_engines_exit_code(monkeypatch):
    import docker.errors

    from dynosim import cli

    def refuse(name):
        raise docker.errors.APIError("500 Server Error", explanation="mkdir /x: read-only\n")

    monkeypatch.setattr(cli.App, "named", staticmethod(refuse))
    result = run("ps", "-a", "demo")
    assert (result.exit_code, result.output) == (3, "error: Docker engine: mkdir /x: read-only\n")


def test_an_unexpected_error_is_one_line_and_a_traceback_only_with_debug(monkeypatch):
    from dynosim import cli

    def broken(name):
        raise KeyError("dyno")

    monkeypatch.setattr(cli.App, "named", staticmethod(broken))
    result = run("ps", "-a", "demo")
    assert result.exit_code == 1
    assert result.output == (
        "error: KeyError: 'dyno' (a dynosim bug: rerun with --debug for the traceback)\n"
    )
    debug = CliRunner().invoke(main, ["--debug", "ps", "-a", "demo"])
    assert isinstance(debug.exception, KeyError)


def test_a_bad_app_name_is_refused_before_anything_is_written(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "Procfile").write_text("web: x\n")
    result = run("up", str(app), "--app", "Bad_Name..", "--port", "0", "--https-port", "0")
    assert result.exit_code == 2
    assert result.output.startswith("error: --app 'Bad_Name..': an app name must start")
    assert not (tmp_path / "home").exists()


def test_a_bad_attachment_name_provisions_nothing(tmp_path, monkeypatch):
    from dynosim import addons

    monkeypatch.setattr(addons, "ensure_image", lambda *a: pytest.fail("provisioned"))
    (tmp_path / "Procfile").write_text("web: x\n")
    from dynosim.store import Store

    store = Store()
    store.ensure_app("demo", tmp_path)
    store.close()
    result = run("addons:create", "heroku-redis", "-a", "demo", "--as", "my-cache")
    assert result.exit_code == 2
    assert "--as 'my-cache': an attachment name must start with a letter" in result.output


SHELL_DOTENV = "source venv/bin/activate\nexport DEBUG=1\n"  # a shell script, not a .env


def test_up_ignores_a_dotenv_it_was_not_asked_for_and_says_so_once(tmp_path):
    (tmp_path / "Procfile").write_text("web: x\n")
    (tmp_path / ".env").write_text(SHELL_DOTENV)
    (tmp_path / "app.json").write_text('{"env": {"SECRET_KEY": {"description": "Django"}}}')
    result = run("up", str(tmp_path), "--port", "0", "--https-port", "0")
    # the .env is never parsed; what stops up (before building) is app.json's missing value
    assert result.exit_code == 2
    assert result.output == (
        " !     .env is not read (Heroku never reads it); dynosim up --env-file (and run"
        " --env-file) give its vars to the dynos, as heroku local does\n"
        'error: app.json: env.SECRET_KEY is required and has no value; give it a "value" in'
        " app.json, or put it in the app's .env and run dynosim up --env-file\n"
    )


def test_an_asked_for_dotenv_that_is_malformed_is_one_line_with_file_and_line(tmp_path):
    (tmp_path / "Procfile").write_text("web: x\n")
    (tmp_path / ".env").write_text(SHELL_DOTENV)
    result = run("up", str(tmp_path), "--port", "0", "--https-port", "0", "--env-file")
    assert result.exit_code == 2
    assert result.output == (
        f'error: {tmp_path}/.env:1: expected KEY=value (no "=" on this line)\n'
    )


def test_app_json_takes_required_values_from_the_asked_for_dotenv_and_config_wins(
    tmp_path, monkeypatch
):
    from dynosim import api, deployment
    from dynosim.docker import dynos

    class Built(Exception):
        pass

    def build(app, app_dir, manifest, progress, base_image, strict, config, *rest):
        raise Built(config)

    monkeypatch.setattr(deployment, "_build", build)
    monkeypatch.setattr(dynos, "ensure_network", lambda app: None)
    monkeypatch.setattr(dynos, "remove_network", lambda app: None)
    (tmp_path / "Procfile").write_text("web: x\n")
    (tmp_path / ".env").write_text("SECRET_KEY=local\nDEBUG=1\n")
    (tmp_path / "app.json").write_text('{"env": {"SECRET_KEY": {}, "TOKEN": {}}}')
    app = api.App.open(tmp_path, name="manifested")
    with pytest.raises(Built) as built:
        app.build(local_env=app.local_env(), config={"TOKEN": "given"})
    # app.json's keys only: the rest of .env stays a layer under the config vars
    assert built.value.args[0] == {"SECRET_KEY": "local", "TOKEN": "given"}
    with pytest.raises(Built) as built:
        app.build(local_env={"SECRET_KEY": "local"}, config={"SECRET_KEY": "config", "TOKEN": "t"})
    assert built.value.args[0] == {"SECRET_KEY": "config", "TOKEN": "t"}


def test_stack_set_is_remembered_and_shown_and_an_unknown_stack_is_one_line(tmp_path):
    from dynosim.store import Store

    store = Store()
    store.ensure_app("demo", tmp_path)
    store.close()
    unknown = run("stack:set", "heroku-24", "-a", "demo")
    assert unknown.exit_code != 0
    assert unknown.output.splitlines()[-1] == (
        "error: unknown stack 'heroku-24'; known stacks: bullseye, bookworm, trixie, forky"
    )
    unset = run("stack", "-a", "demo").output.splitlines()  # no version file: Heroku's 3.14
    assert unset[-2:] == ["* forky (Python 3.14)", "(no stack set: forky carries the app's Python)"]
    old = run("stack:set", "bullseye", "-a", "demo")
    assert old.exit_code == 0, old.output
    assert old.output.startswith("Setting stack to bullseye... done\n")
    assert "Heroku refuses to build it" in old.output  # an end-of-life stack
    assert "redeploy" not in old.output  # nothing deployed yet
    shown = run("stack", "-a", "demo").output.splitlines()
    assert shown[0] == "=== ⬢ demo Available Stacks"
    assert "* bullseye (Python 3.9, end-of-life: Heroku refuses it)" in shown
    assert "  forky (Python 3.14)" in shown


def test_features_lists_enables_and_disables_preboot_off_by_default_in_herokus_words(tmp_path):
    from dynosim.store import Store

    store = Store()
    store.ensure_app("demo", tmp_path)
    store.close()
    listed = run("features", "-a", "demo")
    assert (listed.exit_code, listed.output) == (
        0,
        "=== App Features ⬢ demo\n[ ] preboot  Provide seamless web dyno deploys\n",
    )
    enabled = run("features:enable", "preboot", "-a", "demo")
    assert (enabled.exit_code, enabled.output) == (0, "Enabling preboot for ⬢ demo... done\n")
    assert run("features", "-a", "demo").output.splitlines()[1].startswith("[+] preboot")
    assert Store().setting("demo", "features:preboot", "") == "on"  # what `up` reads
    again = run("features:enable", "preboot", "-a", "demo")
    assert (again.exit_code, again.output) == (
        2,
        "Enabling preboot for ⬢ demo... failed\nerror: preboot is already enabled.\n",
    )
    disabled = run("features:disable", "preboot", "-a", "demo")
    assert disabled.output == "Disabling preboot for ⬢ demo... done\n"
    assert run("features", "-a", "demo").output.splitlines()[1].startswith("[ ] preboot")
    assert run("features:disable", "preboot", "-a", "demo").output.endswith(
        "error: preboot is already disabled.\n"
    )
    unknown = run("features:enable", "log-runtime-metrics", "-a", "demo")  # a labs feature
    assert (unknown.exit_code, unknown.output) == (
        2,
        "error: Couldn't find that feature (log-runtime-metrics); known features: preboot\n",
    )


@pytest.mark.parametrize("size", ["Eco", "Basic"])
def test_preboot_is_refused_for_eco_and_basic_web_dynos(tmp_path, size):
    from dynosim.formation import Entry
    from dynosim.store import Store

    store = Store()
    store.ensure_app("demo", tmp_path)
    store.set_formation("demo", {"web": Entry("web", 1, size)})
    store.close()
    refused = run("features:enable", "preboot", "-a", "demo")
    assert (refused.exit_code, refused.output) == (
        2,
        "Enabling preboot for ⬢ demo... failed\n"
        "error: Applications using eco or basic dynos do not have access to preboot.\n",
    )
    assert Store().setting("demo", "features:preboot", "") == ""


def test_labs_lists_enables_and_disables_runtime_metrics_and_refuses_an_unknown_feature(
    tmp_path,
):
    from dynosim.store import Store

    store = Store()
    store.ensure_app("demo", tmp_path)
    store.close()
    listed = run("labs", "-a", "demo")
    assert (listed.exit_code, listed.output) == (
        0,
        "=== App Features ⬢ demo\n"
        "[ ] log-runtime-metrics  Emit dyno resource usage information into app logs\n",
    )
    enabled = run("labs:enable", "log-runtime-metrics", "-a", "demo")
    assert (enabled.exit_code, enabled.output) == (
        0,
        "Enabling log-runtime-metrics for ⬢ demo... done\n",
    )
    assert run("labs", "-a", "demo").output.splitlines()[1].startswith("[+] log-runtime-metrics")
    assert Store().setting("demo", "labs:log-runtime-metrics", "") == "on"  # what `up` reads
    disabled = run("labs:disable", "log-runtime-metrics", "-a", "demo")
    assert disabled.output == "Disabling log-runtime-metrics for ⬢ demo... done\n"
    assert run("labs", "-a", "demo").output.splitlines()[1].startswith("[ ] log-runtime-metrics")
    unknown = run("labs:enable", "no-such-feature", "-a", "demo")
    assert (unknown.exit_code, unknown.output) == (
        2,
        "error: Couldn't find that feature (no-such-feature); known features:"
        " log-runtime-metrics, preboot\n",
    )


def test_labs_enable_falls_back_to_the_app_features_as_herokus_cli_does(tmp_path):
    from dynosim.store import Store

    store = Store()
    store.ensure_app("demo", tmp_path)
    store.close()
    enabled = run("labs:enable", "preboot", "-a", "demo")
    assert (enabled.exit_code, enabled.output) == (0, "Enabling preboot for ⬢ demo... done\n")
    assert Store().setting("demo", "features:preboot", "") == "on"  # the feature, not a lab
    assert run("features", "-a", "demo").output.splitlines()[1].startswith("[+] preboot")
    again = run("labs:enable", "preboot", "-a", "demo")
    assert again.output.endswith("error: preboot is already enabled.\n")
    disabled = run("labs:disable", "preboot", "-a", "demo")
    assert (disabled.exit_code, disabled.output) == (0, "Disabling preboot for ⬢ demo... done\n")
    assert Store().setting("demo", "features:preboot", "") == ""


def test_the_cli_imports_neither_docker_nor_the_router_nor_the_build_until_a_command_needs_them():
    # quick commands (ps, config, releases) start in a tenth of a second without them
    heavy = ("docker", "dynosim.router", "dynosim.build", "dynosim.deployment", "yaml", "asyncio")
    heavy += ("dynosim.doctor", "dynosim.ci", "dynosim.hosting", "dynosim.app_addons")
    probe = f"import sys, dynosim.cli; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_doctor_refuses_a_probe_that_is_not_a_path_and_a_missing_folder(tmp_path):
    (tmp_path / "Procfile").write_text("web: python web.py\n")
    result = run("doctor", str(tmp_path), "--probe", "health")
    assert result.exit_code == 2 and "'health' is not a path (it starts with /)" in result.output
    missing = run("doctor", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "is not a folder" in missing.output


def test_doctor_on_a_bad_procfile_is_one_line_with_file_and_line(tmp_path):
    (tmp_path / "Procfile").write_text("web python web.py\n")
    result = run("doctor", str(tmp_path))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("error: ") and "Procfile:1" in result.output
