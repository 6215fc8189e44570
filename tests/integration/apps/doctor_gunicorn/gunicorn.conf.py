# gunicorn's settings as Heroku's getting-started app had them before Router 2.0: threads (so
# connections are kept alive), a graceful stop under Heroku's 30 s, and no `keepalive`, so an
# idle kept connection is closed after gunicorn's default 2 s (Router 2.0 keeps them 90 s).
# The workers come from WEB_CONCURRENCY, which gunicorn reads by itself.
threads = 4
graceful_timeout = 20
