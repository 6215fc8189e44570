"""An RQ-style worker (Heroku's "Background Jobs in Python" shape), without RQ itself so the
test app builds offline: it needs REDIS_URL, which the heroku-redis add-on sets.

With RQ this file would be `Worker(listen, connection=redis.from_url(redis_url)).work()`; like
RQ, it exits 1 at once when it has no Redis to connect to.
"""

import os
import signal
import sys
import time
from urllib.parse import urlsplit

listen = ["high", "default", "low"]
redis_url = os.getenv("REDIS_URL")
if not redis_url:
    print("Error: REDIS_URL is not set (is the heroku-redis add-on attached?)", flush=True)
    sys.exit(1)

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # warm shutdown, as RQ does
print(
    f"Worker started on {urlsplit(redis_url).hostname}, listening on {', '.join(listen)}",
    flush=True,
)
while True:
    time.sleep(3600)
