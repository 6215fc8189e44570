"""Shaped like a Heroku app tested on Heroku CI: Flask-SQLAlchemy on DATABASE_URL, a visit
counter in Redis (REDIS_URL). Heroku's production add-ons require TLS; Heroku CI's in-dyno
ones speak plain TCP, so TLS is asked for only outside CI."""

import os

import click
import redis
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy

IN_CI = os.environ.get("CI") == "true"
app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"].replace(
    "postgres://", "postgresql://", 1
)
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
    "connect_args": {"sslmode": "disable" if IN_CI else "require"}
}
db = SQLAlchemy(app)
cache = redis.from_url(os.environ["REDIS_URL"], **({} if IN_CI else {"ssl_cert_reqs": None}))


class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False, unique=True)


@app.cli.command("init-db")
def init_db():
    """Create the tables (Heroku CI's test-setup runs this)."""
    db.create_all()
    click.echo("tables created")


@app.get("/items")
def list_items():
    cache.incr("visits")
    return jsonify([item.name for item in Item.query.order_by(Item.name)])


@app.post("/items")
def add_item():
    item = Item(name=request.get_json()["name"])
    db.session.add(item)
    db.session.commit()
    return jsonify(id=item.id), 201
