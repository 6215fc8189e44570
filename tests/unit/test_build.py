import json
import os
import sys
from pathlib import Path

import pytest

from dynosim import build
from dynosim.errors import BuildError, EngineError, RuntimeSelectionError


@pytest.fixture(autouse=True)
def home(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("DYNOSIM_HOME", str(folder))
    return folder


@pytest.fixture
def app(tmp_path):
    (tmp_path / "Procfile").write_text("web: uwsgi uwsgi.ini\n")
    (tmp_path / "requirements.txt").write_text("-r base.txt\nflask\n")
    (tmp_path / "base.txt").write_text("-c constraints.txt\nrequests\n")
    (tmp_path / "constraints.txt").write_text("requests<3\n")
    (tmp_path / "app.py").write_text("app = None\n")
    return tmp_path


def plan(folder, **settings):
    return build.plan(
        "demo",
        folder,
        build_image="b:1",
        run_image="r:1",
        settings=build.HostSettings(**settings),
    )


def test_host_pip_and_ca_settings_are_forwarded_and_file_urls_dropped(tmp_path):
    ca = tmp_path / "corp.pem"
    ca.write_text("CERT")
    settings = build.HostSettings.from_environ(
        {
            "PIP_INDEX_URL": "https://user:token@pypi.corp/simple",
            "PIP_EXTRA_INDEX_URL": "file:///opt/local https://extra/simple",
            "SSL_CERT_FILE": str(ca),
        }
    )
    assert settings.buildargs == {
        "PIP_INDEX_URL": "https://user:token@pypi.corp/simple",
        "PIP_EXTRA_INDEX_URL": "https://extra/simple",
    }
    assert settings.ca_bundle == ca
    assert settings.warnings == ["PIP_EXTRA_INDEX_URL: file: URLs cannot be reached in a build"]


def test_pip_cert_wins_and_missing_files_are_skipped(tmp_path):
    ca = tmp_path / "pip.pem"
    ca.write_text("CERT")
    environ = {"PIP_CERT": str(ca), "REQUESTS_CA_BUNDLE": str(tmp_path / "missing.pem")}
    assert build.HostSettings.from_environ(environ).ca_bundle == ca


def test_render_fills_placeholders_and_refuses_unknown_ones():
    assert build.render("FROM {{image}}", {"image": "x"}) == "FROM x"
    with pytest.raises(BuildError, match="no value for"):
        build.render("FROM {{image}} {{other}}", {"image": "x"})


def test_build_settings_and_compilers_stay_in_the_build_stage():
    text = build.dockerfile(
        "b:1", "r:1", deps=["requirements.txt"], has_uwsgi=False, ca=True, secrets={"pip": "d1"}
    )
    build_stage, run_stage = text.split("\nFROM r:1\n")
    assert "FROM b:1 AS build" in build_stage
    assert "ARG" not in text  # build args stay in image metadata: the settings are secrets
    for secret in ("--mount=type=secret,id=pip", "ca-bundle.crt", "PIP_CERT"):
        assert secret in build_stage
        assert secret not in run_stage
    assert "pip install pyuwsgi" in build_stage
    assert "pip install -r /tmp/dependencies/requirements.txt" in build_stage
    assert "USER dyno" in run_stage
    assert "COPY --from=build /opt/venv /opt/venv" in run_stage


def test_uwsgi_from_the_app_is_not_installed_twice():
    text = build.dockerfile("b", "r", deps=["requirements.txt"], has_uwsgi=True, ca=False)
    assert "pyuwsgi" not in text
    assert "ca-bundle" not in text


def test_plan_includes_requirement_includes_and_hashes_deterministically(app):
    first, second = plan(app), plan(app)
    assert first.source_hash == second.source_hash
    assert first.context == second.context
    assert first.tag == f"dynosim/app-demo:{first.source_hash[:12]}"
    assert build.dependency_files(app, "pip") == ["base.txt", "constraints.txt", "requirements.txt"]


def test_code_change_and_build_settings_change_the_hash(app):
    before = plan(app).source_hash
    (app / "app.py").write_text("app = 1\n")
    after = plan(app).source_hash
    assert after != before
    assert plan(app, buildargs={"PIP_INDEX_URL": "https://x"}).source_hash != after


def test_pip_settings_are_a_secret_of_the_pip_steps_keyed_by_their_hmac(app, home):
    token = "https://user:t0ken@pypi.corp/simple"
    first = plan(app, buildargs={"PIP_INDEX_URL": token})
    assert first.secrets == {"pip": {"PIP_INDEX_URL": token}}
    text = first.context.decode(errors="replace")
    assert "t0ken" not in text and "t0ken" not in repr(first)
    build_stage = text.split("\nFROM r:1\n")[0]
    pip_steps = [line for line in build_stage.splitlines() if "pip install" in line]
    assert len(pip_steps) == 3  # pip itself, uWSGI, the requirements
    digest = build.secret_digest(build.build_key(), {"PIP_INDEX_URL": token})
    for line in pip_steps:
        assert line.startswith("RUN --mount=type=secret,id=pip . /run/secrets/pip && ")
        assert line.endswith(f"  # secrets: pip={digest}")
    # a new token: new digests, so the pip steps run again, as with build args before
    other = plan(app, buildargs={"PIP_INDEX_URL": token + "2"})
    assert other.source_hash != first.source_hash
    key = home / "build.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert plan(app, buildargs={"PIP_INDEX_URL": token}).source_hash == first.source_hash


def test_secret_files_are_shell_sourced_exports():
    assert build.buildkit.env_file({"A": "it's $x", "B": "two\nlines"}) == (
        "export A='it'\"'\"'s $x'\nexport B='two\nlines'\n"
    )


def test_uwsgi_in_requirements_is_detected(app):
    (app / "requirements.txt").write_text("flask\nuWSGI==2.0.28\n")
    assert "pyuwsgi" not in plan(app).context.decode(errors="replace").split("FROM r:1")[0]


def test_missing_included_requirements_file_is_an_error(app):
    (app / "base.txt").unlink()
    with pytest.raises(RuntimeSelectionError, match="includes missing base.txt"):
        plan(app)


@pytest.mark.parametrize("include", ["-r /etc/passwd", "-c ../outside.txt", "--requirement=../x"])
def test_an_include_outside_the_app_is_refused_with_file_and_line(app, include):
    (app / "requirements.txt").write_text(f"flask\n{include}\n")
    with pytest.raises(RuntimeSelectionError) as caught:
        build.dependency_files(app, "pip")
    assert str(caught.value).startswith(f"{app / 'requirements.txt'}:2: includes ")
    assert str(caught.value).endswith(", outside the app; only the app's own files are built")


def test_an_include_through_a_symlink_out_of_the_app_is_refused(app, tmp_path_factory):
    outside = tmp_path_factory.mktemp("host") / "secrets.txt"
    outside.write_text("requests\n")
    (app / "linked.txt").symlink_to(outside)
    (app / "requirements.txt").write_text("-r linked.txt\n")
    with pytest.raises(RuntimeSelectionError, match=r"requirements.txt:1: includes linked.txt"):
        build.dependency_files(app, "pip")


def test_runtime_files_ship_with_the_package():
    folder = build.runtime_dir()
    assert {"Dockerfile.template", "dyno-launch", "build-step"} <= {
        p.name for p in folder.iterdir()
    }


def fake_docker(folder, version, buildx):
    folder.mkdir()
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = buildx ] && exit {0 if buildx else 1}\n'
        f'[ "$1" = --version ] && echo "Docker version {version}, build x"\n'
    )
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("clients", "expected"),
    [
        ([("28.2.2", True)], (("{0}", "buildx", "build", "--load"), ())),
        ([("28.2.2", False), ("20.10.24+dfsg1", False)], (("{1}", "build"), ("1",))),
        ([("20.10.24", False), ("28.2.2", True)], (("{1}", "buildx", "build", "--load"), ())),
    ],
)
def test_the_build_cli_is_buildx_else_a_client_that_speaks_buildkit(
    tmp_path, monkeypatch, clients, expected
):
    paths = [fake_docker(tmp_path / str(i), *client) for i, client in enumerate(clients)]
    monkeypatch.setattr(build.buildkit.shutil, "which", lambda name: paths[0])
    monkeypatch.setattr(build.buildkit, "CANDIDATES", tuple(paths[1:]))
    build.buildkit.command.cache_clear()
    try:
        argv, env = build.buildkit.command()
    finally:
        build.buildkit.command.cache_clear()
    assert argv == tuple(part.format(*paths) for part in expected[0])
    assert [value for _, value in env] == list(expected[1])


def test_the_build_cli_choice_is_remembered_until_the_client_changes(tmp_path, monkeypatch):
    path = fake_docker(tmp_path / "old", "20.10.24", False)
    runs = tmp_path / "runs"
    script = Path(path)
    script.write_text(script.read_text().replace("#!/bin/sh\n", f"#!/bin/sh\necho >> {runs}\n"))
    monkeypatch.setattr(build.buildkit.shutil, "which", lambda name: path)
    monkeypatch.setattr(build.buildkit, "CANDIDATES", ())

    def choose():
        build.buildkit.command.cache_clear()
        try:
            return build.buildkit.command()
        finally:
            build.buildkit.command.cache_clear()

    first = choose()
    asked = runs.read_text().count("\n")
    assert choose() == first and runs.read_text().count("\n") == asked  # not run again
    script.write_text(script.read_text().replace("20.10.24", "28.2.2"))  # upgraded: no BuildKit
    os.utime(script, ns=(0, 1))
    with pytest.raises(EngineError, match="install the buildx plugin"):
        choose()


def test_without_a_buildkit_client_the_error_says_what_to_install(tmp_path, monkeypatch):
    path = fake_docker(tmp_path / "new", "28.2.2", False)
    monkeypatch.setattr(build.buildkit.shutil, "which", lambda name: path)
    monkeypatch.setattr(build.buildkit, "CANDIDATES", ())
    build.buildkit.command.cache_clear()
    try:
        with pytest.raises(EngineError, match="install the buildx plugin .*docker-buildx"):
            build.buildkit.command()
    finally:
        build.buildkit.command.cache_clear()


FAKE_BUILDKIT = """#!{python}
import json, os, pathlib, stat, sys
argv = sys.argv[1:]
folder = pathlib.Path(argv[argv.index("--iidfile") + 1]).parent
secrets = {{}}
for i, arg in enumerate(argv):
    if arg == "--secret":
        path = pathlib.Path(argv[i + 1].split("src=")[1])
        secrets[path.name] = [path.read_text(), oct(stat.S_IMODE(path.stat().st_mode))]
seen = {{
    "argv": [a.replace(str(folder), "FOLDER") for a in argv],
    "env": {{k: os.environ.get(k) for k in ("DOCKER_BUILDKIT", "TOKEN", "LEVEL")}},
    "secrets": secrets,
    "stdin": sys.stdin.buffer.read().decode(),
    "folder": str(folder),
}}
pathlib.Path({record!r}).write_text(json.dumps(seen))
print("#1 [internal] load build definition from Dockerfile")
print("#5 [build 2/3] RUN --mount=type=secret,id=pip . /run/secrets/pip && make  # secrets: pip=ab")
print("#5 0.101 compiling")
print("#5 DONE 0.2s")
if {status}:
    print("#6 [build 3/3] RUN false")
    print("#6 ERROR: process did not complete: exit code: {status}")
    sys.exit(1)
(folder / "iid").write_text("sha256:built\\n")
"""


def fake_buildkit(tmp_path, monkeypatch, status=0):
    script, record = tmp_path / "docker", tmp_path / "seen.json"
    script.write_text(
        FAKE_BUILDKIT.format(python=sys.executable, record=str(record), status=status)
    )
    script.chmod(0o755)
    monkeypatch.setattr(
        build.buildkit, "command", lambda: ((str(script), "build"), (("DOCKER_BUILDKIT", "1"),))
    )
    return record


def run_build(**options):
    shown = []
    image = build.buildkit.build(
        shown.append,
        "build of demo failed",
        context=b"TAR",
        tag="dynosim/app-demo:abc",
        headlines={"RUN make": "Compiling"},
        **options,
    )
    return image, shown


def test_a_buildkit_build_gets_its_settings_by_file_stdin_and_environment_never_argv(
    tmp_path, monkeypatch
):
    record = fake_buildkit(tmp_path, monkeypatch)
    image, shown = run_build(
        dockerfile="web/Dockerfile",
        target="prod",
        buildargs={"TOKEN": "t0ken", "LEVEL": "2"},
        secrets={"pip": {"PIP_INDEX_URL": "https://u:p@x/simple"}},
        labels={"dynosim.image": "app"},
        nocache=True,
    )
    assert image == "sha256:built"
    assert shown == ["-----> Compiling", "       compiling"]
    seen = json.loads(record.read_text())
    assert seen["argv"] == [
        "build", "--progress=plain", "--iidfile", "FOLDER/iid", "-t", "dynosim/app-demo:abc",
        "--secret", "id=pip,src=FOLDER/secret-pip", "--build-arg", "TOKEN", "--build-arg", "LEVEL",
        "--label", "dynosim.image=app", "-f", "web/Dockerfile", "--target", "prod", "--no-cache",
        "-",
    ]  # fmt: skip
    assert seen["env"] == {"DOCKER_BUILDKIT": "1", "TOKEN": "t0ken", "LEVEL": "2"}
    assert seen["secrets"] == {
        "secret-pip": ["export PIP_INDEX_URL=https://u:p@x/simple\n", "0o600"]
    }
    assert seen["stdin"] == "TAR"
    assert not Path(seen["folder"]).exists()


def test_a_failed_buildkit_build_names_the_step_and_leaves_no_secret_behind(tmp_path, monkeypatch):
    record = fake_buildkit(tmp_path, monkeypatch, status=2)
    with pytest.raises(BuildError) as caught:
        run_build(secrets={"pip": {"A": "1"}})
    assert str(caught.value) == "build of demo failed: the step returned a non-zero code: 2"
    assert caught.value.step == "RUN false"
    seen = json.loads(record.read_text())
    assert seen["argv"][-3:] == ["--secret", "id=pip,src=FOLDER/secret-pip", "-"]
    assert not Path(seen["folder"]).exists()


def test_a_build_cli_that_cannot_run_is_an_engine_error(monkeypatch, tmp_path):
    missing = str(tmp_path / "no-docker")
    monkeypatch.setattr(build.buildkit, "command", lambda: ((missing, "build"), ()))
    with pytest.raises(EngineError, match=f"cannot run {missing}: No such file or directory"):
        run_build()
