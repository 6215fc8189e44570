import os

import pytest
from app import Item, app, cache, db


@pytest.fixture
def client():
    with app.app_context():
        Item.query.delete()
        db.session.commit()
    return app.test_client()


def test_items_are_stored_in_the_database(client):
    assert client.post("/items", json={"name": "widget"}).status_code == 201
    assert client.post("/items", json={"name": "gadget"}).status_code == 201
    assert client.get("/items").get_json() == ["gadget", "widget"]


def test_the_database_is_the_test_runs_own_postgres(client):
    with app.app_context():
        server = db.session.execute(db.text("SELECT version()")).scalar()
        ssl = db.session.execute(db.text("SHOW ssl")).scalar()
    assert server.startswith("PostgreSQL")
    assert ssl == "off"  # in-dyno: plain, as Heroku's
    assert os.environ["DATABASE_URL"].startswith("postgres://")


def test_visits_are_counted_in_redis(client):
    before = int(cache.get("visits") or 0)
    client.get("/items")
    assert int(cache.get("visits")) == before + 1
    assert os.environ["REDIS_URL"].startswith("redis://")
