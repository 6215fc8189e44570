"""Config vars and releases against real Docker: every change is a release the dynos switch to
without dropping a request (with preboot: at once; without: held while web restarts); failed
releases leave the current one serving (with preboot)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import docker.errors
from conftest import Load, container_app, dynosim, tiny_app

from dynosim import releases
from dynosim.docker import client as docker_client
from dynosim.store import SUCCEEDED, Store

UP = r"heroku\[{}\]: State changed from starting to up"
WEB = (
    'web: if [ -n "$T_CRASH" ]; then echo crashing on purpose; exit 1; fi;'
    ' if [ -n "$T_HANG" ]; then echo never binding; exec sleep 1000; fi;'
    " exec uwsgi --http-socket :$PORT --master --die-on-term --wsgi-file app.py --callable app\n"
)
RELEASE = (
    "release: python -c \"import os, sys, time; print('migrating', flush=True);"
    " time.sleep(float(os.environ.get('T_RELEASE_SLEEP', '0')));"
    " sys.exit(int(os.environ.get('T_RELEASE_EXIT', '0')))\"\n"
)
APP = """import json, os

CODE = {code!r}


def app(environ, start_response):
    env = {{k: v for k, v in os.environ.items() if k.startswith("T_")}}
    body = json.dumps({{"code": CODE, "dyno": os.environ["DYNO"], "env": env}})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]
"""


def echo_app(folder: Path, procfile: str = WEB, code: str = "A", **files: str) -> Path:
    """A uWSGI app answering with its code version and its T_* environment."""
    return tiny_app(folder, procfile, **{"app.py": APP.format(code=code), **files})


def state(process) -> dict:
    return process.get("/").json()


VALUES = {
    "T_SPACES": "  two  spaces  ",
    "T_QUOTES": 'it\'s "quoted"',
    "T_EQUALS": "a=b=c",
    "T_NEWLINES": "line one\nline two\n",
    "T_UNICODE": "café ⬢ 雪",
    "T_EMPTY": "",
    "T_SHELL": "$HOME `id` $(id) \\n ;|&",
    "T_SECRET": "s3cr3t-never-logged",
}


def test_config_vars_round_trip_exactly_to_every_dyno_and_are_never_logged(up, tmp_path):
    process = up(echo_app(tmp_path / "configured"))
    process.wait_for(UP.format(r"web\.1"))

    result = dynosim("config:set", "-a", "configured", *(f"{k}={v}" for k, v in VALUES.items()))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"Setting {', '.join(VALUES)} and restarting ⬢ configured... done, v2\n"
    )
    assert state(process)["env"] == VALUES
    for key, value in VALUES.items():
        assert dynosim("config:get", "-a", "configured", key).stdout == value + "\n"
    shown = json.loads(dynosim("config", "-a", "configured", "--json").stdout)
    assert shown == VALUES

    unset = dynosim("config:unset", "-a", "configured", "T_EMPTY", "T_SHELL")
    assert unset.stdout == "Unsetting T_EMPTY, T_SHELL and restarting ⬢ configured... done, v3\n"
    assert set(state(process)["env"]) == set(VALUES) - {"T_EMPTY", "T_SHELL"}

    listing = dynosim("releases", "-a", "configured").stdout.splitlines()
    assert listing[0] == "=== ⬢ configured Releases - Current: v3"
    words = [" ".join(line.split()) for line in listing[1:]]
    assert words[0].startswith("v3 Remove T_EMPTY, T_SHELL config vars ")
    assert words[1].startswith(f"v2 Set {', '.join(VALUES)} config vars ")
    assert re.match(r"v1 Deploy [0-9a-f]{7} ", words[2])
    ps = dynosim("ps", "-a", "configured").stdout
    process.stop()
    for shown_somewhere in (process.output, ps):
        assert VALUES["T_SECRET"] not in shown_somewhere


def test_deploys_config_changes_and_rollbacks_switch_without_a_failed_request(up, tmp_path):
    app_dir = echo_app(tmp_path / "rehearsal")
    process = up(app_dir, "--grace", "5")
    process.wait_for(UP.format(r"web\.1"))
    assert dynosim("ps:scale", "-a", "rehearsal", "web=2").returncode == 0
    assert dynosim("features:enable", "preboot", "-a", "rehearsal").returncode == 0
    process.wait_for(UP.format(r"web\.2"))
    load = Load(process.url)
    try:
        assert dynosim("config:set", "-a", "rehearsal", "T_GREETING=hello").returncode == 0
        assert state(process)["env"] == {"T_GREETING": "hello"}

        (app_dir / "app.py").write_text(APP.format(code="B"))
        deployed = dynosim("deploy", str(app_dir), "-a", "rehearsal")
        assert deployed.returncode == 0, deployed.stderr
        assert "-----> Released v3" in deployed.stdout
        assert state(process)["code"] == "B"
        assert state(process)["env"] == {"T_GREETING": "hello"}  # a deploy keeps the config

        rolled = dynosim("releases:rollback", "-a", "rehearsal", "v1")
        assert rolled.stdout.startswith("Rolling back ⬢ rehearsal to v1... done, v4\n")
        assert state(process)["code"] == "A"
        assert state(process)["env"] == {}  # v1's config: no greeting
    finally:
        load.stop()
    assert load.failures == [] and load.sent > 100
    process.wait_for(r"app\[api\]: Deployed v4")
    assert "Rollback to v1" in dynosim("releases", "-a", "rehearsal").stdout
    # each switch booted the new web dynos first, then drained and stopped the old ones
    switch = process.output.split("Release v4 created")[1]
    assert switch.index("heroku[web.2]: State changed from starting to up") < switch.index(
        "heroku[web.2]: Stopping all processes with SIGTERM"
    )


def test_without_preboot_web_is_sigtermed_as_the_new_one_starts_and_held_requests_do_not_fail(
    up, tmp_path
):
    """Heroku's default (no preboot): a release sends the old web dyno SIGTERM and starts the
    new one meanwhile; requests arriving in between are held by the router until it is up,
    not failed."""
    process = up(echo_app(tmp_path / "plain"), "--grace", "5")
    process.wait_for(UP.format(r"web\.1"))
    assert "[ ] preboot" in dynosim("features", "-a", "plain").stdout  # off by default
    load = Load(process.url)
    try:
        changed = dynosim("config:set", "-a", "plain", "T_GREETING=hello")
        assert changed.returncode == 0, changed.stderr
        assert state(process)["env"] == {"T_GREETING": "hello"}
    finally:
        load.stop(at_least=200)
    assert load.failures == [] and load.sent >= 200
    switch = process.output.split("Release v2 created")[1]
    stopped = switch.index("heroku[web.1]: Stopping all processes with SIGTERM")
    assert switch.index("heroku[web.1]: State changed from up to starting") < stopped
    assert stopped < switch.index("heroku[web.1]: State changed from starting to up")


def test_a_release_that_fails_leaves_the_current_one_serving(up, tmp_path):
    process = up(
        echo_app(tmp_path / "careful", WEB + RELEASE),
        *("--boot-timeout", "5", "--release-timeout", "5"),
    )
    process.wait_for(r"app\[api\]: Deployed v1")
    process.wait_for(UP.format(r"web\.1"))
    assert r"app[release." in process.output  # v1 ran its release phase too
    assert dynosim("features:enable", "preboot", "-a", "careful").returncode == 0

    failed = dynosim("config:set", "-a", "careful", "T_RELEASE_EXIT=3", "T_GREETING=new")
    assert failed.returncode == 6
    assert "release v2 failed: release command" in failed.stderr
    assert "exited with status 3" in failed.stderr and "| migrating" in failed.stderr
    assert state(process)["env"] == {}
    assert "release command failed" in dynosim("releases", "-a", "careful").stdout
    assert json.loads(dynosim("config", "-a", "careful", "--json").stdout) == {}

    crashing = dynosim("config:set", "-a", "careful", "T_CRASH=1")
    assert crashing.returncode == 6
    assert "release v3 failed: web.1 of v3 did not come up" in crashing.stderr
    assert "| crashing on purpose" in crashing.stderr
    assert state(process) == {"code": "A", "dyno": "web.1", "env": {}}

    hanging = dynosim("config:set", "-a", "careful", "T_HANG=1")  # R10 during preboot
    assert hanging.returncode == 6
    assert "release v4 failed: web.1 of v4 did not come up" in hanging.stderr
    assert "| never binding" in hanging.stderr
    process.wait_for(r"Error R10 \(Boot timeout\)", unless=None)

    slow = dynosim("config:set", "-a", "careful", "T_RELEASE_SLEEP=60")  # Heroku's is 1 h
    assert slow.returncode == 6
    assert "release v5 failed: release command timed out after 5 seconds" in slow.stderr
    assert "| migrating" in slow.stderr
    assert state(process) == {"code": "A", "dyno": "web.1", "env": {}}
    listing = dynosim("releases", "-a", "careful").stdout
    assert listing.startswith("=== ⬢ careful Releases - Current: v1\n")


def test_app_json_and_dotenv_give_the_first_release_its_config_and_formation(up, tmp_path):
    app_json = {
        "env": {
            "T_DEFAULT": "from app.json",
            "T_TOKEN": {"generator": "secret"},
            "T_REQUIRED": {"description": "comes from .env", "required": True},
        },
        "formation": {"web": {"quantity": 2, "size": "standard-2x"}},
        "scripts": {"postdeploy": "echo postdeploy ran"},
    }
    dotenv = "# local settings\nT_REQUIRED=from .env\nexport T_LOCAL='only local'\n"
    app_dir = echo_app(tmp_path / "manifested", **{"app.json": json.dumps(app_json)})
    (app_dir / ".env").write_text(dotenv)
    process = up(app_dir, "--env-file")  # heroku local's habit, asked for: Heroku never reads it
    process.wait_for(UP.format(r"web\.2"))
    process.wait_for(r"app\[postdeploy\.\d+\]: postdeploy ran")
    env = state(process)["env"]
    assert env["T_DEFAULT"] == "from app.json" and env["T_REQUIRED"] == "from .env"
    assert len(env["T_TOKEN"]) == 64 and int(env["T_TOKEN"], 16) >= 0
    assert env["T_LOCAL"] == "only local"  # .env, not a config var
    assert "T_LOCAL" not in dynosim("config", "-a", "manifested", "--json").stdout
    assert "=== web (Standard-2X)" in dynosim("ps", "-a", "manifested").stdout
    shown = 'echo "${T_LOCAL-unset}"'
    assert dynosim("run", "-a", "manifested", "-x", shown).stdout == "unset\n"
    assert dynosim("run", "-a", "manifested", "--env-file", "-x", shown).stdout == "only local\n"

    assert dynosim("config:set", "-a", "manifested", "T_LOCAL=config wins").returncode == 0
    assert {state(process)["env"]["T_LOCAL"] for _ in range(6)} == {"config wins"}


def test_heroku_yml_app_builds_its_own_dockerfile_and_runs_its_release_phase(up, tmp_path):
    app_dir = container_app(
        tmp_path / "containered",
        'WORKDIR /srv\nCOPY index.html /srv/\nCMD ["false"]\n',
        "build:\n  docker:\n    web: Dockerfile\n"
        "release:\n  command:\n    - echo released as $(id -u)\n"
        "run:\n  web: python3 -m http.server $PORT\n",
        **{"index.html": "served from my own image\n"},
    )
    process = up(app_dir)
    process.wait_for(UP.format(r"web\.1"))
    assert process.get("/").text == "served from my own image\n"
    assert "released as 1000" in process.output  # never root, as on Heroku
    assert (
        "=== web (Standard-1X): python3 -m http.server $PORT (1)"
        in dynosim("ps", "-a", "containered").stdout
    )


IMAGE_APP = "dynosim.image.app"  # the label every app image carries


def test_only_the_images_of_the_newest_releases_and_the_current_one_are_kept(tmp_path):
    client = docker_client.client()
    app = "keeper"
    images = [  # empty images, labelled as the app's builds are
        client.images.build(
            fileobj=io.BytesIO(f"FROM scratch\nLABEL {IMAGE_APP}={app} n={n}\n".encode()),
            rm=True,
        )[0].id
        for n in range(releases.KEEP_IMAGES + 3)
    ]
    store = Store()
    store.ensure_app(app, tmp_path)
    try:
        for n, image in enumerate(images):
            store.create_release(
                app, image=image, source_hash=f"{n:040d}", description="Deploy", process_types={}
            )
            if n == 0:  # the one that runs stays, however old
                store.finish_release(app, 1, SUCCEEDED)
        releases.prune_images(store, app)
        left = {i.id for i in client.images.list(filters={"label": f"{IMAGE_APP}={app}"})}
        assert left == {images[0], *images[-releases.KEEP_IMAGES :]}
    finally:
        store.close()
        for image in images:
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(image, force=True)
