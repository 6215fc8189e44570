"""Pure: the control protocol's vocabulary, the typed commands a CLI command sends a running
`up` and the typed replies it gets back, and their JSON objects on the wire.

A command is a frozen dataclass named on the wire by its `name` (`{"command": "stop", "dyno":
"web.1"}`); `decode` checks the name and every field, so a bad request is a one-line
UsageError before anything runs. A reply carries one value under its `key`; log lines go as
`LogLine.to_json` objects. Every command and reply name is written here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, NotRequired, Self, TypedDict, TypeVar

from .errors import UsageError
from .formation import DEFAULT_SIZE
from .logs import LogLine

COMMANDS: dict[str, type[Command]] = {}


class Command:
    """A request to a running `up`; subclasses register their wire name."""

    name: ClassVar[str]

    def __init_subclass__(cls, *, name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name
        COMMANDS[name] = cls


@dataclass(frozen=True)
class Ps(Command, name="ps"):
    """The dyno manager's dynos; answers Dynos."""


@dataclass(frozen=True)
class Deploy(Command, name="deploy"):
    """Roll pending releases out up to vN; answers Progress lines, then Released."""

    version: int


@dataclass(frozen=True)
class Build(Command, name="build"):
    """Build a folder into a release and roll it out: `deploy` or a git push to a running
    `up`, which has the build's modules loaded already. A push builds a checkout of its
    commit: `description` names the commit, `home` is the app's own folder. Answers
    Progress lines, then Built."""

    folder: str
    base_image: str | None = None
    strict_runtime: bool = False
    cache: bool = True
    description: str | None = None
    home: str | None = None


@dataclass(frozen=True)
class Sleep(Command, name="sleep"):
    """`ps:sleep`; answers Asleep."""


@dataclass(frozen=True)
class Wake(Command, name="wake"):
    """`ps:wake`, once the dynos are up; answers Asleep."""


@dataclass(frozen=True)
class Reconcile(Command, name="reconcile"):
    """Apply the store's formation now; answers Dynos."""


@dataclass(frozen=True)
class Restart(Command, name="restart"):
    """`ps:restart` all formation dynos (None), a type or a dyno; answers Restarted."""

    target: str | None = None


@dataclass(frozen=True)
class Stop(Command, name="stop"):
    """`ps:stop` a dyno or a type; answers Stopped."""

    dyno: str


@dataclass(frozen=True)
class RunDetached(Command, name="run_detached"):
    """A one-off dyno whose output goes to the log stream; answers Started."""

    command_line: str
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    size: str = DEFAULT_SIZE


@dataclass(frozen=True)
class Logs(Command, name="logs"):
    """The last `num` matching lines, then with `tail` new ones; answers LogEntry lines."""

    num: int = 100
    tail: bool = False
    ps: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Dashboard(Command, name="dashboard"):
    """Where `up`'s dashboard serves, its token in the URL (the socket is owner-only, so the
    token reaches only the owner); answers DashboardUrl."""


def encode(command: Command) -> dict[str, Any]:
    """The command as the JSON object sent on the wire."""
    fields = {f.name: getattr(command, f.name) for f in dataclasses.fields(command)}
    return {"command": command.name, **fields}


def decode(data: object) -> Command:
    """The command a JSON object asks for; UsageError for an unknown one or a bad field."""
    name = data.get("command") if isinstance(data, dict) else None
    kind = COMMANDS.get(name) if isinstance(name, str) else None
    if kind is None or not isinstance(data, dict):
        raise UsageError(f"unknown control request {name!r}")
    given = {key: value for key, value in data.items() if key != "command"}
    hints = typing.get_type_hints(kind)
    fields = {f.name: f for f in dataclasses.fields(kind)}
    for key, value in given.items():
        if key not in fields:
            raise UsageError(f"control request {name!r}: unknown field {key!r}")
        if not _fits(value, hints[key]):
            raise UsageError(f"control request {name!r}: {key} must be {_shown(hints[key])}")
    missing = [key for key, f in fields.items() if key not in given and _required(f)]
    if missing:
        raise UsageError(f"control request {name!r}: missing {', '.join(missing)}")
    return kind(**given)


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _fits(value: object, hint: Any) -> bool:
    """Whether a JSON value has the field's type (int, bool, str, None, their unions, dicts)."""
    if isinstance(hint, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(hint))
    if typing.get_origin(hint) is dict:
        key_type, value_type = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _fits(k, key_type) and _fits(v, value_type) for k, v in value.items()
        )
    if hint is type(None):
        return value is None
    if hint is int:  # JSON's true is no count
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _shown(hint: Any) -> str:
    return str(hint).replace("NoneType", "None") if not isinstance(hint, type) else hint.__name__


class DynoRow(TypedDict):
    """One dyno as `ps` lists it (the dyno manager's, or one Docker reports)."""

    name: str
    type: str
    role: str
    state: str
    since: str  # ISO 8601
    command: str
    size: str
    release: int
    node: NotRequired[str]  # the cluster node it runs on (Swarm)


class Reply:
    """An answer to a command: a dataclass of one field, sent under its `key`."""

    key: ClassVar[str]

    def __init_subclass__(cls, *, key: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.key = key

    def to_wire(self) -> dict[str, Any]:
        (field,) = dataclasses.fields(self)
        return {self.key: getattr(self, field.name)}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Self:
        return cls(data[cls.key])


@dataclass(frozen=True)
class Dynos(Reply, key="dynos"):
    rows: list[DynoRow]


@dataclass(frozen=True)
class Progress(Reply, key="progress"):
    line: str


@dataclass(frozen=True)
class Released(Reply, key="release"):
    version: int


class BuildOutcome(TypedDict):
    version: int  # the release serving the build: a new one, or the one that has its image
    new: bool


@dataclass(frozen=True)
class Built(Reply, key="built"):
    outcome: BuildOutcome


@dataclass(frozen=True)
class Asleep(Reply, key="asleep"):
    asleep: bool


@dataclass(frozen=True)
class Restarted(Reply, key="restarted"):
    names: list[str]


@dataclass(frozen=True)
class Stopped(Reply, key="stopped"):
    dyno: str


@dataclass(frozen=True)
class Started(Reply, key="dyno"):
    dyno: str


@dataclass(frozen=True)
class DashboardUrl(Reply, key="dashboard"):
    """The dashboard's URL with its token; None when this `up` serves none (App.start)."""

    url: str | None


@dataclass(frozen=True)
class LogEntry(Reply, key="message"):
    """A log line, as LogLine's own JSON object."""

    line: LogLine

    def to_wire(self) -> dict[str, Any]:
        return self.line.to_json()

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Self:
        return cls(LogLine.from_json(data))


R = TypeVar("R", bound=Reply)


def decode_reply(data: dict[str, Any], kinds: tuple[type[R], ...]) -> R | None:
    """The first of `kinds` whose key the reply has, else None (an answer not asked for)."""
    for kind in kinds:
        if kind.key in data:
            return kind.from_wire(data)
    return None
