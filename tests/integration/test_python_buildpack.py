"""Real Heroku Python apps build and run unchanged: Django with collectstatic, and apps whose
dependencies pipenv, Poetry or uv install (real builds, real dynos, through the router)."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
from conftest import WEB, copy_app, dynosim, tiny_app

from dynosim.store import Store

APPS = Path(__file__).parent / "apps"
UP = r"heroku\[web\.1\]: State changed from starting to up"


def test_django_collects_static_files_at_build_time_and_a_failing_collectstatic_keeps_the_release(
    up, tmp_path
):
    app_dir = copy_app(APPS / "django_app", tmp_path / "djangosite")
    process = up(app_dir, "--grace", "5")
    process.wait_for(UP, timeout=900)
    build_output = process.output.split("-----> Released")[0]
    assert "-----> Using Python 3.11 specified in .python-version" in build_output
    assert "-----> Installing dependencies using 'pip install -r requirements.txt'" in build_output
    # collectstatic ran in the build with the config vars (settings.py needs SECRET_KEY)
    assert "-----> $ python manage.py collectstatic --noinput" in build_output
    assert "1 static file copied to '/app/staticfiles', 1 post-processed." in build_output

    page = process.get("/")
    assert page.status_code == 200, page.text
    assert "Hello from Django" in page.text
    assert "WEB_CONCURRENCY=2" in page.text  # Standard-1X, as Heroku's buildpack sets it
    css = re.search(r'href="(/static/site\.[0-9a-f]{12}\.css)"', page.text)
    assert css, page.text  # the manifest's hashed name
    asset = process.get(css.group(1))
    assert asset.status_code == 200
    assert "font-family" in asset.text
    assert "immutable" in asset.headers["Cache-Control"]  # WhiteNoise's for hashed files
    booting = r"app\[web\.1\]: .*Booting worker with pid"
    deadline = time.monotonic() + 30
    while len(re.findall(booting, process.output)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(re.findall(booting, process.output)) == 2  # gunicorn read WEB_CONCURRENCY
    current = Store().current_release("djangosite").version

    # a CSS file that references a missing file fails collectstatic with manifest storage
    (app_dir / "static" / "site.css").write_text('body { background: url("missing.png"); }\n')
    failed = dynosim("deploy", str(app_dir))
    assert failed.returncode == 4, failed.stderr
    assert "error: build of djangosite failed" in failed.stderr
    assert "failing step: RUN /opt/dynosim/build-step collectstatic" in failed.stderr
    assert "The file 'missing.png' could not be found" in failed.stderr
    assert " !     Error: Unable to generate Django static files." in failed.stdout
    # a code-only change: the dependency layer is reused, nothing is installed again
    installing = "-----> Installing dependencies using 'pip install -r requirements.txt'\n"
    assert f"{installing}       (cached)\n" in failed.stdout
    assert "Successfully installed" not in failed.stdout
    assert Store().current_release("djangosite").version == current
    assert process.get("/").status_code == 200  # the running release keeps serving

    # DISABLE_COLLECTSTATIC as a config var: the next build skips collectstatic
    assert dynosim("config:set", "-a", "djangosite", "DISABLE_COLLECTSTATIC=1").returncode == 0
    deployed = dynosim("deploy", str(app_dir))
    assert deployed.returncode == 0, deployed.stderr
    assert (
        "-----> Skipping Django collectstatic since the env var DISABLE_COLLECTSTATIC is set."
        in deployed.stdout
    )
    assert "Released v" in deployed.stdout
    listing = dynosim("run", "-a", "djangosite", "test -e staticfiles && echo found || echo none")
    assert listing.stdout.strip().endswith("none"), listing.stdout + listing.stderr
    assert process.stop() == 0


@pytest.mark.parametrize(
    ("manager", "lines"),
    [
        (
            "pipenv",
            [
                "-----> Using Python 3.11 specified in Pipfile.lock",
                "-----> Installing Pipenv 2025.0.4",
                "-----> Installing dependencies using 'pipenv install --deploy'",
            ],
        ),
        (
            "poetry",
            [
                "-----> Using Python 3.11 specified in .python-version",
                "-----> Installing Poetry 2.2.1",
                "-----> Installing dependencies using"
                " 'poetry export --only main' and 'pip install'",
            ],
        ),
        (
            "uv",
            [
                "-----> Using Python 3.11 specified in .python-version",
                "-----> Installing uv 0.13.9",
                "-----> Installing dependencies using 'uv sync --locked --no-default-groups'",
            ],
        ),
    ],
)
def test_the_package_manager_the_app_chose_installs_its_locked_dependencies(
    up, tmp_path, manager, lines
):
    """The pipenv app's Procfile is `pipenv run uwsgi ...`: Pipenv stays in the image, as on
    Heroku. Each app answers with the Flask version its lock file pins."""
    app_dir = copy_app(APPS / f"{manager}_app", tmp_path / f"{manager}-app")
    with (app_dir / "app.py").open("a") as code:  # new to this engine: built, not reused
        code.write(f"# {uuid.uuid4()}\n")
    process = up(app_dir, "--grace", "5")
    process.wait_for(UP, timeout=900)
    build_output = process.output.split("-----> Released")[0]
    for line in lines:
        assert line in build_output
    answer = process.get("/")
    assert answer.status_code == 200
    assert answer.json() == {
        "manager": manager,
        "flask": "3.1.3",
        "dyno": "web.1",
        "web_concurrency": "2",
    }
    assert process.stop() == 0


def test_a_python_dyno_has_herokus_runtime_environment(up, tmp_path):
    app_dir = tiny_app(tmp_path / "pyenv", WEB)
    process = up(app_dir, "--grace", "5")
    process.wait_for(UP)
    # a config var may not break the virtualenv: the launcher unsets PYTHONHOME
    assert dynosim("config:set", "-a", "pyenv", "PYTHONHOME=/nowhere").returncode == 0
    shown = dynosim(
        "run", "-a", "pyenv", "-x", "--size", "Standard-2X",
        'echo "$LANG $PYTHONUNBUFFERED ${PYTHONHOME-unset} $WEB_CONCURRENCY";'
        ' python -c "import sys; print(sys.prefix)";'
        ' echo "$PYTHONPATH|$FORWARDED_ALLOW_IPS|$GUNICORN_CMD_ARGS|${UWSGI_INI-unset}"',
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    # C.UTF-8, not Heroku's en_US.UTF-8: the stacks carry no locales (docs/usage.md)
    assert shown.stdout.split("\n")[:3] == [
        "C.UTF-8 true unset 4",  # Standard-2X: Heroku's buildpack sets WEB_CONCURRENCY=4
        "/opt/venv",  # the app's virtualenv comes first on PATH
        # the buildpack's .profile.d exports, and no uWSGI settings of dynosim's own
        "/app|*|--access-logfile -|unset",
    ]
