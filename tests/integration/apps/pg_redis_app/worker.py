"""Consume jobs from Redis and record each result: a worker dyno as on Heroku."""

import os

import redis

queue = redis.from_url(os.environ["REDIS_URL"], ssl_cert_reqs=None)  # rediss://, self-signed
print("worker: waiting for jobs", flush=True)
while True:
    job = queue.blpop("jobs", timeout=1)  # a short wait: redis-py times out long reads
    if job:
        value = job[1].decode()
        queue.rpush("results", value.upper())
        print(f"worker: processed {value}", flush=True)
