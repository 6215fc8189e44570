"""The control channel over a real unix socket (no Docker)."""

import asyncio
import os
import threading

import docker.errors
import pytest
import requests

from dynosim import control
from dynosim.errors import DynosimError, EngineError, RemoteError, UsageError


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path))


async def echo(request):
    if request.get("fail"):
        raise UsageError("Couldn't find that process type (api).")
    if request.get("crash"):
        raise KeyError("web.9")
    if request.get("engine"):
        response = requests.Response()
        response.status_code = 409
        raise docker.errors.APIError("409 Client Error", response, "Conflict.\n container is dead")
    if request.get("silent"):
        return
    for n in range(request.get("times", 1)):
        yield {"n": n, "got": request}


def serving(handler, body):
    """Run a Server in a thread's event loop while `body` talks to it synchronously."""
    ready, done = threading.Event(), threading.Event()
    errors = []

    def loop():
        async def main():
            server = control.Server("demo", handler)
            try:
                await server.start()
            except Exception as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            while not done.is_set():
                await asyncio.sleep(0.01)
            await server.close()

        asyncio.run(main())

    thread = threading.Thread(target=loop)
    thread.start()
    ready.wait(5)
    try:
        if errors:
            raise errors[0]
        return body()
    finally:
        done.set()
        thread.join(5)


def test_requests_and_streamed_replies_round_trip():
    replies = serving(echo, lambda: list(control.request("demo", {"times": 3, "x": 1})))
    assert [r["n"] for r in replies] == [0, 1, 2]
    assert replies[0]["got"] == {"times": 3, "x": 1}


def test_errors_arrive_as_dynosim_errors_with_their_exit_code():
    def body():
        with pytest.raises(DynosimError, match=r"process type \(api\)") as caught:
            control.call("demo", {"fail": True})
        return caught.value.exit_code

    assert serving(echo, body) == 2


def test_any_failure_in_up_comes_back_as_an_error_reply_with_its_type():
    def body():
        with pytest.raises(RemoteError) as crash:
            control.call("demo", {"crash": True}, "dyno")
        with pytest.raises(RemoteError) as engine:
            control.call("demo", {"engine": True}, "dyno")
        return crash.value, engine.value

    crash, engine = serving(echo, body)
    assert (crash.kind, str(crash), crash.exit_code) == ("KeyError", "KeyError: 'web.9'", 1)
    assert engine.kind == "APIError"
    assert str(engine) == "Docker engine: Conflict. container is dead"
    assert engine.exit_code == EngineError.exit_code


def test_a_reply_without_the_field_asked_for_is_an_error_not_a_key_error():
    def body():
        with pytest.raises(RemoteError, match="gave no dyno to None; see its terminal"):
            control.call("demo", {"silent": True}, "dyno")

    serving(echo, body)


def test_socket_is_owner_only_and_gone_after_close():
    path = control.socket_path("demo")
    modes = serving(
        echo, lambda: (os.stat(path).st_mode & 0o777, path.parent.stat().st_mode & 0o777)
    )
    assert modes == (0o600, 0o700)
    assert not path.exists()
    assert not control.is_running("demo")


def test_no_running_up_is_a_clear_error():
    with pytest.raises(control.NotRunning, match="no dynosim up is running for app demo"):
        control.call("demo", {})


def test_a_second_server_for_the_same_app_is_refused():
    def body():
        return serving(echo, lambda: None)

    with pytest.raises(UsageError, match="already running for app demo"):
        serving(echo, body)


def test_a_stale_socket_file_is_replaced():
    path = control.socket_path("demo")
    path.parent.mkdir(parents=True)
    path.write_text("")  # left by an up killed with SIGKILL
    assert serving(echo, lambda: control.call("demo", {})["n"]) == 0
