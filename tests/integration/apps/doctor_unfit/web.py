"""A web process that works, but not on Heroku: it ignores X-Forwarded-Proto (a redirect loop
behind the router), closes idle kept connections after 2 s, dies at once on SIGTERM with a
request in flight, and writes into the slug."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_KEY = "d0ct0r-literal-4f8a9b2c7d1e"  # a literal secret, committed

os.makedirs("uploads", exist_ok=True)
with open("uploads/boot.txt", "w") as written:
    written.write("lost at the next restart\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 2  # idle kept connections end after 2 s

    def do_GET(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))  # the body first
        self.send_response(301)  # "always HTTPS", judged on the dyno's own plain connection
        self.send_header("Location", f"https://{self.headers.get('Host')}{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


ThreadingHTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
