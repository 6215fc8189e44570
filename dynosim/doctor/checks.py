"""Pure: the checks. Each takes observations (`doctor.observations`) and returns findings
with the Heroku fact behind the verdict and the fix; none does I/O, so each is tested on
recorded observations (tests/unit/test_doctor_checks.py). The facts: docs/doctor.md."""

from __future__ import annotations

from urllib.parse import urlsplit

from .. import formation
from . import servers
from .observations import (
    Boot,
    Build,
    Concurrency,
    Config,
    EarlyStop,
    InFlight,
    KeepAlive,
    Memory,
    Probe,
    Python,
    ReleaseRun,
    Server,
    Shutdown,
)
from .report import Check, Fact, Finding, Status

R10 = Fact("R10", "web must bind $PORT on all interfaces within 60 s of launch", "Error Codes")
R12 = Fact("R12", "every process must exit within 30 s of SIGTERM", "Dyno Shutdown Behavior")
H13 = Fact("H13", "a request the dyno drops at SIGTERM is a 503", "Dyno Shutdown Behavior")
H12 = Fact("H12", "the answer's first byte within 30 s", "HTTP Routing")
KEEPALIVE = Fact("H13/H18", "Router 2.0 keeps idle dyno connections 90 s", "HTTP Routing")
HTTPS = Fact(None, "the router ends TLS and says so in X-Forwarded-Proto", "HTTP Routing")
R14 = Fact(
    "R14", "memory (rss + cache + swap) within the dyno size's quota", "Dyno Memory Behavior"
)
R15 = Fact("R15", "killed at twice the quota", "Dyno Memory Behavior")
EPHEMERAL = Fact(
    None, "the filesystem is reset at every restart and daily cycling", "Dynos and the Dyno Manager"
)
RELEASE = Fact(None, "release: runs on every release; non-zero fails it", "Release Phase")
PYTHON = Fact(None, "supported Python versions 3.10 to 3.14", "Python Support")
RUNTIME_TXT = Fact(
    None, "runtime.txt is deprecated for .python-version", "Specifying a Python Version"
)
COLLECTSTATIC = Fact(
    None, "collectstatic runs in the build; failing fails it", "Django and Static Assets"
)
CONCURRENCY = Fact(
    None, "WEB_CONCURRENCY is set per dyno size", "Optimizing Python Application Concurrency"
)
CONTAINER = Fact(
    None,
    "heroku.yml apps build their Dockerfiles; no buildpack runs",
    "Building Docker Images with heroku.yml",
)
APPJSON = Fact(None, "required env without value is refused at app setup", "app.json Schema")
SECRETS = Fact(
    None, "secrets belong in config vars, not in the code", "Configuration and Config Vars"
)

#: The setting that makes each server finish requests in flight at SIGTERM.
GRACEFUL = {
    "uwsgi": "drop die-on-term; add `hook-master-start = unix_signal:15 gracefully_kill_them_all`"
    ", `hook-post-fork` and `hook-accepting = unix_signal:15 gracefully_kill` (Heroku signals"
    " the workers too, also while they load the app)",
    "gunicorn": "keep gunicorn's graceful SIGTERM and set `--graceful-timeout 25` (under 30 s)",
    "uvicorn": "set `--timeout-graceful-shutdown 25` (requests finish, under 30 s)",
}
BIND = {
    "uwsgi": "`http-socket = :$(PORT)`",
    "gunicorn": "no --bind (gunicorn binds 0.0.0.0:$PORT), or `--bind 0.0.0.0:$PORT`",
    "uvicorn": "`--host 0.0.0.0 --port $PORT`",
}
ROUTER_IDLE = 90.0
#: How long doctor holds an idle kept connection: just past the router's 90 s.
IDLE_HOLD = ROUTER_IDLE + 1.0
#: When doctor sends SIGTERM to a freshly booted web dyno: while the workers of a server that
#: forks them after binding $PORT still load the app (docs/benchmarks.md: SIGTERM at boot).
EARLY_SIGTERM = 0.15


def _finding(check: Check, status: Status, subject: str, observed: str, fact: Fact, fix: str = ""):
    return Finding(check, status, subject, observed, fact, fix)


def boot(observed: Boot, server: Server) -> Finding:
    """R10: $PORT bound on all interfaces within the boot timeout; a fixed port named."""
    subject, port = observed.process_type, observed.port
    fix = f"bind 0.0.0.0:$PORT: {BIND.get(server.name, 'read PORT from the environment')}"
    if observed.seconds is not None:
        text = f"bound $PORT ({port}) on all interfaces in {observed.seconds:.1f} s"
        return _finding(Check.BOOT, Status.PASS, subject, f"{text} of {observed.timeout:g}", R10)
    local = [x for x in observed.listeners if x.port == port and not x.all_interfaces]
    others = sorted({x.port for x in observed.listeners if x.port != port})
    if local:
        text = f"listens on {local[0].host}:{port} only, which the router cannot reach"
    elif others:
        text = f"listens on fixed port {', '.join(map(str, others))}, not $PORT ({port})"
    elif observed.exit_code is not None:
        text = f"exited with status {observed.exit_code} before binding $PORT"
        fix = "see its log: the web process must keep running"
    else:
        text = f"did not bind $PORT ({port}) within {observed.timeout:g} s"
    return _finding(Check.BOOT, Status.FAIL, subject, text, R10, fix)


CRASHED = Fact(None, "a crashed dyno restarts on a cool-off schedule", "Dynos and the Dyno Manager")


def running(process_type: str, exit_code: int | None) -> Finding:
    """A dyno that is not web must keep running too (else it crashes and is restarted)."""
    if exit_code is None:
        return _finding(Check.BOOT, Status.PASS, process_type, "running after start", CRASHED)
    text = f"exited with status {exit_code} after start: it crashes on Heroku"
    return _finding(Check.BOOT, Status.FAIL, process_type, text, CRASHED, "see its output")


def shutdown(observed: Shutdown) -> Finding:
    """R12: the dyno's processes exit within 30 s of SIGTERM."""
    subject = observed.process_type
    if observed.ignoring:
        text = (
            f"ignores SIGTERM ({', '.join(observed.ignoring)}): killed after {observed.grace:g} s"
        )
        fix = "do not ignore SIGTERM; a handler must end the process within 30 s"
        return _finding(Check.SHUTDOWN, Status.FAIL, subject, text, R12, fix)
    if observed.seconds is None or observed.seconds >= observed.grace:
        text = f"still running {observed.grace:g} s after SIGTERM (killed)"
        fix = "finish work and exit within 30 s of SIGTERM"
        return _finding(Check.SHUTDOWN, Status.FAIL, subject, text, R12, fix)
    text = f"exited {observed.seconds:.1f} s after SIGTERM (status {observed.exit_code})"
    return _finding(Check.SHUTDOWN, Status.PASS, subject, text, R12)


#: The setting that makes each server handle SIGTERM while it still loads the app.
EARLY = {
    "uwsgi": "add `hook-post-fork = unix_signal:15 gracefully_kill` (each worker gets the"
    " graceful handler right after fork, before it loads the app)",
}


def sigterm_at_boot(observed: EarlyStop, server: Server) -> Finding:
    """R12 when the SIGTERM of a restart or scale-down reaches a dyno that has just booted."""
    subject = "web (SIGTERM right after boot)"
    after = f"{observed.delay:g} s after $PORT first accepted"
    if observed.seconds is None:
        text = f"a SIGTERM {after} was lost: still running {observed.grace:g} s later (killed)"
        fix = EARLY.get(server.name, "handle SIGTERM from the process's start, not after loading")
        return _finding(Check.SHUTDOWN, Status.WARN, subject, text, R12, fix)
    text = f"exited {observed.seconds:.1f} s after a SIGTERM {after}"
    return _finding(Check.SHUTDOWN, Status.PASS, subject, text, R12)


def in_flight(observed: InFlight, server: Server) -> Finding:
    """H13: a request in flight when the dyno gets SIGTERM is answered, not dropped."""
    subject = "web (request in flight at SIGTERM)"
    if observed.answered and observed.before_sigterm:
        text = f"answered ({observed.status}) before its body was complete: nothing was in flight"
        return _finding(Check.SHUTDOWN, Status.PASS, subject, text, H13)
    if observed.answered:
        text = f"answered ({observed.status}) after SIGTERM"
        return _finding(Check.SHUTDOWN, Status.PASS, subject, text, H13)
    settings = " (die-on-term)" if server.settings.get("die-on-term") else ""
    text = f"dropped without an answer{settings}: {observed.error or 'connection closed'}"
    fix = GRACEFUL.get(server.name, "finish requests in flight on SIGTERM, then exit")
    return _finding(Check.SHUTDOWN, Status.WARN, subject, text, H13, fix)


def probe(observed: Probe) -> Finding:
    """H12 on a probed path; with X-Forwarded-Proto: https, no redirect to itself."""
    subject = observed.path if observed.proto == "http" else f"{observed.path} (https)"
    limit = observed.timeout
    if observed.status is None or observed.seconds >= limit:
        text = f"no answer within {limit:g} s" + (f": {observed.error}" if observed.error else "")
        fix = "answer within 30 s: move slow work to a worker"
        return _finding(Check.ROUTER, Status.FAIL, subject, text, H12, fix)
    if observed.proto == "https" and _redirects_to_itself(observed):
        text = f"redirects to {observed.location} although X-Forwarded-Proto is https: a loop"
        fix = "trust X-Forwarded-Proto (Django: SECURE_PROXY_SSL_HEADER; Flask: ProxyFix)"
        return _finding(Check.ROUTER, Status.FAIL, subject, text, HTTPS, fix)
    text = f"answered {observed.status} in {observed.seconds * 1000:.0f} ms"
    if observed.status >= 500:
        return _finding(Check.ROUTER, Status.WARN, subject, text, H12, "see the app's log")
    return _finding(
        Check.ROUTER, Status.PASS, subject, text, HTTPS if observed.proto == "https" else H12
    )


def _redirects_to_itself(observed: Probe) -> bool:
    if observed.status not in (301, 302, 303, 307, 308) or not observed.location:
        return False
    target = urlsplit(observed.location)
    path = target.path or "/"
    return target.scheme in ("https", "") and path == urlsplit(observed.path).path


def keep_alive(observed: KeepAlive, server: Server) -> Finding:
    """Router 2.0 keeps dyno connections 90 s idle: a server closing them sooner races it.
    The verdict rests on the measured idle time; the server's setting names the fix."""
    subject = "web (kept connection)"
    setting = servers.idle_setting(server)
    said = f"; {setting.describe()}" if setting else ""
    if not observed.keeps or (observed.closed_after is not None and observed.closed_after < 1.0):
        text = f"closes the connection after each answer: no idle connection to race{said}"
        return _finding(Check.ROUTER, Status.PASS, subject, text, KEEPALIVE)
    if observed.closed_after is not None and observed.closed_after < ROUTER_IDLE:
        text = f"closed an idle kept connection after {observed.closed_after:.1f} s (< 90 s{said})"
        return _finding(Check.ROUTER, Status.WARN, subject, text, KEEPALIVE, servers.fix(server))
    if observed.closed_after is None and observed.waited < ROUTER_IDLE:
        text = f"an idle kept connection still open after {observed.waited:.0f} s, not 90 s:"
        text += f" doctor stopped holding it{said}"
        return _finding(Check.ROUTER, Status.WARN, subject, text, KEEPALIVE, servers.fix(server))
    held = observed.closed_after if observed.closed_after is not None else observed.waited
    text = f"an idle kept connection open after {held:.0f} s (> 90 s{said})"
    return _finding(Check.ROUTER, Status.PASS, subject, text, KEEPALIVE)


def smallest_size(peak_bytes: int) -> formation.Size | None:
    """The smallest dyno size whose quota holds `peak_bytes`."""
    sizes = sorted(
        (s for s in formation.SIZES.values() if s.tier != "free"), key=lambda s: s.memory_mb
    )
    return next((s for s in sizes if s.memory_mb * 2**20 >= peak_bytes), None)


def memory(observed: Memory) -> Finding:
    """R14/R15: memory after boot and under load against the dyno size's quota."""
    quota = observed.quota_mb * 2**20
    peak = max(observed.boot_bytes, observed.load_bytes or 0)
    mb = f"{observed.boot_bytes / 2**20:.0f} MB after boot"
    if observed.load_bytes is not None:
        mb += f", {observed.load_bytes / 2**20:.0f} MB under load"
    mb += f" of {observed.quota_mb} MB ({observed.size})"
    fits = smallest_size(peak)
    fix = f"use {fits.name} dynos ({fits.memory_mb} MB) or use less" if fits else "use less memory"
    if peak >= 2 * quota:
        return _finding(Check.MEMORY, Status.FAIL, observed.process_type, mb, R15, fix)
    if peak > quota:
        when = "at boot" if observed.boot_bytes > quota else "under load"
        return _finding(
            Check.MEMORY, Status.FAIL, observed.process_type, f"{mb}: over {when}", R14, fix
        )
    smallest = f"; fits {fits.name}" if fits else ""
    return _finding(Check.MEMORY, Status.PASS, observed.process_type, mb + smallest, R14)


#: Where writing is expected (scratch) or is the kernel's, not the app's.
SCRATCH = ("/tmp/", "/var/tmp/", "/dev/", "/proc/", "/sys/", "/run/")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db-journal", ".db-wal")


def outside_tmp(changes: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """From a container's diff (path, kind): the files written outside /tmp (folders that
    only hold them, deletions and Python's bytecode caches aside), and which are SQLite."""
    paths = sorted(path for path, kind in changes if kind != "deleted")
    parents = {path.rsplit("/", 1)[0] for path in paths}
    leaves = [path for path in paths if path not in parents]
    written = [
        p for p in leaves
        if not (p + "/").startswith(SCRATCH) and "__pycache__" not in p and not p.endswith(".pyc")
    ]  # fmt: skip
    return written, [p for p in written if p.endswith(SQLITE_SUFFIXES)]


def filesystem(process_type: str, written: list[str], sqlite: list[str]) -> Finding:
    """Files written outside /tmp are lost at every restart; a SQLite database most of all."""
    if sqlite:
        names = ", ".join(sorted(sqlite)[:3])
        text = f"a SQLite database in the slug ({names}), lost at every restart"
        fix = "use Heroku Postgres (heroku-postgresql in app.json's addons) through DATABASE_URL"
        return _finding(Check.FILESYSTEM, Status.WARN, process_type, text, EPHEMERAL, fix)
    if written:
        shown = ", ".join(sorted(written)[:5]) + (" ..." if len(written) > 5 else "")
        text = f"wrote {len(written)} files outside /tmp ({shown}), lost at every restart"
        fix = "keep files in /tmp for scratch, object storage or a database for anything else"
        return _finding(Check.FILESYSTEM, Status.WARN, process_type, text, EPHEMERAL, fix)
    return _finding(
        Check.FILESYSTEM, Status.PASS, process_type, "wrote nothing outside /tmp", EPHEMERAL
    )


def release(observed: ReleaseRun | None) -> Finding:
    """The release phase succeeds, and again: Heroku runs it on every release."""
    if observed is None:
        return _finding(Check.RELEASE, Status.PASS, "release", "no release phase", RELEASE)
    codes = observed.exit_codes
    tail = f": {observed.output.strip().splitlines()[-1]}" if observed.output.strip() else ""
    if codes and codes[0] != 0:
        text = f"`{observed.command}` exited with status {codes[0]}{tail}"
        return _finding(Check.RELEASE, Status.FAIL, "release", text, RELEASE, "make it exit 0")
    if any(code != 0 for code in codes[1:]):
        text = f"succeeded once, then exited with status {codes[-1]} the second time{tail}"
        fix = "make the release command safe to repeat (migrations are)"
        return _finding(Check.RELEASE, Status.FAIL, "release", text, RELEASE, fix)
    text = f"`{observed.command or 'the image command'}` succeeded {len(codes)} times"
    return _finding(Check.RELEASE, Status.PASS, "release", text, RELEASE)


def build(observed: Build) -> list[Finding]:
    """The build works, its Python is supported and not deprecated, named in .python-version,
    and Django's collectstatic works."""
    if observed.error:
        return [
            _finding(
                Check.BUILD, Status.FAIL, "build", observed.error, PYTHON, "see the build output"
            )
        ]
    found = _python(observed.python) if observed.python is not None else []
    if observed.collectstatic is not None:
        ok = observed.collectstatic
        text = "collectstatic ran in the build" if ok else "collectstatic failed"
        status = Status.PASS if ok else Status.FAIL
        found.append(
            _finding(
                Check.BUILD,
                status,
                "collectstatic",
                text,
                COLLECTSTATIC,
                "" if ok else "fix STATIC_ROOT / STATICFILES settings",
            )
        )
    return found


def container_build(error: str) -> list[Finding]:
    """A heroku.yml app's build: its Dockerfiles choose Python and set WEB_CONCURRENCY."""
    if error:
        return [_finding(Check.BUILD, Status.FAIL, "heroku.yml", error, CONTAINER,
                         "see the build output")]  # fmt: skip
    text = "built its Dockerfiles (Python and WEB_CONCURRENCY are theirs to set)"
    return [_finding(Check.BUILD, Status.PASS, "heroku.yml", text, CONTAINER)]


def _python(python: Python) -> list[Finding]:
    text = f"Python {python.version} from {python.source or 'the default'}"
    if not python.supported:
        found = [_finding(Check.BUILD, Status.FAIL, "python", f"{text}: not supported", PYTHON,
                          "name a supported version in .python-version")]  # fmt: skip
    elif python.deprecated:
        found = [_finding(Check.BUILD, Status.WARN, "python", f"{text}: deprecated", PYTHON,
                          "move to a newer Python in .python-version")]  # fmt: skip
    else:
        found = [_finding(Check.BUILD, Status.PASS, "python", text, PYTHON)]
    if python.source == "runtime.txt":
        fix = f"replace it with a .python-version of {python.version}"
        found.append(
            _finding(Check.BUILD, Status.WARN, "runtime.txt", "names the Python", RUNTIME_TXT, fix)
        )
    return found


def concurrency(observed: Concurrency, server: Server) -> Finding:
    """The web server runs as many workers as WEB_CONCURRENCY says (Heroku sizes it)."""
    text = f"{observed.workers} workers with WEB_CONCURRENCY={observed.asked}"
    if observed.workers == observed.asked:
        return _finding(
            Check.BUILD, Status.PASS, "WEB_CONCURRENCY", f"honoured: {text}", CONCURRENCY
        )
    fix = {
        "uwsgi": "`processes = $(WEB_CONCURRENCY)` in uwsgi.ini",
        "gunicorn": "drop --workers / -w (gunicorn reads WEB_CONCURRENCY)",
        "uvicorn": "drop --workers (uvicorn reads WEB_CONCURRENCY)",
    }.get(server.name, "read WEB_CONCURRENCY for the worker count")
    return _finding(
        Check.BUILD, Status.WARN, "WEB_CONCURRENCY", f"ignored: {text}", CONCURRENCY, fix
    )


def config(observed: Config) -> list[Finding]:
    """app.json's required env vars have values; no literal secret in tracked files."""
    found: list[Finding] = []
    if observed.required_unset:
        names = ", ".join(observed.required_unset)
        found.append(
            _finding(
                Check.CONFIG,
                Status.FAIL,
                "app.json",
                f"requires {names}: unset",
                APPJSON,
                "give each a value or a generator in app.json",
            )
        )
    for secret in observed.secrets:
        where = f"{secret.path}:{secret.line}"
        found.append(
            _finding(
                Check.CONFIG,
                Status.WARN,
                where,
                f"{secret.name} is a literal secret",
                SECRETS,
                f"read {secret.name} from a config var, and change it",
            )
        )
    if not found:
        found.append(
            _finding(
                Check.CONFIG,
                Status.PASS,
                "config",
                "app.json's env is set; no literal secrets",
                SECRETS,
            )
        )
    return found
