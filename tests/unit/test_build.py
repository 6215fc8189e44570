import pytest

from dynosim import build
from dynosim.errors import BuildError, RuntimeSelectionError


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
    text = build.dockerfile("b:1", "r:1", deps=["requirements.txt"], has_uwsgi=False, ca=True)
    build_stage, run_stage = text.split("\nFROM r:1\n")
    assert "FROM b:1 AS build" in build_stage
    for secret in ("ARG PIP_INDEX_URL", "ca-bundle.crt", "PIP_CERT"):
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
