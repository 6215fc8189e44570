"""Shaped like a Heroku app on Postgres and Redis: Flask-SQLAlchemy reads DATABASE_URL, jobs go
to a Redis list (REDIS_URL) that worker.py consumes. Both servers require TLS with self-signed
certificates, as Heroku's do: sslmode=require, and ssl_cert_reqs=None for the rediss:// URL."""

import os

import redis
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"].replace(
    "postgres://", "postgresql://", 1
)
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"sslmode": "require"}}
db = SQLAlchemy(app)
queue = (
    redis.from_url(os.environ["REDIS_URL"], ssl_cert_reqs=None)
    if os.environ.get("REDIS_URL")
    else None
)


class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)


with app.app_context():
    db.create_all()
    # uWSGI forks its workers after this: a TLS connection shared across processes breaks
    # (SSL error: decryption failed or bad record mac), so each worker opens its own.
    db.engine.dispose()


@app.get("/items")
def items():
    return jsonify(sorted(item.name for item in Item.query.all()))


@app.post("/items")
def add_item():
    db.session.add(Item(name=request.args["name"]))
    db.session.commit()
    return jsonify(ok=True), 201


@app.post("/jobs")
def enqueue():
    queue.rpush("jobs", request.args["value"])
    return jsonify(queued=True), 202


@app.get("/results")
def results():
    return jsonify([value.decode() for value in queue.lrange("results", 0, -1)])
