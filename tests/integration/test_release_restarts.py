"""A new release restarts every dyno, crashed ones included, and resets the crash cool-off
(Heroku: deploys, config changes, add-on attachments and rollbacks all do)."""

from __future__ import annotations

import json

from conftest import ROOT, copy_app, dynosim

APP = ROOT / "tests" / "integration" / "apps" / "rq_worker_app"
COOLING = r"heroku\[worker\.1\]: Crashed {} times in a row; restarting in {} min"
LISTENING = r"app\[worker\.1\]: Worker started on .+, listening on high, default, low"


def worker(dynos: list[dict]) -> dict:
    return next(d for d in dynos if d["name"] == "worker.1")


def test_config_set_rollback_and_deploy_restart_a_cooling_off_dyno_and_reset_its_count(
    dyno_app, tmp_path
):
    """Cool-offs run in real time (a fast clock would end them on its own and prove nothing);
    the schedule is fast-forwarded once, to the 40-minute step, with the clock's advance."""
    app = dyno_app(copy_app(APP, tmp_path / "rq-worker"))
    app.wait_for_log(COOLING.format(2, 20))
    app.clock.advance(20 * 60)  # fast-forward: the third crash in a row waits 40 minutes
    app.wait_for_log(COOLING.format(3, 40))

    def new_release(make_it, version: int) -> None:
        mark = app.mark()
        make_it()
        app.wait_for_log(r"heroku\[worker\.1\]: State changed from crashed to starting", after=mark)
        # it still crashes; the count started again: at once, then the first step, 20 min
        app.wait_for_log(COOLING.format(2, 20), after=mark)
        assert worker(app.dynos())["release"] == version

    new_release(lambda: app.config_set(QUEUES="high,default,low"), 2)
    new_release(lambda: app.rollback("v1"), 3)
    (app.path / "settings.py").write_text("QUEUES = ['high', 'default', 'low']\n")
    new_release(lambda: app.deploy(image_name="rq-worker", prune=False), 4)  # the fixture's tag

    mark = app.mark()
    app.config_set(REDIS_URL="redis://h:6379")  # an attachment, as far as the dyno can tell
    app.wait_for_log(LISTENING, after=mark)
    assert {k: worker(app.dynos())[k] for k in ("state", "release")} == {
        "state": "up",
        "release": 5,
    }


def test_a_worker_that_needs_redis_is_up_after_addons_create_without_ps_restart(up, tmp_path):
    app_dir = copy_app(APP, tmp_path / "rq-needs-redis")
    process = up(app_dir, "--grace", "5")
    process.wait_for(COOLING.format(2, 20))  # crashed twice: 20 minutes to the next try

    mark = process.mark()
    created = dynosim("addons:create", "-a", "rq-needs-redis", "heroku-redis")
    assert created.returncode == 0, created.stderr
    try:
        process.wait_for(LISTENING, timeout=120, after=mark)  # no ps:restart
        ps = dynosim("ps", "-a", "rq-needs-redis")
        assert "\nworker.1: up " in ps.stdout, ps.stdout
        listed = json.loads(dynosim("ps", "-a", "rq-needs-redis", "--json").stdout)
        assert worker(listed)["release"] == 2
    finally:
        gone = dynosim(
            "addons:destroy", "-a", "rq-needs-redis", "REDIS_URL", "--confirm", "rq-needs-redis"
        )
        assert gone.returncode == 0, gone.stderr
