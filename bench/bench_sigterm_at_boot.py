"""Where uWSGI loses Heroku's SIGTERM, and which hooks fix it (docs/benchmarks.md).

For each set of SIGTERM hooks, the example app's uWSGI runs alone in a container of its image
(as a dyno: dyno-launch signals every process); `docker stop -t 8` comes at a delay after
`$PORT` first accepts ("hung" = ended by SIGKILL), and a POST whose last body byte is sent
after SIGTERM says whether a request in flight is answered.

    python bench/bench_sigterm_at_boot.py --image dynosim/app-flask_app:<tag>
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

MASTER = "hook-master-start = unix_signal:15 gracefully_kill_them_all"
HOOKS = {
    "master-start + accepting": [MASTER, "hook-accepting = unix_signal:15 gracefully_kill"],
    "master-start + post-fork": [MASTER, "hook-post-fork = unix_signal:15 gracefully_kill"],
    "master-start + post-fork + accepting": [
        MASTER,
        "hook-post-fork = unix_signal:15 gracefully_kill",
        "hook-accepting = unix_signal:15 gracefully_kill",
    ],
}
DELAYS = (0.0, 0.0, 0.01, 0.05, 0.15, 0.3, 0.6)
GRACE = 8


def settings(image: str, hooks: list[str], folder: Path) -> Path:
    """The image's uwsgi.ini with its SIGTERM settings replaced by `hooks`."""
    ini = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "cat", image, "/app/uwsgi.ini"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    kept = [line for line in ini.splitlines() if not re.match(r"(hook-|die-on-term)", line)]
    path = folder / f"{len(list(folder.iterdir()))}.ini"
    path.write_text("\n".join([*kept, *hooks]) + "\n")
    path.chmod(0o644)
    return path


def dyno(image: str, ini: Path) -> tuple[str, str]:
    """A started container of uWSGI with `ini`, and its address, once `$PORT` accepts."""
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "-e", "PORT=5000", "-e", "WEB_CONCURRENCY=2",
         "-v", f"{ini}:/app/uwsgi.ini:ro", image, "uwsgi uwsgi.ini"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    address = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
         container],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, 5000), 0.2).close()
            break
        except OSError:
            time.sleep(0.005)
    return container, address


def stop(container: str) -> float:
    started = time.monotonic()
    subprocess.run(["docker", "stop", "-t", str(GRACE), container], capture_output=True)
    return time.monotonic() - started


def at_boot(image: str, ini: Path) -> list[str]:
    """Per delay: how long the stop took, or "hung"."""
    seen = []
    for delay in DELAYS:
        container, _ = dyno(image, ini)
        time.sleep(delay)
        took = stop(container)
        seen.append(f"{delay:g}s:{'hung' if took >= GRACE else f'{took:.1f}s'}")
    return seen


def in_flight(image: str, ini: Path, trials: int = 3) -> str:
    """How many of `trials` requests in flight at SIGTERM were answered."""
    answered = 0
    for trial in range(trials):
        container, address = dyno(image, ini)
        time.sleep(2.5)  # every worker accepts
        with socket.create_connection((address, 5000), 2) as client:
            client.sendall(
                f"POST /store/s{trial} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 2\r\n\r\n{".encode()
            )
            time.sleep(0.3)
            stopping = threading.Thread(target=stop, args=(container,))
            stopping.start()
            time.sleep(0.3)
            try:
                client.sendall(b"}")
                client.settimeout(5)
                answered += client.recv(100).startswith(b"HTTP/1.1 2")
            except OSError:
                pass
            stopping.join()
    return f"{answered}/{trials} answered"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="an image of examples/flask_app")
    image = parser.parse_args().image
    with tempfile.TemporaryDirectory() as folder:
        for name, hooks in HOOKS.items():
            ini = settings(image, hooks, Path(folder))
            booting = " ".join(at_boot(image, ini))
            print(f"{name}: at boot {booting}; in flight {in_flight(image, ini)}")


if __name__ == "__main__":
    main()
