"""Read heroku.yml, the manifest of Heroku's container stack, strictly.

`build.docker` maps image keys (process types) to Dockerfiles, `build.config` gives build-time
ARGs, `run` the command of each process type, `release` the release phase. `setup` provisions
add-ons and config vars when Heroku creates an app; dynosim does not simulate it and only warns.
Every problem is a ManifestError naming the file and the key path (`run.worker.image`).
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from . import procfile, textfile
from .errors import ManifestError
from .procfile import RELEASE, RESERVED, WEB

FILENAME = "heroku.yml"
SECTIONS = ("setup", "build", "release", "run")
TYPE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Process:
    #: Run with `/bin/sh -c`, as Heroku does; None: the image's own ENTRYPOINT / CMD.
    command: str | None
    #: The build.docker key whose image it runs.
    image: str


@dataclass(frozen=True)
class HerokuYml:
    dockerfiles: dict[str, str]  # image key -> Dockerfile path, relative to the app (normalized)
    build_config: dict[str, str]  # build-time ARGs
    processes: dict[str, Process]  # every type run as dynos: build.docker keys, then run's
    release: Process | None
    warnings: list[str]
    targets: dict[str, str] = field(default_factory=dict)  # image key -> multi-stage target


class _Loader(yaml.SafeLoader):
    """safe_load, but a key given twice in one mapping is an error, not silently the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def load(app_dir: Path) -> HerokuYml | None:
    """Read and check `<app_dir>/heroku.yml`; None when the app has none."""
    path = Path(app_dir) / FILENAME
    text = textfile.read(path, ManifestError)
    if text is None:
        return None
    return parse(text, Path(app_dir), str(path))


def process_types(app_dir: Path, manifest: HerokuYml | None) -> dict[str, str]:
    """Type -> command, from heroku.yml when the app has one (its Procfile is then unused, as on
    Heroku's container stack), else from the Procfile. An empty command runs the image's CMD."""
    if manifest is None:
        return {t.name: t.command for t in procfile.load(app_dir).values()}
    types = {name: process.command or "" for name, process in manifest.processes.items()}
    if manifest.release:
        types[RELEASE] = manifest.release.command or ""
    return types


def parse(text: str, app_dir: Path, path: str = FILENAME) -> HerokuYml:
    """Check heroku.yml's text; Dockerfile paths are looked up in app_dir."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"{where}: invalid YAML ({reason})") from None
    return _Reader(path, Path(app_dir)).manifest(data)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


class _Reader:
    def __init__(self, path: str, app_dir: Path) -> None:
        self.path, self.app_dir = path, app_dir
        self.dockerfiles: dict[str, str] = {}

    def fail(self, key: str, message: str) -> NoReturn:
        raise ManifestError(f"{self.path}: {key}: {message}")

    def mapping(self, value: Any, key: str, what: str) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"expected {what}, got {_kind(value)}")
        for name in value:
            if not isinstance(name, str):
                self.fail(key, f"keys must be strings, got {name!r}")
        return value

    def known(self, value: dict, key: str, allowed: tuple[str, ...]) -> None:
        for name in value:
            if name not in allowed:
                prefix = f"{key}." if key else ""
                self.fail(f"{prefix}{name}", f"unknown key; expected {', '.join(allowed)}")

    def manifest(self, data: Any) -> HerokuYml:
        if data is None:
            self.fail("build", "required: heroku.yml is empty")
        if not isinstance(data, dict):
            raise ManifestError(f"{self.path}: expected a mapping with a build section")
        self.known(data, "", SECTIONS)
        warnings = []
        if "setup" in data:
            warnings.append(
                f"{self.path}: setup is ignored by dynosim (it provisions add-ons and config"
                " vars when Heroku creates an app); set config vars yourself"
            )
        if (self.app_dir / "Procfile").is_file():
            warnings.append(f"{self.app_dir / 'Procfile'}: ignored, heroku.yml says what runs")
        if "build" not in data:
            self.fail("build", "required: build.docker names the Dockerfile of each process type")
        build = self.mapping(data["build"], "build", "a mapping with docker (and config)")
        self.known(build, "build", ("docker", "config"))
        targets = self.read_docker(build.get("docker"))
        config = self.read_config(build.get("config"))
        processes = {key: Process(None, key) for key in self.dockerfiles}
        processes.update(self.read_run(data.get("run")))
        release = self.read_release(data["release"]) if "release" in data else None
        return HerokuYml(dict(self.dockerfiles), config, processes, release, warnings, targets)

    def read_docker(self, docker: Any) -> dict[str, str]:
        """Fill self.dockerfiles; return the multi-stage targets."""
        what = "a mapping of process types to Dockerfiles (web: Dockerfile)"
        docker = self.mapping(docker, "build.docker", what)
        if not docker:
            self.fail("build.docker", f"names no process type; expected {what}")
        targets = {}
        for name, value in docker.items():
            key = f"build.docker.{name}"
            self.process_type(name, key)
            if isinstance(value, dict):  # Heroku's {dockerfile: ..., target: stage}
                self.known(value, key, ("dockerfile", "target"))
                if "target" in value:
                    target = value["target"]
                    if not isinstance(target, str) or not target.strip():
                        self.fail(f"{key}.target", "expected the name of a build stage")
                    targets[name] = target.strip()
                value, key = value.get("dockerfile"), f"{key}.dockerfile"
            self.dockerfiles[name] = self.dockerfile(value, key)
        return targets

    def dockerfile(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "expected a path to a Dockerfile")
        name = posixpath.normpath(value.strip())
        inside = (self.app_dir / name).resolve().is_relative_to(self.app_dir.resolve())
        if os.path.isabs(name) or name.split("/")[0] == ".." or not inside:
            self.fail(key, f"{value!r} is outside the app folder")
        if not (self.app_dir / name).is_file():
            self.fail(key, f"{name} not found in the app folder")
        return name

    def read_config(self, config: Any) -> dict[str, str]:
        if config is None:
            return {}
        config = self.mapping(config, "build.config", "a mapping of build-time variables")
        values = {}
        for name, value in config.items():
            if isinstance(value, bool):
                values[name] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                values[name] = str(value)
            elif value is None:
                values[name] = ""
            else:
                message = f"expected a string, number or boolean, got {_kind(value)}"
                self.fail(f"build.config.{name}", message)
        return values

    def read_run(self, run: Any) -> dict[str, Process]:
        if run is None:
            return {}
        run = self.mapping(run, "run", "a mapping of process types to commands")
        processes = {}
        for name, entry in run.items():
            key = f"run.{name}"
            self.process_type(name, key)
            if isinstance(entry, dict):
                self.known(entry, key, ("command", "image"))
                command = (
                    self.command(entry["command"], f"{key}.command") if "command" in entry else None
                )
                image = self.image(entry.get("image"), f"{key}.image", name)
            else:
                command = self.command(entry, key)
                image = self.image(None, key, name)
            processes[name] = Process(command, image)
        return processes

    def read_release(self, release: Any) -> Process:
        release = self.mapping(release, "release", "a mapping with command (and image)")
        self.known(release, "release", ("command", "image"))
        if "command" not in release:
            self.fail("release.command", "required: the command of the release phase")
        command = self.command(release["command"], "release.command")
        return Process(command, self.image(release.get("image"), "release.image", WEB))

    def image(self, value: Any, key: str, default: str) -> str:
        """An explicit image key; else the process type's own image; else web's."""
        keys = ", ".join(self.dockerfiles)
        if value is None:
            if default in self.dockerfiles:
                return default
            if WEB in self.dockerfiles:
                return WEB
            self.fail(key, f"no image: build.docker has no web image; name one of: {keys}")
        if not isinstance(value, str) or value not in self.dockerfiles:
            self.fail(key, f"{value!r} is not a key of build.docker ({keys})")
        return value

    def command(self, value: Any, key: str) -> str:
        if isinstance(value, list):
            if not value:
                self.fail(key, "empty command")
            for index, word in enumerate(value):
                if isinstance(word, bool) or not isinstance(word, str | int | float):
                    self.fail(f"{key}[{index}]", f"expected a string, got {_kind(word)}")
            value = " ".join(str(word) for word in value)
        if not isinstance(value, str):
            self.fail(
                key, f"expected a command (a string or a list of strings), got {_kind(value)}"
            )
        if not value.strip():
            self.fail(key, "empty command")
        return value.strip()

    def process_type(self, name: str, key: str) -> None:
        if not TYPE.fullmatch(name):
            self.fail(key, f"{name!r} is not a valid process type (letters, digits, _ and -)")
        if name in RESERVED:
            self.fail(key, f"process type {name!r} is reserved for one-off dynos")
        if name == RELEASE:
            self.fail(key, "'release' is not a process type here; use the release section")
