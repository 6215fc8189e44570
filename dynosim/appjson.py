"""Read an app's ``app.json`` (Heroku's app manifest) for what its first release needs.

dynosim takes three things from it, as Heroku does when it sets an app up from app.json:

- ``env``: config vars, ``{"KEY": "value"}`` or ``{"KEY": {"description": ..., "value": ...,
  "required": ..., "generator": "secret"}}``; ``required`` defaults to true when there is neither
  a value nor a generator (Heroku's schema), and ``secret`` makes 64 hex characters;
- ``formation``: ``{"web": {"quantity": 1, "size": "standard-1x"}}``;
- ``scripts.postdeploy``: a command, or ``{"command": ..., "size": ...}``;
- ``addons``: plans, ``"heroku-postgresql"`` or ``{"plan": ..., "as": ..., "options": ...}``;
- ``environments.test`` (Heroku CI): ``scripts.test-setup`` and ``scripts.test``, ``env``,
  ``addons`` and ``formation`` of the test run, each over the app's own.

Everything else Heroku knows (name, description, keywords, website, repository, logo,
success_url, buildpacks, stack, image, the other scripts and environments) is accepted and
ignored; unknown keys are warnings. Schema errors are ManifestErrors naming file and key path.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import textfile
from .errors import ConfigError, ManifestError

KNOWN = {"name", "description", "keywords", "website", "repository", "logo", "success_url"}
KNOWN |= {"scripts", "env", "formation", "addons", "buildpacks", "environments", "stack", "image"}
CONFIG_VAR = re.compile(r"[A-Za-z0-9_]+")
PROCESS_TYPE = re.compile(r"[A-Za-z0-9_-]+")
ENV_FIELDS = {"description", "value", "required", "generator"}
ADDON_FIELDS = {"plan", "as", "options"}
TEST_KEYS = {"scripts", "env", "addons", "formation", "buildpacks"}
TEST_SCRIPTS = {"test-setup", "test"}


@dataclass(frozen=True)
class EnvVar:
    key: str
    value: str | None
    required: bool
    generator: str | None  # "secret" or None
    description: str | None


@dataclass(frozen=True)
class AddonSpec:
    """An add-on app.json asks for: its plan (`heroku-postgresql:in-dyno`), and the name of
    its attachment when given (`as`: DATABASE)."""

    plan: str
    attach_as: str | None = None


@dataclass(frozen=True)
class TestEnvironment:
    """``environments.test``: what Heroku CI runs (`test_setup`, then `test`) and the test
    run's `env`, `addons` and `formation`; None where it says nothing."""

    __test__ = False  # not a pytest test class

    test_setup: str | None
    test: str | None
    env: dict[str, EnvVar]
    addons: tuple[AddonSpec, ...] | None
    formation: dict[str, tuple[int, str | None]]


@dataclass(frozen=True)
class AppJson:
    env: dict[str, EnvVar]
    formation: dict[str, tuple[int, str | None]]  # type -> (quantity, size as written)
    postdeploy: str | None
    warnings: list[str]
    addons: tuple[AddonSpec, ...] = ()
    test: TestEnvironment | None = None


class _Reader:
    """Checks one app.json's values; every error and warning names the file and key path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.warnings: list[str] = []

    def error(self, where: str, message: str) -> ManifestError:
        return ManifestError(f"{self.path}: {where}: {message}")

    def object(
        self, value: Any, where: str, known: set[str] | None = None, expected: str = "an object"
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(where, f"expected {expected}")
        prefix = f"{where}." if where else ""
        for key in [] if known is None else [k for k in value if k not in known]:
            self.warnings.append(f"{self.path}: {prefix}{key}: unknown key (ignored)")
        return value

    def string(self, spec: dict[str, Any], name: str, where: str) -> str | None:
        if name in spec and not isinstance(spec[name], str):
            raise self.error(f"{where}.{name}", "expected a string")
        return spec.get(name)

    def env(self, raw: Any, prefix: str = "") -> dict[str, EnvVar]:
        env = {}
        for key, spec in self.object(raw, f"{prefix}env").items():
            where = f"{prefix}env.{key}"
            if not CONFIG_VAR.fullmatch(key) or key.startswith("__"):
                message = "not a config var name (letters, digits and _, not starting with __)"
                raise self.error(where, message)
            spec = {"value": spec} if isinstance(spec, str) else spec
            self.object(spec, where, ENV_FIELDS, expected="a string or an object")
            value = self.string(spec, "value", where)
            generator = spec.get("generator")
            if "generator" in spec and generator != "secret":
                raise self.error(f"{where}.generator", 'expected "secret"')
            required = spec.get("required", value is None and generator is None)
            if not isinstance(required, bool):
                raise self.error(f"{where}.required", "expected true or false")
            description = self.string(spec, "description", where)
            env[key] = EnvVar(key, value, required, generator, description)
        return env

    def formation(self, raw: Any, prefix: str = "") -> dict[str, tuple[int, str | None]]:
        formation = {}
        for name, spec in self.object(raw, f"{prefix}formation").items():
            where = f"{prefix}formation.{name}"
            if not PROCESS_TYPE.fullmatch(name):
                raise self.error(where, "not a process type name (letters, digits, _ and -)")
            self.object(spec, where, {"quantity", "size"})
            quantity = spec.get("quantity")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
                raise self.error(f"{where}.quantity", "expected a whole number >= 0")
            formation[name] = (quantity, self.string(spec, "size", where))
        return formation

    def postdeploy(self, raw: Any) -> str | None:
        scripts, where = self.object(raw, "scripts"), "scripts.postdeploy"
        command = scripts.get("postdeploy")
        if isinstance(command, dict):
            self.object(command, where, {"command", "size"})
            self.string(command, "size", where)
            command, where = command.get("command"), f"{where}.command"
        if "postdeploy" in scripts and (not isinstance(command, str) or not command.strip()):
            raise self.error(where, 'expected a command (a string, or {"command": "..."})')
        return command

    def addons(self, raw: Any, where: str) -> tuple[AddonSpec, ...]:
        if not isinstance(raw, list):
            raise self.error(where, 'expected a list of plans ("heroku-postgresql:in-dyno")')
        found = []
        for number, item in enumerate(raw):
            at = f"{where}[{number}]"
            spec = {"plan": item} if isinstance(item, str) else item
            self.object(spec, at, ADDON_FIELDS, expected='a plan or {"plan": ...}')
            plan, attach_as = self.string(spec, "plan", at), self.string(spec, "as", at)
            if not plan or not plan.strip():
                raise self.error(f"{at}.plan" if isinstance(item, dict) else at, "no plan")
            found.append(AddonSpec(plan.strip(), attach_as))
        return tuple(found)

    def test_environment(self, raw: Any) -> TestEnvironment:
        where = "environments.test"
        spec = self.object(raw, where, TEST_KEYS)
        scripts = self.object(spec.get("scripts", {}), f"{where}.scripts")
        commands = {}
        for name in TEST_SCRIPTS:
            command = scripts.get(name)
            if name in scripts and (not isinstance(command, str) or not command.strip()):
                raise self.error(f"{where}.scripts.{name}", "expected a command (a string)")
            commands[name] = command
        addons = self.addons(spec["addons"], f"{where}.addons") if "addons" in spec else None
        return TestEnvironment(
            commands["test-setup"],
            commands["test"],
            self.env(spec.get("env", {}), f"{where}."),
            addons,
            self.formation(spec.get("formation", {}), f"{where}."),
        )

    def environments(self, raw: Any) -> TestEnvironment | None:
        environments = self.object(raw, "environments")
        return self.test_environment(environments["test"]) if "test" in environments else None


def parse(text: str, path: str = "app.json") -> AppJson:
    """Check an app.json's text and return what dynosim uses of it."""
    try:
        data = json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a JSON object at the top level")
    reader = _Reader(path)
    reader.object(data, "", KNOWN)
    env, formation = reader.env(data.get("env", {})), reader.formation(data.get("formation", {}))
    postdeploy = reader.postdeploy(data.get("scripts", {}))
    addons = reader.addons(data.get("addons", []), "addons")
    test = reader.environments(data.get("environments", {}))
    return AppJson(env, formation, postdeploy, reader.warnings, addons, test)


def load(app_dir: Path) -> AppJson | None:
    """Read and check ``<app_dir>/app.json``; None when the app has none."""
    path = Path(app_dir) / "app.json"
    text = textfile.read(path, ManifestError)
    if text is None:
        return None
    return parse(text, str(path))


def initial_config(spec: AppJson, provided: Mapping[str, str]) -> dict[str, str]:
    """The config vars app.json gives an app's first release: the ``provided`` value (config
    given to the first build, or the .env asked for), else the value, else a generated secret;
    required vars left without a value are one ConfigError. Only app.json's keys are returned."""
    remedy = 'give {them} a "value" in app.json, or put {them} in the app\'s .env and run'
    return _values(spec.env, provided, "env.", remedy + " dynosim up --env-file")


def test_config(spec: AppJson) -> dict[str, str]:
    """The config vars of a Heroku CI test run: app.json's env with environments.test.env
    over it (values, else generated secrets); required vars left without a value are one
    ConfigError."""
    test_env = spec.test.env if spec.test else {}
    where = {key: "environments.test.env." for key in test_env}
    remedy = 'give {them} a "value" in app.json\'s environments.test.env'
    return _values({**spec.env, **test_env}, {}, "env.", remedy, where)


def _values(
    env: Mapping[str, EnvVar],
    provided: Mapping[str, str],
    prefix: str,
    remedy: str,
    where: Mapping[str, str] | None = None,
) -> dict[str, str]:
    config, missing = {}, []
    for key, var in env.items():
        if key in provided:
            config[key] = provided[key]
        elif var.value is not None:
            config[key] = var.value
        elif var.generator == "secret":
            config[key] = secrets.token_hex(32)
        elif var.required:
            missing.append(f"{(where or {}).get(key, prefix)}{key}")
    if missing:
        one = len(missing) == 1
        verbs, them = ("is required and has", "it") if one else ("are required and have", "them")
        raise ConfigError(
            f"app.json: {', '.join(missing)} {verbs} no value; {remedy.format(them=them)}"
        )
    return config
