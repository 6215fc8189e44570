"""How `up` serves an app: one typed object for the router's side and one for the dyno
manager's, each default defined here once (the CLI, the Python API and the pytest plugin take
theirs from here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import dynohours
from .errors import UsageError

if TYPE_CHECKING:
    from .cluster import SwarmTarget

#: Heroku's SIGTERM-to-SIGKILL grace and web boot timeout (R10), in seconds.
GRACE, BOOT_TIMEOUT = 30.0, 60.0
#: Heroku kills a release phase after an hour.
RELEASE_TIMEOUT = 3600.0
#: Free and eco apps sleep after 30 minutes without a request to their web dynos.
IDLE_TIMEOUT = 30 * 60.0
SLEEP_MODES = ("stop", "pause")
HOST, PORT, HTTPS_PORT = "127.0.0.1", 5000, 5443
#: The dashboard's port; when taken, the next free one of the following 50 (Jupyter's habit).
DASHBOARD_PORT, DASHBOARD_PORT_RETRIES = 5080, 50
ROUTER_ENGINES = ("auto", "haproxy", "python")
#: What runs the dynos: the one Docker engine in DOCKER_HOST, or a Docker Swarm cluster.
ENGINES = ("docker", "swarm")
#: The app's settings naming the engine its last `up` ran it on (`run` attaches there) and,
#: on Swarm, that Swarm's manager (a DOCKER_HOST URL).
ENGINE_SETTING, SWARM_SETTING = "engine", "swarm_manager"


@dataclass(frozen=True)
class ManagerOptions:
    """The dyno manager's: Heroku's timings, cycling, and the free tier's sleep."""

    grace: float = GRACE
    boot_timeout: float = BOOT_TIMEOUT
    cycling: bool = False  # Heroku's daily restart of every dyno
    release_timeout: float = RELEASE_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    sleep_mode: str = SLEEP_MODES[0]  # or "pause": frozen instead of stopped while asleep
    quota_hours: float = dynohours.BASE_HOURS  # the free dyno-hours pool per month
    record_metrics: bool = True  # the Metrics tab's recorder (off only to measure its cost)


def check_sleep_mode(engine: str, sleep_mode: str | None) -> None:
    """UsageError for pause on Swarm, which cannot freeze a service."""
    if engine == "swarm" and sleep_mode == "pause":
        raise UsageError(
            "--sleep-mode pause: Swarm services cannot be frozen; with --engine swarm"
            " sleeping dynos stop (dynosim up --sleep-mode stop)"
        )


@dataclass(frozen=True)
class ServeOptions:
    """`up`'s: where the router listens and how, how fast schedules run, the dynos' .env."""

    host: str = HOST
    port: int = PORT  # 0: a free one
    https_port: int | None = HTTPS_PORT  # None: no HTTPS; 0: a free one
    dyno_keepalive: bool = True  # Router 2.0's kept connections to dynos
    router_engine: str = ROUTER_ENGINES[0]
    engine: str = ENGINES[0]  # "swarm": every dyno a service on the cluster (docs/usage.md)
    #: With "swarm": the cluster, found before the build pointed DOCKER_HOST at the engine
    #: builds run on (None: the one DOCKER_HOST names when serving starts).
    swarm: SwarmTarget | None = None
    time_scale: float = 1.0  # > 1 fast-forwards cool-offs, cycling, idling, dyno hours
    local_env: dict[str, str] = field(default_factory=dict)  # the app's .env, when asked for
    manager: ManagerOptions = field(default_factory=ManagerOptions)
    #: The dashboard's URL with its secret token, for `dynosim dashboard` (never in a repr).
    dashboard_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        check_sleep_mode(self.engine, self.manager.sleep_mode)
