"""Stores and items: a small REST API in the style of the classic Heroku
Python tutorials (Flask + Flask-RESTful + Flask-SQLAlchemy).

Run it with `uwsgi uwsgi.ini` (see Procfile) or `flask --app app run`.
"""

import os
import time

from flask import Flask
from flask_restful import Api, Resource, reqparse
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.exc import DBAPIError


def database_url():
    """DATABASE_URL from the environment, else data.db in the working directory."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return "sqlite:///" + os.path.join(os.getcwd(), "data.db")
    # Heroku hands out postgres:// URLs; SQLAlchemy names the driver (psycopg 3) in the scheme
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = database_url()
app.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
app.config["BUNDLE_ERRORS"] = True  # report every bad field at once
app.config["ERROR_404_HELP"] = False

db = SQLAlchemy(app)
api = Api(app, catch_all_404s=True)  # JSON 404s for unknown paths too


class StoreModel(db.Model):
    __tablename__ = "stores"

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), unique=True, nullable=False)
    items = db.relationship(
        "ItemModel", back_populates="store", cascade="all, delete-orphan", lazy="select"
    )

    def json(self):
        return {"id": self.id, "name": self.name, "items": [item.json() for item in self.items]}

    @classmethod
    def find_by_name(cls, name):
        return cls.query.filter_by(name=name).first()


class ItemModel(db.Model):
    __tablename__ = "items"

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), unique=True, nullable=False)
    price = db.Column(db.Float, nullable=False)
    store_id = db.Column(db.Integer, db.ForeignKey("stores.id"), nullable=False)
    store = db.relationship("StoreModel", back_populates="items")

    def json(self):
        return {"id": self.id, "name": self.name, "price": self.price, "store_id": self.store_id}

    @classmethod
    def find_by_name(cls, name):
        return cls.query.filter_by(name=name).first()


item_parser = reqparse.RequestParser()
item_parser.add_argument(
    "price", type=float, required=True, location="json", help="price (a number) is required"
)
item_parser.add_argument(
    "store_id", type=int, required=True, location="json", help="store_id (an integer) is required"
)


def parse_item():
    """Parse and check an item body; return (data, None) or (None, error response)."""
    data = item_parser.parse_args()  # aborts with 400 on missing/invalid fields
    if data["price"] < 0:
        return None, ({"message": "price must not be negative"}, 400)
    if db.session.get(StoreModel, data["store_id"]) is None:
        return None, ({"message": "store {} not found".format(data["store_id"])}, 400)
    return data, None


class Index(Resource):
    def get(self):
        return {
            "app": "flask_app",
            "dyno": os.environ.get("DYNO"),
            "release": os.environ.get("HEROKU_RELEASE_VERSION") or os.environ.get("RELEASE"),
        }


class Store(Resource):
    def get(self, name):
        store = StoreModel.find_by_name(name)
        if store is None:
            return {"message": f"store {name!r} not found"}, 404
        return store.json()

    def post(self, name):
        if StoreModel.find_by_name(name) is not None:
            return {"message": f"store {name!r} already exists"}, 400
        store = StoreModel(name=name)
        db.session.add(store)
        db.session.commit()
        return store.json(), 201

    def delete(self, name):
        store = StoreModel.find_by_name(name)
        if store is None:
            return {"message": f"store {name!r} not found"}, 404
        db.session.delete(store)
        db.session.commit()
        return {"message": f"store {name!r} deleted"}


class StoreList(Resource):
    def get(self):
        return {"stores": [s.json() for s in StoreModel.query.order_by(StoreModel.id)]}


class Item(Resource):
    def get(self, name):
        item = ItemModel.find_by_name(name)
        if item is None:
            return {"message": f"item {name!r} not found"}, 404
        return item.json()

    def post(self, name):
        if ItemModel.find_by_name(name) is not None:
            return {"message": f"item {name!r} already exists"}, 400
        data, error = parse_item()
        if error:
            return error
        item = ItemModel(name=name, price=data["price"], store_id=data["store_id"])
        db.session.add(item)
        db.session.commit()
        return item.json(), 201

    def put(self, name):
        data, error = parse_item()
        if error:
            return error
        item = ItemModel.find_by_name(name)
        status = 200
        if item is None:
            item = ItemModel(name=name)
            db.session.add(item)
            status = 201
        item.price = data["price"]
        item.store_id = data["store_id"]
        db.session.commit()
        return item.json(), status

    def delete(self, name):
        item = ItemModel.find_by_name(name)
        if item is None:
            return {"message": f"item {name!r} not found"}, 404
        db.session.delete(item)
        db.session.commit()
        return {"message": f"item {name!r} deleted"}


class ItemList(Resource):
    def get(self):
        return {"items": [i.json() for i in ItemModel.query.order_by(ItemModel.id)]}


api.add_resource(Index, "/")
api.add_resource(Store, "/store/<string:name>")
api.add_resource(StoreList, "/stores")
api.add_resource(Item, "/item/<string:name>")
api.add_resource(ItemList, "/items")


def create_tables(attempts=5):
    """Create missing tables. With lazy-apps every uWSGI worker (and the worker
    process) imports this module, so two of them can race on a fresh database;
    the loser sees "table already exists" and simply tries again."""
    for attempt in range(attempts):
        try:
            with app.app_context():
                db.create_all()
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


create_tables()


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "5000")))
