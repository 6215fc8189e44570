"""Turn an app folder into a runnable image: select the source, render the runtime, build.

The build context is a deterministic tar (selected files, rendered Dockerfile, runtime files),
so its hash names the image: the same inputs are never built twice. The build does what
Heroku's Python buildpack does: install with the package manager the app chose, run its
bin/pre_compile and bin/post_compile hooks and Django's collectstatic with its config vars.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets as random
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import buildkit, runtime, source, stack, store
from .docker import images
from .errors import BuildError, RuntimeSelectionError
from .progress import Progress

PIP_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
CA_ENV = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_IN_BUILD = "/etc/dynosim/ca-bundle.crt"
UWSGI_REQUIREMENT = re.compile(r"^\s*(uwsgi|pyuwsgi)\s*([=<>!~;\[#]|$)", re.IGNORECASE | re.M)
UWSGI_LOCKED = re.compile(r'^name = "(uwsgi|pyuwsgi)"$', re.IGNORECASE | re.M)
INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)", re.M)
#: The package managers' versions, pinned as Heroku's buildpack pins them: the newest releases
#: that still run on Python 3.9 (the bullseye stack). They live in the build stage only.
TOOLS = {"pipenv": ("Pipenv", "2025.0.4"), "poetry": ("Poetry", "2.2.1"), "uv": ("uv", "0.13.9")}
#: poetry.lock is exported and installed with pip: `poetry install` needs PyPI's per-version JSON
#: API, which mirrors and proxies that only serve the simple index (like this one) do not have.
POETRY_EXPORT = "poetry-plugin-export==1.9.0"
#: What each manager's dependency step runs, and Heroku's line for it.
INSTALL = {
    "pip": (
        "/opt/venv/bin/pip install -r {dir}/requirements.txt",
        "pip install -r requirements.txt",
    ),
    "pipenv": ("cd {dir} && /opt/pipenv/bin/pipenv install --deploy", "pipenv install --deploy"),
    "poetry": (
        "cd {dir} && /opt/poetry/bin/poetry export --only main --format requirements.txt"
        " --output /tmp/poetry-requirements.txt && pip install -r /tmp/poetry-requirements.txt",
        "poetry export --only main' and 'pip install",
    ),
    "uv": (
        "cd {dir} && /opt/uv/bin/uv sync --locked --no-default-groups --no-install-project"
        " --inexact",
        "uv sync --locked --no-default-groups",
    ),
}
#: What Heroku CI's build (the buildpack's bin/test-compile, INSTALL_TEST) runs instead: the
#: test dependencies too (requirements-test.txt with pip, Pipfile's dev-packages, the default
#: dependency groups of Poetry and uv).
TEST_INSTALL = {
    "pip": (
        "/opt/venv/bin/pip install -r {dir}/requirements.txt -r {dir}/requirements-test.txt",
        "pip install -r requirements.txt -r requirements-test.txt",
    ),
    "pipenv": (
        "cd {dir} && /opt/pipenv/bin/pipenv install --deploy --dev",
        "pipenv install --deploy --dev",
    ),
    "poetry": (
        "cd {dir} && /opt/poetry/bin/poetry export --format requirements.txt"
        " --output /tmp/poetry-requirements.txt && pip install -r /tmp/poetry-requirements.txt",
        "poetry export' and 'pip install",
    ),
    "uv": (
        "cd {dir} && /opt/uv/bin/uv sync --locked --no-install-project --inexact",
        "uv sync --locked",
    ),
}
TEST_REQUIREMENTS = "requirements-test.txt"
#: Config vars Heroku's buildpack never passes to build steps, and dynosim's own build settings.
HIDDEN_FROM_BUILD = frozenset(
    {"PATH", "GIT_DIR", "PYTHONHOME", "LD_LIBRARY_PATH", "LIBRARY_PATH", *PIP_ENV, *CA_ENV}
)
ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOOKS = ("pre_compile", "post_compile")
BUILD_STEP = "/opt/dynosim/build-step"


def runtime_dir() -> Path:
    """runtimes/python, inside the installed package or beside it in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "runtimes" / "python", here.parent / "runtimes" / "python"):
        if candidate.is_dir():
            return candidate
    raise BuildError("runtimes/python is missing from the dynosim installation")


@dataclass
class HostSettings:
    """The host's pip and CA settings that a build behind a TLS-intercepting proxy needs.
    `buildargs` (the pip settings) reach the build as the secret `pip`, never as build args."""

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


def dependency_files(app_dir: Path, manager: str | None, test: bool = False) -> list[str]:
    """The files the manager installs from, relative to the app: requirements.txt (with `test`,
    requirements-test.txt too) and the files they pull in with -r / -c; Pipfile and
    Pipfile.lock; pyproject.toml and poetry.lock or uv.lock. The dependency layer is keyed by
    these alone."""
    if manager == "pipenv":
        return ["Pipfile", "Pipfile.lock"]
    if manager in ("poetry", "uv"):
        return sorted([f"{manager}.lock", "pyproject.toml"])
    if manager != "pip":
        return []
    found: list[str] = []
    pending: list[tuple[str, str]] = [("requirements.txt", "")]  # (file, where it was named)
    if test and (app_dir / TEST_REQUIREMENTS).is_file():
        pending.append((TEST_REQUIREMENTS, ""))
    root = app_dir.resolve()
    while pending:
        name, where = pending.pop()
        name = os.path.normpath(name)
        if name in found:
            continue
        path = app_dir / name
        if os.path.isabs(name) or not path.resolve().is_relative_to(root):
            raise RuntimeSelectionError(
                f"{where}: includes {name}, outside the app; only the app's own files are built"
            )
        if not path.is_file():
            raise RuntimeSelectionError(f"{where or path}: includes missing {name}")
        found.append(name)
        base = os.path.dirname(name)
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for ref in INCLUDE.findall(line):
                pending.append((os.path.join(base, ref), f"{path}:{number}"))
    return sorted(found)


def brings_uwsgi(app_dir: Path, manager: str, deps: list[str]) -> bool:
    """Whether the app's own dependencies include uWSGI (then its pin is installed, not ours)."""
    if manager == "pip":
        return any(UWSGI_REQUIREMENT.search((app_dir / d).read_text()) for d in deps)
    lock = (app_dir / next(d for d in deps if d.endswith(".lock"))).read_text()
    if manager == "pipenv":
        try:
            default = json.loads(lock).get("default", {})
        except (ValueError, AttributeError):
            return False
        return any(name.lower() in ("uwsgi", "pyuwsgi") for name in default)
    return bool(UWSGI_LOCKED.search(lock))


def build_config(config: Mapping[str, str] | None) -> dict[str, str]:
    """The config vars a build step sees: all but those Heroku hides from builds (PATH,
    PYTHONHOME, ...) and dynosim's own build settings; names a shell can hold."""
    return {
        key: value
        for key, value in sorted((config or {}).items())
        if ARG_NAME.match(key) and key not in HIDDEN_FROM_BUILD
    }


@dataclass(frozen=True)
class Recipe:
    """The rendered Dockerfile, and Heroku's line for each step worth a line ("" hides one)."""

    text: str
    headlines: dict[str, str]


def recipe(
    build_image: str,
    run_image: str,
    *,
    deps: list[str],
    has_uwsgi: bool,
    ca: bool,
    app: str = "app",
    manager: str = "pip",
    hooks: tuple[str, ...] = (),
    collectstatic: bool = False,
    secrets: Mapping[str, str] | None = None,
    test: bool = False,
) -> Recipe:
    """The Dockerfile for an app: `hooks` (bin/pre_compile, bin/post_compile) and `collectstatic`
    need the app in the build stage. `secrets`: secret id (`pip`: the host's pip settings,
    `config`: the config vars) -> a keyed digest of its values. The steps that run pip mount
    `pip`, the hooks and collectstatic `config` too; the digest in their text keys their layer
    cache by the values, which BuildKit's cache does not see. `test`: Heroku CI's build, with
    the test dependencies (TEST_INSTALL)."""
    steps = _Steps(secrets or {})
    install_pip = steps.run(
        'python3 -m venv /opt/venv && /opt/venv/bin/pip install --quiet --upgrade "pip>=23"',
        "Installing pip",
    )
    install_uwsgi = _install_uwsgi(steps, has_uwsgi)
    tool = _tool(manager, steps.run)
    early = "pre_compile" in hooks  # Heroku runs it before installing: it may change them
    install = TEST_INSTALL if test and (manager != "pip" or TEST_REQUIREMENTS in deps) else INSTALL
    dependencies = _dependencies(steps, install[manager], deps, early)
    early_app, late_app = _app_in_build(steps, hooks, collectstatic)
    run_tool = _run_tool(manager)
    app_in_build = bool(hooks or collectstatic)
    values = {
        "build_image": build_image,
        # not dynosim's container labels: every container of the image would inherit them
        "labels": f'dynosim.image="app" dynosim.image.app="{app}"',
        "run_image": run_image,
        "ca_setup": _ca_setup(ca),
        "install_pip": install_pip,
        "install_uwsgi": install_uwsgi,
        "install_tool": tool,
        "early_app": early_app,
        "dependencies": dependencies,
        "late_app": late_app,
        "run_tool": run_tool,
        "path": "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin"
        + (":/opt/pipenv/bin" if run_tool else ""),
        "copy_app": "COPY --from=build --chown=dyno:dyno /app/ /app/"
        if app_in_build
        else "COPY --chown=dyno:dyno app/ /app/",
    }
    text = render((runtime_dir() / "Dockerfile.template").read_text(), values)
    return Recipe(re.sub(r"\n{3,}", "\n\n", text), steps.headlines)


def dockerfile(build_image: str, run_image: str, **options: Any) -> str:
    return recipe(build_image, run_image, **options).text


@dataclass
class _Steps:
    """Writes a recipe's RUN commands with the secrets they mount, noting Heroku's line for each.
    `digests`: secret id -> the keyed digest of its values (see `recipe`)."""

    digests: Mapping[str, str]
    headlines: dict[str, str] = field(default_factory=dict)

    def run(self, command: str, headline: str, uses: tuple[str, ...] = ("pip",)) -> str:
        """The text after RUN: `command` with the secrets of `uses` that the build has."""
        self.headlines[f"RUN {command}"] = headline
        ids = [i for i in uses if i in self.digests]
        if not ids:
            return command
        mounts = "".join(f"--mount=type=secret,id={i} " for i in ids)
        sources = "".join(f". {buildkit.SECRETS_DIR}/{i} && " for i in ids)
        keys = ",".join(f"{i}={self.digests[i]}" for i in ids)
        return f"{mounts}{sources}{command}  # secrets: {keys}"

    def app_step(self, command: str) -> str:
        """A RUN of the app's own code (a hook, collectstatic): it sees the config vars too."""
        return f"RUN {self.run(f'{BUILD_STEP} {command}', '', ('pip', 'config'))}"


def _ca_setup(ca: bool) -> str:
    """The host's CA bundle, for the build stage's pip and requests."""
    if not ca:
        return ""
    return (
        f"COPY runtime/ca-bundle.crt {CA_IN_BUILD}\n"
        f"ENV PIP_CERT={CA_IN_BUILD} SSL_CERT_FILE={CA_IN_BUILD}"
        f" REQUESTS_CA_BUNDLE={CA_IN_BUILD}"
    )


def _install_uwsgi(steps: _Steps, has_uwsgi: bool) -> str:
    """dynosim's pyuwsgi, unless the app's dependencies bring a uWSGI of their own."""
    if has_uwsgi:
        return steps.run("true  # the app brings its own uWSGI", "", ())
    return steps.run("/opt/venv/bin/pip install pyuwsgi --quiet", "Installing uWSGI (pyuwsgi)")


def _dependencies(steps: _Steps, install: tuple[str, str], deps: list[str], early: bool) -> str:
    """The dependency step (`install`: its command and Heroku's words): from the app itself
    after bin/pre_compile (`early`), else from the dependency files alone, in a layer of their
    own."""
    command, words = install
    headline = f"Installing dependencies using '{words}'"
    if early:
        return f"RUN {steps.run(command.format(dir='/app'), headline)}"
    if not deps:
        return ""
    return (
        "# Dependencies are their own layer, keyed only by the dependency files: code changes"
        " reuse it.\nCOPY dependencies/ /tmp/dependencies/\nRUN "
        + steps.run(command.format(dir="/tmp/dependencies"), headline)
    )


def _app_in_build(steps: _Steps, hooks: tuple[str, ...], collectstatic: bool) -> tuple[str, str]:
    """The build stage's app steps, (early_app, late_app). With bin/pre_compile the app is
    copied in first and the hook runs before the dependencies are installed (it may change
    them); otherwise the app comes after them, if collectstatic or bin/post_compile needs it.
    Those two run last."""
    app_setup = f"COPY runtime/build-step {BUILD_STEP}\nCOPY app/ /app/\nWORKDIR /app"
    late = [
        *([steps.app_step("collectstatic")] if collectstatic else []),
        *([steps.app_step("hook post_compile")] if "post_compile" in hooks else []),
    ]
    if "pre_compile" in hooks:
        return f"{app_setup}\n{steps.app_step('hook pre_compile')}", "\n".join(late)
    return "", "\n".join(([app_setup] if hooks or collectstatic else []) + late)


def _run_tool(manager: str) -> str:
    """The run stage's package manager: Heroku keeps Pipenv in the slug (`pipenv run`)."""
    if manager != "pipenv":
        return ""
    return (
        "COPY --from=build /opt/pipenv /opt/pipenv\n"
        "ENV PIPENV_SYSTEM=1 PIPENV_VERBOSITY=-1 PIPENV_NOSPIN=1"
    )


def _tool(manager: str, run: Callable[[str, str], str]) -> str:
    """The build stage's package manager in its own virtualenv (never in the app's)."""
    if manager not in TOOLS:
        return ""
    name, version = TOOLS[manager]
    packages = f"{manager}=={version}" + (f" {POETRY_EXPORT}" if manager == "poetry" else "")
    command = (
        f"python3 -m venv --without-pip /opt/{manager}"
        f" && /opt/venv/bin/pip --python /opt/{manager}/bin/python install -q {packages}"
    )
    settings = {
        # as Heroku's buildpack sets them: install into the app's environment, quietly
        "pipenv": "ENV PIPENV_SYSTEM=1 PIPENV_VERBOSITY=-1 PIPENV_NOSPIN=1",
        "poetry": "ENV POETRY_VIRTUALENVS_CREATE=false POETRY_NO_INTERACTION=1",
        "uv": "ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON=/opt/venv/bin/python"
        " UV_PYTHON_DOWNLOADS=never UV_NO_MANAGED_PYTHON=1 UV_NO_CACHE=1 UV_COMPILE_BYTECODE=1"
        " UV_NO_PROGRESS=1 NO_COLOR=1",
    }[manager]
    return f"RUN {run(command, f'Installing {name} {version}')}\n{settings}"


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
    context: bytes = field(repr=False)
    source_hash: str
    # secret id -> its variables (pip settings, config vars): never print them
    secrets: dict[str, dict[str, str]] = field(repr=False)
    build_image: str
    run_image: str
    files: list[str]
    manager: str = "pip"
    headlines: dict[str, str] = field(default_factory=dict, repr=False)

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
    config: Mapping[str, str] | None = None,
    test: bool = False,
) -> Plan:
    """The build of `app_dir`. `config` is the app's config vars: the build stage gets them as
    the secret `config` when a step can read them (bin/pre_compile, bin/post_compile,
    collectstatic), and only then do they key the image (a config change rebuilds only such
    apps). `test`: Heroku CI's build (bin/test-compile): the test dependencies too, and no
    collectstatic (DISABLE_COLLECTSTATIC)."""
    settings = settings or HostSettings.from_environ()
    manager = runtime.package_manager(app_dir)
    deps = dependency_files(app_dir, manager, test)
    has_uwsgi = brings_uwsgi(app_dir, manager, deps)
    files = _deployed(app_dir)
    hooks, collectstatic = compile_steps(files)
    collectstatic = collectstatic and not test
    config_args = build_config(config) if hooks or collectstatic else {}
    secrets = {
        name: values
        for name, values in (("pip", dict(settings.buildargs)), ("config", config_args))
        if values
    }
    key = build_key() if secrets else b""
    steps = recipe(
        build_image,
        run_image,
        deps=deps,
        has_uwsgi=has_uwsgi,
        ca=bool(settings.ca_bundle),
        app=app,
        manager=manager,
        hooks=hooks,
        collectstatic=collectstatic,
        secrets={name: secret_digest(key, values) for name, values in secrets.items()},
        test=test,
    )
    data = _context(app_dir, steps.text, settings.ca_bundle, deps, files)
    source_hash = _source_hash(data, build_image, run_image)
    return Plan(
        app, data, source_hash, secrets, build_image, run_image, files, manager, steps.headlines
    )


def _deployed(app_dir: Path) -> list[str]:
    """The files a git push would send (source.select); none is an error."""
    files = source.select(app_dir)
    if not files:
        raise BuildError(
            f"{app_dir}: no files to deploy (in a git repository only tracked files are deployed;"
            " git add them)"
        )
    return files


def compile_steps(files: list[str]) -> tuple[tuple[str, ...], bool]:
    """(hooks, collectstatic): the app's bin/pre_compile and bin/post_compile among `files`, and
    whether it is a Django app whose static files Heroku collects."""
    hooks = tuple(name for name in HOOKS if f"bin/{name}" in files)
    # Heroku looks for manage.py up to three levels down (and runs it if Django is installed)
    collectstatic = any(f.endswith("manage.py") and len(Path(f).parts) <= 3 for f in files)
    return hooks, collectstatic


def _context(
    app_dir: Path, dockerfile: str, ca_bundle: Path | None, deps: list[str], files: list[str]
) -> bytes:
    """The build context: the Dockerfile, dynosim's runtime files (and the host's CA bundle),
    the dependency files and the app's files."""
    context = _Context()
    context.add_bytes("Dockerfile", dockerfile.encode())
    for name in ("dyno-launch", "build-step"):
        context.add_file(f"runtime/{name}", runtime_dir() / name)
    if ca_bundle:
        context.add_bytes("runtime/ca-bundle.crt", ca_bundle.read_bytes())
    context.add_dir("dependencies")
    for name in deps:
        context.add_file(f"dependencies/{name}", app_dir / name)
    context.add_dir("app")
    for name in files:
        context.add_file(f"app/{name}", app_dir / name)
    return context.close()


def _source_hash(context: bytes, build_image: str, run_image: str) -> str:
    """What names the image: the context and the stack images it is built on."""
    digest = hashlib.sha256(context)
    for image in (build_image, run_image):
        digest.update(image.encode())
    return digest.hexdigest()


def build_key() -> bytes:
    """The user's key for the digests of build secrets: 32 random bytes, made once, owner-only
    in the state folder. A plain hash of a short value (a config var) would give it away to a
    guess; an HMAC cannot be checked without this key."""
    path = store.data_dir() / "build.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = random.token_bytes(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another build made it meanwhile
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(descriptor, "w") as file:
        file.write(key.hex() + "\n")
    return key


def secret_digest(key: bytes, values: Mapping[str, str]) -> str:
    """A keyed digest of a secret's values, for the layer cache and the image tag."""
    message = json.dumps(sorted(values.items())).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Image:
    tag: str
    id: str
    source_hash: str
    cached: bool


def build(plan: Plan, progress: Progress, *, cache: bool = True) -> Image:
    """Build the plan's image, streaming steps; reuse it when the same inputs were built before.
    Without `cache`, every layer is built again (Heroku's build cache purged)."""
    existing = images.image_id(plan.tag)  # also without the cache: is there an engine?
    if cache and existing is not None:
        progress(f"Source unchanged ({plan.source_hash[:12]}): reusing image {plan.tag}")
        return Image(plan.tag, existing, plan.source_hash, cached=True)
    progress(f"Building {plan.app} ({len(plan.files)} files) into {plan.tag}")
    image_id = stream_build(
        progress,
        f"build of {plan.app} failed",
        headlines=plan.headlines,
        context=plan.context,
        tag=plan.tag,
        secrets=plan.secrets,
        nocache=not cache,
    )
    progress(f"Built {plan.tag}")
    return Image(plan.tag, image_id, plan.source_hash, cached=False)


#: Builds go through BuildKit (buildkit.build), which keeps no secret in the engine.
stream_build = buildkit.build


def stack_images(
    app_dir: Path,
    *,
    base_image: str | None,
    strict: bool,
    progress: Progress,
    suite: str | None = None,
) -> tuple[str, str, str]:
    """(build image, run image, description) for the app, making stack images when missing;
    `suite` is the app's stack setting (bookworm, forky, ...), which must carry the Python the
    app's version files pick (runtime.select_stack)."""
    if base_image:
        if base_image.startswith("dynosim/stack-"):
            progress(
                f" !     {base_image} is a dynosim stack image: `dynosim stack:set NAME` sets the"
                " app's stack (its version files still pick the Python)"
            )
        return base_image, base_image, f"base image {base_image}"
    selection = runtime.select_stack(app_dir, strict=strict, stack=suite)
    chosen = selection.stack
    stack.ensure(chosen, progress)
    progress(f"-----> {selection.announcement}")
    for warning in selection.warnings:
        for line in warning.splitlines():
            progress(f" !     {line}".rstrip())
    description = f"stack {chosen.suite} (Python {chosen.python_version})"
    return chosen.build_image, chosen.run_image, description
