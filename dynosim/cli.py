"""The command line: parse arguments, call dynosim, print. Errors become one clear line.

Modules that pull in Docker or aiohttp are imported inside the commands that use them, so
quick commands (`ps:scale` from a second terminal) start in a fraction of the time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from pathlib import Path

import click

from . import control, formation
from .errors import DynosimError, UsageError
from .logs import LogLine, Printer
from .store import Store


class Group(click.Group):
    """Turns DynosimError into `error: <message>` and its exit code (tracebacks with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DynosimError as exc:
            if ctx.params.get("debug"):
                raise
            click.secho(f"error: {exc.format_message()}", fg="red", err=True)
            sys.exit(exc.exit_code)


def progress(line: str) -> None:
    click.echo(line)


def app_option(function):
    return click.option(
        "-a", "--app", "app", help="App name (default: the app of the current folder)."
    )(function)


def resolve(store: Store, app: str | None) -> str:
    """The app named with -a, else the one deployed from the current folder."""
    if app:
        if app not in store.apps():
            raise UsageError(f"Couldn't find that app ({app}); deploy it with: dynosim up")
        return app
    here = Path.cwd().resolve()
    found = store.app_for_path(here)
    if found is None:
        raise UsageError(
            f"no app is deployed from {here}; pass -a APP or run dynosim up here first"
        )
    return found


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="dynosim")
def main(debug: bool) -> None:
    """Heroku on your own machine: Procfile apps as uWSGI images, dynos as containers."""


@main.command("up")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("-a", "--app", help="App name (default: from the folder name).")
@click.option("-p", "--port", default=5000, show_default=True, help="Router port on 127.0.0.1.")
@click.option("--grace", default=30.0, show_default=True, help="Seconds from SIGTERM to SIGKILL.")
@click.option(
    "--boot-timeout", default=60.0, show_default=True, help="Seconds a web dyno has to bind $PORT."
)
@click.option("--base-image", help="Build and run on this image instead of a Debian stack.")
@click.option("--strict-runtime", is_flag=True, help="Fail when no stack has the exact Python.")
@click.option("--cycling", is_flag=True, help="Cycle each dyno daily, as Heroku does.")
@click.option(
    "--time-scale",
    type=float,
    default=lambda: float(os.environ.get("DYNOSIM_TIME_SCALE", "1")),
    help="Run cool-offs and cycling this many times faster (fidelity runs, tests).",
)
def up_command(
    path: Path,
    app: str | None,
    port: int,
    grace: float,
    boot_timeout: float,
    base_image: str | None,
    strict_runtime: bool,
    cycling: bool,
    time_scale: float,
) -> None:
    """Build PATH (default: here) into a release and run it until Ctrl-C."""
    from . import up

    if not path.is_dir():
        raise click.BadParameter(f"{path} is not a folder", param_hint="PATH")
    name = app or up.app_name(path)
    if control.is_running(name):
        raise UsageError(f"dynosim up is already running for app {name}")
    up.check_port_free("127.0.0.1", port)
    store = Store()
    release, is_new = up.deploy(
        store, name, path, progress=progress, base_image=base_image, strict_runtime=strict_runtime
    )

    def ready(router) -> None:
        click.echo(f"-----> {name} {release.name} is running: {router.url}", err=True)

    asyncio.run(
        up.serve(
            store,
            name,
            printer=Printer(),
            new_release=release if is_new else None,
            port=port,
            grace=grace,
            boot_timeout=boot_timeout,
            cycling=cycling,
            time_scale=time_scale,
            ready=ready,
        )
    )


@main.command("ps")
@app_option
@click.option("--json", "as_json", is_flag=True, help="Output as JSON.")
def ps(app: str | None, as_json: bool) -> None:
    """List the app's dynos, grouped by process type."""
    from . import operations

    store = Store()
    name = resolve(store, app)
    dynos = operations.dynos(store, name)
    if as_json:
        click.echo(json.dumps(dynos, indent=2))
        return
    click.echo(operations.format_ps(name, dynos, dt.datetime.now(dt.UTC)))


@main.command("ps:scale")
@app_option
@click.argument("changes", nargs=-1)
def ps_scale(app: str | None, changes: tuple[str, ...]) -> None:
    """Scale process types: web=3 worker+1 web=2:Standard-2X."""
    _change_formation(app, formation.scale, changes, "Scaling dynos")


@main.command("ps:type")
@app_option
@click.argument("changes", nargs=-1)
def ps_type(app: str | None, changes: tuple[str, ...]) -> None:
    """Change dyno sizes only: web=Standard-2X."""
    _change_formation(app, formation.retype, changes, "Changing dyno types")


def _change_formation(app: str | None, change, changes: tuple[str, ...], doing: str) -> None:
    from . import operations

    store = Store()
    result = operations.change_formation(store, resolve(store, app), change, list(changes))
    click.echo(f"{doing}... done, now running {formation.describe(result)}")


@main.command("ps:restart")
@app_option
@click.argument("target", required=False)
def ps_restart(app: str | None, target: str | None) -> None:
    """Restart all dynos, a process type (web) or one dyno (web.2)."""
    name = resolve(Store(), app)
    what = target or "all dynos"
    click.echo(f"Restarting {what} on ⬢ {name}... ", nl=False)
    control.call(name, {"command": "restart", "target": target})
    click.echo("done")


@main.command("ps:stop")
@app_option
@click.argument("dyno")
def ps_stop(app: str | None, dyno: str) -> None:
    """Stop one dyno (web.2, run.4821); a formation dyno comes back, as on Heroku."""
    name = resolve(Store(), app)
    click.echo(f"Stopping {dyno} on ⬢ {name}... ", nl=False)
    control.call(name, {"command": "stop", "dyno": dyno})
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
def run(
    app: str | None,
    env: tuple[str, ...],
    size: str,
    command: tuple[str, ...],
    exit_code: bool,
    no_tty: bool,
) -> None:
    """Run a command in a one-off dyno (run.N) of the current release, attached."""
    from . import operations

    store = Store()
    name = resolve(store, app)
    line = " ".join(command)
    tty = sys.stdin.isatty() and not no_tty

    def announce(dyno: str) -> None:
        click.echo(f"Running `{line}` on ⬢ {name}... up, {dyno}", err=True)

    status = operations.run_attached(
        store, name, line, _env(env), formation.size(size).name, tty=tty, announce=announce
    )
    if exit_code:
        sys.exit(status)


@main.command("run:detached", context_settings={"ignore_unknown_options": True})
@with_run_options
def run_detached(
    app: str | None, env: tuple[str, ...], size: str, command: tuple[str, ...]
) -> None:
    """Run a command in a one-off dyno whose output goes to the log stream."""
    name = resolve(Store(), app)
    line = " ".join(command)
    reply = control.call(
        name,
        {
            "command": "run_detached",
            "command_line": line,
            "env": _env(env),
            "size": formation.size(size).name,
        },
    )
    click.echo(f"Running `{line}` on ⬢ {name}... up, {reply['dyno']}")
    click.echo(f"Use `dynosim logs -a {name} --ps {reply['dyno']}` to view the output.")


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
    name = resolve(Store(), app)
    printer = Printer()
    request = {"command": "logs", "num": num, "tail": tail, "ps": ps_filter, "source": source}
    try:
        for reply in control.request(name, request):
            printer(LogLine.from_json(reply))
    except KeyboardInterrupt:
        pass


@main.command("stack:build")
@click.option(
    "--stack",
    "suites",
    multiple=True,
    type=click.Choice(["bullseye", "bookworm", "trixie"]),
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
