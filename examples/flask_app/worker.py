"""worker: process: every WORKER_INTERVAL seconds, summarise the stores database."""

import os
import signal
import sys
import time

from app import ItemModel, StoreModel, app, db
from sqlalchemy import func

running = True
stopped_by = None


def stop(signum, frame):
    global running, stopped_by
    running = False
    stopped_by = signal.Signals(signum).name


def report():
    with app.app_context():
        try:
            stores = db.session.query(func.count(StoreModel.id)).scalar() or 0
            items = db.session.query(func.count(ItemModel.id)).scalar() or 0
            value = db.session.query(func.sum(ItemModel.price)).scalar() or 0.0
        finally:
            db.session.remove()
    print(f"worker: {stores} stores, {items} items, stock value {value:.2f}", flush=True)


def main():
    interval = float(os.environ.get("WORKER_INTERVAL", "5"))
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        "worker: starting (dyno {}, every {:g}s)".format(os.environ.get("DYNO"), interval),
        flush=True,
    )
    while running:
        try:
            report()
        except Exception as exc:  # keep going: the database may be busy or not there yet
            print(f"worker: error: {exc}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + interval
        while running and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    print(f"worker: received {stopped_by}, goodbye", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
