"""Pure: what a push to an app's git remote asks for, read from the `pre-receive` hook's
input, and Heroku's rules and words for it: only main or master deploy, neither is deleted."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError

#: The branches a push deploys (Heroku: "main or master").
DEPLOYABLE = ("main", "master")
ZERO = "0" * 40
HEADS = "refs/heads/"
SKIPPED = "Pushed to branch other than [main, master], skipping build."
VERIFIED = "Verifying deploy... done."


class PushRejected(UsageError):
    """A push the remote refuses; its message is Heroku's."""


@dataclass(frozen=True)
class RefUpdate:
    """One line of pre-receive's input: `<old sha> <new sha> <ref name>`."""

    old: str
    new: str
    ref: str

    @property
    def branch(self) -> str | None:
        """The branch name of a refs/heads/ ref, else None (a tag, a note)."""
        return self.ref[len(HEADS) :] if self.ref.startswith(HEADS) else None

    @property
    def deletes(self) -> bool:
        return self.new.strip("0") == ""


def parse(text: str) -> list[RefUpdate]:
    """Every update of pre-receive's input; ValueError on a line git would never send."""
    updates = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not all(_is_sha(p) for p in parts[:2]):
            raise ValueError(f"not a pre-receive line: {line!r}")
        updates.append(RefUpdate(*parts))
    return updates


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def to_deploy(updates: list[RefUpdate]) -> tuple[RefUpdate | None, list[str]]:
    """The update to build (the last one to main or master; None: nothing to build) and the
    lines to show for the others. PushRejected when main or master would be deleted."""
    chosen, notes = None, []
    for update in updates:
        if update.branch in DEPLOYABLE:
            if update.deletes:
                raise PushRejected(f"Push rejected, cannot delete {update.branch} branch")
            chosen = update
        elif update.branch is not None and not update.deletes:
            notes.append(SKIPPED)
    return chosen, list(dict.fromkeys(notes))


def description(sha: str) -> str:
    """The release's description, as Heroku writes a deploy's."""
    return f"Deploy {sha[:7]}"
