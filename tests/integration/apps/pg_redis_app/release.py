"""The release phase's migration, as `release: python release.py` in a Procfile runs it before
a release's dynos start: the tables made (Flask-SQLAlchemy's create_all), then one line."""

from app import Item, app, db

with app.app_context():
    db.create_all()
    print(f"release: {Item.__tablename__} table ready", flush=True)
