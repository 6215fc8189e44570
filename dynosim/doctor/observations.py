"""Pure: what doctor saw, as values the checks judge. The I/O modules (`doctor.lab`,
`doctor.http`, `doctor.static`) make them; tests make them by hand from recorded runs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket inside a dyno ("0.0.0.0", "::", "127.0.0.1", ...)."""

    host: str
    port: int

    @property
    def all_interfaces(self) -> bool:
        return self.host in ("0.0.0.0", "::")


@dataclass(frozen=True)
class Server:
    """The web server a Procfile command runs and the settings of it that matter here
    (read from its command line and config file)."""

    name: str  # uwsgi, gunicorn, uvicorn, or the command's program
    settings: dict[str, str] = field(default_factory=dict)
    config_file: str = ""  # the file some settings come from (uwsgi.ini, gunicorn.conf.py)


@dataclass(frozen=True)
class Boot:
    """A web dyno's boot: seconds until it accepted on $PORT (None: it never did within
    `timeout`, or doctor stopped waiting because it listened elsewhere), what it listened on
    then, and its exit code if it ended."""

    process_type: str
    port: int
    seconds: float | None
    timeout: float
    listeners: tuple[Listener, ...] = ()
    exit_code: int | None = None


@dataclass(frozen=True)
class InFlight:
    """A request in flight (its body not yet all sent) when the dyno got SIGTERM: whether
    the server answered it, and whether the answer came before SIGTERM (then the test says
    nothing: the server did not wait for the body)."""

    answered: bool
    status: int | None = None
    before_sigterm: bool = False
    error: str = ""


@dataclass(frozen=True)
class Shutdown:
    """A dyno's stop: seconds from SIGTERM to exit (None: it had not exited after `grace`,
    or its processes ignore SIGTERM, so it never would), its exit code, the commands of
    processes that ignore SIGTERM."""

    process_type: str
    seconds: float | None
    exit_code: int
    grace: float
    ignoring: tuple[str, ...] = ()


@dataclass(frozen=True)
class EarlyStop:
    """A web dyno sent SIGTERM `delay` seconds after $PORT first accepted (when the server may
    still be loading the app): seconds until it exited (None: still running after `grace`,
    so SIGKILLed: the SIGTERM was lost)."""

    delay: float
    seconds: float | None
    exit_code: int
    grace: float


@dataclass(frozen=True)
class Probe:
    """One request to a probed path: status (None: no answer within `timeout`), seconds to
    the answer's head, its Location, the X-Forwarded-Proto it was sent with."""

    path: str
    status: int | None
    seconds: float
    timeout: float
    location: str = ""
    proto: str = "http"
    error: str = ""


@dataclass(frozen=True)
class KeepAlive:
    """A kept connection to a web dyno after one answer: whether the server keeps it at all,
    seconds idle until it closed it (None: still open after `waited` seconds; doctor holds it
    up to just past Router 2.0's 90 s)."""

    keeps: bool
    closed_after: float | None
    waited: float


@dataclass(frozen=True)
class Memory:
    """A dyno's memory as R14 counts it (rss + cache + swap), after boot and the peak under
    load (None: no load was applied to it)."""

    process_type: str
    size: str
    quota_mb: int
    boot_bytes: int
    load_bytes: int | None = None


@dataclass(frozen=True)
class Concurrency:
    """Worker processes of a web dyno started with WEB_CONCURRENCY=`asked`."""

    asked: int
    workers: int


@dataclass(frozen=True)
class ReleaseRun:
    """The release phase run twice, as Heroku runs it on every release: exit codes and the
    end of the output of the first that failed."""

    command: str
    exit_codes: tuple[int, ...]
    output: str = ""


@dataclass(frozen=True)
class Python:
    """The Python the build chose, where from, and the warnings the build gave."""

    version: str  # "3.11"
    source: str  # ".python-version", "runtime.txt", "" (the default)
    deprecated: bool = False
    supported: bool = True
    detail: str = ""


@dataclass(frozen=True)
class Build:
    """The build's outcome: its error (empty: it worked), Python, Django's collectstatic
    (None: not a Django app)."""

    error: str = ""
    python: Python | None = None
    collectstatic: bool | None = None


@dataclass(frozen=True)
class Secret:
    """A literal secret in a tracked file: where and under which name (never its value)."""

    path: str
    line: int
    name: str


@dataclass(frozen=True)
class Config:
    """app.json's required env vars that have no value, and secrets found in tracked files."""

    required_unset: tuple[str, ...] = ()
    secrets: tuple[Secret, ...] = ()
