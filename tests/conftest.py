"""Shared fixtures. Integration tests (tests/integration) need a real Docker engine: outside CI
they skip without one; in CI (CI=true) they fail, so a green CI run always exercised Docker."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_client(dynosim_engine):
    """The real engine, or a failure in CI / a skip on a developer machine without one (the
    plugin's policy, dynosim.pytest_plugin)."""
    return dynosim_engine
