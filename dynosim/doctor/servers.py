"""Pure: what a web server's settings (`observations.Server`: its Procfile flags and config
file) say about how long it keeps an idle connection, so that doctor's keep-alive verdict
names the setting behind the measured time. The defaults: docs/doctor.md."""

from __future__ import annotations

from dataclasses import dataclass

from .observations import Server

#: gunicorn's `keepalive` and uvicorn's `--timeout-keep-alive` when not set.
GUNICORN_KEEPALIVE, UVICORN_KEEPALIVE = 2.0, 5.0
#: More than Router 2.0's 90 s, as Heroku's getting-started apps set it.
ADVISED = 95


@dataclass(frozen=True)
class IdleSetting:
    """The setting that decides when the server closes an idle kept connection: its name as
    the user writes it, its value (None: not known from the settings), where it is set (a file,
    "the Procfile", or "<server>'s default"); `keeps` False: the server closes every connection
    after its answer, whatever the setting."""

    setting: str
    seconds: float | None
    origin: str
    keeps: bool = True

    def describe(self) -> str:
        if not self.keeps:
            return self.setting
        value = f" = {self.seconds:g} s" if self.seconds is not None else ""
        return f"{self.setting}{value} ({self.origin})"


def idle_setting(server: Server) -> IdleSetting | None:
    """The idle-connection setting of uWSGI, gunicorn or uvicorn; None for another server."""
    reader = {"gunicorn": _gunicorn, "uvicorn": _uvicorn, "uwsgi": _uwsgi}.get(server.name)
    return reader(server) if reader else None


def fix(server: Server) -> str:
    """The change that keeps idle connections longer than the router does."""
    found = idle_setting(server)
    if server.name == "gunicorn":
        where = server.config_file or "gunicorn.conf.py"
        return f"set `keepalive = {ADVISED}` in {where} or `--keep-alive {ADVISED}` in the Procfile"
    if server.name == "uvicorn":
        return f"set `--timeout-keep-alive {ADVISED}` in the Procfile (default 5 s)"
    if server.name == "uwsgi":
        named = f"`{found.setting}`" if found and found.keeps else "keep-alive"
        return f"raise {named}'s idle timeout over 90 s, or use `http-socket` (closes each time)"
    return "keep idle connections open longer than 90 s"


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _gunicorn(server: Server) -> IdleSetting:
    settings = server.settings
    worker = settings.get("k") or settings.get("worker-class") or settings.get("worker_class", "")
    threads = _seconds(settings.get("threads")) or 1
    if worker in ("", "sync") and threads <= 1:
        return IdleSetting("gunicorn's sync worker closes each connection", None, "", False)
    for key, origin in (("keep-alive", "the Procfile"), ("keepalive", server.config_file)):
        if key in settings:
            return IdleSetting(key if key == "keepalive" else "--keep-alive",
                               _seconds(settings[key]), origin or "the config")  # fmt: skip
    return IdleSetting("keepalive", GUNICORN_KEEPALIVE, "gunicorn's default")


def _uvicorn(server: Server) -> IdleSetting:
    value = server.settings.get("timeout-keep-alive")
    if value is None:
        return IdleSetting("--timeout-keep-alive", UVICORN_KEEPALIVE, "uvicorn's default")
    return IdleSetting("--timeout-keep-alive", _seconds(value), "the Procfile")


def _uwsgi(server: Server) -> IdleSetting:
    """uWSGI's `http-socket` answers and closes; `http11-socket` and `http-keepalive` keep
    connections (`so-keepalive` is TCP's probes, no idle timeout: not read here)."""
    origin = server.config_file or "the Procfile"
    for key in ("http-keepalive", "http11-socket"):
        if key in server.settings:
            value = server.settings[key] if key == "http-keepalive" else None
            return IdleSetting(key, _seconds(value), origin)
    return IdleSetting("uWSGI's http-socket closes each connection", None, "", False)
