"""The command line: parse arguments, call dynosim, print. Errors become one clear line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from . import runtime, stack, up
from .errors import DynosimError
from .logs import Printer
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
def up_command(
    path: Path,
    app: str | None,
    port: int,
    grace: float,
    boot_timeout: float,
    base_image: str | None,
    strict_runtime: bool,
) -> None:
    """Build PATH (default: here) into a release and run it until Ctrl-C."""
    if not path.is_dir():
        raise click.BadParameter(f"{path} is not a folder", param_hint="PATH")
    name = app or up.app_name(path)
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
            ready=ready,
        )
    )


@main.command("stack:build")
@click.option(
    "--stack",
    "suites",
    multiple=True,
    type=click.Choice([s.suite for s in runtime.STACKS]),
    help="Which stack (repeatable; default: all).",
)
@click.option("--force", is_flag=True, help="Rebuild even if the images exist.")
def stack_build(suites: tuple[str, ...], force: bool) -> None:
    """Make the stack images offline from Debian (done automatically when first needed)."""
    for suite in suites or [s.suite for s in runtime.STACKS]:
        chosen = runtime.stack_by_suite(suite)
        stack.ensure(chosen, progress, force=force)
        click.echo(f"{chosen.build_image} and {chosen.run_image}: ready")
