"""Pure: what `dynosim doctor` reports: a finding per check and subject (pass, warn or fail,
what was observed, the Heroku fact behind the verdict, the fix), the report of a whole run,
its exit status, its text lines and its JSON (schema in docs/doctor.md)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

#: Bump when the JSON changes incompatibly (docs/doctor.md describes each version).
SCHEMA = 1


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class Check(StrEnum):
    """The checks, in the order they are reported."""

    BOOT = "boot"
    SHUTDOWN = "shutdown"
    ROUTER = "router"
    MEMORY = "memory"
    FILESYSTEM = "filesystem"
    RELEASE = "release"
    BUILD = "build"
    CONFIG = "config"


@dataclass(frozen=True)
class Fact:
    """The Heroku fact a verdict rests on: an error code (R10, H13; None when Heroku logs
    none), the limit, and the Dev Center page that says so."""

    code: str | None
    limit: str
    page: str

    def __str__(self) -> str:
        code = f"{self.code}, " if self.code else ""
        return f"{code}{self.limit}; Dev Center: {self.page}"


@dataclass(frozen=True)
class Finding:
    """One verdict: `check` on `subject` (a process type, a path, a file) saw `observed`."""

    check: Check
    status: Status
    subject: str
    observed: str
    fact: Fact
    fix: str = ""

    def line(self) -> str:
        fix = f" Fix: {self.fix}" if self.fix and self.status is not Status.PASS else ""
        head = f"{self.status:<4}  {self.check:<10} {self.subject}"
        return f"{head}: {self.observed} ({self.fact}).{fix}"


@dataclass(frozen=True)
class Report:
    """A doctor run: every finding, in check order. `failed(strict)` is what the exit status
    and `App.doctor()` users assert on."""

    app: str
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = field(default=())  # what could not be examined, and why

    def __post_init__(self) -> None:
        order = list(Check)
        ordered = sorted(self.findings, key=lambda f: order.index(f.check))
        object.__setattr__(self, "findings", tuple(ordered))

    def of(self, check: Check | str, status: Status | str | None = None) -> list[Finding]:
        """The findings of one check (and of one status)."""
        return [
            f for f in self.findings if f.check == check and (status is None or f.status == status)
        ]

    def with_status(self, status: Status) -> list[Finding]:
        return [f for f in self.findings if f.status is status]

    def failed(self, strict: bool = False) -> bool:
        """Any fail (with `strict`, any warning too)."""
        bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
        return any(f.status in bad for f in self.findings)

    def exit_code(self, strict: bool = False) -> int:
        return 1 if self.failed(strict) else 0

    def lines(self) -> list[str]:
        counts = {s: len(self.with_status(s)) for s in Status}
        summary = ", ".join(f"{counts[s]} {s}" for s in Status)
        return [
            *(f.line() for f in self.findings),
            *(f"note  {note}" for note in self.notes),
            f"=== {self.app}: {summary}",
        ]

    def text(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "app": self.app,
            "ok": not self.failed(),
            "findings": [_finding_dict(f) for f in self.findings],
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Report:
        findings = tuple(
            Finding(
                Check(f["check"]),
                Status(f["status"]),
                f["subject"],
                f["observed"],
                Fact(**f["fact"]),
                f["fix"],
            )
            for f in raw["findings"]
        )
        return cls(raw["app"], findings, tuple(raw.get("notes", ())))


def _finding_dict(finding: Finding) -> dict[str, Any]:
    raw = asdict(finding)
    raw["check"], raw["status"] = str(finding.check), str(finding.status)
    return raw
