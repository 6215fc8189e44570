"""The Docker adapter's edges without an engine: SDK errors out as EngineError in the CLI's
words, a missing image as None, and .dockerignore matched as the docker CLI matches it."""

import http.server
import json
import os
import socketserver
import subprocess
import sys
import threading
from types import SimpleNamespace

import docker.errors
import pytest

from dynosim import addons
from dynosim.docker import client, dockerignore, images
from dynosim.errors import EngineError, UsageError


def test_an_sdk_error_leaves_the_adapter_as_engine_error_in_the_words_the_cli_shows():
    refused = docker.errors.APIError("500 Server Error", explanation="mkdir /x: read-only\n")

    @client.engine_errors
    def refuse() -> None:
        raise refused

    with pytest.raises(EngineError) as raised:
        refuse()
    assert str(raised.value) == "Docker engine: mkdir /x: read-only"
    assert raised.value.exit_code == 3 and raised.value.__cause__ is refused


def test_other_errors_pass_the_adapter_unchanged():
    @client.engine_errors
    def broken() -> None:
        raise KeyError("dyno")

    with pytest.raises(KeyError):
        broken()


def engine_with_images(get):
    return lambda: SimpleNamespace(images=SimpleNamespace(get=get))


def test_image_id_is_none_for_a_missing_image_and_engine_error_for_a_refusal(monkeypatch):
    def get(name):
        if name == "gone":
            raise docker.errors.ImageNotFound("No such image: gone")
        if name == "refused":
            raise docker.errors.APIError("500", explanation="engine busy")
        return SimpleNamespace(id=f"sha256:{name}")

    monkeypatch.setattr(client, "client", engine_with_images(get))
    monkeypatch.setattr(client, "socket_address", lambda: None)  # TLS or SSH: only the SDK
    assert images.image_id("here") == "sha256:here" and images.exists("here")
    assert images.image_id("gone") is None and not images.exists("gone")
    with pytest.raises(EngineError, match="^Docker engine: engine busy$"):
        images.exists("refused")


class Engine(http.server.BaseHTTPRequestHandler):
    """Answers `GET /images/NAME/json` as the engine does: 200 with the image, 404, or 500."""

    def do_GET(self) -> None:
        seen.append(self.path)
        status, body = {
            "/images/registry:5000/web:v1/json": (200, {"Id": "sha256:abc"}),
            "/images/refused/json": (500, {"message": "engine busy"}),
        }.get(self.path, (404, {"message": "No such image"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


seen: list[str] = []


def test_image_id_asks_over_a_plain_connection_without_the_sdk(monkeypatch, tmp_path):
    server = socketserver.UnixStreamServer(str(tmp_path / "engine.sock"), Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/engine.sock")
    monkeypatch.setattr(client, "client", lambda: pytest.fail("the SDK was used"))
    try:
        assert images.image_id("registry:5000/web:v1") == "sha256:abc"
        assert images.image_id("gone") is None
        with pytest.raises(EngineError, match="^Docker engine: engine busy$"):
            images.image_id("refused")
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [
        "/images/registry:5000/web:v1/json",
        "/images/gone/json",
        "/images/refused/json",
    ]
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(EngineError, match="^no Docker engine reachable"):
        images.image_id("web")


def test_dockerignore_comments_folders_and_exceptions(tmp_path):
    (tmp_path / ".dockerignore").write_text("# notes\n*.log\nbuild\n!keep.log\n  \n")
    excluded = dockerignore.excluded(tmp_path)
    assert [excluded(p) for p in ("app.log", "keep.log", "build/out.o", "src/a.py")] == [
        True,
        False,
        True,
        False,
    ]
    assert not excluded("# notes")


def test_without_a_dockerignore_nothing_is_excluded(tmp_path):
    excluded = dockerignore.excluded(tmp_path)
    assert not excluded("app.log") and not excluded(".dockerignore")


@pytest.mark.parametrize(
    ("printed", "message"),
    [("connecting\npg_dump: error: no route\n", "pg_dump failed: pg_dump: error: no route"),
     ("", "pg_dump failed: exit status 1")],
)  # fmt: skip
def test_a_failing_one_off_client_is_its_command_and_last_line(monkeypatch, printed, message):
    monkeypatch.setattr(addons.oneoffs, "run", lambda container: 1)
    monkeypatch.setattr(addons.oneoffs, "output", lambda container: printed)
    with pytest.raises(UsageError) as raised:
        addons._finish(object(), ["pg_dump", "-Fc", "-f", "/tmp/backup.dump"])
    assert str(raised.value) == message


def test_a_deploy_reaches_its_build_without_importing_the_sdk():
    """The docker SDK (0.1 s to import) is loaded beside the build, never before it."""
    probe = (
        "import sys, dynosim.cli, dynosim.deployment, dynosim.build, dynosim.gitpush;"
        "print(sorted(m for m in ('docker', 'requests') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_client_follows_docker_host_one_kept_per_engine(monkeypatch):
    """`App.start(engine="swarm")` points DOCKER_HOST from a Swarm manager to the engine builds
    run on and back: each engine gets its own client, kept for the next call."""
    made = []

    class Engine:
        def __init__(self, host):
            self.host = host

        def ping(self):
            return True

    def from_env(**kwargs):
        made.append(Engine(os.environ["DOCKER_HOST"]))
        return made[-1]

    monkeypatch.setattr(docker, "from_env", from_env)
    client.connected.cache_clear()
    try:
        monkeypatch.setenv("DOCKER_HOST", "unix:///manager.sock")
        first = client.client()
        monkeypatch.setenv("DOCKER_HOST", "unix:///engine.sock")
        assert client.client().host == "unix:///engine.sock"
        monkeypatch.setenv("DOCKER_HOST", "unix:///manager.sock")
        assert client.client() is first and len(made) == 2
    finally:
        client.connected.cache_clear()
