"""Pure: who may use the dashboard. As Jupyter does, the URL `dynosim up` prints carries a
secret token (`?token=...`); a request that shows it gets a cookie, so the page's own fetches
need no token. Any local user can reach a 127.0.0.1 port: without the token, 403."""

from __future__ import annotations

import hmac
import secrets
from http import cookies
from urllib.parse import parse_qs

TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh secret for one `up`."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def cookie_name(port: int) -> str:
    """One cookie per dashboard: cookies are per host, not per port."""
    return f"dynosim-dashboard-{port}"


def same(given: str | None, token: str) -> bool:
    """Whether `given` is the token, in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def query_token(query: str) -> str | None:
    """The `token` of a URL's query string, if any."""
    values = parse_qs(query).get("token")
    return values[0] if values else None


def cookie_token(header: str | None, port: int) -> str | None:
    """The dashboard's cookie from a Cookie header, if any."""
    if not header:
        return None
    jar = cookies.SimpleCookie()
    try:
        jar.load(header)
    except cookies.CookieError:
        return None
    found = jar.get(cookie_name(port))
    return found.value if found else None


def allowed(query: str, cookie_header: str | None, port: int, token: str) -> bool:
    """Whether a request carries the token, in its URL or in the dashboard's cookie."""
    return same(query_token(query), token) or same(cookie_token(cookie_header, port), token)


def set_cookie(port: int, token: str) -> str:
    """The Set-Cookie header value: the page's scripts cannot read it, other sites never
    send it (SameSite=Strict: no request forged from another page carries it)."""
    return f"{cookie_name(port)}={token}; Path=/; HttpOnly; SameSite=Strict"


def local_host(host_header: str | None, port: int) -> bool:
    """Whether the Host header names this dashboard on the loopback (a DNS-rebinding page
    names its own host)."""
    return host_header in (f"127.0.0.1:{port}", f"localhost:{port}")
