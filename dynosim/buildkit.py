"""Builds through BuildKit, so no value a build needs is kept by the engine.

The classic builder (all the Docker SDK speaks) keeps build args in the history of the
intermediate images it caches and dockerd logs them; BuildKit secrets (`RUN
--mount=type=secret`) are mounted into the steps that read them and kept nowhere. The SDK cannot
start a BuildKit build, so the docker CLI runs it: `docker buildx build --load` where buildx
is installed, else a 20.10-era client that speaks BuildKit itself (`DOCKER_BUILDKIT=1 docker
build`, Debian's docker.io). The context tar goes in on stdin, the secret values in owner-only
files (one per secret id, removed after), build arg values in the CLI's environment (`--build-arg
NAME` takes them from there): no value is in any process's argv or in the Dockerfile.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BuildError, EngineError
from .progress import Progress
from .store import data_dir

CANDIDATES = ("/usr/bin/docker", "/usr/local/bin/docker", "/bin/docker")
INSTALL_HINT = (
    "building needs BuildKit through the docker CLI, and no docker client here has it: install"
    " the buildx plugin (Debian trixie: apt-get install docker-buildx; Docker's packages:"
    " docker-buildx-plugin) or Debian's docker.io 20.10 client (scripts/setup installs it)"
)
SECRETS_DIR = "/run/secrets"


@functools.cache
def command() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(argv prefix of a BuildKit build, environment it needs), or EngineError. The choice is
    remembered under the state folder until a client or a buildx plugin changes: finding it
    runs the clients (0.2 s), which every build would pay."""
    found = [shutil.which("docker"), *CANDIDATES]
    clients = list(dict.fromkeys(os.path.realpath(c) for c in found if c and os.access(c, os.X_OK)))
    key = _fingerprint(clients)
    remembered = _remembered(key)
    if remembered is not None:
        return remembered
    chosen = _choose(clients)
    _remember(key, chosen)
    return chosen


Choice = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]
PLUGIN_DIRS = (
    "/usr/libexec/docker/cli-plugins", "/usr/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins", "/usr/local/lib/docker/cli-plugins",
)  # fmt: skip


def _fingerprint(clients: list[str]) -> list[list]:
    """What the choice depends on: the clients and any buildx plugin, by path, size and mtime."""
    config = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    plugins = [os.path.join(d, "docker-buildx") for d in (*PLUGIN_DIRS, f"{config}/cli-plugins")]
    key = []
    for path in [*clients, *plugins]:
        with contextlib.suppress(OSError):
            info = os.stat(path)
            key.append([path, info.st_size, info.st_mtime_ns])
    return key


def _cache_file() -> Path:
    return data_dir() / "buildkit-client.json"


def _remembered(key: list[list]) -> Choice | None:
    try:
        saved = json.loads(_cache_file().read_text())
        if saved["key"] == key:
            return tuple(saved["argv"]), tuple(tuple(pair) for pair in saved["env"])  # type: ignore[return-value]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _remember(key: list[list], chosen: Choice) -> None:
    with contextlib.suppress(OSError):
        path = _cache_file()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"key": key, "argv": chosen[0], "env": chosen[1]}))
        temporary.replace(path)


def _choose(clients: list[str]) -> Choice:
    for client in clients:
        if _works([client, "buildx", "version"]):
            return (client, "buildx", "build", "--load"), ()
    for client in clients:
        version = _output([client, "--version"])  # "Docker version 20.10.24+dfsg1, build …"
        match = re.search(r"version (\d+)\.", version)
        if match and int(match.group(1)) < 23:  # 23+ hands BuildKit builds to buildx
            return (client, "build"), (("DOCKER_BUILDKIT", "1"),)
    raise EngineError(INSTALL_HINT)


def _works(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def env_file(values: Mapping[str, str]) -> str:
    """A secret's file: `export NAME='value'` lines a step sources with `. /run/secrets/ID`."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def build(
    progress: Progress,
    failed: str,
    *,
    context: bytes,
    tag: str,
    headlines: Mapping[str, str] | None = None,
    dockerfile: str | None = None,
    target: str | None = None,
    buildargs: Mapping[str, str] | None = None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    labels: Mapping[str, str] | None = None,
    nocache: bool = False,
) -> str:
    """Build the context tar, streaming its steps the Heroku way; the image id. BuildError
    (`failed: reason`) names the failing step and the tail of its output.

    With `headlines` (instruction -> Heroku's line for it), only those steps are announced, as
    Heroku's buildpack announces its own; otherwise every step is, numbered. `secrets`: id ->
    the variables a step gets with `RUN --mount=type=secret,id=ID . /run/secrets/ID && …`."""
    prefix, extra_env = command()
    with tempfile.TemporaryDirectory(prefix="dynosim-build-") as folder:  # mode 0700
        argv = [
            *prefix,
            *("--progress=plain", "--iidfile", f"{folder}/iid", "-t", tag),
            *_secret_options(folder, secrets or {}),
            *_options(buildargs or {}, labels or {}, dockerfile, target, nocache),
            "-",
        ]
        # `--build-arg NAME` reads the value from the environment
        env = {**os.environ, **dict(extra_env), **(buildargs or {})}
        printer = Printer(progress, headlines)
        status = _run(argv, env, context, printer)
        printer.finish()
        iid = Path(folder, "iid")
        if status != 0 or not iid.is_file():
            raise printer.error(failed)
        return iid.read_text().strip()


def _secret_options(folder: str, secrets: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Each secret in an owner-only file of `folder` (removed with it), and the CLI's options
    naming those files."""
    options = []
    for secret_id, values in secrets.items():
        path = Path(folder, f"secret-{secret_id}")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(env_file(values))
        options += ["--secret", f"id={secret_id},src={path}"]
    return options


def _options(
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    dockerfile: str | None,
    target: str | None,
    nocache: bool,
) -> list[str]:
    """The CLI's options for the rest of a build's settings; build args by name only."""
    options = []
    for name in buildargs:
        options += ["--build-arg", name]
    for name, value in labels.items():
        options += ["--label", f"{name}={value}"]
    if dockerfile:
        options += ["-f", dockerfile]
    if target:
        options += ["--target", target]
    if nocache:
        options.append("--no-cache")
    return options


def _run(argv: list[str], env: Mapping[str, str], context: bytes, printer: Printer) -> int:
    """Run the build CLI with the context on its stdin and its output into `printer`; its exit
    status. It is killed if reading its output fails (e.g. on Ctrl-C)."""
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
    except OSError as exc:
        raise EngineError(f"cannot run {argv[0]}: {exc.strerror}") from None
    feeder = threading.Thread(target=_feed, args=(process, context), daemon=True)
    feeder.start()
    try:
        assert process.stdout
        for raw in process.stdout:
            printer.line(raw.decode(errors="replace"))
        return process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        feeder.join(timeout=5)


def _feed(process: subprocess.Popen, context: bytes) -> None:
    assert process.stdin
    try:
        process.stdin.write(context)
        process.stdin.close()
    except (BrokenPipeError, OSError):
        pass


# `#5 [build 2/9] RUN …` (a step; [internal] and other vertices are not), `#5 0.215 output`,
# `#5 CACHED`, `#5 DONE 0.2s`, `#5 ERROR: …`
VERTEX = re.compile(r"^#(\d+) (.*)$")
STEP = re.compile(r"^\[(?:(\S+) +)? *(\d+/\d+)\] (.*)$")  # "[build  2/10]", "[ 2/10]"
OUTPUT = re.compile(r"^(\d+\.\d+) ?(.*)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: Lines a build step prints in Heroku's own layout: a step arrow, or an error block.
HEROKU_LINE = re.compile(r"^(-----> | !     | !$)")
#: What dynosim adds to a RUN for its secrets: the mounts, the sourcing, the values' digest.
SECRET_MOUNT = re.compile(r"--mount=type=secret,\S+ ")
SECRET_SOURCE = re.compile(r"^RUN (?:\. /run/secrets/\w+ && )+")
DIGEST = re.compile(r"  # secrets: \S+$")
HIDDEN = ("ARG", "ENV", "LABEL", "WORKDIR", "USER", "ENTRYPOINT", "CMD", "EXPOSE")


def plain(instruction: str) -> str:
    """The instruction as the Dockerfile's author wrote it, without dynosim's secret plumbing."""
    text = SECRET_MOUNT.sub("", instruction)
    return DIGEST.sub("", SECRET_SOURCE.sub("RUN ", text))


@dataclass
class Step:
    number: str  # "build 2/9", or "2/5" in a one-stage build
    instruction: str  # plain()
    lines: list[str] = field(default_factory=list)  # not printed yet
    tail: list[str] = field(default_factory=list)
    cached: bool = False
    done: bool = False
    error: str = ""
    shown: bool = False


class Printer:
    """Turns BuildKit's plain progress into Heroku's lines: a step arrow, its output indented,
    `(cached)` under a reused step. BuildKit runs independent steps at once and interleaves their
    output; each step's output is printed together, the steps in the order they started."""

    def __init__(self, progress: Progress, headlines: Mapping[str, str] | None = None) -> None:
        self.progress, self.headlines = progress, headlines
        self.steps: dict[str, Step] = {}
        self.order: list[str] = []  # steps not printed to the end yet, in start order
        self.active: str | None = None
        self.other: list[str] = []  # lines outside steps (the error summary)
        self.partial = ""

    def line(self, text: str) -> None:
        text = ANSI.sub("", text).rstrip("\n").rstrip("\r")
        match = VERTEX.match(text)
        if not match:
            if text.strip():
                self.other.append(text.strip())
            return
        vertex, rest = match.groups()
        step = STEP.match(rest)
        if step:
            if vertex not in self.steps:
                stage, number, instruction = step.groups()
                name = f"{stage} {number}" if stage else number
                self.steps[vertex] = Step(name, plain(instruction))
                self.order.append(vertex)
                self._advance()
            return
        current = self.steps.get(vertex)
        if current is None:
            return  # [internal] vertices, the context, exporting the image
        output = OUTPUT.match(rest)
        if output:
            self._output(vertex, current, output.group(2).rsplit("\r", 1)[-1])
        elif rest == "CACHED":
            current.cached = current.done = True
            self._advance()
        elif rest.startswith("DONE"):
            current.done = True
            self._advance()
        elif rest.startswith("ERROR"):
            current.error = rest.removeprefix("ERROR").lstrip(": ")
            current.done = True
            self._advance(vertex)

    def _output(self, vertex: str, step: Step, text: str) -> None:
        shown = text.rstrip()
        step.tail = [*step.tail[-199:], shown]
        if self.active == vertex:
            self._print_output(shown)
        else:
            step.lines.append(shown)

    def _print_output(self, text: str) -> None:
        if text:
            self.progress(text if HEROKU_LINE.match(text) else f"       {text}")

    def _announce(self, step: Step) -> None:
        step.shown = True
        instruction = step.instruction
        if self.headlines is not None:
            headline = self.headlines.get(instruction)
            if headline:
                self.progress(f"-----> {headline}")
            return
        if instruction.startswith(HIDDEN):
            return
        if instruction.startswith("FROM "):
            instruction = re.sub(r"^FROM docker\.io/(library/)?", "FROM ", instruction)
        self.progress(f"-----> [{step.number}] {instruction[:110]}")

    def _visible(self, step: Step) -> bool:
        if self.headlines is not None:
            return bool(self.headlines.get(step.instruction))
        return not step.instruction.startswith(("FROM ", *HIDDEN))

    def _advance(self, first: str | None = None) -> None:
        """Print what can be printed: the active step's news, then the next steps in order
        (`first` before them, e.g. a failed step)."""
        while True:
            if self.active is None:
                if not self.order:
                    return
                self.active = first if first in self.order else self.order[0]
                step = self.steps[self.active]
                if not step.shown:
                    self._announce(step)
                for text in step.lines:
                    self._print_output(text)
                step.lines = []
            step = self.steps[self.active]
            if not step.done:
                return
            if step.cached and self._visible(step):
                self.progress("       (cached)")
            self.order.remove(self.active)
            self.active, first = None, None

    def finish(self) -> None:
        for vertex in list(self.order):
            self.steps[vertex].done = True
        self._advance()

    def error(self, failed: str) -> BuildError:
        failures = [s for s in self.steps.values() if s.error]
        # BuildKit cancels the steps running beside the one that failed
        broken = next((s for s in failures if "cancel" not in s.error), None) or next(
            iter(failures), None
        )
        if broken is None:
            reason = next(
                (t.removeprefix("ERROR: ").removeprefix("error: ") for t in reversed(self.other)),
                "the build did not finish",
            )
            return BuildError(f"{failed}: {reason}")
        code = re.search(r"exit code: (\d+)", broken.error)
        reason = f"the step returned a non-zero code: {code.group(1)}" if code else broken.error
        return BuildError(f"{failed}: {reason}", broken.instruction, broken.tail[-25:])
