"""The command line: parse arguments, call dynosim, print. Errors become one clear line.

Modules that pull in Docker or the router are imported inside the commands that use them, so
quick commands (`ps:scale` from a second terminal) start in a fraction of the time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import config as config_vars
from . import dotenv, features, formation, labs
from .api import App
from .errors import DynosimError, UsageError, as_dynosim_error, is_engine_error
from .logs import Printer
from .options import (
    BOOT_TIMEOUT,
    DASHBOARD_PORT,
    ENGINES,
    GRACE,
    HTTPS_PORT,
    PORT,
    RELEASE_TIMEOUT,
    ROUTER_ENGINES,
    SLEEP_MODES,
    ManagerOptions,
    ServeOptions,
    check_sleep_mode,
)

if TYPE_CHECKING:
    from .cluster import SwarmTarget
    from .router import RouterEngine


class Group(click.Group):
    """Turns any failure into `error: <message>` and its exit code: DynosimError as it says,
    a Docker engine error in one line (exit 3), anything else with its type. Tracebacks only
    with --debug; click's own usage errors, aborts and exits pass through."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            error = as_dynosim_error(exc)
            message = error.format_message()
            if error is not exc and not is_engine_error(exc):
                message += " (a dynosim bug: rerun with --debug for the traceback)"
            click.secho(f"error: {message}", fg="red", err=True)
            sys.exit(error.exit_code)


@contextlib.contextmanager
def doing(what: str) -> Iterator[None]:
    """Heroku's `Doing it... done` line: `what...` first, `failed` when the step raises."""
    click.echo(f"{what}... ", nl=False)
    try:
        yield
    except DynosimError:
        click.echo("failed")
        raise


def progress(line: str) -> None:
    click.echo(line)


def app_option(function):
    return click.option(
        "-a", "--app", "app", help="App name (default: the app of the current folder)."
    )(function)


def resolve(app: str | None) -> App:
    """The app named with -a, else the one deployed from the current folder."""
    return App.named(app)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="dynosim")
def main(debug: bool) -> None:
    """Heroku on your own machine: Procfile apps as uWSGI images, dynos as containers."""


ENV_IGNORED = (
    ".env is not read (Heroku never reads it); dynosim up --env-file (and run --env-file)"
    " give its vars to the dynos, as heroku local does"
)


@main.command("up")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("-a", "--app", help="App name (default: from the folder name).")
@click.option("-p", "--port", default=PORT, show_default=True, help="Router port on 127.0.0.1.")
@click.option(
    "--https-port",
    default=HTTPS_PORT,
    show_default=True,
    help="Router HTTPS port on 127.0.0.1 (0: no HTTPS); see dynosim certs.",
)
@click.option("--grace", default=GRACE, show_default=True, help="Seconds from SIGTERM to SIGKILL.")
@click.option(
    "--boot-timeout",
    default=BOOT_TIMEOUT,
    show_default=True,
    help="Seconds a web dyno has to bind $PORT.",
)
@click.option(
    "--stack", "stack_name", help="Set the app's stack (remembered, as dynosim stack:set)."
)
@click.option("--base-image", help="Build and run on this image instead of a Debian stack.")
@click.option("--strict-runtime", is_flag=True, help="Fail when no stack has the exact Python.")
@click.option("--cycling", is_flag=True, help="Cycle each dyno daily, as Heroku does.")
@click.option(
    "--env-file/--no-env-file",
    default=False,
    show_default=True,
    help="Give dynos the app's .env under its config vars, as heroku local does "
    "(Heroku itself never reads it).",
)
@click.option(
    "--idle-timeout",
    type=float,
    help="Seconds without a request before free/eco dynos sleep (default 1800; remembered).",
)
@click.option(
    "--sleep-mode",
    type=click.Choice(SLEEP_MODES),
    help="Sleep by stopping dynos (Heroku's cold boot) or freezing them (remembered).",
)
@click.option(
    "--dyno-hours",
    "quota_hours",
    type=float,
    help="Monthly free dyno-hours pool of this user (default 550; 1000 with --verified).",
)
@click.option("--verified", is_flag=True, help="A verified account: a 1000-hour pool.")
@click.option(
    "--release-timeout",
    default=RELEASE_TIMEOUT,
    show_default=True,
    help="Seconds the release phase may take.",
)
@click.option(
    "--dyno-keepalive/--no-dyno-keepalive",
    default=True,
    show_default=True,
    help="Keep router connections to dynos open between requests (Heroku's Router 2.0); "
    "off: one per request (the legacy router, or labs http-disable-keepalive-to-dyno). "
    "The Python router's; HAProxy opens one per request.",
)
@click.option(
    "--router",
    "router_engine",
    type=click.Choice(ROUTER_ENGINES),
    default=lambda: os.environ.get("DYNOSIM_ROUTER", ROUTER_ENGINES[0]),
    show_default="auto",
    help="What moves requests to the dynos: HAProxy, with dynosim's router behind it for "
    "held requests, or dynosim's own Python router; auto: HAProxy when it is installed.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=ENGINES[0],
    show_default=True,
    help="What runs the dynos: the Docker engine in DOCKER_HOST, or the Docker Swarm whose "
    "manager DOCKER_HOST names (dynosim cluster:create makes one here).",
)
@click.option(
    "--time-scale",
    type=float,
    default=lambda: float(os.environ.get("DYNOSIM_TIME_SCALE", "1")),
    help="Run cool-offs and cycling this many times faster (fidelity runs, tests).",
)
@click.option(
    "--dashboard-port",
    default=DASHBOARD_PORT,
    show_default=True,
    help="Dashboard port on 127.0.0.1 (0: a free one; the default: the next free one if taken).",
)
@click.option("--no-metrics-recorder", is_flag=True, hidden=True)  # bench_router's control leg
def up_command(
    path: Path,
    app: str | None,
    port: int,
    https_port: int,
    grace: float,
    boot_timeout: float,
    stack_name: str | None,
    base_image: str | None,
    strict_runtime: bool,
    cycling: bool,
    env_file: bool,
    idle_timeout: float | None,
    sleep_mode: str | None,
    quota_hours: float | None,
    verified: bool,
    release_timeout: float,
    dyno_keepalive: bool,
    router_engine: str,
    engine: str,
    time_scale: float,
    dashboard_port: int,
    no_metrics_recorder: bool,
) -> None:
    """Build PATH (default: here) into a release and run it until Ctrl-C, with its dashboard."""
    from .dashboard import Dashboard

    if not path.is_dir():
        raise click.BadParameter(f"{path} is not a folder", param_hint="PATH")
    swarm = _use_swarm(sleep_mode) if engine == "swarm" else None
    served = App.open(path, name=app)
    served.check_can_serve(port, https_port, router_engine)
    local_env = served.local_env(env_file)
    if not env_file and (path / ".env").exists():
        click.echo(f" !     {ENV_IGNORED}", err=True)
    manager = ManagerOptions(
        grace=grace, boot_timeout=boot_timeout, cycling=cycling, release_timeout=release_timeout,
        record_metrics=not no_metrics_recorder,
        **served.idling(idle_timeout, sleep_mode, quota_hours, verified),
    )  # fmt: skip
    dashboard = Dashboard(lambda: App(served.name, served.path), port=dashboard_port)
    try:
        options = ServeOptions(
            port=port, https_port=https_port or None, dyno_keepalive=dyno_keepalive,
            router_engine=router_engine, engine=engine, swarm=swarm, time_scale=time_scale,
            local_env=local_env, manager=manager, dashboard_url=dashboard.url,
        )  # fmt: skip
        _build_for_up(served, stack_name, base_image, strict_runtime, local_env)
        dashboard.start()
        served.serve(options, ready=_announce_running(served, dashboard.url))
    finally:
        dashboard.close()


def _use_swarm(sleep_mode: str | None) -> SwarmTarget:
    """`up --engine swarm`: the cluster found before the build, which runs on the engine
    the local cluster runs on (its stacks are there), not on the manager node."""
    from . import cluster

    check_sleep_mode("swarm", sleep_mode)
    target = cluster.swarm_target()
    os.environ["DOCKER_HOST"] = target.builds_on
    return target


def _build_for_up(
    served: App,
    stack_name: str | None,
    base_image: str | None,
    strict_runtime: bool,
    local_env: dict[str, str],
) -> None:
    """`up`'s build: the stack asked for set first (its warnings on stderr), the .env noted."""
    if stack_name:
        for warning in served.stack_set(stack_name):
            click.echo(f" !     {warning}", err=True)
    served.build(
        progress=progress, base_image=base_image, strict_runtime=strict_runtime,
        local_env=local_env,
    )  # fmt: skip
    if local_env:
        click.echo(f"-----> .env: {len(local_env)} vars for the dynos (config vars win)")


def _announce_running(served: App, dashboard: str) -> Callable[[RouterEngine, Any], None]:
    """`up`'s `ready` callback: the lines (on stderr, the owner's terminal) saying what runs
    where, the dashboard's URL with its token among them."""

    def ready(router: RouterEngine, _supervisor: Any) -> None:
        current = served.current_release()
        running = current.name if current else "(no release succeeded yet)"
        https = f" and {router.https_url}" if router.https_url else ""
        click.echo(
            f"-----> {served.name} {running} is running: {router.url}{https}"
            f" (router: {router.engine})",
            err=True,
        )
        click.echo(f"-----> Dashboard: {dashboard}", err=True)

    return ready


@main.command("doctor")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--probe", "probes", multiple=True, metavar="PATH",
    help="A path to probe (repeatable; default: /).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="The report as JSON (docs/doctor.md).")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option(
    "--boot-timeout", default=BOOT_TIMEOUT, show_default=True, help="Seconds to bind $PORT (R10)."
)
def doctor(path: Path, probes: tuple[str, ...], as_json: bool, strict: bool, boot_timeout: float):
    """Say what will break on Heroku: PATH (default: here) run in throwaway dynos."""
    if not path.is_dir():
        raise click.BadParameter(f"{path} is not a folder", param_hint="PATH")
    for probe in probes:
        if not probe.startswith("/"):
            raise click.BadParameter(
                f"{probe!r} is not a path (it starts with /)", param_hint="--probe"
            )
    say = (lambda line: click.echo(line, err=True)) if as_json else progress
    report = App.open(path).doctor(probes or ("/",), progress=say, boot_timeout=boot_timeout)
    click.echo(report.to_json() if as_json else report.text())
    sys.exit(report.exit_code(strict))


@main.command("ps")
@app_option
@click.option("--json", "as_json", is_flag=True, help="Output as JSON.")
def ps(app: str | None, as_json: bool) -> None:
    """List the app's dynos, grouped by process type."""
    from . import operations

    chosen = resolve(app)
    dynos = chosen.dynos()
    if as_json:
        click.echo(json.dumps(dynos, indent=2))
        return
    click.echo(operations.format_ps(chosen.name, dynos, dt.datetime.now(dt.UTC)))
    quota = chosen.quota_line(dynos)
    if quota:
        click.echo(f"\n{quota}")


@main.command("ps:scale")
@app_option
@click.argument("changes", nargs=-1)
def ps_scale(app: str | None, changes: tuple[str, ...]) -> None:
    """Scale process types: web=3 worker+1 web=2:Standard-2X."""
    result = resolve(app).scale(*changes)
    click.echo(f"Scaling dynos... done, now running {formation.describe(result)}")


@main.command("ps:type")
@app_option
@click.argument("changes", nargs=-1)
def ps_type(app: str | None, changes: tuple[str, ...]) -> None:
    """Change dyno sizes only: web=Standard-2X."""
    result = resolve(app).resize(*changes)
    click.echo(f"Changing dyno types... done, now running {formation.describe(result)}")


@main.command("ps:restart")
@app_option
@click.argument("target", required=False)
def ps_restart(app: str | None, target: str | None) -> None:
    """Restart all dynos, a process type (web) or one dyno (web.2)."""
    chosen = resolve(app)
    what = target or "all dynos"
    click.echo(f"Restarting {what} on ⬢ {chosen.name}... ", nl=False)
    chosen.restart(target)
    click.echo("done")


@main.command("ps:stop")
@app_option
@click.argument("dyno")
def ps_stop(app: str | None, dyno: str) -> None:
    """Stop one dyno (web.2, run.4821); a formation dyno comes back, as on Heroku."""
    chosen = resolve(app)
    click.echo(f"Stopping {dyno} on ⬢ {chosen.name}... ", nl=False)
    chosen.stop_dyno(dyno)
    click.echo("done")


def _env(pairs: tuple[str, ...]) -> dict[str, str]:
    """-e K=V (repeatable), each also accepting Heroku's 'A=1;B=2'."""
    result = {}
    for item in (part for pair in pairs for part in pair.split(";") if part):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {item!r}: expected KEY=VALUE")
        result[key] = value
    return result


run_options = [
    app_option,
    click.option("-e", "--env", "env", multiple=True, help="KEY=VALUE for this dyno only."),
    click.option("-s", "--size", default=formation.DEFAULT_SIZE, help="Dyno size."),
    click.argument("command", nargs=-1, required=True),
]


def with_run_options(function):
    for option in reversed(run_options):
        function = option(function)
    return function


@main.command("run", context_settings={"ignore_unknown_options": True})
@with_run_options
@click.option("-x", "--exit-code", is_flag=True, help="Exit with the command's status.")
@click.option("--no-tty", is_flag=True, help="Do not allocate a terminal.")
@click.option(
    "--env-file/--no-env-file",
    default=False,
    show_default=True,
    help="Give the dyno the app's .env under its config vars, as heroku local does.",
)
def run(
    app: str | None,
    env: tuple[str, ...],
    size: str,
    command: tuple[str, ...],
    exit_code: bool,
    no_tty: bool,
    env_file: bool,
) -> None:
    """Run a command in a one-off dyno (run.N) of the current release, attached."""
    chosen = resolve(app)
    line = " ".join(command)
    tty = sys.stdin.isatty() and not no_tty

    def announce(dyno: str) -> None:
        click.echo(f"Running `{line}` on ⬢ {chosen.name}... up, {dyno}", err=True)

    result = chosen.run(
        line, env=_env(env), size=size, attach=True, tty=tty, announce=announce,
        env_file=env_file,
    )  # fmt: skip
    if exit_code:
        sys.exit(result.status)


@main.command("run:detached", context_settings={"ignore_unknown_options": True})
@with_run_options
def run_detached(
    app: str | None, env: tuple[str, ...], size: str, command: tuple[str, ...]
) -> None:
    """Run a command in a one-off dyno whose output goes to the log stream."""
    chosen = resolve(app)
    line = " ".join(command)
    dyno = chosen.run_detached(line, env=_env(env), size=size)
    click.echo(f"Running `{line}` on ⬢ {chosen.name}... up, {dyno}")
    click.echo(f"Use `dynosim logs -a {chosen.name} --ps {dyno}` to view the output.")


@main.command("logs")
@app_option
@click.option("-n", "--num", default=100, show_default=True, help="How many recent lines.")
@click.option("-t", "--tail", is_flag=True, help="Keep following new lines.")
@click.option(
    "--ps", "-d", "--dyno-name", "ps_filter", help="Only this dyno (web.1) or type (web)."
)
@click.option("-s", "--source", type=click.Choice(["app", "heroku"]), help="Only this source.")
def logs_command(
    app: str | None, num: int, tail: bool, ps_filter: str | None, source: str | None
) -> None:
    """Show the app's recent log lines (kept by the running dynosim up), or follow them."""
    chosen = resolve(app)
    printer = Printer()
    try:
        for line in chosen.log_stream(num, tail=tail, ps=ps_filter, source=source):
            printer(line)
    except KeyboardInterrupt:
        pass


@main.command("metrics")
@app_option
@click.option("-p", "--process-type", default="web", show_default=True, help="Process type.")
@click.option("--since", default="1h", show_default=True, help="How far back: 30m, 1h, 24h, 2d.")
@click.option("--json", "as_json", is_flag=True, help="Output as JSON.")
def metrics_command(app: str | None, process_type: str, since: str, as_json: bool) -> None:
    """Show per-minute metrics, as Heroku's Metrics tab.

    Throughput by status class, response times, memory, load and events of a process type,
    kept in the store while dynosim up serves the app (no running up is needed to read them).
    """
    from . import metrics

    chosen = resolve(app)
    found = chosen.metrics(process_type, since)
    if as_json:
        click.echo(json.dumps([minute.to_json() for minute in found], indent=2))
    elif not found:
        click.echo(
            f"No metrics for {process_type} of ⬢ {chosen.name} in the last {since}"
            " (recorded while dynosim up serves the app)."
        )
    else:
        click.echo(f"=== {process_type} metrics ⬢ {chosen.name}, last {since}, per minute")
        for line in metrics.table(found):
            click.echo(line)


@main.command("dashboard")
@app_option
@click.option("--no-browser", is_flag=True, help="Only print the URL.")
def dashboard_command(app: str | None, no_browser: bool) -> None:
    """Open the dashboard of the app's running dynosim up (its URL carries a secret token)."""
    import webbrowser

    chosen = resolve(app)
    url = chosen.dashboard_url()
    if url is None:
        raise UsageError(f"the dynosim up of {chosen.name} serves no dashboard")
    click.echo(f"Dashboard of ⬢ {chosen.name}: {url}")
    if no_browser:
        return
    try:
        opened = webbrowser.open(url)
    except webbrowser.Error:
        opened = False
    if not opened:
        click.echo("No web browser found here; open the URL above in one.")


@main.command("certs")
def certs_command() -> None:
    """Show the local CA that signs the router's HTTPS certificates, and how to trust it."""
    from . import certs

    ca = certs.ensure_ca()
    click.echo(f"""=== dynosim local CA: {ca}
The router serves HTTPS (dynosim up --https-port, default 5443) with a certificate for
localhost, 127.0.0.1 and <app>.localhost signed by this CA. Trust it:

  curl --cacert {ca} https://localhost:5443/
  export REQUESTS_CA_BUNDLE={ca}    # Python requests
  export SSL_CERT_FILE={ca}         # OpenSSL-based clients (Python ssl, Ruby, ...)
  sudo cp {ca} /usr/local/share/ca-certificates/dynosim.crt && sudo update-ca-certificates

Its key ({ca.with_name("ca-key.pem")}) is readable by you only; remove {ca.parent} to start
over with a new CA.""")


@main.command("stack:build")
@click.option(
    "--stack",
    "suites",
    multiple=True,
    type=click.Choice(["bullseye", "bookworm", "trixie", "forky"]),
    help="Which stack (repeatable; default: all).",
)
@click.option("--force", is_flag=True, help="Rebuild even if the images exist.")
def stack_build(suites: tuple[str, ...], force: bool) -> None:
    """Make the stack images offline from Debian (done automatically when first needed)."""
    from . import runtime, stack

    for suite in suites or [s.suite for s in runtime.STACKS]:
        chosen = runtime.stack_by_suite(suite)
        stack.ensure(chosen, progress, force=force)
        click.echo(f"{chosen.build_image} and {chosen.run_image}: ready")


@main.command("stack")
@app_option
def stack_command(app: str | None) -> None:
    """Show the stacks and the app's: set with stack:set, else the one its Python picks."""
    from . import runtime

    chosen = resolve(app)
    current = setting = chosen.stack()
    if current is None and chosen.path is not None:
        with contextlib.suppress(DynosimError):  # a refused version shows no stack
            current = runtime.select_stack(chosen.path).stack.suite
    click.echo(f"=== ⬢ {chosen.name} Available Stacks")
    for offered in runtime.STACKS:
        notes = f"Python {offered.python_version}" + (
            ", end-of-life: Heroku refuses it" if offered.end_of_life else ""
        )
        mark = "*" if offered.suite == current else " "
        click.echo(f"{mark} {offered.suite} ({notes})")
    if setting is None and current:
        click.echo(f"(no stack set: {current} carries the app's Python)")


@main.command("stack:set")
@click.argument("stack_name", metavar="STACK")
@app_option
def stack_set(stack_name: str, app: str | None) -> None:
    """Set the app's stack; its next build uses it (like heroku stack:set)."""
    chosen = resolve(app)
    with doing(f"Setting stack to {stack_name}"):
        warnings = chosen.stack_set(stack_name)
    click.echo("done")
    for warning in warnings:
        click.echo(f" !     {warning}", err=True)
    if chosen.current_release() is not None:
        click.echo(f"You will need to redeploy ⬢ {chosen.name} for the change to take effect.")
        click.echo(f"Run dynosim deploy to trigger a new build on ⬢ {chosen.name}.")


def _to_stderr(line: str) -> None:
    click.echo(line, err=True)


@main.command("cluster:create")
@click.argument("size", metavar="N", type=int)
def cluster_create(size: int) -> None:
    """Start a Docker Swarm of N engines as containers here; print its DOCKER_HOST."""
    from . import cluster

    made = cluster.create(size, _to_stderr)
    click.echo(f"-----> Swarm of {made.size} nodes ready (manager node1); use it with:", err=True)
    click.echo(cluster.export_line(made))


@main.command("cluster")
def cluster_show() -> None:
    """Show the local Swarm cluster's nodes, its registry and its DOCKER_HOST."""
    from . import cluster

    found = cluster.current()
    if found is None:
        click.echo("No cluster here; dynosim cluster:create N makes one.")
        return
    click.echo(f"=== Swarm cluster {found.id} ({found.size} nodes)")
    for node in sorted(cluster.node_states(found), key=lambda n: n.hostname):
        click.echo(f"{node.hostname}: {node.state} ({node.role})")
    address, answering = cluster.registry(found)
    click.echo(f"registry: {address} ({'up' if answering else 'not answering'})")
    click.echo(cluster.export_line(found))


@main.command("cluster:destroy")
def cluster_destroy() -> None:
    """Remove the local Swarm cluster: its nodes, their volumes, its network."""
    from . import cluster

    removed = cluster.destroy(_to_stderr)
    click.echo(f"Swarm cluster {removed.id} ({removed.size} nodes) destroyed")


@main.command("labs")
@app_option
def labs_list(app: str | None) -> None:
    """List the app's experimental features, [+] when enabled."""
    chosen = resolve(app)
    show_features(chosen.name, chosen.labs.list())


def show_features(app: str, listed: list[tuple[labs.Feature, bool]]) -> None:
    """Heroku's `labs` and `features` listing: `[+]` for those enabled, names aligned."""
    longest = max(len(feature.name) for feature, _ in listed)
    click.echo(f"=== App Features ⬢ {app}")
    for feature, enabled in listed:
        mark = "[+]" if enabled else "[ ]"
        click.echo(f"{mark} {feature.name.ljust(longest)}  {feature.description}")


@main.command("labs:enable")
@click.argument("feature", metavar="FEATURE")
@app_option
def labs_enable(feature: str, app: str | None) -> None:
    """Enable an experimental feature; running dynos follow."""
    _switch(app, *_labs_or_app_feature(feature), feature, on=True)


@main.command("labs:disable")
@click.argument("feature", metavar="FEATURE")
@app_option
def labs_disable(feature: str, app: str | None) -> None:
    """Disable an experimental feature; running dynos follow."""
    _switch(app, *_labs_or_app_feature(feature), feature, on=False)


def _labs_or_app_feature(name: str) -> tuple[Callable[[str], object], Callable[[App], Any]]:
    """Where `labs:enable NAME` looks: Heroku's CLI asks for a labs feature first and falls
    back to the app's features (`labs:enable preboot` works there); an unknown name is
    refused with both lists."""
    if any(f.name == name for f in features.FEATURES):
        return features.feature, lambda chosen: chosen.features
    everything = (*labs.FEATURES, *features.FEATURES)
    return lambda known: labs.find(known, everything), lambda chosen: chosen.labs


def _switch(
    app: str | None,
    check: Callable[[str], object],
    kind: Callable[[App], Any],
    name: str,
    *,
    on: bool,
) -> None:
    """`labs:enable` and friends: an unknown feature is refused before anything is printed."""
    chosen = resolve(app)
    check(name)
    switched = kind(chosen)
    with doing(f"{'Enabling' if on else 'Disabling'} {name} for ⬢ {chosen.name}"):
        (switched.enable if on else switched.disable)(name)
    click.echo("done")


@main.command("features")
@app_option
def features_list(app: str | None) -> None:
    """List the app's features (preboot), [+] when enabled."""
    chosen = resolve(app)
    show_features(chosen.name, chosen.features.list())


@main.command("features:enable")
@click.argument("feature", metavar="FEATURE")
@app_option
def features_enable(feature: str, app: str | None) -> None:
    """Enable an app feature (preboot); the next deploy follows."""
    _switch(app, features.feature, lambda chosen: chosen.features, feature, on=True)


@main.command("features:disable")
@click.argument("feature", metavar="FEATURE")
@app_option
def features_disable(feature: str, app: str | None) -> None:
    """Disable an app feature; the next deploy follows."""
    _switch(app, features.feature, lambda chosen: chosen.features, feature, on=False)


@main.command("ps:sleep")
@app_option
def ps_sleep(app: str | None) -> None:
    """Put the app's free/eco dynos to sleep now, as 30 idle minutes would."""
    chosen = resolve(app)
    asleep = chosen.sleep()
    name = chosen.name
    click.echo(
        f"⬢ {name} is asleep"
        if asleep
        else f"⬢ {name} does not sleep: only apps whose web dynos are all Free or Eco do"
    )


@main.command("ps:wake")
@app_option
def ps_wake(app: str | None) -> None:
    """Wake a sleeping app now, as a request would."""
    chosen = resolve(app)
    chosen.wake()
    click.echo(f"⬢ {chosen.name} is awake")


@main.command("deploy")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("-a", "--app", help="App name (default: from the folder name).")
@click.option("--base-image", help="Build and run on this image instead of a Debian stack.")
@click.option("--strict-runtime", is_flag=True, help="Fail when no stack has the exact Python.")
@click.option(
    "--no-cache", is_flag=True, help="Build every layer again (Heroku's build cache purged)."
)
def deploy_command(
    path: Path, app: str | None, base_image: str | None, strict_runtime: bool, no_cache: bool
) -> None:
    """Build PATH into a new release and roll it out to the running up (like a git push)."""
    if not path.is_dir():
        raise click.BadParameter(f"{path} is not a folder", param_hint="PATH")
    chosen = App.open(path, name=app)
    deployed = chosen.deploy(
        progress=progress, base_image=base_image, strict_runtime=strict_runtime, cache=not no_cache
    )
    if deployed.new and not deployed.rolled_out:
        name = deployed.release.name
        click.echo(f"{name} will be rolled out by the next `dynosim up` of {chosen.name}")


@main.command("git:remote")
@app_option
@click.option("-r", "--remote", default="dynosim", help="Name of the git remote to add.")
def git_remote(app: str | None, remote: str) -> None:
    """Add a git remote to the app folder's repository: `git push dynosim main` deploys."""
    try:
        chosen = App.named(app)
    except UsageError:  # not deployed yet: the app of this folder
        chosen = App.open(".", name=app)
    bare = chosen.git.add(remote)
    click.echo(f"set git remote {remote} to {bare}")


@main.command("git:receive", hidden=True)
@click.argument("app")
def git_receive(app: str) -> None:
    """The pre-receive hook of the app's repository: deploy the push, or reject it."""
    if not App.named(app).git.receive(sys.stdin.read(), progress):
        sys.exit(1)


def _roll_out(chosen: App, release, what: str) -> None:
    """Have the running up take the new release, reporting as Heroku does."""
    with doing(what):
        running = chosen.roll_out(release)
    click.echo(f"done, {release.name}")
    if not running:
        click.echo(f"{release.name} will be rolled out by the next `dynosim up` of {chosen.name}")


@main.command("config")
@app_option
@click.option("-s", "--shell", is_flag=True, help="Output as KEY=value lines for a shell.")
@click.option("-j", "--json", "as_json", is_flag=True, help="Output as JSON.")
def config_command(app: str | None, shell: bool, as_json: bool) -> None:
    """Show the app's config vars."""
    chosen = resolve(app)
    values = chosen.config()
    if as_json:
        click.echo(config_vars.format_json(values))
    elif shell:
        if values:
            click.echo(config_vars.format_shell(values))
    else:
        click.echo(config_vars.format_human(chosen.name, values))


@main.command("config:get")
@app_option
@click.option("-s", "--shell", is_flag=True, help="Output as KEY=value.")
@click.argument("key")
def config_get(app: str | None, shell: bool, key: str) -> None:
    """Print one config var's value exactly (an empty line when it is not set)."""
    values = resolve(app).config()
    if shell:
        click.echo(config_vars.format_shell({key: values.get(key, "")}))
    else:
        click.echo(values.get(key, ""))


@main.command("config:set")
@app_option
@click.option(
    "--from-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Import KEY=VALUE lines from a .env file.",
)
@click.argument("pairs", nargs=-1)
def config_set(app: str | None, from_file: Path | None, pairs: tuple[str, ...]) -> None:
    """Set config vars (KEY=VALUE ...): a new release, and the dynos restart with it."""
    chosen = resolve(app)
    changes = {**(dotenv.load(from_file) if from_file else {}), **config_vars.parse_pairs(pairs)}
    release = chosen.config_set(changes, roll_out=False)
    _roll_out(chosen, release, f"Setting {', '.join(changes)} and restarting ⬢ {chosen.name}")


@main.command("config:unset")
@app_option
@click.argument("keys", nargs=-1)
def config_unset(app: str | None, keys: tuple[str, ...]) -> None:
    """Remove config vars: a new release, and the dynos restart with it."""
    chosen = resolve(app)
    release = chosen.config_unset(*keys, roll_out=False)
    _roll_out(chosen, release, f"Unsetting {', '.join(keys)} and restarting ⬢ {chosen.name}")


@main.command("releases")
@app_option
@click.option("-n", "--num", default=15, show_default=True, help="How many releases to show.")
@click.option("--json", "as_json", is_flag=True, help="Output as JSON.")
def releases_command(app: str | None, num: int, as_json: bool) -> None:
    """List the app's releases, newest first."""
    from . import releases

    chosen = resolve(app)
    listed = chosen.releases(num)
    if as_json:
        click.echo(json.dumps([releases.summary(r) for r in listed], indent=2))
        return
    current = chosen.current_release()
    click.echo(releases.format_list(chosen.name, listed, current, dt.datetime.now(dt.UTC)))


@main.command("releases:info")
@app_option
@click.option("--json", "as_json", is_flag=True, help="Output as JSON.")
@click.argument("release", required=False)
def releases_info(app: str | None, as_json: bool, release: str | None) -> None:
    """Show one release (default: the current one)."""
    from . import releases

    chosen = resolve(app).release(release)
    if as_json:
        click.echo(json.dumps(releases.summary(chosen), indent=2))
    else:
        click.echo(releases.format_info(chosen))


@main.command("releases:rollback")
@app_option
@click.argument("release", required=False)
def releases_rollback(app: str | None, release: str | None) -> None:
    """Roll back to a release (default: the one before the current): a new release with its
    image and config vars."""

    chosen = resolve(app)
    target = chosen.rollback_target(release)
    created = chosen.rollback(target.name, roll_out=False)
    _roll_out(chosen, created, f"Rolling back ⬢ {chosen.name} to {target.name}")
    click.echo("Rollback affects code and config vars; it doesn't add or remove add-ons.")


@main.command("addons")
@app_option
def addons_list(app: str | None) -> None:
    """List the app's add-ons."""
    chosen = resolve(app)
    found = chosen.addons.attached()
    if not found:
        click.echo(f"No add-ons for app {chosen.name}.")
        return
    rows = [("Add-on", "Plan", "Attached as")]
    rows += [(a.name, f"{a.service}:{a.plan}", a.config_var) for a in found]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


@main.command("addons:create")
@app_option
@click.option("--as", "attach_as", help="Attachment name (its config var is NAME_URL).")
@click.argument("service")
def addons_create(app: str | None, attach_as: str | None, service: str) -> None:
    """Provision an add-on: heroku-postgresql or heroku-redis (a real server for the app)."""
    chosen = resolve(app)
    name = chosen.name
    click.echo(f"Creating {service} on ⬢ {name}... ", nl=False)
    created, release = chosen.addons.create(service, attach_as=attach_as, roll_out=False)
    click.echo("done")
    click.echo(f"Created {created.name} as {created.config_var}")
    _roll_out(chosen, release, f"Attaching {created.config_var} and restarting ⬢ {name}")


def _confirm(app: str, confirm: str | None, what: str) -> None:
    """Destructive commands need the app's name, typed or passed with --confirm (Heroku)."""
    if confirm is None:
        if not sys.stdin.isatty():
            raise UsageError(f"{what} is destructive; pass --confirm {app}")
        click.echo(f" !    WARNING: {what} is destructive and cannot be undone.")
        confirm = click.prompt(f" !    To proceed, type {app}", default="", show_default=False)
    if confirm != app:
        raise UsageError(f"Confirmation did not match {app}. Aborted.")


@main.command("addons:info")
@app_option
@click.argument("addon")
def addons_info(app: str | None, addon: str) -> None:
    """Show one add-on (name, or its config var such as DATABASE_URL)."""
    chosen = resolve(app)
    found = chosen.addons.find(addon)
    click.echo(f"=== {found.name}")
    click.echo(f"Attachments:  {chosen.name}::{found.config_var.removesuffix('_URL')}")
    click.echo(f"Installed at: {found.created_at.isoformat(timespec='seconds')}")
    click.echo(f"Plan:         {found.service}:{found.plan}")
    click.echo(f"Config var:   {found.config_var}")
    container = chosen.addons.container_name(found)
    click.echo(f"Container:    {container} (data: volume of that name)")


@main.command("addons:destroy")
@app_option
@click.option("--confirm", help="The app's name, to skip the question.")
@click.argument("addon")
def addons_destroy(app: str | None, confirm: str | None, addon: str) -> None:
    """Remove an add-on, its config var and its data."""
    chosen = resolve(app)
    found = chosen.addons.find(addon)
    _confirm(chosen.name, confirm, f"destroying {found.name} and all its data")
    release = chosen.addons.destroy(found, roll_out=False)
    _roll_out(chosen, release, f"Destroying {found.name} on ⬢ {chosen.name}")


@main.command("pg:psql")
@app_option
@click.argument("database", required=False)
def pg_psql(app: str | None, database: str | None) -> None:
    """Open a psql session on the app's database, in a one-off container."""
    _client_session(app, database, "heroku-postgresql")


@main.command("redis:cli")
@app_option
@click.argument("database", required=False)
def redis_cli(app: str | None, database: str | None) -> None:
    """Open a redis-cli session on the app's Redis, in a one-off container."""
    _client_session(app, database, "heroku-redis")


def _client_session(app: str | None, database: str | None, service: str) -> None:
    """A client session on the add-on named (else the app's first of `service`); its status
    is the command's."""
    attached = resolve(app).addons
    sys.exit(attached.session(attached.of_service(service, database)))


@main.command("pg:reset")
@app_option
@click.option("--confirm", help="The app's name, to skip the question.")
@click.argument("database", required=False)
def pg_reset(app: str | None, confirm: str | None, database: str | None) -> None:
    """Delete every table and row of the app's database."""
    chosen = resolve(app)
    found = chosen.addons.of_service("heroku-postgresql", database)
    _confirm(chosen.name, confirm, f"resetting {found.name}")
    click.echo(f"Resetting {found.name}... ", nl=False)
    chosen.addons.reset(found)
    click.echo("done")


@main.command("pg:backups:capture")
@app_option
@click.argument("database", required=False)
def pg_backups_capture(app: str | None, database: str | None) -> None:
    """Back the database up with pg_dump into the app's state folder."""
    attached = resolve(app).addons
    found = attached.of_service("heroku-postgresql", database)
    click.echo(f"Starting backup of {found.name}... ", nl=False)
    backup = attached.capture(found)
    click.echo(f"done\nBackup {backup.stem} saved to {backup}")


@main.command("pg:backups")
@app_option
def pg_backups(app: str | None) -> None:
    """List the app's backups."""
    chosen = resolve(app)
    found = chosen.addons.backups()
    click.echo(f"=== Backups of ⬢ {chosen.name}")
    for backup in found:
        click.echo(f"{backup.stem}  {backup.stat().st_size} bytes  {backup}")
    if not found:
        click.echo("No backups. Capture one with: dynosim pg:backups:capture")


@main.command("pg:backups:restore")
@app_option
@click.option("--confirm", help="The app's name, to skip the question.")
@click.argument("backup", required=False)
@click.argument("database", required=False)
def pg_backups_restore(
    app: str | None, confirm: str | None, backup: str | None, database: str | None
) -> None:
    """Replace the database's contents with a backup (default: the newest)."""
    chosen = resolve(app)
    found = chosen.addons.of_service("heroku-postgresql", database)
    restored = chosen.addons.backup(backup)
    _confirm(chosen.name, confirm, f"restoring {restored.stem} over {found.name}")
    click.echo(f"Restoring {restored.stem} to {found.name}... ", nl=False)
    chosen.addons.restore(found, restored)
    click.echo("done")


@main.command("ci:run")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Stop the test run after this many seconds (default: Heroku CI's 2 hours).",
)
def ci_run(path: Path, timeout: float | None) -> None:
    """Run PATH's tests as Heroku CI does (app.json's environments.test) in a throwaway app."""
    import signal

    from .ci import CiOptions
    from .testrun import TIMEOUT

    if not path.is_dir():
        raise click.BadParameter(f"{path} is not a folder", param_hint="PATH")

    received = [signal.SIGINT]

    def terminate(number: int, frame: object) -> None:
        received[0] = signal.SIGTERM
        raise KeyboardInterrupt  # clean up as for Ctrl-C

    signal.signal(signal.SIGTERM, terminate)
    options = CiOptions(timeout=TIMEOUT if timeout is None else timeout)
    try:
        result = App.open(path).ci(options, progress=progress, output=progress)
    except KeyboardInterrupt:
        message = "error: test run interrupted; its app and add-ons were removed"
        click.secho(message, fg="red", err=True)
        sys.exit(128 + received[0])
    click.echo(f"-----> Test run #{result.meta.number} {result.status.value}")
    sys.exit(result.exit_status)


main.add_command(ci_run, "ci")
