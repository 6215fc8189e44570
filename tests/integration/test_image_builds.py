"""Builds against the real engine: caching, failures, secrets, old pinned apps."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import requests
from conftest import WEB, copy_app, dynosim, tiny_app

from dynosim import runtime
from dynosim.docker import client as docker_client
from dynosim.store import Store

APPS = Path(__file__).parent / "apps"


def test_code_only_change_reuses_the_dependency_layers_and_makes_a_new_release(
    up, example_app, tmp_path
):
    app_dir = copy_app(example_app, tmp_path / "shop")
    first = up(app_dir, "--grace", "5")
    first.wait_for(r"heroku\[web\.1\]: State changed from starting to up")
    assert first.stop() == 0
    version = Store().current_release("shop").version

    change = f"\n# a code change {uuid.uuid4()}\n"  # new to this engine's image cache too
    (app_dir / "app.py").write_text((app_dir / "app.py").read_text() + change)
    second = up(app_dir, "--grace", "5")
    second.wait_for(r"heroku\[web\.1\]: State changed from starting to up")
    build_output = second.output.split("Released")[0]
    pip_steps = [line for line in build_output.splitlines() if "pip install" in line]
    assert pip_steps, build_output
    assert build_output.count("(cached)") >= 3, build_output  # venv, uWSGI, requirements
    assert "Successfully installed" not in build_output
    second.wait_for(rf"app\[api\]: Release v{version + 1} created by ")
    assert second.get("/").json()["dyno"] == "web.1"
    assert second.stop() == 0


def test_unchanged_source_is_not_rebuilt_and_keeps_its_release(up, example_app):
    first = up(example_app, "--grace", "5")
    first.wait_for(r"heroku\[web\.1\]: State changed from starting to up")
    assert first.stop() == 0
    release = Store().current_release("flask-app")
    process = up(example_app, "--grace", "5")
    process.wait_for(r"heroku\[web\.1\]: State changed from starting to up")
    assert "Source unchanged" in process.output
    assert f"Current release {release.name} already runs this build" in process.output
    assert "Building" not in process.output
    assert process.stop() == 0


def test_a_dependency_change_rebuilds_the_dependency_layer_and_what_follows_no_more(tmp_path):
    app_dir = tiny_app(tmp_path / "deps", "web: uwsgi --http-socket :$PORT -w app:app\n")
    marker = uuid.uuid4().hex  # new dependency files to this engine's build cache
    (app_dir / "requirements.txt").write_text(f"# {marker}\n")
    assert dynosim("deploy", str(app_dir)).returncode == 0
    (app_dir / "requirements.txt").write_text(f"blinker  # {marker}\n")
    changed = dynosim("deploy", str(app_dir))
    assert changed.returncode == 0, changed.stderr
    for reused in ("Installing pip", "Installing uWSGI (pyuwsgi)"):
        assert f"-----> {reused}\n       (cached)\n" in changed.stdout
    installing = "-----> Installing dependencies using 'pip install -r requirements.txt'\n"
    assert "(cached)" not in changed.stdout.split(installing)[1]
    assert "Successfully installed blinker" in changed.stdout
    api = docker_client.client().api
    new, old = (api.inspect_image(r.image)["RootFS"]["Layers"] for r in Store().releases("deps"))
    run_image = runtime.select_stack(app_dir).stack.run_image
    kept = len(api.inspect_image(run_image)["RootFS"]["Layers"]) + 2  # + the dyno user, launcher
    assert new[:kept] == old[:kept]  # the run stage's layers up to the virtualenv are reused
    assert len(new) == len(old)
    # the virtualenv and its python made a file are new, and so is the app (its
    # requirements.txt); WORKDIR's empty layer is the same empty layer again
    assert new[kept] != old[kept] and new[kept + 1] != old[kept + 1] and new[-1] != old[-1]


def test_deploy_no_cache_builds_every_layer_again(tmp_path):
    app_dir = tiny_app(tmp_path / "purged", "web: uwsgi --http-socket :$PORT -w app:app\n")
    assert dynosim("deploy", str(app_dir)).returncode == 0
    again = dynosim("deploy", "--no-cache", str(app_dir))
    assert again.returncode == 0, again.stderr
    assert "Source unchanged" not in again.stdout
    assert "Installing uWSGI (pyuwsgi)" in again.stdout
    assert "(cached)" not in again.stdout
    assert [r.version for r in Store().releases("purged")] == [2, 1]


def test_failing_build_shows_the_step_and_output_tail_and_records_nothing(tmp_path):
    app_dir = copy_app(APPS / "classic_app", tmp_path / "broken")
    (app_dir / "runtime.txt").write_text("python-3.11\n")
    (app_dir / "requirements.txt").write_text("dynosim-no-such-package-anywhere==1.0\n")
    result = dynosim("up", str(app_dir), "--port", "0", "--https-port", "0")
    assert result.returncode == 4
    assert "error: build of broken failed" in result.stderr
    assert "failing step: RUN /opt/venv/bin/pip install -r /tmp/dependencies/requirements.txt" in (
        result.stderr
    )
    assert "No matching distribution found for dynosim-no-such-package-anywhere" in result.stderr
    assert Store().current_release("broken") is None
    assert (
        docker_client.client().containers.list(
            ignore_removed=True, all=True, filters={"label": "dynosim.app=broken"}
        )
        == []
    )


def test_build_settings_ca_bundle_and_config_vars_do_not_reach_the_final_image(
    up, example_app, tmp_path
):
    """The config vars reach the build stage (a bin/post_compile hook reads one) as build args
    of that stage only."""
    app_dir = copy_app(example_app, tmp_path / "secretive")
    secret = f"s3cr3t-{uuid.uuid4()}"
    (app_dir / "app.json").write_text(json.dumps({"env": {"BUILD_SECRET": secret}}))
    (app_dir / "bin").mkdir()
    (app_dir / "bin" / "post_compile").write_text(
        'echo "post_compile sees BUILD_SECRET of ${#BUILD_SECRET} characters"\n'
    )
    process = up(app_dir, "--grace", "5")
    process.wait_for(r"is running: ")
    assert process.stop() == 0
    assert "-----> Running bin/post_compile hook" in process.output
    assert f"post_compile sees BUILD_SECRET of {len(secret)} characters" in process.output
    release = Store().current_release("secretive")
    image = docker_client.client().images.get(release.image)
    history = " ".join(str(layer.get("CreatedBy", "")) for layer in image.history())
    for trace in ("PIP_INDEX_URL", "PIP_CERT", "ca-bundle.crt", "SSL_CERT_FILE", "BUILD_SECRET"):
        assert trace not in history
        assert trace not in " ".join(image.attrs["Config"]["Env"])
    assert secret not in history
    found = docker_client.client().containers.run(
        release.image,
        [
            "test -e /etc/dynosim/ca-bundle.crt && echo present || echo absent;"
            " command -v gcc || echo no-gcc;"
            " grep -rl --exclude=app.json s3cr3t /app /opt/venv || echo clean"
        ],
        remove=True,
    )
    assert found.decode().split() == ["absent", "no-gcc", "clean"]


def test_an_end_of_life_python_is_refused_and_the_classic_app_rehearses_on_its_stack(up, tmp_path):
    """The classic tutorial app pins Python 3.7, which Heroku refuses as end-of-life (before any
    build); moved to 3.9 it is refused too, unless the end-of-life stack that carries 3.9 is set
    explicitly: then it runs there with the uWSGI its requirements name, and a warning."""
    app_dir = copy_app(APPS / "classic_app", tmp_path / "classic")
    refused = dynosim("up", str(app_dir), "--port", "0", "--https-port", "0")
    assert refused.returncode == 2
    assert "The requested Python version has reached end-of-life." in refused.stderr
    assert "Python 3.7 has reached its upstream end-of-life" in refused.stderr
    assert "Please upgrade to at least Python 3.10" in refused.stderr
    assert "Traceback" not in refused.stderr
    (app_dir / "runtime.txt").write_text("python-3.9\n")
    refused = dynosim("up", str(app_dir), "--port", "0", "--https-port", "0")
    assert refused.returncode == 2
    assert "Python 3.9 has reached its upstream end-of-life" in refused.stderr
    assert "dynosim stack:set bullseye" in refused.stderr
    process = up(app_dir, "--grace", "5", "--stack", "bullseye")
    process.wait_for(r"Stack bullseye has Python 3\.9, which has reached its upstream end-of-life")
    process.wait_for(r"-----> Using Python 3\.9 specified in runtime\.txt")
    process.wait_for(r" !     Warning: The runtime.txt file is deprecated\.")
    process.wait_for(r"heroku\[web\.1\]: State changed from starting to up", timeout=900)
    assert process.get("/").json() == {"dyno": "web.1", "python": "3.9"}
    assert "pyuwsgi" not in process.output  # the app's own uWSGI was compiled
    assert process.stop() == 0


def test_an_app_without_a_version_file_gets_herokus_default_3_14(up, tmp_path):
    app_dir = tiny_app(tmp_path / "fresh", WEB)
    (app_dir / "runtime.txt").unlink()
    process = up(app_dir, "--grace", "5")
    process.wait_for(r"No Python version was specified\. Using the buildpack default: Python 3\.14")
    process.wait_for(r"fresh: Python app on stack forky \(Python 3\.14\)")
    process.wait_for(r"heroku\[web\.1\]: State changed from starting to up", timeout=900)
    assert requests.get(process.url, timeout=10).text == "web.1"
    version = dynosim("run", "-a", "fresh", "python3 --version")
    assert version.stdout.startswith("Python 3.14."), version.stderr


def test_an_app_pinned_to_3_14_runs_it_and_its_stack_setting_is_remembered(up, tmp_path):
    """The stack is an app setting, as on Heroku: `up --stack` and `stack:set` set it, and every
    later build (`deploy`, `up`) uses it; a stack without the app's Python is an error naming
    the stack that has it."""
    app_dir = tiny_app(tmp_path / "pinned", WEB, **{".python-version": "3.14\n"})
    (app_dir / "runtime.txt").unlink()
    process = up(app_dir, "--grace", "5", "--stack", "forky")
    process.wait_for(r"-----> Using Python 3\.14 specified in \.python-version")
    process.wait_for(r"pinned: Python app on stack forky \(Python 3\.14\)")
    process.wait_for(r"heroku\[web\.1\]: State changed from starting to up", timeout=900)
    version = dynosim("run", "-a", "pinned", "python --version; python3 --version")
    lines = version.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("Python 3.14.") for line in lines), version
    assert "* forky (Python 3.14)" in dynosim("stack", "-a", "pinned").stdout

    moved = dynosim("stack:set", "bookworm", "-a", "pinned")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.splitlines() == [
        "Setting stack to bookworm... done",
        "You will need to redeploy ⬢ pinned for the change to take effect.",
        "Run dynosim deploy to trigger a new build on ⬢ pinned.",
    ]
    assert "* bookworm (Python 3.11)" in dynosim("stack", "-a", "pinned").stdout
    refused = dynosim("deploy", str(app_dir))
    assert refused.returncode != 0
    lacking = (
        "the app's stack bookworm has Python 3.11, not Python 3.14; the stack that carries"
        " it: forky (Python 3.14). Set it with: dynosim stack:set forky (or up --stack forky)"
    )
    assert lacking in refused.stderr
    assert "Traceback" not in refused.stderr
    assert requests.get(process.url, timeout=10).text == "web.1"  # still the forky release
    assert process.stop() == 0
    refused = dynosim("up", str(app_dir), "--port", "0", "--https-port", "0")
    assert refused.returncode != 0
    assert lacking in refused.stderr


def test_base_image_replaces_the_stacks(up, tmp_path):
    """A user with a registry passes e.g. python:3.12-slim; here: an image this engine has."""
    base = runtime.stack_by_suite("bookworm").build_image
    assert dynosim("stack:build", "--stack", "bookworm").returncode == 0
    app_dir = tiny_app(tmp_path / "based", WEB)
    process = up(app_dir, "--grace", "5", "--base-image", base)
    process.wait_for(rf"based: Python app on base image {re.escape(base)}")
    process.wait_for(r"heroku\[web\.1\]: State changed from starting to up")
    assert requests.get(process.url, timeout=10).text == "web.1"


def test_no_image_layer_or_build_cache_entry_keeps_a_config_var_or_pip_setting(
    tmp_path, docker_client
):
    """A bin/post_compile hook really reads PROBE; afterwards no image on the engine (all of
    them, intermediate ones too), nor the build cache, shows its value or the pip token."""
    probe, token = f"probe-{uuid.uuid4().hex}", f"t0ken-{uuid.uuid4().hex}"
    app_dir = tiny_app(tmp_path / "probed", WEB)
    (app_dir / "app.json").write_text(json.dumps({"env": {"PROBE": probe}}))
    (app_dir / "bin").mkdir()
    (app_dir / "bin" / "post_compile").write_text(
        'echo "post_compile: PROBE has ${#PROBE} characters, extra index ${#PIP_EXTRA_INDEX_URL}"\n'
    )
    extra = f"https://dynosim:{token}@127.0.0.1:9/simple"  # never reached: pip installs nothing
    listing = tmp_path / "ps.txt"  # every process's argv, 10 times a second
    watching = subprocess.Popen(
        ["sh", "-c", f"while :; do ps -eww -o args >>{listing}; sleep 0.1; done"]
    )
    try:
        result = dynosim("deploy", str(app_dir), env={**os.environ, "PIP_EXTRA_INDEX_URL": extra})
    finally:
        watching.terminate()
        watching.wait()
    processes = listing.read_text()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"post_compile: PROBE has {len(probe)} characters" in result.stdout
    assert f"extra index {len(extra)}" in result.stdout
    assert "--secret id=config,src=" in processes  # the watch saw the build's docker CLI
    for value in (probe, token):
        assert value not in processes  # no argv held it
        assert value not in result.stdout + result.stderr
    api = docker_client.api
    images = api.images(all=True, quiet=True)
    assert images
    for image in images:
        history = json.dumps(api.history(image))
        config = json.dumps(api.inspect_image(image))
        for value in (probe, token):
            assert value not in history, image
            assert value not in config, image
    cache = json.dumps(api.df().get("BuildCache") or [])
    assert cache != "[]"
    for value in (probe, token):
        assert value not in cache
    listed = subprocess.run(
        ["docker", "system", "df", "-v"], capture_output=True, text=True, check=False
    ).stdout
    for value in (probe, token):
        assert value not in listed
