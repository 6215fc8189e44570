"""Turn an app folder into a runnable image: select the source, render the runtime, build.

The build context is a deterministic tar (selected files, rendered Dockerfile, runtime files),
so its hash names the image: the same inputs are never built twice.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

from . import engine, runtime, source, stack
from .errors import BuildError, RuntimeSelectionError

Progress = Callable[[str], None]
PIP_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
CA_ENV = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_IN_BUILD = "/etc/dynosim/ca-bundle.crt"
UWSGI_REQUIREMENT = re.compile(r"^\s*(uwsgi|pyuwsgi)\s*([=<>!~;\[#]|$)", re.IGNORECASE | re.M)
INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)", re.M)


def runtime_dir() -> Path:
    """runtimes/python, inside the installed package or beside it in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "runtimes" / "python", here.parent / "runtimes" / "python"):
        if candidate.is_dir():
            return candidate
    raise BuildError("runtimes/python is missing from the dynosim installation")


@dataclass
class HostSettings:
    """The host's pip and CA settings that a build behind a TLS-intercepting proxy needs."""

    buildargs: dict[str, str] = field(default_factory=dict)
    ca_bundle: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> HostSettings:
        settings = cls()
        for name in PIP_ENV:
            urls = environ.get(name, "").split()
            usable = [u for u in urls if not u.startswith("file:")]
            if len(usable) < len(urls):
                settings.warnings.append(f"{name}: file: URLs cannot be reached in a build")
            if usable:
                settings.buildargs[name] = " ".join(usable)
        for name in CA_ENV:
            if environ.get(name) and Path(environ[name]).is_file():
                settings.ca_bundle = Path(environ[name])
                break
        else:
            if SYSTEM_CA_BUNDLE.is_file():
                settings.ca_bundle = SYSTEM_CA_BUNDLE
        return settings


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill {{name}} placeholders; a placeholder without a value is a bug, not a blank."""

    def fill(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise BuildError(f"runtime template: no value for {{{{{match.group(1)}}}}}")
        return values[match.group(1)]

    return re.sub(r"\{\{(\w+)\}\}", fill, template)


def dependency_files(app_dir: Path, manager: str | None) -> list[str]:
    """requirements.txt and the files it pulls in with -r / -c, relative to the app."""
    if manager != "pip":
        return []
    found: list[str] = []
    pending = ["requirements.txt"]
    while pending:
        name = os.path.normpath(pending.pop())
        if name in found or name.startswith(".."):
            continue
        path = app_dir / name
        if not path.is_file():
            raise RuntimeSelectionError(f"{app_dir / 'requirements.txt'}: includes missing {name}")
        found.append(name)
        base = os.path.dirname(name)
        pending += [os.path.join(base, ref) for ref in INCLUDE.findall(path.read_text())]
    return sorted(found)


def dockerfile(
    build_image: str,
    run_image: str,
    *,
    deps: list[str],
    has_uwsgi: bool,
    ca: bool,
    app: str = "app",
) -> str:
    pip = "/opt/venv/bin/pip install"
    ca_setup = ""
    if ca:
        ca_setup = (
            f"COPY runtime/ca-bundle.crt {CA_IN_BUILD}\n"
            f"ENV PIP_CERT={CA_IN_BUILD} SSL_CERT_FILE={CA_IN_BUILD}"
            f" REQUESTS_CA_BUNDLE={CA_IN_BUILD}"
        )
    template = (runtime_dir() / "Dockerfile.template").read_text()
    return render(
        template,
        {
            "build_image": build_image,
            # not dynosim's container labels: every container of the image would inherit them
            "labels": f'dynosim.image="app" dynosim.image.app="{app}"',
            "run_image": run_image,
            "ca_setup": ca_setup,
            "install_uwsgi": "true  # the app brings its own uWSGI"
            if has_uwsgi
            else f"{pip} pyuwsgi",
            "install_dependencies": f"{pip} -r /tmp/dependencies/requirements.txt"
            if deps
            else "true  # no requirements.txt",
        },
    )


class _Context:
    """A deterministic tar: same files and contents, same bytes, same hash."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, 0
        self.tar.addfile(info, io.BytesIO(data))

    def add_dir(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
        self.tar.addfile(info)

    def add_file(self, name: str, path: Path) -> None:
        if path.is_symlink():
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, os.readlink(path), 0
            self.tar.addfile(info)
            return
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
        self.add_bytes(name, path.read_bytes(), mode)

    def close(self) -> bytes:
        self.tar.close()
        return self.buffer.getvalue()


@dataclass(frozen=True)
class Plan:
    """Everything a build needs, computed without touching Docker."""

    app: str
    context: bytes
    source_hash: str
    buildargs: dict[str, str]
    build_image: str
    run_image: str
    files: list[str]

    @property
    def tag(self) -> str:
        return f"dynosim/app-{self.app}:{self.source_hash[:12]}"


def plan(
    app: str,
    app_dir: Path,
    *,
    build_image: str,
    run_image: str,
    settings: HostSettings | None = None,
) -> Plan:
    settings = settings or HostSettings.from_environ()
    manager = runtime.package_manager(app_dir)
    deps = dependency_files(app_dir, manager)
    has_uwsgi = any(UWSGI_REQUIREMENT.search((app_dir / d).read_text()) for d in deps)
    files = source.select(app_dir)
    if not files:
        raise BuildError(
            f"{app_dir}: no files to deploy (in a git repository only tracked files are deployed;"
            " git add them)"
        )
    context = _Context()
    context.add_bytes(
        "Dockerfile",
        dockerfile(
            build_image,
            run_image,
            deps=deps,
            has_uwsgi=has_uwsgi,
            ca=bool(settings.ca_bundle),
            app=app,
        ).encode(),
    )
    for name in ("dyno-launch", "uwsgi-defaults.ini"):
        context.add_file(f"runtime/{name}", runtime_dir() / name)
    if settings.ca_bundle:
        context.add_bytes("runtime/ca-bundle.crt", settings.ca_bundle.read_bytes())
    context.add_dir("dependencies")
    for name in deps:
        context.add_file(f"dependencies/{name}", app_dir / name)
    context.add_dir("app")
    for name in files:
        context.add_file(f"app/{name}", app_dir / name)
    data = context.close()
    digest = hashlib.sha256(data)
    for image in (build_image, run_image):
        digest.update(image.encode())
    digest.update(repr(sorted(settings.buildargs.items())).encode())
    return Plan(app, data, digest.hexdigest(), settings.buildargs, build_image, run_image, files)


@dataclass(frozen=True)
class Image:
    tag: str
    id: str
    source_hash: str
    cached: bool


def build(plan: Plan, progress: Progress) -> Image:
    """Build the plan's image, streaming steps; reuse it when the same inputs were built before."""
    client = engine.client()
    try:
        existing = client.images.get(plan.tag)
        progress(f"Source unchanged ({plan.source_hash[:12]}): reusing image {plan.tag}")
        return Image(plan.tag, existing.id, plan.source_hash, cached=True)
    except docker.errors.ImageNotFound:
        pass
    progress(f"Building {plan.app} ({len(plan.files)} files) into {plan.tag}")
    image_id = stream_build(
        progress,
        f"build of {plan.app} failed",
        fileobj=io.BytesIO(plan.context),
        tag=plan.tag,
        buildargs=plan.buildargs,
    )
    progress(f"Built {plan.tag}")
    return Image(plan.tag, image_id, plan.source_hash, cached=False)


def stream_build(progress: Progress, failed: str, **options: Any) -> str:
    """Run a classic build of a custom context, streaming its output the Heroku way; the image
    id. BuildError (`failed: reason`) names the failing step and the tail of its output."""
    client = engine.client()
    step, tail, image_id = "", [], None
    try:
        stream = client.api.build(
            custom_context=True, rm=True, forcerm=True, pull=False, decode=True, **options
        )
        for event in stream:
            if "error" in event:
                raise BuildError(f"{failed}: {event['error'].strip()}", step, tail[-25:])
            if "aux" in event and "ID" in event["aux"]:
                image_id = event["aux"]["ID"]
            for line in event.get("stream", "").splitlines():
                step, tail = _show(line, step, tail, progress)
    except docker.errors.APIError as exc:
        raise BuildError(f"{failed}: {exc.explanation}", step, tail[-25:]) from None
    return image_id or client.images.get(options["tag"]).id


STEP = re.compile(r"^Step (\d+/\d+) : (.*)$")


def _show(line: str, step: str, tail: list[str], progress: Progress) -> tuple[str, list[str]]:
    """Print one line of builder output the Heroku way: steps as arrows, output indented."""
    match = STEP.match(line)
    if match:
        instruction = match.group(2)
        if instruction.startswith(("ARG", "ENV", "LABEL", "WORKDIR", "USER", "ENTRYPOINT")):
            return instruction, []
        progress(f"-----> [{match.group(1)}] {instruction[:110]}")
        return instruction, []
    stripped = line.strip()
    if not stripped or stripped.startswith(("--->", "Removing intermediate", "Successfully")):
        if stripped == "---> Using cache":
            progress("       (cached)")
        return step, tail
    progress(f"       {line.rstrip()}")
    tail.append(line.rstrip())
    return step, tail[-200:]


def stack_images(
    app_dir: Path, *, base_image: str | None, strict: bool, progress: Progress
) -> tuple[str, str, str]:
    """(build image, run image, description) for the app, making stack images when missing."""
    if base_image:
        return base_image, base_image, f"base image {base_image}"
    selection = runtime.select_stack(app_dir, strict=strict)
    if selection.warning:
        progress(f" !     {selection.warning}")
    chosen = selection.stack
    stack.ensure(chosen, progress)
    description = f"stack {chosen.suite} (Python {chosen.python_version})"
    return chosen.build_image, chosen.run_image, description
