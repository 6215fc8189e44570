"""A WSGI app served by gunicorn with its defaults: `/` answers at once, `/report` takes 32 s
(slower than Heroku's 30 s H12 window, as a report built in the request would be)."""

import time


def app(environ, start_response):
    if environ["PATH_INFO"] == "/report":
        time.sleep(32)
    body = b"ok\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
