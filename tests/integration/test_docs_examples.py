"""The example tests of docs/testing.md, word for word, so the page cannot drift from what
works. They test examples/flask_app (a Flask REST API and a worker) through the dyno_app
fixture of dynosim's pytest plugin."""

import requests

FLASK_APP = "examples/flask_app"


def test_my_app_survives_a_dyno_crash(dyno_app):
    app = dyno_app(FLASK_APP, formation={"web": 2, "worker": 0})
    app.kill("web.1")  # returns once the router stopped sending it requests
    assert all(requests.get(app.url).status_code == 200 for _ in range(10))
    app.wait_for_log(r"heroku\[web\.1\]: State changed from starting to up")


def test_my_config_change_is_picked_up(dyno_app):
    app = dyno_app(FLASK_APP, formation={"worker": 0}, config={"RELEASE": "blue"})
    assert requests.get(app.url).json()["release"] == "blue"
    app.config_set(RELEASE="green")  # a new release; returns once it serves
    assert requests.get(app.url).json()["release"] == "green"


def test_my_worker_processes_a_job(dyno_app):
    app = dyno_app(FLASK_APP, config={"WORKER_INTERVAL": "0.5"})
    app.wait_for_log(r"app\[worker\.1\]: worker: \d+ stores, \d+ items, stock value")
