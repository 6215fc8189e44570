"""What a dyno's container shows from inside and to its engine, for `dynosim doctor`: its
processes and listening sockets (one `exec` of a shell loop over /proc, as the dyno's own
user: works on a remote engine too), and its filesystem changes (the engine's diff). Raw
text out; `doctor.procfs` parses it."""

from __future__ import annotations

from docker.models.containers import Container

#: Marks the exec's own shell so the parser can leave it and its children out.
MARK = "@@doctor"
_SCRIPT = (
    f"for d in /proc/[0-9]*; do echo '{MARK} pid' ${{d#/proc/}}; "
    "tr '\\0' ' ' < $d/cmdline 2>/dev/null; echo; "
    "grep -E '^(PPid|SigIgn|SigCgt):' $d/status 2>/dev/null; done; "
    f"echo '{MARK} tcp'; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"
)
#: Docker's diff kinds.
KINDS = {0: "changed", 1: "added", 2: "deleted"}


def snapshot(container: Container) -> str:
    """Every process (pid, command line, parent, ignored and caught signals) and the TCP
    socket tables, as text; empty when the container does not run."""
    try:
        result = container.exec_run(["/bin/sh", "-c", _SCRIPT], demux=False)
    except Exception:  # stopped meanwhile, or no shell in the image
        return ""
    return (result.output or b"").decode(errors="replace")


def changes(container: Container) -> list[tuple[str, str]]:
    """(path, kind) for every path the container changed in its image's filesystem."""
    return [(item["Path"], KINDS.get(item["Kind"], "changed")) for item in container.diff() or []]


def output(container: Container) -> str:
    """What the container printed (stdout and stderr)."""
    return container.logs().decode(errors="replace")
