"""A tiny Flask app whose one dependency uv installs."""

import os
from importlib.metadata import version

import flask

app = flask.Flask(__name__)


@app.get("/")
def index():
    return {
        "manager": "uv",
        "flask": version("flask"),
        "dyno": os.environ["DYNO"],
        "web_concurrency": os.environ.get("WEB_CONCURRENCY"),
    }
