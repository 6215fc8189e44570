"""A release phase's `container.wait` failure is told apart from its timeout."""

import docker.errors
import pytest
import requests

from dynosim.docker.engine import _timed_out


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ReadTimeout("Read timed out. (read timeout=60)"),
        requests.exceptions.ConnectionError(
            "UnixHTTPConnectionPool(host='localhost', port=None): Read timed out."
        ),
    ],
)
def test_the_wait_ran_out(exc):
    assert _timed_out(exc)


@pytest.mark.parametrize(
    "exc",
    [
        docker.errors.NotFound("No such container: 1f2e"),
        requests.exceptions.ConnectionError("Connection aborted: FileNotFoundError"),
    ],
)
def test_other_failures_are_not_timeouts(exc):
    assert not _timed_out(exc)
