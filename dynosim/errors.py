"""dynosim's exceptions: one root, one exit code per kind, a message a user can act on."""

from __future__ import annotations


class DynosimError(Exception):
    """Root of every error dynosim reports to a user (click's habit: an exit code per class)."""

    exit_code = 1

    def format_message(self) -> str:
        return str(self)


class ProcfileError(DynosimError):
    """A Procfile that is missing, empty or has a line that is not a valid entry."""

    exit_code = 2

    def __init__(self, message: str, path: str, line: int | None = None) -> None:
        self.path, self.line, self.message = path, line, message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class UsageError(DynosimError):
    """Bad arguments or an app folder that dynosim cannot work with."""

    exit_code = 2


class ConfigError(DynosimError):
    """A config var, .env file or app.json value that cannot be used; nothing is written."""

    exit_code = 2


class ManifestError(DynosimError):
    """heroku.yml or app.json that does not follow its schema; names the file and key path."""

    exit_code = 2


class ReleaseError(DynosimError):
    """A release that failed its release phase or whose web dynos never came up; the
    previous release keeps running. Carries the tail of the failing command's output."""

    exit_code = 6

    def __init__(self, message: str, tail: list[str] | None = None) -> None:
        self.tail = tail or []
        super().__init__(message)

    def format_message(self) -> str:
        return "\n".join([str(self), *(f"  | {line}" for line in self.tail)])


class RuntimeSelectionError(DynosimError):
    """runtime.txt / .python-version / package manager files that cannot be honoured."""

    exit_code = 2


class EngineError(DynosimError):
    """No usable Docker engine, or the engine refused a request."""

    exit_code = 3


class BuildError(DynosimError):
    """A build step failed; carries the step and the tail of its output."""

    exit_code = 4

    def __init__(
        self, message: str, step: str | None = None, tail: list[str] | None = None
    ) -> None:
        self.step, self.tail = step, tail or []
        super().__init__(message)

    def format_message(self) -> str:
        lines = [str(self)]
        if self.step:
            lines.append(f"  failing step: {self.step}")
        lines += [f"  | {line}" for line in self.tail]
        return "\n".join(lines)


class StateError(DynosimError):
    """The state database is unreadable or from an unknown future version."""

    exit_code = 5


class RemoteError(DynosimError):
    """A failure inside a running `up`, as its control socket reported it."""

    def __init__(self, message: str, kind: str = "DynosimError", exit_code: int = 1) -> None:
        self.kind, self.exit_code = kind, exit_code
        super().__init__(message)


def one_line(text: str) -> str:
    return " ".join(text.split())


def is_engine_error(exc: BaseException) -> bool:
    """A docker SDK (or requests-to-the-engine) exception, told without importing docker."""
    modules = [cls.__module__ for cls in type(exc).__mro__]
    return any(m.split(".")[0] in ("docker", "requests", "urllib3") for m in modules)


def as_dynosim_error(exc: BaseException) -> DynosimError:
    """Any exception as the one-line error a user sees: DynosimError as it is, an engine error
    as EngineError with the engine's explanation, anything else with its type."""
    if isinstance(exc, DynosimError):
        return exc
    if is_engine_error(exc):
        explanation = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
        return EngineError(f"Docker engine: {one_line(str(explanation))}")
    detail = one_line(str(exc))
    return DynosimError(f"{type(exc).__name__}{': ' + detail if detail else ''}")
