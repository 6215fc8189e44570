"""Shared fixtures. Integration tests (tests/integration) need a real Docker engine: outside CI
they skip without one; in CI (CI=true) they fail, so a green CI run always exercised Docker."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_client():
    """The real engine, or a failure in CI / a skip on a developer machine without one."""
    from dynosim import engine
    from dynosim.errors import EngineError

    try:
        return engine.client()
    except EngineError as exc:
        message = f"integration tests need a Docker engine: {exc.format_message()}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message + " (outside CI, so skipped; CI=true makes this fail)")
